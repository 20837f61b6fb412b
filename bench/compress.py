"""Benchmark of ``edgeprune compress`` on real MiniLM-L6 and real GLUE: the paper's method vs its baselines.

    nice -n 10 python -m bench.compress [--tasks mrpc,rte] [--runs paper,baselines,sweep]
        [--train-limit N] [--epochs-reg E] [--epochs-retrain E] [--overhead]

Each run starts from the dense fine-tuned model of ``bench.dense_baselines``
(``bench/work/dense/<task>``); tasks whose dense model is not there yet are skipped (and listed
as missing). Runs live in ``bench/work/compress/<id>`` and are resumable (``compress --resume``);
each finished run is appended to ``bench/results/compress.json`` at once, and the .md and the
accuracy-vs-compression plot are rewritten from the JSON after every run.

Run sets: ``paper`` = reweighted group Lasso at 5x; ``baselines`` = group-lasso, magnitude-block,
magnitude-unstructured and reweighted + distillation at 5x; ``sweep`` = reweighted at 2x, 3x, 8x;
``low`` = magnitude-block at 2x (the baseline beside the 2x point of the sweep);
``act`` = reweighted and magnitude-block at 5x with the activation-aware hard-pruning score;
``presets`` = reweighted at 5x with the tflite (allx1), paper (16x16) and rows (1xall) block presets
(the ``ort`` preset is the default 128x1).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from bench.common import DENSE, RESULTS, ROOT, WORK, glue_dir, machine, pyplot, recorded_teacher
from edgeprune.io import read_json, write_json

RUNS_DIR = WORK / "compress"  # one compress run directory per run id
NAME = "compress"
MODEL = "minilm-l6"
TASKS = ("mrpc", "rte", "stsb", "cola", "sst2")
RGL = "reweighted-group-lasso"

B8K = dict(tag="n8000", train_limit=8000, epochs_reg=1.0, epochs_retrain=2.0)
BFULL = dict(tag="full", train_limit=None, epochs_reg=1.0, epochs_retrain=2.0)
RUN_SETS: dict[str, list[dict]] = {
    "paper": [dict(method=RGL, compression=5.0)],
    # our extension at 5x: activation-aware hard-pruning rank + distillation from the dense model
    "baselines": [dict(method=RGL, compression=5.0, distill=True, score="activation"),
                  dict(method="magnitude-block", compression=5.0),
                  dict(method="group-lasso", compression=5.0), dict(method="magnitude-unstructured", compression=5.0)],
    "sweep": [dict(method=RGL, compression=c) for c in (2.0, 3.0, 8.0)],
    # our recipe (activation-aware hard-pruning rank + distillation) across targets, beside the paper's curve
    "ours": [dict(method=RGL, compression=c, distill=True, score="activation") for c in (2.0, 8.0)],
    "low": [dict(method="magnitude-block", compression=2.0)],
    "act": [dict(method=RGL, compression=5.0, score="activation"),
            dict(method="magnitude-block", compression=5.0, score="activation")],
    "distill": [dict(method=RGL, compression=5.0, distill=True)],
    "presets": [dict(method=RGL, compression=5.0, block_preset=p) for p in ("tflite", "paper", "rows")],
    # the block presets with our recipe (the ort preset, 128x1, is the "baselines" set's distill-act run)
    "presets_ours": [dict(method=RGL, compression=5.0, block_preset=p, distill=True, score="activation")
                     for p in ("tflite", "paper", "rows")],
    "act2": [dict(method=RGL, compression=2.0, score="activation", distill=True)],
    # how the masked-retraining lr decides recovery in a short schedule (one retraining epoch, no regularizer)
    "lrprobe": [dict(method="magnitude-block", compression=5.0, score="activation", distill=True, lr=lr,
                     epochs_reg=0.0, epochs_retrain=1.0, tag=f"lr{lr:g}") for lr in (5e-5, 1e-4, 2e-4, 4e-4, 8e-4)],
    # ours + gradual pruning (cubic ramp over the first half of masked retraining, Zhu & Gupta 2017) instead
    # of the one-shot hard prune; the regularized stage is the paper run's, so the budget is the same 1+1 epochs
    "gradual": [dict(method=RGL, compression=5.0, distill=True, score="activation", prune_schedule="gradual")],
    # gradual magnitude pruning without a regularizer (2 retraining epochs, ramp over the first): the same budget
    # (and its one-shot control: the same recipe, the same 2 epochs, one cut at the start)
    "gmp": [dict(method="magnitude-block", compression=5.0, distill=True, score="activation",
                 prune_schedule="gradual"),
            dict(method="magnitude-block", compression=5.0, distill=True, score="activation")],
    # a larger budget on SST-2 (the dense model's 8,000 training examples, 1 + 2 epochs: 8x the steps): the
    # paper's method and ours one-shot; then ours gradual (its own set, so that a second process can run it once the
    # paper run has kept its regularized stage for the other two)
    "budget": [dict(method=RGL, compression=5.0, **B8K), dict(method=RGL, compression=5.0, distill=True,
                                                              score="activation", **B8K)],
    "budget_gradual": [dict(method=RGL, compression=5.0, distill=True, score="activation", prune_schedule="gradual",
                            **B8K)],
    # the full training set (MRPC 3,668, STS-B 5,749 examples ...), 1 + 2 epochs: paper and ours, one-shot
    "full": [dict(method=RGL, compression=5.0, **BFULL),
             dict(method=RGL, compression=5.0, distill=True, score="activation", **BFULL)],
    # ours with one global ranking of all 36 matrices instead of the same kept fraction in each
    "global": [dict(method=RGL, compression=5.0, distill=True, score="activation", scope="global")],
    # sensitivity to the group-Lasso lambda (docs/paper.md: 1e-4 default, 1e-3 and 1e-5 variants exist)
    "penalty": [dict(method=RGL, compression=5.0, penalty=p, tag=f"lambda{p:g}") for p in (1e-3, 1e-5)],
    "gradual_sweep": [dict(method=RGL, compression=c, distill=True, score="activation", prune_schedule="gradual")
                      for c in (2.0, 3.0, 8.0)],
    # generation 3 (issue 13): the named recipes against the held-out-tuned teachers of bench/dense_baselines.
    # One staged edgeprune run per task records its 2x, 3x and 4x models on the way to 5x; the paper's recipe
    # (proximal reweighted group Lasso, one hard prune, masked retraining) at 2x and 5x from one regularized stage;
    # the magnitude baselines at 5x with the same training budget. Budget per run: G3 (seeded subset, epochs).
    # the edgeprune rows of generation 3 were run with the recipe's uniform allocation (its default then)
    "gen3": [dict(recipe="edgeprune", method="magnitude-block", compression=5.0, tag="gen3", allocation="uniform"),
             dict(recipe="paper", method=RGL, compression=5.0, tag="gen3"),
             dict(recipe="paper", method=RGL, compression=2.0, tag="gen3"),
             dict(recipe="paper", method="magnitude-block", compression=5.0, tag="gen3"),
             dict(recipe="paper", method="magnitude-unstructured", compression=5.0, tag="gen3")],
}
# the same runs in two parts, so our recipe can go first on every task (same ids: results merge)
RUN_SETS["gen3-edgeprune"] = RUN_SETS["gen3"][:1]
RUN_SETS["gen3-peers"] = RUN_SETS["gen3"][1:]
# the recipe with per-matrix kept fractions from measured reconstruction damage (bench/results/cut_probe.md:
# STS-B straight after the 3x cut 0.805 against 0.697 with the uniform allocation)
RUN_SETS["gen3-sensitivity"] = [dict(RUN_SETS["gen3"][0], allocation="sensitivity")]
# the same recipe distilling also on 4 teacher-labelled perturbed copies of every training example (same steps):
# TinyBERT found augmentation mattered most on the small tasks, CoLA above all
RUN_SETS["gen3-augment"] = [dict(RUN_SETS["gen3-sensitivity"][0], augment=4)]
# the recipe pruning whole heads and FFN units (what onnxruntime and LiteRT int8 turn into speed: issue 14)
RUN_SETS["gen3-units"] = [dict(RUN_SETS["gen3-sensitivity"][0], units=True)]
# a milder target for the frontier's "within 1 point of dense fp32" point (one cut, 2 epochs at 1.5x)
RUN_SETS["gen3-units-1.5x"] = [dict(RUN_SETS["gen3-units"][0], compression=1.5)]
RUN_SETS["gen3-units-1.75x"] = [dict(RUN_SETS["gen3-units"][0], compression=1.75)]
# whole heads + units and 4 teacher-labelled augmented copies (the small tasks)
RUN_SETS["gen3-units-aug"] = [dict(RUN_SETS["gen3-units"][0], augment=4)]
# generation-3 budget: seeded subset of at most 8,000 training examples, paper 1 + 2 epochs, ours 150 steps per
# intermediate stage + 2 epochs at the target (about an hour per run on one of these cores)
G3 = dict(train_limit=8000, epochs_reg=1.0, epochs_retrain=2.0, stage_steps=150)
# per-run overrides that change the regularized stage: runs with them reuse the paper run carrying the same ones
BUDGET_KEYS = ("tag", "train_limit", "epochs_reg")
# the run whose regularized stage every other reweighted run of the task reuses (the regularizer does not
# depend on the target, the hard-pruning score or distillation, so one stage serves them all)
REG_SOURCE = RUN_SETS["paper"][0]


def run_id(task: str, r: dict, block: str) -> str:
    b = "units" if r.get("units") else (r.get("block_preset") or block)
    return (f"{task}-{r['method']}-{r['compression']:g}x-{b.replace('/', 'd')}" + ("-distill" if r.get("distill") else "")
            + ("-act" if r.get("score", "weight") != "weight" else "")
            + ("-gradual" if r.get("prune_schedule", "oneshot") != "oneshot" else "")
            + ("-global" if r.get("scope", "uniform") != "uniform" else "")
            + (f"-{r['tag']}" if r.get("tag") else "") + (f"-{r['recipe']}" if r.get("recipe") else "")
            + (f"-{r['allocation']}" if r.get("allocation", "uniform") != "uniform" else "")
            + (f"-aug{r['augment']}" if r.get("augment") else ""))


def recipe_label(r: dict) -> str:
    """A row's line in the generation-3 table and plot: the recipe, plus the allocation when not uniform and the
    augmentation copies when any (``edgeprune+sensitivity+aug4``). Derived from the row's fields."""
    return (r["recipe"] + (f"+{r['allocation']}" if r.get("allocation", "uniform") != "uniform" else "")
            + (f"+aug{r['augment']}" if r.get("augment") else "") + ("+units" if r.get("units") else ""))


def load_results() -> dict:
    path = RESULTS / f"{NAME}.json"
    if path.is_file():
        return read_json(path)
    return {"runs": [], "overhead": None}


def dense_baselines() -> dict:
    path = RESULTS / "dense_baselines.json"
    if not path.is_file():
        return {}
    data = read_json(path)
    runs = data.get("runs", data if isinstance(data, list) else [])
    return {r["task"]: r for r in runs if isinstance(r, dict) and "task" in r}


def teacher_dir(task: str) -> Path:
    """The dense teacher: the seed nearest the mean of bench.dense_baselines (generation 3), else the old run."""
    return recorded_teacher(task) or DENSE / task


def recipe_run(task: str, r: dict, args) -> dict:
    """A generation-3 run: a named recipe with the G3 budget; staged runs also report their stages."""
    import torch

    from edgeprune.compress import CompressConfig, compress

    rid = run_id(task, r, args.block)
    src = run_id(task, dict(recipe="paper", method=RGL, compression=5.0, tag="gen3"), args.block)
    reuse = None
    if r["recipe"] == "paper" and r["method"] == RGL and rid != src:
        kept = RUNS_DIR / src / "compress_state" / "regularize" / "model" / "config.json"
        reuse = str(RUNS_DIR / src) if kept.is_file() else None
    over = dict(train_limit=G3["train_limit"], block=args.block, method=r["method"], seed=42,
                save_steps=args.save_steps, keep_regularized=rid == src, regularized_from=reuse)
    if r["recipe"] == "paper":
        over.update(epochs_reg=G3["epochs_reg"], epochs_retrain=G3["epochs_retrain"])
    else:
        over.update(epochs_retrain=G3["epochs_retrain"], stage_steps=G3["stage_steps"])
    if r["method"] == "magnitude-unstructured":
        over.pop("block")
    if r.get("allocation"):
        over["allocation"] = r["allocation"]
    if r.get("augment"):
        over["augment"] = r["augment"]
    if r.get("units"):
        over["units"] = True
        over.pop("block")
    cfg = CompressConfig.for_recipe(r["recipe"], model=str(teacher_dir(task)), task=task, data_dir=str(args.data),
                                    out=str(RUNS_DIR / rid), compression=r["compression"], **over)
    t0 = time.perf_counter()
    rec = compress(cfg, resume=(RUNS_DIR / rid / "compress_state").is_dir())
    wall = time.perf_counter() - t0
    dense = rec["metrics"]["dense"]["main"]
    base = {"model": MODEL, "task": task, "method": r["method"], "recipe": r["recipe"], "allocation": cfg.allocation,
            "augment": cfg.augment, "units": cfg.units, "block": rec["block_str"],
            "metric": rec["metrics"]["metric"], "dense": dense, "constant": constant_baseline(task, args.data),
            "seed": 42, "tag": "gen3", "budget": {**G3, "lr": cfg.lr, "retrain_lr": cfg.retrain_lr_},
            "torch_threads": torch.get_num_threads(), "run_dir": str((RUNS_DIR / rid).relative_to(ROOT)),
            "wall_s": round(sum(rec["phases"].values()), 1), "wall_s_this_call": round(wall, 1),
            "regularize": rec.get("regularize"), "regularized_from": reuse and src}
    row = {**base, "id": rid, "target": r["compression"],
           "compression": rec["compression"]["prunable_encoder"]["compression"],
           "pruned": rec["metrics"]["pruned"]["main"], "pruned_before_retrain":
               (rec["metrics"].get("pruned_before_retrain") or {}).get("main"), "steps": rec["steps"]}
    row["delta_points"] = 100 * (row["pruned"] - dense)
    stages = []
    steps = 0
    for s in (rec.get("stages") or [])[:-1]:  # intermediate stages: models on the way to the target
        steps += int(s.get("steps", 0))
        m = (s.get("metrics_after_distill") or s["metrics_after_cut"])["main"]
        stages.append({**base, "id": f"{rid}@{s['target']:g}x", "target": s["target"], "compression": s["compression"],
                       "pruned": m, "pruned_before_retrain": s["metrics_after_cut"]["main"], "steps": steps,
                       "delta_points": 100 * (m - dense), "stage_of": rid})
    row["stage_rows"] = stages
    return row


def one_run(task: str, r: dict, args) -> dict:
    import torch

    from edgeprune.compress import CompressConfig, compress

    if r.get("recipe"):
        return recipe_run(task, r, args)

    rid = run_id(task, r, args.block)
    # a budget variant (tag + its own train_limit / epochs) reuses the paper run of the same variant
    src_id = run_id(task, REG_SOURCE | {k: r[k] for k in BUDGET_KEYS if k in r}, args.block)
    reuse = None
    if r["method"] == RGL and rid != src_id and not r.get("block_preset"):
        kept = RUNS_DIR / src_id / "compress_state" / "regularize" / "model" / "config.json"
        reuse = str(RUNS_DIR / src_id) if kept.is_file() else None
    lr = r.get("lr", args.lr)
    train_limit = r.get("train_limit", args.train_limit)
    e_reg = r.get("epochs_reg", args.epochs_reg)
    e_rt = r.get("epochs_retrain", args.epochs_retrain)
    penalty = r.get("penalty", args.penalty)
    settings = {"train_limit": train_limit, "eval_limit": None, "epochs_reg": e_reg,
                "epochs_retrain": e_rt, "lr": lr, "batch_size": args.batch_size,
                "max_seq_len": 128, "penalty": penalty, "reweight_every": args.reweight_every, "seed": 42}
    cfg = CompressConfig(model=str(DENSE / task), task=task, data_dir=str(args.data), out=str(RUNS_DIR / rid),
                         compression=r["compression"], block=None if r.get("block_preset") else args.block,
                         block_preset=r.get("block_preset"), method=r["method"], distill=bool(r.get("distill")),
                         penalty=penalty, reweight_every=args.reweight_every, epochs_reg=e_reg,
                         epochs_retrain=e_rt, lr=lr, batch_size=args.batch_size,
                         train_limit=train_limit, save_steps=args.save_steps, seed=42,
                         score=r.get("score", "weight"), keep_regularized=rid == src_id,
                         regularized_from=reuse, prune_schedule=r.get("prune_schedule", "oneshot"),
                         scope=r.get("scope", "uniform"))
    t0 = time.perf_counter()
    resume = (RUNS_DIR / rid / "compress_state").is_dir()
    rec = compress(cfg, resume=resume)
    wall = time.perf_counter() - t0
    dense = rec["metrics"]["dense"]["main"]
    pruned = rec["metrics"]["pruned"]["main"]
    return {
        "id": rid, "model": MODEL, "task": task, "method": r["method"], "block": rec["block_str"],
        "block_json": rec["block"], "balanced": rec["balanced"], "distill": bool(r.get("distill")),
        "score": r.get("score", "weight"), "prune_schedule": r.get("prune_schedule", "oneshot"), "tag": r.get("tag"),
        "scope": r.get("scope", "uniform"),
        "target": r["compression"],
        "compression": rec["compression"]["prunable_encoder"]["compression"],
        "compression_whole_encoder": rec["compression"]["whole_encoder"]["compression"],
        "compression_whole_model": rec["compression"]["whole_model"]["compression"],
        "metric": rec["metrics"]["metric"], "dense": dense, "pruned": pruned, "delta_points": 100 * (pruned - dense),
        "pruned_before_retrain": (rec["metrics"].get("pruned_before_retrain") or {}).get("main"),
        "pruned_metrics": rec["metrics"]["pruned"], "phases_s": rec["phases"], "regularized_from": reuse and src_id,
        "torch_threads": torch.get_num_threads(),  # 2 cores: one 2-thread run or two 1-thread runs
        "wall_s": round(sum(rec["phases"].values()), 1),  # a reused regularized stage counts in full "wall_s_this_call": round(wall, 1),
        "num_train_examples": rec["num_train_examples"], "num_eval_examples": rec["num_eval_examples"],
        "settings": settings, "run_dir": str((RUNS_DIR / rid).relative_to(ROOT)),
    }


def measure_overhead(args, steps: int = 8) -> dict:
    """Per-step cost of the reweighted group-Lasso term vs a plain fine-tuning step on MiniLM-L6.

    Same batch (32 real MRPC pairs, dynamic padding), AdamW, interleaved plain / regularized steps;
    also the regularizer alone (forward + backward), which is the overhead free of machine noise.
    """
    import torch

    from edgeprune.data import load_split
    from edgeprune.models import load_model
    from edgeprune.prune.blocks import parse_block
    from edgeprune.prune.group_lasso import GroupLassoRegularizer
    from edgeprune.prune.oneshot import prunable_matrices

    threads = torch.get_num_threads()
    torch.set_num_threads(args.overhead_threads)  # 1 thread: CPU time = work, no spin-waiting on a busy machine
    model, tok = load_model(MODEL, num_labels=2)
    ex = load_split("mrpc", "train", args.data, limit=32)
    batch = tok([e.text_a for e in ex], [e.text_b for e in ex], truncation=True, max_length=128, padding=True,
                return_tensors="pt")
    batch["labels"] = torch.tensor([e.label for e in ex])
    mats = prunable_matrices(model, "all", parse_block(args.block))
    reg = GroupLassoRegularizer(mats.params, mats.tilings, args.penalty)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    model.train()

    def step(with_reg: bool) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        loss = model(**batch).loss
        if with_reg:
            loss = loss + reg()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return time.perf_counter() - t, time.process_time() - c

    def reg_only() -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        reg().backward()
        return time.perf_counter() - t, time.process_time() - c

    step(False), step(True)  # warm-up
    plain, regd, alone = [], [], []
    for _ in range(steps):
        plain.append(step(False))
        regd.append(step(True))
        opt.zero_grad()
        alone.append(min(reg_only() for _ in range(3)))
        opt.zero_grad()
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    p, r, a = med(plain, 0), med(regd, 0), med(alone, 0)
    pc, rc, ac = med(plain, 1), med(regd, 1), med(alone, 1)
    n_groups = sum(t.num_groups for t in tilings.values())
    torch.set_num_threads(threads)
    return {"block": args.block, "num_matrices": len(tilings), "num_groups": n_groups, "batch": 32,
            "seq_len_padded": int(batch["input_ids"].shape[1]), "steps": steps,
            "plain_step_s": p, "regularized_step_s": r, "regularizer_only_s": a,
            "overhead_interleaved": r / p - 1, "overhead_regularizer_only": a / p,
            "plain_step_cpu_s": pc, "regularized_step_cpu_s": rc, "regularizer_only_cpu_s": ac,
            "overhead_interleaved_cpu": rc / pc - 1, "overhead_regularizer_only_cpu": ac / pc,
            "torch_threads": args.overhead_threads}


def constant_baseline(task: str, data: Path) -> float | None:
    """Main dev metric of always predicting the most frequent training label (a collapsed model scores this)."""
    from collections import Counter

    from edgeprune.data import compute_metrics, get_task, load_split

    spec = get_task(task)
    if spec.is_regression:
        return 0.0  # a constant has no correlation
    try:
        top = Counter(e.label for e in load_split(spec, "train", data)).most_common(1)[0][0]
        dev = [e.label for e in load_split(spec, "dev", data)]
    except Exception:
        return None
    return compute_metrics(spec, [top] * len(dev), dev)["main"]


def one_shot(args, task: str = "mrpc") -> list[dict]:
    """Hard pruning of the dense model with no retraining: weight-norm (paper) vs activation-aware ranking."""
    from edgeprune.calibrate import input_rms
    from edgeprune.data import load_split
    from edgeprune.models import load_model
    from edgeprune.prune import prune
    from edgeprune.prune.blocks import parse_block
    from edgeprune.prune.masks import apply_masks
    from edgeprune.prune.oneshot import prunable_matrices
    from edgeprune.training import task_metrics

    rows = []
    train = load_split(task, "train", args.data, limit=64)
    for c in (1.5, 2.0, 5.0):
        for score in ("weight", "activation"):
            model, tok = load_model(DENSE / task / "model")
            params = prunable_matrices(model, "all", parse_block(args.block)).params
            rms = input_rms(model, tok, params, train, 128) if score == "activation" else None
            masks = prune(model, args.block, c, score=score, input_rms=rms)
            apply_masks(model, masks)
            kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
            ev = task_metrics((model, tok), task, args.data)
            rows.append({"task": task, "block": args.block, "score": score, "compression": 1.0 / kept,
                         "metric": ev["metric"], "one_shot": ev["main"], "num_eval_examples": ev["num_examples"]})
            print(f"[bench] one-shot {task} {c}x {score}: {ev['main']:.4f}", flush=True)
    return rows


def preset_of(r: dict) -> str | None:
    """The non-default --block-preset a run used (from its id), or None."""
    return next((n for n in ("tflite", "paper", "rows") if f"x-{n}-" in r["id"] or r["id"].endswith(f"x-{n}")), None)


def is_variant(r: dict) -> bool:
    """Gradual schedules and tagged budgets: reported in their own table, kept out of the main comparison."""
    return (r.get("prune_schedule", "oneshot") != "oneshot" or bool(r.get("tag"))
            or r.get("scope", "uniform") != "uniform")


def gen3_lines(rows: list[dict]) -> list[str]:
    """The generation-3 table: every task x method x compression, with the targets of issue 13."""
    if not rows:
        return ["## Generation 3 (named recipes, held-out-tuned teachers)", "",
                "No generation-3 run has finished yet (`python -m bench.compress --runs gen3 --data GLUE_DIR`).", ""]
    out = ["## Generation 3 (named recipes, held-out-tuned teachers)", "",
           f"Budget per run: {G3}. Single seed (42). `constant` = majority-label score; `mid` = midpoint between "
           "constant and dense (issue 13: no task may end below it).", "",
           "| task | recipe | method | target | compression | dense | pruned | delta (pts) | constant | >= mid | steps | wall (s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["task"], recipe_label(r), r["method"], r["target"])):
        c = r.get("constant")
        mid = "" if c is None else ("yes" if r["pruned"] >= (c + r["dense"]) / 2 else "**no**")
        out.append(f"| {r['task']} | {recipe_label(r)} | {r['method']} | {r['target']:g}x | {r['compression']:.2f}x | "
                   f"{r['dense']:.4f} | {r['pruned']:.4f} | {r['delta_points']:+.1f} | "
                   f"{'' if c is None else f'{c:.4f}'} | {mid} | {r['steps']} | {r['wall_s']:.0f} |")
    out.append("\n`edgeprune` rows ran with the uniform allocation (the recipe's default when they ran); "
               "`edgeprune+sensitivity` rows with the per-matrix sensitivity allocation; `+aug4` rows also distil on "
               "4 teacher-labelled perturbed copies of every training example (`--augment 4`, same steps); `+units` "
               "rows prune whole attention heads and FFN units (`--units`) instead of 128x1 column segments.")
    for label in sorted({recipe_label(r) for r in rows if r["recipe"] == "edgeprune"}):
        ours = [r for r in rows if recipe_label(r) == label]
        for t in (2.0, 3.0, 5.0):
            got = [r for r in ours if abs(r["target"] - t) < 1e-9]
            if got:
                tasks = sorted({r["task"] for r in got})
                mean = sum(r["delta_points"] for r in got) / len(got)
                out.append(f"\n{label} at {t:g}x: mean delta {mean:+.2f} points over {len(tasks)} task(s) "
                           f"({', '.join(tasks)}); issue-13 target "
                           f"{dict([(2.0, -1.5), (3.0, -3.0), (5.0, -6.0)])[t]:+.1f} over all five tasks.")
    return out + [""]


def write_report(res: dict, notes: dict[str, str]) -> None:
    g3 = [r for r in res["runs"] if r.get("tag") == "gen3"]
    res = {**res, "runs": [r for r in res["runs"] if r.get("tag") != "gen3"]}
    have = {r["id"] for r in res["runs"]}
    full = [run_id(t, r, (res.get("settings") or {}).get("block", "128x1")) for t in TASKS
            for s in ("paper", "baselines", "sweep") for r in RUN_SETS[s]]
    missing = [f"{rid}" + (f" ({notes[rid]})" if rid in notes else " (not run yet)") for rid in full if rid not in have]
    probe = sorted((r for r in res["runs"] if "-lr" in r["id"]), key=lambda r: r["settings"]["lr"])
    variants = [r for r in res["runs"] if "-lr" not in r["id"] and is_variant(r)]
    runs = sorted((r for r in res["runs"] if "-lr" not in r["id"] and not is_variant(r)), key=lambda r: (TASKS.index(r["task"]) if r["task"] in TASKS else 99, r["method"],
                                              r["target"], r["distill"]))
    base = dense_baselines()
    lines = [f"# compress benchmark: MiniLM-L6 on GLUE (machine: {res.get('machine', {}).get('cpu', '?')}, "
             f"{res.get('machine', {}).get('cores', '?')} cores, shared with other jobs)", "",
             "Every number below was produced by `bench/compress.py` on this machine. Metric = the task's official "
             "main GLUE dev metric (MRPC F1, RTE/SST-2 accuracy, STS-B Pearson, CoLA Matthews), as a fraction; "
             "delta in points. `compression` = dense prunable encoder weights / kept (the paper's definition); "
             "whole-model figures are in the JSON.", "",
             "## Settings (small, honest; NOT the paper's schedule)", ""]
    s = res.get("settings") or {}
    lines += [f"- dense model: `bench/work/dense/<task>` from `bench/dense_baselines.py` (its own recipe);",
              f"- regularized / masked training: train subset = the first N examples of each task (N per run in the "
              f"`train ex` column), "
              f"{s.get('epochs_reg')} epoch(s) group-Lasso + {s.get('epochs_retrain')} epoch(s) masked retraining, "
              f"lr {s.get('lr')}, batch {s.get('batch_size')}, max len 128, lambda {s.get('penalty')}, "
              f"reweighting: start of stage" + (f" and every {s['reweight_every']} steps"
                                                if s.get("reweight_every") else " (paper milestones 4/8/12/16 "
                                                "are beyond this schedule)") + ";",
              "- magnitude-* baselines have no regularized stage; they retrain for epochs_reg + epochs_retrain, "
              "the same training budget;",
              f"- default block {s.get('block')} (balanced column segments), uniform per-matrix sparsity, "
              "all 36 encoder linears; dev sets are full.", "",
              "## Runs present", "",
              "`constant` = the score of always predicting the majority training label: a pruned model at that "
              "value has collapsed.", "",
              "`before retrain` = right after hard pruning (shows how much of the model the regularized stage "
              "saved); `-` = not measured (runs before this diagnostic was added).", "",
              "`distill` column: `act` marks runs hard-pruned with `--score activation`.", "",
              "| task | method | block | distill | compression | metric | dense | pruned | delta (pts) | before retrain |"
              " constant | train ex | epochs reg+retrain | wall s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    consts = {t: constant_baseline(t, Path(res.get("data_dir") or glue_dir())) for t in {r["task"] for r in runs + variants}}
    for r in runs:
        lines.append(f"| {r['task']} | {r['method']} | {r['block']}{' bal' if r['balanced'] else ''} | "
                     f"{'yes' if r['distill'] else 'no'}{' act' if r.get('score') == 'activation' else ''} | "
                     f"{r['compression']:.2f}x | {r['metric']} | "
                     f"{r['dense']:.4f} | {r['pruned']:.4f} | {r['delta_points']:+.2f} | "
                     f"{'-' if r.get('pruned_before_retrain') is None else format(r['pruned_before_retrain'], '.4f')} | "
                     f"{'-' if consts[r['task']] is None else format(consts[r['task']], '.4f')} | {r['num_train_examples']} | "
                     f"{r['settings']['epochs_reg']:g}+{r['settings']['epochs_retrain']:g} | {r['wall_s']:.0f} |")
    collapsed = [r["id"] for r in runs if consts.get(r["task"]) is not None and abs(r["pruned"] - consts[r["task"]]) < 1e-9]
    if runs:
        lines += ["", f"{len(collapsed)} of {len(runs)} runs ended exactly at the majority-label constant (collapsed): "
                      "at this budget (a few dozen optimizer steps per phase, against the paper's 3+ epochs on full "
                      "training sets) the comparison between methods is only meaningful for runs that did not "
                      "collapse."]
    if base:
        lines += ["", "Dense baselines (bench/results/dense_baselines.json): " + ", ".join(
            f"{t} {b.get('score', b.get('main', float('nan'))):.4f}" for t, b in base.items()
            if isinstance(b.get('score', b.get('main')), (int, float)))]
    at5 = [r for r in runs if r["method"] == RGL and r["target"] == 5.0 and not r["distill"]
           and r["block"] == s.get("block") and r.get("score", "weight") == "weight"]
    if at5:
        avg = statistics.mean(r["delta_points"] for r in at5)
        lines += ["", f"Reweighted group Lasso at 5x: mean delta {avg:+.2f} points over {len(at5)} task(s) "
                      f"({', '.join(r['task'] for r in at5)}); issue target: >= -1.0 over all five tasks."]
    cols = [("paper: " + RGL, lambda r: r["method"] == RGL and not r["distill"] and r.get("score") != "activation"),
            ("ours: + activation rank + distill", lambda r: r["method"] == RGL and r["distill"]
             and r.get("score") == "activation"),
            ("group-lasso", lambda r: r["method"] == "group-lasso"),
            ("magnitude-block", lambda r: r["method"] == "magnitude-block" and not r["distill"]),
            ("magnitude-unstructured", lambda r: r["method"] == "magnitude-unstructured")]
    at5all = [r for r in runs if r["target"] == 5.0]
    if at5all:
        lines += ["", "## Side by side at 5x (pruned metric; delta to dense in points)", "",
                  "| task | dense | " + " | ".join(c for c, _ in cols) + " |", "|---|---|" + "---|" * len(cols)]
        means: dict[str, list[float]] = {c: [] for c, _ in cols}
        for t in TASKS:
            rs = [r for r in at5all if r["task"] == t]
            if not rs:
                continue
            cells = []
            for c, f in cols:
                m = [r for r in rs if f(r)]
                cells.append(f"{m[0]['pruned']:.4f} ({m[0]['delta_points']:+.1f})" if m else "-")
                if m:
                    means[c].append(m[0]["delta_points"])
            lines.append(f"| {t} | {rs[0]['dense']:.4f} | " + " | ".join(cells) + " |")
        lines.append("| mean delta | | " + " | ".join(
            f"{statistics.mean(v):+.1f} ({len(v)} tasks)" if v else "-" for v in means.values()) + " |")
    lines += ["", "## Runs not present", ""] + ([f"- {m}" for m in missing] or ["- none"])
    ov = res.get("overhead")
    if ov:
        lines += ["", f"## Regularizer overhead per training step (MiniLM-L6, batch 32 MRPC, AdamW, "
                      f"{ov['torch_threads']} torch thread(s))", "",
                  f"- block {ov['block']}: {ov['num_matrices']} matrices, {ov['num_groups']} groups; "
                  f"padded seq len {ov['seq_len_padded']}; median of {ov['steps']} interleaved steps;",
                  f"- plain step {ov['plain_step_s'] * 1e3:.0f} ms, regularized step {ov['regularized_step_s'] * 1e3:.0f}"
                  f" ms (interleaved overhead {100 * ov['overhead_interleaved']:+.1f}%, noisy on a shared machine);",
                  f"- regularizer alone (forward + backward) {ov['regularizer_only_s'] * 1e3:.1f} ms = "
                  f"{100 * ov['overhead_regularizer_only']:.1f}% of a plain step (target <= 15%);"]
        if "plain_step_cpu_s" in ov:
            lines += [f"- in process CPU time (less sensitive to the other jobs on the machine): plain step "
                      f"{ov['plain_step_cpu_s']:.2f} s, regularized {ov['regularized_step_cpu_s']:.2f} s "
                      f"({100 * ov['overhead_interleaved_cpu']:+.1f}%), regularizer alone "
                      f"{ov['regularizer_only_cpu_s'] * 1e3:.0f} ms ({100 * ov['overhead_regularizer_only_cpu']:.1f}%)."]
    if res.get("one_shot"):
        lines += ["", "## Hard pruning with no retraining (dense MRPC model, full dev set)", "",
                  "`weight` = the paper's ranking (group norm of W); `activation` = group norm of W x per-input-feature "
                  "RMS on 64 training examples (`--score activation`, our addition).", "",
                  "| task | block | compression | weight score | activation score |", "|---|---|---|---|---|"]
        by = {}
        for r in res["one_shot"]:
            by.setdefault((r["task"], r["block"], round(r["compression"], 3)), {})[r["score"]] = r["one_shot"]
        for (t, b, c), v in by.items():
            lines.append(f"| {t} | {b} | {c:.2f}x | {v.get('weight', float('nan')):.4f} | "
                         f"{v.get('activation', float('nan')):.4f} |")
    pres = [r for r in runs if r["target"] == 5.0 and r["distill"] and r.get("score") == "activation"
            and r["method"] == RGL]
    layer_speed = _layer_speedups()
    if any(preset_of(r) for r in pres):
        lines += ["", "## Block shapes at 5x: accuracy against speed", "",
                  "Accuracy: our recipe (reweighted group Lasso + activation rank + distillation) with each "
                  "`--block-preset`; speed: the same block shape at 5x in the onnxruntime layer study of "
                  "`bench/results/export_onnx.md` (one linear, gather body vs dense MatMul, 1 thread).", "",
                  "| task | preset | block | pruned | dense | speedup [384,384] | [1536,384] | [384,1536] |",
                  "|---|---|---|---|---|---|---|---|"]
        with_presets = {r["task"] for r in pres if preset_of(r)}
        for r in sorted((r for r in pres if r["task"] in with_presets), key=lambda r: (r["task"], r["block"])):
            sp = layer_speed.get(r["block"], {})
            preset = preset_of(r) or "ort"
            lines.append(f"| {r['task']} | {preset} | {r['block']} | {r['pruned']:.4f} | {r['dense']:.4f} | "
                         + " | ".join(f"{sp[k]:.2f}x" if k in sp else "-" for k in
                                      ("[384, 384]", "[1536, 384]", "[384, 1536]")) + " |")
    if variants:
        lines += _variant_lines(variants, runs, consts)
    if probe:
        p0 = probe[0]
        lines += ["", "## Learning-rate probe (masked retraining only)", "",
                  f"{p0['task']}, magnitude-block {p0['target']:g}x {p0['block']} balanced, activation score, distillation, "
                  f"first {p0['num_train_examples']} training examples, one epoch of masked retraining, nothing else "
                  f"varies (dense {p0['dense']:.4f}):", "",
                  "| lr | right after pruning | after retraining |", "|---|---|---|"]
        for r in probe:
            b = r.get("pruned_before_retrain")
            lines.append(f"| {r['settings']['lr']:g} | {'-' if b is None else format(b, '.4f')} | {r['pruned']:.4f} |")
    old = res.get("earlier_runs") or []
    if old:
        es = res.get("earlier_settings") or {}
        lines += ["", f"## Earlier generation ({len(old)} runs, superseded; kept in the JSON as `earlier_runs`)", "",
                  "Every run ended at or next to the majority-label score: at the paper's learning rates (2e-5..5e-5) and "
                  "still at 1e-4, a few dozen optimizer steps cannot repair a one-shot 5x structured prune. "
                  "See the learning-rate probe above for why the current runs use a higher lr.", "",
                  "| task | method | target | distill/score | pruned | dense | train ex | epochs | lr |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in old:
            st = r.get("settings", {})
            lines.append(f"| {r['task']} | {r['method']} | {r['target']:g}x | "
                         f"{'distill' if r['distill'] else '-'}/{r.get('score', 'weight')} | {r['pruned']:.4f} | "
                         f"{r['dense']:.4f} | {r['num_train_examples']} | {st.get('epochs_reg', 0):g}+"
                         f"{st.get('epochs_retrain', 0):g} | {st.get('lr')} |")
    lines += ["", "Plot: `bench/results/compress_gen12.png` (pruned metric vs compression, per task; dashed = dense).", ""]
    g3_plot = ["Plot: `bench/results/compress.png` (generation 3: metric vs compression per task, one shared legend).", ""]
    lines = lines[:2] + gen3_lines(g3) + g3_plot + ["## Generations 1-2 (before issue 13)", ""] + lines[2:]
    (RESULTS / f"{NAME}.md").write_text("\n".join(lines))
    plot(runs, consts if runs else {}, variants)
    plot_gen3(g3)


def _main_twin(r: dict, runs: list[dict]) -> dict | None:
    """The main-budget run with the same task, method, recipe, target and block as variant ``r``."""
    key = lambda x: (x["task"], x["method"], x["target"], x["distill"], x.get("score"), x["block"])  # noqa: E731
    return next((x for x in runs if key(x) == key(r) and preset_of(x) is None), None)


def _more_data(r: dict, runs: list[dict]) -> bool:
    """A larger-budget variant: more training examples than its main-budget twin."""
    twin = _main_twin(r, runs)
    return twin is not None and r["num_train_examples"] > twin["num_train_examples"]


def _variant_lines(variants: list[dict], runs: list[dict], consts: dict) -> list[str]:
    """Gradual pruning and larger budgets, each beside its one-shot control (same recipe, budget and data)."""
    def key(r: dict) -> tuple:
        st = r["settings"]
        return (r["task"], r["method"], r["target"], r["distill"], r.get("score"), r["num_train_examples"],
                st["epochs_reg"], st["epochs_retrain"], st["lr"])

    every = runs + variants
    lines = ["", "## Gradual pruning and a larger budget", "",
             "`global scope` = one ranking over all matrices (`--scope global`) instead of the same kept fraction "
             "in each. `gradual` = `--prune-schedule gradual`: masks tighten along a cubic ramp over the first half of masked "
             "retraining (Zhu & Gupta 2017) instead of one cut before it. `control` = the same recipe, data and "
             "budget with the one-shot cut. Reweighted runs reuse the regularized stage of the paper run with the same "
             "data and epochs, so a pair differs only in the schedule.", "",
             "`main budget` = the same recipe in the main table above (1,000-1,500 examples, 1+1 epochs, lambda "
             "1e-4).", "",
             "| task | method | recipe | train ex | epochs reg+retrain | schedule | pruned | delta (pts) | control "
             "(one-shot) | main budget | constant |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(variants, key=lambda r: (TASKS.index(r["task"]) if r["task"] in TASKS else 99, r["method"],
                                             r["num_train_examples"], r.get("prune_schedule", ""))):
        ctrl = [c for c in every if c is not r and key(c) == key(r) and c.get("prune_schedule", "oneshot") == "oneshot"
                and c.get("scope", "uniform") == "uniform" and c["block"] == r["block"]
                and c["settings"]["penalty"] == r["settings"]["penalty"]]
        if r.get("prune_schedule", "oneshot") == "oneshot" and r.get("scope", "uniform") == "uniform":
            ctrl = []  # a budget or lambda variant: compared with its main-budget twin instead
        twin = _main_twin(r, runs) if r.get("tag") else None
        recipe = ("distill + act" if r["distill"] and r.get("score") == "activation" else
                  "distill" if r["distill"] else "act" if r.get("score") == "activation" else "paper")
        if r["settings"]["penalty"] != 1e-4 and r["method"] in (RGL, "group-lasso"):
            recipe += f", lambda {r['settings']['penalty']:g}"
        c = consts.get(r["task"])
        lines.append(f"| {r['task']} | {r['method']} | {recipe} | {r['num_train_examples']} | "
                     f"{r['settings']['epochs_reg']:g}+{r['settings']['epochs_retrain']:g} | "
                     f"{r.get('prune_schedule', 'oneshot')}{', global scope' if r.get('scope') == 'global' else ''} | "
                     f"{r['pruned']:.4f} | {r['delta_points']:+.1f} | "
                     + (f"{ctrl[0]['pruned']:.4f}" if ctrl else "-")
                     + f" | {format(twin['pruned'], '.4f') if twin else '-'}"
                     + f" | {'-' if c is None else format(c, '.4f')} |")
    big = [r for r in variants if r.get("tag") and r.get("prune_schedule", "oneshot") == "oneshot"
           and r.get("scope", "uniform") == "uniform" and r["target"] == 5.0
           and _more_data(r, runs)]
    for name, f in (("paper (reweighted group Lasso)", lambda r: not r["distill"] and r.get("score") != "activation"),
                    ("ours (+ activation rank + distill)", lambda r: r["distill"] and r.get("score") == "activation")):
        rs = [r for r in big if r["method"] == RGL and f(r)]
        if not rs:
            continue
        twins = [_main_twin(r, runs) for r in rs]
        then = f"{statistics.mean(t['delta_points'] for t in twins):+.1f}" if all(twins) else "-"
        lines += ["", f"Larger budget at 5x, {name}: mean delta {statistics.mean(r['delta_points'] for r in rs):+.1f} "
                      f"points over {len(rs)} task(s) ({', '.join(r['task'] for r in rs)}); the same tasks at the "
                      f"main budget: {then}."]
    return lines


def _layer_speedups() -> dict[str, dict[str, float]]:
    """block -> layer shape -> gather speedup at 5x, from the ONNX export benchmark's layer study."""
    path = RESULTS / "export_onnx.json"
    if not path.is_file():
        return {}
    out: dict[str, dict[str, float]] = {}
    for x in read_json(path).get("layer_study", []):
        if x.get("compression") == 5 and x.get("gather_speedup"):
            out.setdefault(x["block"], {})[str(x["shape"])] = x["gather_speedup"]
    return out


def plot(runs: list[dict], consts: dict[str, float | None], variants: list[dict] = ()) -> None:
    plt = pyplot()

    if not runs:
        return
    tasks = [t for t in TASKS if any(r["task"] == t for r in runs)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    markers = {RGL: "o", "group-lasso": "s", "magnitude-block": "^", "magnitude-unstructured": "v"}
    for ax, t in zip(axes[0], tasks):
        rs = [r for r in runs if r["task"] == t]
        ax.axhline(rs[0]["dense"], ls="--", color="gray", label="dense")
        if consts.get(t) is not None:
            ax.axhline(consts[t], ls=":", color="red", label="majority label (collapsed)")
        main = sorted((r for r in rs if r["method"] == RGL and not r["distill"] and r.get("score") != "activation"),
                      key=lambda r: r["compression"])
        ours = sorted((r for r in rs if r["method"] == RGL and r["distill"] and r.get("score") == "activation"
                       and preset_of(r) is None),
                      key=lambda r: r["compression"])
        if main:
            ax.plot([r["compression"] for r in main], [r["pruned"] for r in main], "-o", label=f"{RGL} (paper)")
        if ours:
            ax.plot([r["compression"] for r in ours], [r["pruned"] for r in ours], "-D",
                    label=f"{RGL} + activation rank + distill (ours)")
        for r in rs:
            if r in main or r in ours:
                continue
            lab = (r["method"] + (" +distill" if r["distill"] else "") + (" act" if r.get("score") == "activation" else "")
                   + (f" {r['block']}" if preset_of(r) else "") + f" {r['target']:g}x")
            ax.plot([r["compression"]], [r["pruned"]], markers.get(r["method"], "x"), label=lab,
                    mfc="none" if r["distill"] else None)
        for r in (v for v in variants if v["task"] == t):  # larger budgets, gradual schedules, global scope
            lab = ("ours" if r["distill"] and r.get("score") == "activation" else r["method"]) + \
                (" gradual" if r.get("prune_schedule") == "gradual" else "") + \
                (" global" if r.get("scope") == "global" else "") + \
                (f" lambda {r['settings']['penalty']:g}" if r["settings"]["penalty"] != 1e-4 else "") + \
                f" {r['num_train_examples']} ex {r['settings']['epochs_reg']:g}+{r['settings']['epochs_retrain']:g}"
            ax.plot([r["compression"]], [r["pruned"]], "*", ms=9, label=lab)
        ax.set_title(f"{t} ({rs[0]['metric']})")
        ax.set_xlabel("compression (prunable encoder)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{NAME}_gen12.png", dpi=110)
    plt.close(fig)


GEN3_STYLE = {("edgeprune", "magnitude-block"): ("edgeprune recipe (staged, refit, distilled)", "-D", "C0"),
              ("paper", RGL): ("paper: reweighted group Lasso", "-o", "C1"),
              ("paper", "magnitude-block"): ("magnitude-block (same budget)", "^", "C2"),
              ("paper", "magnitude-unstructured"): ("magnitude-unstructured (same budget)", "v", "C3"),
              ("edgeprune+sensitivity", "magnitude-block"): ("edgeprune recipe, sensitivity allocation", "-s", "C4"),
              ("edgeprune+sensitivity+aug4", "magnitude-block"):
                  ("edgeprune recipe, sensitivity, 4 augmented copies", "-P", "C5"),
              ("edgeprune+sensitivity+units", "magnitude-block"):
                  ("edgeprune recipe, whole heads + FFN units", "-X", "C6"),
              ("edgeprune+sensitivity+aug4+units", "magnitude-block"):
                  ("edgeprune recipe, heads + units, 4 augmented copies", "-*", "C7")}


def plot_gen3(rows: list[dict]) -> None:
    """Generation 3, one panel per task (all five, empty ones say so), one legend for the figure."""
    plt = pyplot()

    if not rows:
        return
    fig, axes = plt.subplots(1, len(TASKS), figsize=(3.4 * len(TASKS), 3.4), squeeze=False)
    handles: dict[str, object] = {}
    for ax, t in zip(axes[0], TASKS):
        rs = [r for r in rows if r["task"] == t]
        ax.set_title(t)
        ax.set_xlabel("compression (prunable encoder)")
        ax.grid(alpha=0.3)
        if not rs:
            ax.text(0.5, 0.5, "not run yet", ha="center", va="center", transform=ax.transAxes, color="gray")
            continue
        ax.set_ylabel(rs[0]["metric"])
        dense, const = rs[0]["dense"], rs[0].get("constant")
        handles["dense"] = ax.axhline(dense, ls="--", color="gray")
        if const is not None:
            handles["majority label"] = ax.axhline(const, ls=":", color="red")
            handles["midpoint (issue-13 floor)"] = ax.axhline((const + dense) / 2, ls="-.", color="salmon", lw=0.8)
        for key, (label, style, color) in GEN3_STYLE.items():
            pts = sorted((r for r in rs if (recipe_label(r), r["method"]) == key), key=lambda r: r["compression"])
            if pts:
                (h,) = ax.plot([1.0] + [r["compression"] for r in pts] if "-" in style else
                               [r["compression"] for r in pts],
                               [dense] + [r["pruned"] for r in pts] if "-" in style else [r["pruned"] for r in pts],
                               style, color=color)
                handles[label] = h
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 4), fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(RESULTS / f"{NAME}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="GLUE folder (TSV layout)")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--runs", default="paper,baselines,sweep", help=f"comma list of {', '.join(RUN_SETS)}")
    ap.add_argument("--block", default="128x1")
    ap.add_argument("--train-limit", type=int, default=1500)
    ap.add_argument("--epochs-reg", type=float, default=1.0)
    ap.add_argument("--epochs-retrain", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--penalty", type=float, default=1e-4)
    ap.add_argument("--reweight-every", type=int, default=None)
    ap.add_argument("--save-steps", type=int, default=20)
    ap.add_argument("--overhead", action="store_true", help="measure the regularizer's per-step overhead first")
    ap.add_argument("--overhead-threads", type=int, default=1)
    ap.add_argument("--one-shot", action="store_true", help="hard pruning without retraining, weight vs activation")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--redo", action="store_true",
                    help="run the planned runs again even when recorded (bench/work is not committed: a fresh "
                         "checkout has the numbers but not the models); the new row replaces the old one")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    RESULTS.mkdir(parents=True, exist_ok=True)
    res = load_results()
    res["machine"] = machine()
    settings = {k: getattr(args, k) for k in ("train_limit", "epochs_reg", "epochs_retrain", "lr", "batch_size",
                                              "penalty", "reweight_every", "block")}
    if not args.report_only:
        res["settings"] = settings
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    sets = [s.strip() for s in args.runs.split(",") if s.strip()]
    plan = [(t, r) for t in tasks for s in sets for r in RUN_SETS[s]]
    done = {r["id"] for r in res["runs"]}
    if args.overhead and not args.report_only:
        res["overhead"] = measure_overhead(args)
        write_json(RESULTS / f"{NAME}.json", res)
        print(f"[bench] overhead: {res['overhead']}", flush=True)
    if args.one_shot and not args.report_only:
        rows = one_shot(args)
        res = load_results() | {"machine": res["machine"], "settings": res.get("settings", settings)}
        res["one_shot"] = rows
        write_json(RESULTS / f"{NAME}.json", res)
    notes: dict[str, str] = {}
    for task, r in plan:
        rid = run_id(task, r, args.block)
        if rid in done and not (args.redo and not (RUNS_DIR / rid / "compression.json").is_file()):
            continue
        if args.report_only or not (teacher_dir(task).parent / "metrics.json").is_file() and \
                not (teacher_dir(task) / "metrics.json").is_file():
            if not args.report_only:
                notes[rid] = "dense model not ready when the sweep reached it"
            continue
        print(f"[bench] {rid}", flush=True)
        try:
            row = one_run(task, r, args)
        except Exception as e:  # keep the sweep going; the failure is reported, not hidden
            print(f"[bench] {rid} FAILED: {type(e).__name__}: {e}", flush=True)
            notes[rid] = f"failed: {type(e).__name__}: {str(e)[:120]}"
            continue
        res = load_results() | {"machine": res["machine"], "settings": settings}
        stage_rows = row.pop("stage_rows", [])
        res["runs"] = [x for x in res["runs"] if x["id"] != rid and x.get("stage_of") != rid] + [row, *stage_rows]
        write_json(RESULTS / f"{NAME}.json", res)
        write_report(res, notes)
        print(f"[bench] {rid}: {row['metric']} {row['dense']:.4f} -> {row['pruned']:.4f} at "
              f"{row['compression']:.2f}x in {row['wall_s']:.0f}s", flush=True)
    res = load_results() | {"machine": res["machine"], "settings": res.get("settings", settings)}  # other writers
    write_json(RESULTS / f"{NAME}.json", res)
    write_report(res, notes)


if __name__ == "__main__":
    main()
