"""A budgeted probe of the edgeprune recipe: one staged run to 5x that records every stage on the way.

    nice python -m bench.recipe_probe --data GLUE_DIR --teacher RUN_DIR --task sst2 [--train-limit N]

Runs ``edgeprune compress`` with ``--recipe edgeprune`` (activation rank, least-squares refit after
every cut, 2x -> 3x -> 4x -> 5x, logit + hidden distillation between cuts) from a fine-tuned teacher,
and for contrast the paper's one-shot weight-norm cut at 2x and 5x with no training (what its hard
prune does to the same teacher before retraining). Writes bench/results/recipe_probe.{json,md}.
Single seed; the budget (examples, steps, machine load) is recorded with the numbers. This is a probe
of the recipe on one task, not the five-task benchmark (bench/compress.py).
"""
from __future__ import annotations

import argparse
import os
import time

from bench.common import RESULTS, WORK, machine
from edgeprune.io import write_json



def oneshot_cut(teacher: str, task: str, data: str, compression: float) -> float:
    """Dev metric after the paper's hard prune (128x1 balanced, group norm) with no training."""
    from edgeprune.models import load_model
    from edgeprune.prune import prune
    from edgeprune.prune.masks import apply_masks
    from edgeprune.training import model_dir_of, task_metrics

    m, tok = load_model(model_dir_of(teacher))
    apply_masks(m, prune(m, "128x1", compression))
    return task_metrics((m, tok), task, data)["main"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--teacher", required=True, help="a finetune run dir (the dense teacher)")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--target", type=float, default=5.0)
    ap.add_argument("--train-limit", type=int, default=8000)
    ap.add_argument("--stage-steps", type=int, default=100)
    ap.add_argument("--epochs-retrain", type=float, default=0.5)
    ap.add_argument("--calib-examples", type=int, default=256)
    ap.add_argument("--retrain-lr", type=float, default=None, help="override the recipe's distillation lr")
    ap.add_argument("--name", default="recipe_probe", help="results file stem in bench/results/")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from edgeprune.compress import CompressConfig, compress
    from edgeprune.data import get_task, load_split

    spec = get_task(args.task)
    run = WORK / "probe" / (f"{args.task}-edgeprune-{args.target:g}x"
                            + (f"-rlr{args.retrain_lr:g}" if args.retrain_lr else ""))
    cfg = CompressConfig.for_recipe("edgeprune", model=args.teacher, task=args.task, data_dir=args.data, out=str(run),
                                    compression=args.target, train_limit=args.train_limit,
                                    stage_steps=args.stage_steps, epochs_retrain=args.epochs_retrain,
                                    calib_examples=args.calib_examples, save_steps=100, retrain_lr=args.retrain_lr)
    t0 = time.perf_counter()
    rec = compress(cfg, resume=(run / "compress_state").is_dir())
    wall = time.perf_counter() - t0
    dense = rec["metrics"]["dense"]["main"]
    rows = []
    for s in rec["stages"]:
        rows.append({"target": s["target"], "compression": s["compression"],
                     "after_cut": s["metrics_after_cut"]["main"],
                     "after_distill": (s.get("metrics_after_distill") or {}).get("main"),
                     "output_error_cut": s["output_error_cut"], "output_error_refit": s["output_error_refit"],
                     "steps": s.get("steps", 0), "cut_s": s["cut_s"], "distill_s": s.get("distill_s")})
    rows[-1]["after_distill"] = rec["metrics"]["pruned"]["main"]
    rows[-1]["steps"] = rec["steps"] - sum(r["steps"] for r in rows[:-1])
    paper = {c: oneshot_cut(args.teacher, args.task, args.data, c) for c in (2.0, args.target)}
    constant = None
    dev = load_split(spec, "dev", args.data)
    if not spec.is_regression:
        from collections import Counter

        from edgeprune.data import compute_metrics
        import numpy as np

        maj = Counter(e.label for e in dev).most_common(1)[0][0]
        logits = np.zeros((len(dev), spec.num_labels))
        logits[:, maj] = 1
        constant = compute_metrics(spec, logits, np.asarray([e.label for e in dev]))["main"]
    data = {"machine": machine(), "task": spec.name, "metric": spec.metric, "teacher": args.teacher,
            "dense": dense, "constant": constant, "stages": rows, "paper_oneshot_no_training": paper,
            "budget": {"train_limit": args.train_limit, "stage_steps": args.stage_steps,
                       "epochs_retrain": args.epochs_retrain, "calib_examples": args.calib_examples,
                       "optimizer_steps": rec["steps"], "wall_s": round(wall, 1), "phases_s": rec["phases"]},
            "config": rec["config"], "recipe": "edgeprune", "seed": 42}
    data["retrain_lr"] = cfg.retrain_lr_
    write_json(RESULTS / f"{args.name}.json", data)
    lines = [f"# Recipe probe: {spec.name}, staged edgeprune recipe to {args.target:g}x (single seed)", "",
             f"Teacher: `{args.teacher}` (dense {spec.metric} {dense:.4f}); majority-label score "
             f"{constant if constant is None else round(constant, 4)}. Budget: {args.train_limit} seeded training "
             f"examples, {args.stage_steps} distillation steps after each intermediate cut, {args.epochs_retrain:g} "
             f"retraining epochs at the target, distillation lr {cfg.retrain_lr_:g}, {args.calib_examples} calibration "
             f"sentences; {rec['steps']} optimizer "
             f"steps in all, {wall / 60:.0f} min wall on a 2-core machine shared with another training job "
             "(1 torch thread).", "",
             "| stage | compression | after cut + refit | after distillation | output error cut -> refit | steps |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ad = f"{r['after_distill']:.4f}" if r["after_distill"] is not None else "-"
        lines.append(f"| {r['target']:g}x | {r['compression']:.3f}x | {r['after_cut']:.4f} | {ad} | "
                     f"{r['output_error_cut']:.3f} -> {r['output_error_refit']:.3f} | {r['steps']} |")
    lines += ["", "The paper's hard prune (group norm, 128x1 balanced) on the same teacher, no training: "
              + ", ".join(f"{c:g}x {v:.4f}" for c, v in paper.items()) + ".", ""]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
