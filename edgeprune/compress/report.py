"""The last phase: check the invariant the exporters rely on, then write ``compression.json`` (whose keys
``bench/`` and ``edgeprune export`` read) and the kept-ratio plot."""
from __future__ import annotations

from typing import Any

from edgeprune.rundir import RunWriter

from .config import CONFIG_VERSION
from .state import RunState, say


def total_steps(run: RunWriter, stage_log) -> int:
    """Optimizer steps over every training phase of the run (fine-tune, regularize, stages, retrain)."""
    from edgeprune.io import read_json
    from edgeprune.training import METRICS_JSON

    total = 0
    f = run.phase_dir("finetune") / METRICS_JSON
    if f.is_file():
        total += int(read_json(f).get("train", {}).get("global_step", 0))
    for name in ("regularize", "retrain"):
        done = run.done(run.phase_dir(name))
        if done is not None:
            total += int(done.get("steps", 0))
    for e in stage_log or []:
        total += int(e.get("steps", 0))
    return total


def block_json(spec) -> Any:
    """[R, C] with null for "all"; null when unstructured; the string for all/N."""
    bj = spec.to_json()
    return bj if bj is None or all(isinstance(x, (int, type(None))) for x in bj) else str(spec)


def report(st: RunState) -> dict[str, Any]:
    from edgeprune.arch import get_arch
    from edgeprune.prune.blocks import group_mask_of
    from edgeprune.prune.report import compression_figures, layer_records, plot_kept_ratios

    from .cut import matrices

    cfg, plan, spec, model, masks = st.cfg, st.plan, st.plan.task, st.model, st.masks
    mats = matrices(model, cfg)
    params, tilings = mats.params, mats.tilings
    for n, m in masks.items():  # the invariant the exporters rely on
        if bool((params[n].detach()[~m.to(params[n].device)] != 0).any()):
            raise RuntimeError(f"pruned weights of {n} are not zero after retraining")
    gms = {n: group_mask_of(m, tilings[n]) for n, m in masks.items()}
    recs = layer_records(masks, tilings, mats.roles, mats.layers, gms)
    figs = compression_figures(model, masks, get_arch(model.config.model_type).layer_regex)
    reg_done = st.run.done(st.run.phase_dir("regularize"))
    block_str = "heads+units" if cfg.units else str(plan.block)
    record = {
        "kind": "edgeprune.compress",
        "config_version": CONFIG_VERSION,
        "task": plan.task_key,
        "model": str(cfg.model),
        "method": cfg.method,
        "block": block_json(plan.block),
        "block_str": block_str,
        "units": cfg.units,
        "block_preset": cfg.block_preset,
        "balanced": plan.balanced,
        "padding": "last partial block padded with zeros for norms (recorded per layer)",
        "scope": cfg.scope,
        "distill": cfg.distill,
        "target_compression": cfg.compression,
        "compression": figs,
        "metrics": {"dense": st.dense_metrics, "pruned": st.pruned_metrics, "pruned_before_retrain": st.prune_metrics,
                    "metric": spec.metric},
        "layers": recs,
        "phases": st.phases,
        "regularized_from": cfg.regularized_from,
        "prune_schedule": cfg.prune_schedule,
        "recipe": cfg.recipe,
        "regularize": reg_done,
        "stages": st.stage_log,
        "steps": total_steps(st.run, st.stage_log),
        "schedule": st.run.read("schedule.json"),
        "config": cfg.to_dict(),
        "num_train_examples": len(st.train),
        "num_eval_examples": len(st.dev),
    }
    title = f"{spec.name} {cfg.method} {block_str} {figs['prunable_encoder']['compression']:.2f}x"
    st.run.write_plot(lambda path: plot_kept_ratios(recs, path, title))
    st.run.finish(record, keep_checkpoints=cfg.keep_checkpoints, keep_regularized=cfg.keep_regularized)
    dense, pruned = st.dense_metrics or {}, st.pruned_metrics or {}
    say(f"done: {spec.metric} dense {dense.get('main', float('nan')):.4f} -> pruned "
        f"{pruned.get('main', float('nan')):.4f} at {figs['prunable_encoder']['compression']:.2f}x "
        f"(prunable encoder), {figs['whole_model']['compression']:.2f}x whole model -> {st.run.root}")
    return record
