"""Where does a staged cut lose the task? The recipe's cuts (2x -> 3x, each ranked and refitted layer by
layer by least squares) with no training at all, under one changed cut setting per variant: the ranking
score (activation, second-order OBS, the paper's weight norm), the calibration sample, the block shape and
per-matrix allocation. The dev metric straight after each cut isolates the cut from the retraining
(``distill_probe`` does the converse: one fixed cut, different retraining).

    nice python -m bench.cut_probe --data GLUE_DIR --tasks cola,stsb [--variants recipe,obs,...]

The teacher is bench.dense_baselines' teacher of the task. Every finished variant is merged into
bench/results/cut_probe.{json,md,png} at once (resumable). Deterministic given the seed (no training).
"""
from __future__ import annotations

import argparse
import os
import time

from bench.common import RESULTS, WORK, machine, md_table, probe_panels
from bench.distill_probe import teacher_of
from edgeprune.io import read_json, write_json

OUT = RESULTS / "cut_probe.json"
STAGES = "2,3"
# name -> the compress settings it changes from the edgeprune recipe's cut (activation rank, 256 calibration
# sentences, 128x1 balanced column segments, uniform kept fraction per matrix)
VARIANTS: dict[str, dict] = {
    "recipe": {},
    "obs": {"score": "obs"},
    "weight": {"score": "weight"},
    "calib1024": {"calib_examples": 1024},
    "block32x1": {"block": "32x1"},
    "sensitivity": {"allocation": "sensitivity"},
    "no-refit": {"reconstruct": False},
}


def run_variant(task: str, data: str, name: str) -> dict:
    from edgeprune.compress import CompressConfig, compress

    run = WORK / "cut_probe" / f"{task}-{name}"
    settings = {"calib_examples": 256, **VARIANTS[name]}
    cfg = CompressConfig.for_recipe("edgeprune", model=teacher_of(task), task=task, data_dir=data, out=str(run),
                                    compression=float(STAGES.split(",")[-1]), stages=STAGES, stage_steps=0,
                                    epochs_retrain=0.0, **settings)
    t0 = time.perf_counter()
    rec = compress(cfg, resume=(run / "compress_state").is_dir())
    stages = [{"target": s["target"], "compression": s["compression"], "after_cut": s["metrics_after_cut"]["main"],
               "output_error_cut": s.get("output_error_cut"), "output_error_refit": s.get("output_error_refit"),
               "cut_s": s.get("cut_s")} for s in rec["stages"]]
    return {"variant": name, "settings": settings, "metric": rec["metrics"]["metric"],
            "dense": rec["metrics"]["dense"]["main"], "stages": stages, "block": rec["block_str"],
            "wall_s": round(time.perf_counter() - t0, 1)}


def save(task: str, row: dict) -> dict:
    d = read_json(OUT) if OUT.is_file() else {}
    p = d.setdefault("probes", {}).setdefault(task, {"task": task, "rows": []})
    p["rows"] = [r for r in p["rows"] if r["variant"] != row["variant"]] + [row]
    d["budget"] = {"training_steps": 0, "stages": STAGES, "seed": 42,
                   "note": "no training: cut + least-squares refit only; 1 torch thread, nice 10, 2 shared cores"}
    d["machine"] = machine()
    write_json(OUT, d)
    write_report(d)
    return d


def write_report(d: dict) -> None:
    lines = ["# Cut probe: what each cut setting costs before any training", "",
             f"The edgeprune recipe's staged cuts ({STAGES.replace(',', 'x -> ')}x), each re-ranked and refitted by "
             "least squares on the current model, with no distillation or retraining; one setting changed per "
             "variant. Dev metric straight after each cut. Single seed; deterministic. Plot: `cut_probe.png`.", ""]
    for task, p in d.get("probes", {}).items():
        rows = p["rows"]
        dense = rows[0]["dense"]
        targets = [s["target"] for s in rows[0]["stages"]]
        lines += [f"## {task} ({rows[0]['metric']}, teacher {dense:.4f})", ""]
        head = ["variant", "changed"] + [f"{t:g}x after cut" for t in targets] + [f"{t:g}x vs teacher" for t in targets] \
            + ["wall"]
        cells = []
        for r in rows:
            by = {s["target"]: s["after_cut"] for s in r["stages"]}
            ch = ", ".join(f"{k}={v}" for k, v in VARIANTS.get(r["variant"], {}).items()) or "-"
            cells.append([r["variant"], ch] + [f"{by[t]:.4f}" if t in by else "-" for t in targets]
                         + [f"{100 * (by[t] - dense):+.1f}" if t in by else "-" for t in targets]
                         + [f"{r['wall_s'] / 60:.0f} min"])
        lines += md_table(head, cells) + [""]
    (RESULTS / "cut_probe.md").write_text("\n".join(lines))
    plot(d)


def plot(d: dict) -> None:
    panels = probe_panels(d, 6, 3.6)
    if panels is None:
        return
    plt, fig, pairs = panels
    for ax, p in pairs:
        rows = p["rows"]
        for i, r in enumerate(rows):
            xs = [s["target"] for s in r["stages"]]
            ax.plot(xs, [s["after_cut"] for s in r["stages"]], "o-", label=r["variant"], color=f"C{i}")
        ax.axhline(rows[0]["dense"], ls="--", color="gray", label="teacher")
        ax.set_xlabel("compression (prunable encoder)")
        ax.set_ylabel(rows[0]["metric"])
        ax.set_title(f"{p['task']}: after the cut, no training")
    pairs[-1][0].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(RESULTS / "cut_probe.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--tasks", default="cola,stsb")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for task in args.tasks.split(","):
        done = {r["variant"] for r in (read_json(OUT).get("probes", {}).get(task, {}).get("rows", [])
                                       if OUT.is_file() else [])}
        for name in args.variants.split(","):
            if name not in done:
                print(f"[cut-probe] {task} {name}: {VARIANTS[name] or 'the recipe'}", flush=True)
                save(task, run_variant(task, args.data, name))


if __name__ == "__main__":
    main()
