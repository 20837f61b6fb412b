"""Phase 3, the cut: choose the masks and zero the pruned weights. ``Plan.cut`` picks one of three ways:

* ``oneshot``: one hard prune of every matrix to the target (the paper's);
* ``gradual``: nothing here but the calibration; masks tighten during retraining (``GradualSchedule``);
* ``layerwise``: staged cuts (2x, 3x, ... to the target, a ``StagedSchedule``), each ranked by weight,
  activation or OBS score, refitted layer by layer by least squares on a calibration sample
  (``--reconstruct``) and followed by distillation from the dense teacher between stages.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

from edgeprune.distributed import barrier
from edgeprune.errors import ConfigError
from edgeprune.prune.masks import PruneResult, apply_masks
from edgeprune.prune.oneshot import PrunableMatrices, hard_prune, prunable_matrices
from edgeprune.rundir import MASKS_FILE, MODEL_DIR

from .config import CompressConfig
from .state import RunState, say

PRUNE_JSON = "prune.json"


def matrices(model, cfg: CompressConfig) -> PrunableMatrices:
    """The matrices ``cfg`` prunes in ``model``, tiled by its block (``--units``: by head, unit and row)."""
    mats = prunable_matrices(model, cfg.layers, cfg.plan.block)
    if not cfg.units:
        return mats
    from edgeprune.arch import get_arch
    from edgeprune.prune.units import unit_tiling

    arch = get_arch(model.config.model_type)
    head_dim = arch.hidden_size(model.config) // arch.num_heads(model.config)
    tilings = {n: unit_tiling(mats.roles[n], tuple(p.shape), head_dim) for n, p in mats.params.items()}
    return replace(mats, tilings=tilings)


def unit_layout(mats: PrunableMatrices):
    from edgeprune.prune.units import layout

    return layout(mats.roles, mats.layers)


def cut_to_target(cfg: CompressConfig, params, tilings, input_rms=None) -> PruneResult:
    """The one-shot hard prune of ``params`` to the target of ``cfg``."""
    return hard_prune(params, tilings, cfg.plan.keep, cfg.scope, cfg.plan.balanced, input_rms)


def shapes_of(params: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {n: (int(p.shape[0]), int(p.shape[1])) for n, p in params.items()}


def units_keep(keep, cut_params, tilings, lay, shapes, keep_c: float, prev) -> dict[str, float]:
    """``--units``: the cut matrices' kept fractions with whole heads and an exact total (``exact_keep``)."""
    from edgeprune.prune.units import exact_keep

    keep = {n: (keep[n] if isinstance(keep, dict) else keep) for n in cut_params}
    factor = lay.size_factor(shapes)
    size = {n: shapes[n][0] * shapes[n][1] * factor[n] for n in cut_params}
    heads = {n: tilings[n].nbc for n in cut_params if tilings[n].C > 1}
    cap = {} if prev is None else {n: float(prev[n].float().mean()) for n in cut_params}
    return exact_keep(keep, heads, size, keep_c * sum(size.values()), cap)


def compression_of(masks: dict[str, Any]) -> float:
    return sum(m.numel() for m in masks.values()) / max(sum(int(m.sum()) for m in masks.values()), 1)


def chooser(cfg: CompressConfig, tilings, keep: float | dict[str, float], prev: dict[str, Any] | None) -> Callable:
    """The mask rule of one cut: rank the groups of a matrix (weight norm, activation-weighted norm or
    OBS saliency, from the calibration Gram matrix ``H``), never revive a group cut before, keep ``keep``."""
    import torch

    from edgeprune.prune.blocks import group_mask_of
    from edgeprune.prune.masks import group_scores, prune_groups
    from edgeprune.prune.reconstruct import obs_group_scores

    balanced = cfg.plan.balanced

    def choose(name: str, w, H, n_tokens: int):
        t = tilings[name]
        if cfg.score == "obs":
            sc = obs_group_scores(w, H, t, damp=cfg.damp).float()
        elif cfg.score == "activation":
            rms = (torch.diagonal(H) / max(n_tokens, 1)).clamp_min(0).sqrt().float()
            sc = group_scores(w.float() * rms[None, :].to(w.device), t)
        else:
            sc = group_scores(w, t)
        if prev is not None:
            sc = torch.where(group_mask_of(prev[name], t).to(sc.device), sc, torch.full_like(sc, -1.0))
        k = keep[name] if isinstance(keep, dict) else keep
        return prune_groups({name: sc}, {name: t}, k, scope="uniform", balanced=balanced).masks[name]

    return choose


# ------------------------------------------------------------------------------------------ the three cuts


def _say_cut(st: RunState) -> None:
    cfg, plan = st.cfg, st.plan
    say(f"[3/4] hard-pruned {len(st.masks)} matrices to {compression_of(st.masks):.3f}x (target {cfg.compression:g}x, "
        f"block {plan.block}, {cfg.scope}{', balanced' if plan.balanced else ''})")


def _eval_after_cut(st: RunState) -> None:
    """Dev metrics right after the cut, before retraining (diagnostic; recorded once, kept on resume)."""
    from edgeprune.training import task_metrics

    cfg = st.cfg
    if not cfg.eval_after_prune:
        return
    saved = st.run.read(PRUNE_JSON)
    if saved is not None:
        st.prune_metrics = saved.get("metrics_before_retrain")
        return
    st.prune_metrics = task_metrics((st.model, st.tok), st.plan.task, cfg.data_dir, max_seq_len=cfg.max_seq_len,
                                    limit=cfg.eval_limit)
    st.run.write(PRUNE_JSON, {"compression": compression_of(st.masks), "metrics_before_retrain": st.prune_metrics})
    say(f"      before retraining: {st.plan.task.metric} {st.prune_metrics['main']:.4f}")


def _saved_masks(st: RunState) -> dict[str, Any] | None:
    """The masks a resumed run chose before (authoritative), or None."""
    from edgeprune.rundir import load_masks

    if not st.run.masks_path.is_file():
        return None
    saved = load_masks(st.run.masks_path)
    return {n: saved[n].bool() for n in matrices(st.model, st.cfg).params}


def cut_oneshot(st: RunState) -> None:
    masks = _saved_masks(st)
    if masks is None:
        mats = matrices(st.model, st.cfg)
        rms = None
        if st.cfg.score == "activation":
            from edgeprune.calibrate import input_rms

            rms = input_rms(st.model, st.tok, mats.params, st.train[:st.cfg.calib_examples or 64], st.cfg.max_seq_len)
        masks = cut_to_target(st.cfg, mats.params, mats.tilings, rms).masks
        st.run.save_masks(masks)
    st.masks = masks
    apply_masks(st.model, masks)
    _say_cut(st)
    _eval_after_cut(st)


def cut_gradual(st: RunState) -> None:
    masks = _saved_masks(st)
    if masks is not None:  # resumed after the ramp finished: the final masks are fixed
        st.masks = masks
        apply_masks(st.model, masks)
        _say_cut(st)
        _eval_after_cut(st)
        return
    if st.cfg.score == "activation":
        from edgeprune.calibrate import input_rms

        mats = matrices(st.model, st.cfg)
        st.rms = input_rms(st.model, st.tok, mats.params, st.train[:st.cfg.calib_examples or 64], st.cfg.max_seq_len)
    say(f"[3/4] gradual pruning: masks tighten to {st.cfg.compression:g}x over the first {st.cfg.prune_ramp:g} "
        f"of retraining (block {st.plan.block}, {st.cfg.scope})")


def cut_layerwise(st: RunState) -> None:
    st.model, st.masks, st.stage_log = staged_cuts(st)
    st.prune_metrics = st.stage_log[-1].get("metrics_after_cut")
    st.run.save_masks(st.masks)
    apply_masks(st.model, st.masks)
    _say_cut(st)


CUT_PHASES: dict[str, Callable[[RunState], None]] = {"oneshot": cut_oneshot, "gradual": cut_gradual,
                                                     "layerwise": cut_layerwise}


def cut(st: RunState) -> None:
    t0 = time.perf_counter()
    CUT_PHASES[st.plan.cut](st)
    st.mark("prune", t0)


# ------------------------------------------------------------------------------------------ staged cuts


def staged_cuts(st: RunState):
    """Cut to each stage target in turn: rank, cut and refit layer by layer on a calibration sample, then
    (between stages) distil from the dense teacher with the masks fixed. Every stage's model is kept, so a
    staged run to 5x also yields its 2x, 3x, ... models, and a resumed run continues at the next stage."""
    from edgeprune.calibrate import calibration_batches, cut_and_reconstruct
    from edgeprune.data.glue import seeded_subset
    from edgeprune.models import load_model
    from edgeprune.prune.schedule import StagedSchedule
    from edgeprune.rundir import load_masks
    from edgeprune.training import make_trainer, task_metrics

    from .trainer import MaskCallback, PruneTrainer, last_checkpoint

    cfg, spec, train = st.cfg, st.plan.task, st.train
    model, tok = st.model, st.tok
    n_calib = min(256, len(train)) if cfg.calib_examples is None else cfg.calib_examples
    if n_calib > len(train):
        raise ConfigError(f"--calib-examples {cfg.calib_examples} is larger than the training set "
                          f"({len(train)} examples); give at most {len(train)}")
    teacher, _ = load_model(st.dense_dir, num_labels=spec.num_labels)
    batches = calibration_batches(tok, seeded_subset(train, n_calib, cfg.seed + 1), cfg.max_seq_len)
    schedule = StagedSchedule(cfg.compression, max(cfg.stage_steps, 1), list(st.plan.stage_targets))
    targets = schedule.stages
    masks = None
    log: list[dict[str, Any]] = []
    for si, c in enumerate(targets):
        keep_c = schedule(si * schedule.steps_per_stage)[1]
        final = si == len(targets) - 1
        sdir = st.run.stage_dir(c)
        done = st.run.done(sdir)
        if done is not None and (sdir / MODEL_DIR / MASKS_FILE).is_file():
            model, tok = load_model(sdir / MODEL_DIR, num_labels=spec.num_labels)
            saved = load_masks(sdir / MODEL_DIR / MASKS_FILE)
            masks = {n: m.bool() for n, m in saved.items()}
            log.append(done)
            say(f"[3/4] stage {si + 1}/{len(targets)} ({c:g}x) already done")
            continue
        t0 = time.perf_counter()
        mats = matrices(model, cfg)
        params, tilings, layers = mats.params, mats.tilings, mats.layers
        lay = unit_layout(mats) if cfg.units else None
        cut_params = {n: params[n] for n in lay.cut} if lay else params
        shapes = shapes_of(params)
        say(f"[3/4] stage {si + 1}/{len(targets)}: cut to {c:g}x by {cfg.score} rank"
            f"{', least-squares refit' if cfg.reconstruct else ''} on {n_calib} calibration examples")
        keep: float | dict[str, float] = keep_c
        alloc_table = None
        if cfg.allocation == "sensitivity":
            from edgeprune.calibrate import input_grams, sensitivity_allocation

            prev = masks
            cap = None if prev is None else {n: float(prev[n].float().mean()) for n in cut_params}
            keep, alloc_table = sensitivity_allocation(
                {n: p.detach() for n, p in cut_params.items()}, input_grams(teacher, batches, list(cut_params)),
                lambda n, w, H, cnt, r: chooser(cfg, tilings, r, prev)(n, w, H, cnt), keep_c, damp=cfg.damp,
                cap=cap, size_factor=lay.size_factor(shapes) if lay else None)
        if lay is not None:  # whole heads: round them, then let the FFN units make the total exact
            keep = units_keep(keep, cut_params, tilings, lay, shapes, keep_c, masks)
        masks, recs = cut_and_reconstruct(model, teacher, batches, list(cut_params), lambda n: layers[n],
                                          chooser(cfg, tilings, keep, masks), reconstruct=cfg.reconstruct,
                                          damp=cfg.damp)
        if lay is not None:  # the heads' Q/K/V rows and the units' FFN-input rows follow the cut exactly
            from edgeprune.prune.units import partner_masks

            masks = {**masks, **partner_masks(masks, lay, shapes)}
            masks = {n: masks[n] for n in params}
        entry: dict[str, Any] = {
            "target": c, "compression": compression_of(masks),
            "cut_s": round(time.perf_counter() - t0, 1),
            "output_error_cut": sum(r.damage_cut for r in recs) / len(recs),
            "output_error_refit": (sum(r.damage_refit for r in recs) / len(recs)) if cfg.reconstruct else None,
            "matrices": [vars(r) for r in recs], "allocation": cfg.allocation,
            "allocation_damage": alloc_table}
        if cfg.eval_after_prune:
            entry["metrics_after_cut"] = task_metrics((model, tok), spec, cfg.data_dir, max_seq_len=cfg.max_seq_len,
                                                      limit=cfg.eval_limit)
            say(f"      {c:g}x after the cut: {spec.metric} {entry['metrics_after_cut']['main']:.4f}")
        if not final and cfg.stage_steps > 0:
            t1 = time.perf_counter()
            mask_cb = MaskCallback(params, masks)
            stage_train, stage_cfg = st.training_data(teacher if cfg.distill else None, cfg.training("stage"))
            trainer = make_trainer(model, tok, spec, stage_train, None, stage_cfg, sdir,
                                   trainer_cls=PruneTrainer, callbacks=[mask_cb, *st.phase_callbacks("stage")],
                                   teacher=teacher if cfg.distill else None, distill_alpha=cfg.distill_alpha,
                                   distill_temperature=cfg.distill_temperature, distill_hidden=cfg.distill_hidden)
            trainer.train(resume_from_checkpoint=last_checkpoint(sdir) if st.resume else None)
            mask_cb.apply()
            model = trainer.model
            entry["steps"] = int(trainer.state.global_step)
            entry["distill_s"] = round(time.perf_counter() - t1, 1)
            entry["metrics_after_distill"] = task_metrics((model, tok), spec, cfg.data_dir, max_seq_len=cfg.max_seq_len,
                                                          limit=cfg.eval_limit)
            say(f"      {c:g}x after {cfg.stage_steps} distillation steps: {spec.metric} "
                f"{entry['metrics_after_distill']['main']:.4f}")
            del trainer
        apply_masks(model, masks)
        st.run.save_model(sdir / MODEL_DIR, model, tok, masks)
        st.run.write_done(sdir, entry)
        barrier()
        log.append(entry)
    return model, masks, log
