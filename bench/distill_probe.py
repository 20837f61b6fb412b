"""Does the retraining after a cut repair it? One cut (activation rank + least-squares refit) to a fixed
target, then the same number of masked distillation steps under different settings (lr, logit weight,
hidden-state weight), each from the same cut; plus the dense teacher retrained with the same schedule
and no cut, which shows what the schedule alone does to a converged model.

    nice python -m bench.distill_probe --data GLUE_DIR --task sst2 [--target 3] [--steps 300]

The teacher is bench/dense_baselines' teacher of the task. Every finished variant is merged into
bench/results/distill_probe.{json,md} at once (resumable). Single seed; budget recorded per row.
"""
from __future__ import annotations

import argparse
import os
import time

from bench.common import RESULTS, WORK, machine, probe_panels, recorded_teacher
from edgeprune.io import read_json, write_json

OUT = RESULTS / "distill_probe.json"
# (name, retrain lr, distill_alpha (weight of the logit KD vs the label loss), hidden-state MSE weight)
# (most informative first); "dense-control-*" rows retrain the uncut teacher instead
VARIANTS = [("recipe", 5e-5, 0.5, 1.0), ("dense-control-lr5e-05", 5e-5, 0.0, 0.0), ("low-lr", 1e-5, 0.5, 1.0),
            ("no-hidden", 2e-5, 0.5, 0.0), ("kd-only", 2e-5, 1.0, 1.0), ("logits-kd", 5e-5, 1.0, 0.0),
            ("dense-control-lr1e-05", 1e-5, 0.0, 0.0)]
# variants with their own budget: (steps, train_limit) instead of --steps / --train-limit
BUDGETS = {"long": (1200, 38400)}
VARIANTS += [("long", 5e-5, 0.5, 1.0), ("block32x1", 5e-5, 0.5, 1.0), ("sensitivity", 5e-5, 0.5, 1.0),
             ("calib1024", 5e-5, 0.5, 1.0)]
# variants that change one more compress setting: another block shape (the recipe's is 128x1 column
# segments), per-matrix kept fractions from measured cut + refit damage (same total), a larger calibration
# sample for the least-squares refit (the recipe's is 256 sentences)
SETTINGS = {"block32x1": {"block": "32x1"}, "sensitivity": {"allocation": "sensitivity"},
            "calib1024": {"calib_examples": 1024}}


def teacher_of(task: str) -> str:
    """The dense teacher of ``task`` from bench.dense_baselines (the probe needs one)."""
    path = recorded_teacher(task)
    if path is None:
        raise SystemExit(f"no dense teacher recorded for {task}; run python -m bench.dense_baselines --tasks {task}")
    return str(path)


def run_variant(args, name: str, lr: float, alpha: float, hidden: float) -> dict:
    from edgeprune.compress import CompressConfig, compress

    run = WORK / "distill_probe" / f"{args.task}-{args.target:g}x-{name}"
    steps, limit = BUDGETS.get(name, (args.steps, args.train_limit))
    epochs = steps * 32 / limit
    cfg = CompressConfig.for_recipe("edgeprune", model=teacher_of(args.task), task=args.task, data_dir=args.data,
                                    out=str(run), compression=args.target, stages=f"{args.target:g}",
                                    train_limit=limit, epochs_retrain=epochs, retrain_lr=lr,
                                    distill_alpha=alpha, distill_hidden=hidden, save_steps=100,
                                    **SETTINGS.get(name, {}))
    t0 = time.perf_counter()
    rec = compress(cfg, resume=(run / "compress_state").is_dir())
    return {"variant": name, "retrain_lr": lr, "distill_alpha": alpha, "distill_hidden": hidden,
            "dense": rec["metrics"]["dense"]["main"], "compression": rec["compression"]["prunable_encoder"]["compression"],
            "after_cut": (rec["metrics"].get("pruned_before_retrain") or rec["stages"][-1]["metrics_after_cut"])["main"],
            "after_retrain": rec["metrics"]["pruned"]["main"], "steps": rec["steps"], "train_limit": limit,
            "block": rec["block_str"], "calib_examples": rec["config"].get("calib_examples"),
            "wall_s": round(time.perf_counter() - t0, 1)}


def run_dense_control(args, lr: float) -> dict:
    """The teacher fine-tuned again on the same subset and schedule, no cut and no teacher (labels only)."""
    from edgeprune.training import TrainConfig, finetune

    run = WORK / "distill_probe" / f"{args.task}-dense-control-lr{lr:g}"
    cfg = TrainConfig(epochs=args.steps * 32 / args.train_limit, lr=lr, batch_size=32, train_limit=args.train_limit,
                      seed=42, group_by_length=True, freeze_word_embeddings=True, save_steps=100, warmup_ratio=0.1)
    t0 = time.perf_counter()
    rep = finetune(teacher_of(args.task), args.task, args.data, run, cfg, resume=True)
    return {"variant": f"dense-control-lr{lr:g}", "retrain_lr": lr, "distill_alpha": 0.0, "distill_hidden": 0.0,
            "compression": 1.0, "after_cut": None, "after_retrain": rep["main"], "steps": rep["train"]["global_step"],
            "train_limit": args.train_limit,
            "wall_s": round(time.perf_counter() - t0, 1)}


def save(row: dict, args) -> dict:
    d = read_json(OUT) if OUT.is_file() else {}
    key = f"{args.task}@{args.target:g}x"
    d.setdefault("probes", {}).setdefault(key, {"task": args.task, "target": args.target, "rows": []})
    p = d["probes"][key]
    p["rows"] = [r for r in p["rows"] if r["variant"] != row["variant"]] + [row]
    p["budget"] = {"train_limit": args.train_limit, "steps": args.steps, "batch_size": 32, "calib_examples": 256,
                   "seed": 42, "note": "1 torch thread, nice 10, on 2 cores shared with one other training job"}
    d["machine"] = machine()
    write_json(OUT, d)
    write_md(d)
    return d


def write_md(d: dict) -> None:
    lines = ["# Distillation probe: what the retraining after one cut does", "",
             "One cut (activation rank, least-squares refit on 256 calibration sentences) to the target, then the "
             "same number of masked retraining steps under each setting, every variant from the same cut; "
             "`dense-control` retrains the uncut teacher on the same subset and schedule (labels only). "
             "Loss = (1 - alpha) * label loss + alpha * KD(T=2) + hidden * mean per-layer hidden MSE. Single seed. "
             "Plot: `distill_probe.png`.", ""]
    for key, p in d.get("probes", {}).items():
        rows = p["rows"]
        dense = next((r["dense"] for r in rows if r.get("dense") is not None), None)
        b = p["budget"]
        lines += [f"## {p['task']} at {p['target']:g}x (teacher {dense:.4f})" if dense else f"## {key}", "",
                  f"Budget per variant: {b['steps']} optimizer steps, batch {b['batch_size']}, seeded subset of "
                  f"{b['train_limit']} training examples; {b['note']}.", "",
                  "| variant | lr | alpha | hidden | steps / examples | compression | after cut + refit | "
                  "after retraining | change | vs teacher | wall |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            cut = f"{r['after_cut']:.4f}" if r["after_cut"] is not None else "-"
            ch = f"{100 * (r['after_retrain'] - r['after_cut']):+.1f}" if r["after_cut"] is not None else "-"
            vs = f"{100 * (r['after_retrain'] - dense):+.1f}" if dense else "-"
            lines.append(f"| {r['variant']} | {r['retrain_lr']:g} | {r['distill_alpha']:g} | {r['distill_hidden']:g} | "
                         f"{r['steps']} / {r.get('train_limit', b['train_limit'])} | {r['compression']:.2f}x | {cut} | {r['after_retrain']:.4f} | {ch} | {vs} | "
                         f"{r['wall_s'] / 60:.0f} min |")
        lines.append("")
    (RESULTS / "distill_probe.md").write_text("\n".join(lines))
    plot(d)


def plot(d: dict) -> None:
    """One panel per probe: after cut + refit (hollow) and after retraining (filled) per variant."""
    panels = probe_panels(d, 6.5, 3.8)
    if panels is None:
        return
    plt, fig, pairs = panels
    for ax, p in pairs:
        rows = p["rows"]
        dense = next((r["dense"] for r in rows if r.get("dense") is not None), None)
        y = range(len(rows))
        ax.barh(list(y), [r["after_retrain"] for r in rows], color="C0", label="after retraining")
        ax.plot([r["after_cut"] if r["after_cut"] is not None else float("nan") for r in rows], list(y), "o",
                mfc="none", color="C3", label="after cut + refit")
        if dense:
            ax.axvline(dense, ls="--", color="gray", label="dense teacher")
        ax.set_yticks(list(y), [f"{r['variant']} ({r['steps']} st)" for r in rows], fontsize=8)
        lo = min(v for r in rows for v in (r["after_retrain"], r["after_cut"] or 1.0))
        ax.set_xlim(lo - 0.02, max([r["after_retrain"] for r in rows] + [dense or 0.0]) + 0.01)
        ax.set_title(f"{p['task']} at {p['target']:g}x")
        ax.set_xlabel("dev metric")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "distill_probe.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--target", type=float, default=3.0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--train-limit", type=int, default=8000)
    ap.add_argument("--variants", default=",".join(v[0] for v in VARIANTS))
    ap.add_argument("--report-only", action="store_true", help="rewrite the .md and .png from the JSON")
    args = ap.parse_args(argv)
    if args.report_only:
        write_md(read_json(OUT))
        return
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    want = args.variants.split(",")
    done = {r["variant"] for r in (read_json(OUT).get("probes", {}).get(f"{args.task}@{args.target:g}x", {})
                                   .get("rows", []) if OUT.is_file() else [])}
    for name, lr, alpha, hidden in VARIANTS:
        if name in want and name not in done:
            print(f"[probe] {args.task} {args.target:g}x {name}: lr {lr:g} alpha {alpha:g} hidden {hidden:g}", flush=True)
            row = run_dense_control(args, lr) if name.startswith("dense-control") else \
                run_variant(args, name, lr, alpha, hidden)
            save(row, args)


if __name__ == "__main__":
    main()
