"""``edgeprune compress``: block-structured pruning with reweighted group Lasso and masked retraining."""
from __future__ import annotations

from pathlib import Path

import click

from .dataopts import DATA_HELP, TASK_HELP, data_options, pop_data_flags, resolve_task

_METHODS = ["reweighted-group-lasso", "group-lasso", "magnitude-block", "magnitude-unstructured"]


@click.command("compress", short_help="Block-structured pruning (reweighted group Lasso).")
@click.option("--model", default=None, help="Model folder, finetune run dir, Hub id (org/name) or alias minilm-l6 "
              "(fine-tuned first unless it is a classifier already trained for the task's labels).")
@click.option("--task", default=None, help=TASK_HELP)
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None, help=DATA_HELP)
@data_options
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run directory to write.")
@click.option("--target", default=None, help="Compression like 5x, or a sparsity like 0.8 [5x].")
@click.option("--sparsity", type=float, default=None, help="Target sparsity in [0, 1) (instead of --target).")
@click.option("--block", default=None, help="Group shape RxC in [out, in] coordinates: 128x1 (column segments, "
              "default), allx1 (whole input columns), 1xall (whole output rows), all/4x1, 16x16. Shapes that do not "
              "tile a matrix are padded (the last block is partial).")
@click.option("--block-preset", default=None, help="Block shape a runtime turns into speed: ort (128x1), tflite (allx1), paper (16x16), rows (1xall).")
@click.option("--balanced/--unbalanced", default=None,
              help="Keep the same number of groups in every block row [on for column segments].")
@click.option("--method", type=click.Choice(_METHODS), default=None, help="Pruning method [reweighted-group-lasso].")
@click.option("--scope", type=click.Choice(["uniform", "global"]), default=None,
              help="Same kept fraction in every matrix, or one global ranking [uniform].")
@click.option("--recipe", default=None,
              help="Starting settings: edgeprune (ours: staged activation-ranked cuts, least-squares refit, "
                   "logit + hidden distillation; the best we measured) or paper (Li et al. 2020: reweighted group "
                   "Lasso, one hard prune, masked retraining). Other flags override it [edgeprune].")
@click.option("--score", type=click.Choice(["weight", "activation", "obs"]), default=None,
              help="Hard-pruning rank: group norm of W (the paper), of W x input RMS, or the OBS second-order "
                   "saliency, on --calib-examples training examples [edgeprune: activation; paper: weight].")
@click.option("--reconstruct/--no-reconstruct", default=None,
              help="Refit the kept weights layer by layer by least squares after every cut [edgeprune: on].")
@click.option("--damp", type=float, default=None, help="Reconstruction damping, fraction of mean(diag H) [0.01].")
@click.option("--stages", default=None,
              help="Reach the target in stages: none, auto (2x, 3x, ... target) or a list like 2,3,4 "
                   "[edgeprune: auto; paper: none].")
@click.option("--stage-steps", type=int, default=None, help="Distillation steps after each intermediate cut [150].")
@click.option("--allocation", type=click.Choice(["uniform", "sensitivity"]), default=None,
              help="Kept fraction per matrix: the same everywhere, or chosen from each matrix's measured "
                   "cut + refit damage under the same total [uniform].")
@click.option("--reg-form", type=click.Choice(["proximal", "loss"]), default=None,
              help="Group Lasso as a proximal step after each optimizer step, or as a loss term [proximal].")
@click.option("--retrain-lr", type=float, default=None, help="Learning rate of retraining/distillation [--lr].")
@click.option("--freeze-embeddings/--train-embeddings", "freeze_word_embeddings", default=None,
              help="Freeze the token embedding table in training (1.7x faster steps) [edgeprune: frozen].")
@click.option("--prune-schedule", type=click.Choice(["oneshot", "gradual"]), default=None,
              help="oneshot: one hard prune after regularized training (the paper); gradual: masks tighten along a "
                   "cubic ramp during retraining (Zhu & Gupta 2017) [oneshot].")
@click.option("--prune-ramp", type=float, default=None,
              help="gradual: fraction of the retraining steps over which masks reach the target [0.5].")
@click.option("--prune-every", type=int, default=None,
              help="gradual: steps between mask updates [about 10 updates over the ramp].")
@click.option("--calib-examples", type=int, default=None,
              help="Calibration examples (seeded sample of train) for ranking and reconstruction [edgeprune: 256].")
@click.option("--layers", default=None, help="Which linears: all, attention, ffn, qkv, roles (q,k,v,attn_out,"
              "ffn_in,ffn_out) or regexes over module names [all].")
@click.option("--distill/--no-distill", default=None, help="Distil the dense model's logits during retraining "
              "[edgeprune: on].")
@click.option("--distill-hidden", type=float, default=None,
              help="With --distill: weight of a per-layer hidden-state MSE to the dense teacher [0 = logits only].")
@click.option("--units/--no-units", default=None,
              help="Prune whole attention heads and FFN units (ranked and refitted on the output projections): "
                   "smaller dense layers in every runtime, faster than dense int8 once quantized [edgeprune: on, "
                   "unless --block, --block-preset, --layers or --method is given; paper: off].")
@click.option("--augment", type=int, default=None,
              help="With --distill: add N teacher-labelled perturbed copies of every training example to the "
                   "distillation phases (same number of steps) [0].")
@click.option("--augment-rate", type=float, default=None,
              help="Fraction of the words each augmentation perturbation changes [0.15].")
@click.option("--penalty", type=float, default=None, help="Group-Lasso lambda per matrix [1e-4].")
@click.option("--reweight-every", type=int, default=None,
              help="Also recompute the reweighting coefficients every N steps [paper: epochs 4, 8, 12, 16 only].")
@click.option("--epochs-finetune", type=float, default=None, help="Dense fine-tuning epochs when needed [3].")
@click.option("--epochs-reg", type=float, default=None, help="Regularized training epochs [3].")
@click.option("--epochs-retrain", type=float, default=None, help="Masked retraining epochs [3].")
@click.option("--lr", type=float, default=None, help="Learning rate of regularized and masked training [2e-5].")
@click.option("--batch-size", type=int, default=None, help="Training batch size per process [32].")
@click.option("--max-seq-len", type=int, default=None, help="Truncate inputs to this many tokens [128].")
@click.option("--train-limit", type=int, default=None, help="Use a seeded random subset of N training examples.")
@click.option("--eval-limit", type=int, default=None, help="Evaluate on the first N dev examples only.")
@click.option("--save-steps", type=int, default=None, help="Checkpoint every N steps [every epoch].")
@click.option("--seed", type=int, default=None, help="Random seed [42].")
@click.option("--keep-checkpoints", is_flag=True, default=None, help="Keep the phases' Trainer checkpoints.")
@click.option("--regularized-from", type=click.Path(path_type=Path), default=None,
              help="Reuse the regularized stage of this earlier compress run (same settings, kept with "
                   "--keep-regularized): one group-Lasso training serves several --target values.")
@click.option("--keep-regularized", is_flag=True, default=None,
              help="Keep the regularized model so later runs can pass this run to --regularized-from.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
def command(out_dir: Path, resume: bool, overwrite: bool, target: str | None, sparsity: float | None,
            data_dir: Path | None, **flags: object) -> None:
    """Prune MODEL on TASK to --target; writes OUT/model/ (+ masks.safetensors) and compression.json (last)."""
    from ..compress import RECIPES, STATE, CompressConfig, compress
    from ..compress.config import yield_units
    from ..errors import ConfigError
    from ..io import read_json
    from ..prune.masks import parse_target

    if target is not None and sparsity is not None:
        raise ConfigError("give either --target or --sparsity, not both")
    base: dict = {}
    saved = out_dir / STATE / "config.json"
    if resume and saved.is_file():
        base = read_json(saved)
    dflags = pop_data_flags(flags)
    given = {k: v for k, v in flags.items() if v is not None}
    if target is not None:
        given["compression"] = parse_target(target)
    elif sparsity is not None:
        given["compression"] = parse_target(str(sparsity))
    if data_dir is not None:
        given["data_dir"] = str(data_dir)
    recipe = str(given.pop("recipe", None) or base.get("recipe") or "edgeprune")
    if recipe not in RECIPES:
        raise ConfigError(f"unknown --recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    start = base if base else {**RECIPES[recipe], "recipe": recipe}
    d = {**start, **(given if base else yield_units(given)), "out": str(out_dir)}
    d.setdefault("compression", 5.0)
    d.setdefault("data_dir", None)
    if not d.get("model"):
        raise ConfigError("--model is required")
    if data_dir is not None or "task" in given or any(v is not None for v in dflags.values()):
        from ..data.glue import task_key

        spec = resolve_task(given.get("task"), d.get("data_dir"), model=str(d["model"]), recorded=base.get("task"),
                            **dflags)
        d["task"] = task_key(spec)
    if not d.get("task"):
        raise ConfigError("--task or --data is required (a GLUE task, or your own CSV/TSV/JSONL file)")
    d["model"] = str(d["model"])
    if d.get("regularized_from") is not None:
        d["regularized_from"] = str(d["regularized_from"])
    cfg = CompressConfig.from_dict(d)
    from ..quiet import to_stderr

    with to_stderr():  # library prints (Trainer's metric dicts) are logs: stderr; the result line is stdout
        rec = compress(cfg, resume=resume, overwrite=overwrite)
    import os

    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return
    from ..modelcard import labels_of, write_model_card

    write_model_card(out_dir / "model", model=d["model"], task=rec["task"], labels=labels_of(out_dir / "model"),
                     metrics=rec["metrics"]["pruned"], kind="pruned", extra_tags=("pruned", "block-sparse"),
                     compression={k: v["compression"] for k, v in rec["compression"].items()
                                  if isinstance(v, dict) and "compression" in v})
    m = rec["metrics"]
    c = rec["compression"]
    from ..data.glue import task_name

    click.echo(f"{task_name(rec['task'])} {m['metric']}: dense {m['dense']['main']:.4f} -> pruned {m['pruned']['main']:.4f}; "
               f"compression {c['prunable_encoder']['compression']:.2f}x prunable encoder, "
               f"{c['whole_encoder']['compression']:.2f}x whole encoder, {c['whole_model']['compression']:.2f}x "
               f"whole model; block {rec['block_str']}{' balanced' if rec['balanced'] else ''}; run in {out_dir}")
