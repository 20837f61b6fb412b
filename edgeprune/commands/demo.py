"""``edgeprune demo``: the whole pipeline, offline, on the packaged MiniLM-L6 and the embedded sentence set.

The pipeline is a list of stages (``STAGES``); each takes the shared context dict, may add to it,
and returns a JSON-able summary that goes into ``OUT/demo_report.json``. Later stages (compress,
export, profile) are appended to ``STAGES`` as they land.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import click

Stage = Callable[[dict[str, Any]], dict[str, Any]]

# A few fresh sentences (not in the demo set) to show the fine-tuned model at work.
SHOWCASE = [
    "the battery life on this laptop is outstanding",
    "the app froze twice and wiped my settings",
    "setup was quick and the sound is wonderful",
    "the charger stopped working after two days",
]
LABEL_NAMES = ("negative", "positive")


def demo_data_dir() -> Path:
    """The embedded sentence set: ``edgeprune/demo/{train,dev}.tsv`` in SST-2 layout (sentence, label)."""
    from importlib.resources import files

    return Path(str(files("edgeprune").joinpath("demo")))


def demo_train_config():
    from ..training import TrainConfig

    # 192 short sentences, 12 steps per epoch: well under two minutes on 2 CPU cores. save_steps past the
    # last step: a one-minute run needs no 270 MB optimizer checkpoints.
    return TrainConfig(epochs=4.0, lr=5e-5, batch_size=16, eval_batch_size=64, max_seq_len=64, warmup_ratio=0.1,
                       seed=42, logging_steps=6, save_steps=10_000, save_total_limit=1)


def stage_finetune(ctx: dict[str, Any]) -> dict[str, Any]:
    from ..training import finetune

    run = ctx["out"] / "finetune"
    report = finetune(ctx["model"], "sst2", ctx["data"], run, ctx["train_config"], overwrite=True)
    ctx["finetuned"] = run
    return {"run_dir": str(run), "dev_accuracy": report["main"], "train": report["train"],
            "config": ctx["train_config"].to_dict()}


def stage_evaluate(ctx: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from ..data import GlueExample
    from ..models import load_model
    from ..training import evaluate, model_dir_of, predict

    metrics = evaluate(ctx["finetuned"], "sst2", ctx["data"], split="dev")
    model, tok = load_model(model_dir_of(ctx["finetuned"]))
    logits = predict(model, tok, [GlueExample(s, None, 0) for s in SHOWCASE], max_seq_len=64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    shown = [{"sentence": s, "label": LABEL_NAMES[int(p.argmax())], "p_positive": round(float(p[1]), 4)}
             for s, p in zip(SHOWCASE, probs)]
    return {"dev": {k: metrics[k] for k in ("accuracy", "main", "num_examples")}, "examples": shown}


STAGES: list[tuple[str, Stage]] = [
    ("finetune", stage_finetune),
    ("evaluate", stage_evaluate),
]


def run_demo(out: Path, model: str = "minilm-l6", stages: list[tuple[str, Stage]] | None = None,
             echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``stages`` in order; write and return the report (``OUT/demo_report.json``)."""
    from ..io import check_writable_dir, write_json

    check_writable_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx: dict[str, Any] = {"out": out, "model": model, "data": demo_data_dir(), "train_config": demo_train_config()}
    report: dict[str, Any] = {"model": model, "data": "edgeprune/demo (embedded sentiment set, SST-2 layout)",
                              "stages": []}
    for name, fn in stages if stages is not None else STAGES:
        echo(f"== demo stage: {name}")
        t0 = time.perf_counter()
        summary = fn(ctx)
        report["stages"].append({"name": name, "seconds": round(time.perf_counter() - t0, 2), **summary})
    write_json(out / "demo_report.json", report)
    return report


@click.command("demo", short_help="Run the offline demo on the packaged MiniLM-L6.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True,
              help="Folder for the demo's runs and demo_report.json (replaced on each run).")
@click.option("--model", default="minilm-l6", show_default=True, help="Model folder or alias to start from.")
def command(out_dir: Path, model: str) -> None:
    """Fine-tune MiniLM-L6 on the embedded sentence set and evaluate it, offline."""
    report = run_demo(out_dir, model, echo=click.echo)
    for st in report["stages"]:
        click.echo(f"{st['name']:>10}: {st['seconds']:.1f}s")
    ev = next((s for s in report["stages"] if s["name"] == "evaluate"), None)
    if ev:
        click.echo(f"dev accuracy {ev['dev']['accuracy']:.3f} on {ev['dev']['num_examples']} held-out sentences")
        for e in ev["examples"]:
            click.echo(f"  {e['label']:>8} ({e['p_positive']:.2f})  {e['sentence']}")
    click.echo(f"report: {out_dir / 'demo_report.json'}")
