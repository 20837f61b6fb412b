"""Training throughput of fine-tuning / retraining: where the time goes and what length grouping buys.

    nice python -m bench.throughput --data GLUE_DIR [--tasks sst2,mrpc] [--steps 30] [--threads 1,2]

For each task, times ``--steps`` optimizer steps of the real Trainer (MiniLM-L6, batch 32, seq <= 128)
with random batches (the old setting), with length-grouped batches (the new default,
``TrainConfig.group_by_length``), with the word-embedding table frozen, and then the best setting at
each further torch thread count (``--threads``: one run on both cores instead of one core; what a user
gets by default, since torch uses every core).
Writes bench/results/throughput.{json,md}. Each setting runs in this one process, one after the
other, on the same examples; the machine is named in the JSON (other jobs may share it).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from bench.common import machine, md_table, write_result


def _padded_tokens(trainer) -> tuple[int, int]:
    """(padded tokens, real tokens) over the first epoch's batches of the trainer's sampler."""
    dl = trainer.get_train_dataloader()
    pad = real = 0
    for i, b in enumerate(dl):
        pad += b["input_ids"].numel()
        real += int(b["attention_mask"].sum())
    return pad, real


def time_task(task: str, data: str, steps: int, grouped: bool, frozen: bool = False, threads: int = 1) -> dict:
    import torch

    torch.set_num_threads(threads)
    from transformers import TrainerCallback

    from edgeprune.data import get_task, load_split
    from edgeprune.models import load_model
    from edgeprune.training import TrainConfig, make_trainer

    spec = get_task(task)
    train = load_split(spec, "train", data)
    m, tok = load_model("minilm-l6", num_labels=spec.num_labels)
    cfg = TrainConfig(epochs=1, lr=5e-5, max_steps=steps, group_by_length=grouped, save_steps=10**6,
                      logging_steps=10**6, freeze_word_embeddings=frozen)

    class Clock(TrainerCallback):
        def __init__(self):
            self.t = []

        def on_step_end(self, *a, **k):
            self.t.append(time.perf_counter())

    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        tr = make_trainer(m, tok, spec, train, None, cfg, tmp, callbacks=[clock],
                          args_overrides={"save_strategy": "no", "disable_tqdm": True})
        pad, real = _padded_tokens(tr)
        tr.train()
    dts = [b - a for a, b in zip(clock.t[1:], clock.t[2:])]  # drop the first (warm-up) step
    per_step = sorted(dts)[len(dts) // 2]
    return {"task": spec.name, "grouped": grouped, "frozen_word_embeddings": frozen, "steps": steps, "median_step_s": round(per_step, 4),
            "examples_per_s": round(32 / per_step, 2), "padded_tokens_per_epoch": pad, "real_tokens_per_epoch": real,
            "padding_overhead": round(pad / real, 3), "torch_threads": torch.get_num_threads()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--tasks", default="sst2,mrpc")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", default="1", help="comma list; counts above 1 time the best 1-thread setting")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if not threads or min(threads) < 1:
        ap.error("--threads takes positive counts, e.g. 1,2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    rows = []
    for task in args.tasks.split(","):
        settings = [(False, False, 1), (True, False, 1), (True, True, 1)] + [(True, True, t) for t in threads if t > 1]
        for grouped, frozen, t in settings:
            r = time_task(task, args.data, args.steps, grouped, frozen, t)
            print(r, flush=True)
            rows.append(r)
    write_result("throughput", {"machine": machine(), "runs": rows,
                                "note": "median seconds per optimizer step after one warm-up step"}, report_lines(rows))


def report_lines(rows: list[dict]) -> list[str]:
    """The markdown report: one line per task x setting, speedup against random batches with a trained table."""
    base, cells = {}, []
    for r in rows:
        t = r.get("torch_threads", 1)
        if not r["grouped"] and not r.get("frozen_word_embeddings") and t == 1:
            base[r["task"]] = r["median_step_s"]
        sp = base.get(r["task"], r["median_step_s"]) / r["median_step_s"]
        cells.append([r["task"], "length-grouped" if r["grouped"] else "random",
                      "frozen" if r.get("frozen_word_embeddings") else "trained", str(t), f"{r['median_step_s']:.3f}",
                      f"{r['examples_per_s']:.1f}", f"{r['padding_overhead']:.2f}x", f"{sp:.2f}x"])
    lines = ["# Training throughput (MiniLM-L6, batch 32)", "",
             "Real Trainer steps; median step time after a warm-up step. `padding` = padded tokens / real tokens "
             "over one epoch of the sampler's batches. Speedup against random batches, trained token table, "
             "1 torch thread (the old setting).", "",
             *md_table(["task", "batches", "token table", "threads", "s/step", "examples/s", "padding", "speedup"],
                       cells)]
    return lines


if __name__ == "__main__":
    main()
