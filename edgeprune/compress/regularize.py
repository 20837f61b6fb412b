"""Phase 2, regularized training: (reweighted) group Lasso pushes whole groups towards zero before the cut,
or the regularized model of an earlier run with the same settings is reused."""
from __future__ import annotations

import time
from pathlib import Path

from edgeprune.distributed import barrier
from edgeprune.errors import ConfigError
from edgeprune.io import read_json
from edgeprune.rundir import DONE_JSON, MODEL_DIR, RunWriter, settings_diff

from .config import REGULARIZED, CompressConfig
from .cut import matrices
from .state import RunState, say

# settings the regularized stage depends on: a reused stage must agree on all of them
REG_KEYS = ("model", "task", "method", "block", "block_preset", "balanced", "layers", "penalty", "eps", "reg_form",
            "reweight_every", "milestones", "epochs_reg", "lr", "batch_size", "max_seq_len", "train_limit", "seed")


def reusable_regularized(cfg: CompressConfig) -> tuple[Path, float]:
    """(regularized model folder, its stage's wall seconds) of ``cfg.regularized_from``, checked to match ``cfg``.

    The regularizer does not depend on the target, so one regularized stage serves a whole sweep of
    targets (as the authors pruned one regularized model at several ratios)."""
    src = RunWriter(str(cfg.regularized_from))
    reg = src.phase_dir("regularize")
    model = reg / MODEL_DIR
    if not ((reg / DONE_JSON).is_file() and (model / "config.json").is_file()):
        raise ConfigError(f"--regularized-from {src.root}: no finished regularized stage kept there (it needs "
                          f"{model}; run that compress with --keep-regularized)")
    diff = settings_diff(read_json(src.state / "config.json"), cfg.to_dict(), REG_KEYS)
    if diff:
        raise ConfigError(f"--regularized-from {src.root} was regularized with other settings ({'; '.join(diff)}); "
                          "use the same ones or drop --regularized-from")
    return model, float((src.read("phases.json") or {}).get("regularize", 0.0))


def kept_energy(params, tilings, cfg: CompressConfig) -> float:
    """Fraction of the pruned matrices' squared weight that a hard prune at the target would keep."""
    from edgeprune.prune.group_lasso import kept_energy as layer_kept_energy

    tot = kept = 0.0
    for n, p in params.items():
        e = float(p.detach().double().pow(2).sum())
        tot += e
        kept += e * layer_kept_energy(p.detach(), tilings[n], cfg.plan.keep, cfg.plan.balanced)
    return kept / tot if tot else 1.0


def zero_groups(params, tilings) -> int:
    from edgeprune.prune.blocks import group_sq_norms

    return int(sum(int((group_sq_norms(p.detach(), tilings[n]) == 0).sum()) for n, p in params.items()))


def regularize(st: RunState) -> None:
    """Loads the model the cut starts from into ``st.model``/``st.tok`` (regularized when the method is)."""
    from transformers import set_seed

    from edgeprune.models import load_model
    from edgeprune.training import make_trainer, task_metrics

    cfg, spec = st.cfg, st.plan.task
    set_seed(cfg.seed)
    reg_dir = st.run.phase_dir("regularize")
    st.model, st.tok = load_model(st.dense_dir, num_labels=spec.num_labels)
    if st.reused is not None:
        say(f"[2/4] reusing the regularized stage of {cfg.regularized_from}")
        st.model, st.tok = load_model(st.reused[0], num_labels=spec.num_labels)
        st.phases["regularize_reused"] = st.reused[1]
        return
    if cfg.method not in REGULARIZED or cfg.epochs_reg <= 0:
        return
    t0 = time.perf_counter()
    if st.run.done(reg_dir) is not None:
        say("[2/4] group-Lasso training already done")
        st.model, st.tok = load_model(reg_dir / MODEL_DIR, num_labels=spec.num_labels)
        st.mark("regularize", t0)
        return
    from edgeprune.prune.group_lasso import GroupLassoRegularizer

    from .trainer import ProximalCallback, PruneTrainer, ReweightCallback, last_checkpoint

    say(f"[2/4] {cfg.method} training ({cfg.epochs_reg:g} epochs, lambda {cfg.penalty:g})")
    mats = matrices(st.model, cfg)
    params, tilings = mats.params, mats.tilings
    reg = GroupLassoRegularizer(params, tilings, cfg.penalty, reweighted=cfg.method == "reweighted-group-lasso",
                                eps=cfg.eps)
    last = last_checkpoint(reg_dir) if st.resume else None
    r_start = float(reg().detach())
    e_start = kept_energy(params, tilings, cfg)
    rw = ReweightCallback(reg, cfg.milestones if reg.reweighted else (),
                          cfg.reweight_every if reg.reweighted else None, resume_from=last)
    extra_cbs = [ProximalCallback(reg)] if cfg.reg_form == "proximal" else []
    trainer = make_trainer(st.model, st.tok, spec, st.train, st.dev, cfg.training("regularize"), reg_dir,
                           trainer_cls=PruneTrainer, callbacks=[rw, *extra_cbs, *st.phase_callbacks("regularize")],
                           regularizer=reg if cfg.reg_form == "loss" else None)
    trainer.train(resume_from_checkpoint=last)
    st.model = trainer.model
    reg_metrics = task_metrics((st.model, st.tok), spec, cfg.data_dir, max_seq_len=cfg.max_seq_len,
                               limit=cfg.eval_limit)
    record = {"reweighted_at_steps": rw.history, "final_reg": float(reg().detach()), "form": cfg.reg_form,
              "R_start": r_start, "R_end": float(reg().detach()),
              "kept_energy_at_target_start": e_start, "kept_energy_at_target_end": kept_energy(params, tilings, cfg),
              "zero_groups": zero_groups(params, tilings), "metrics": reg_metrics,
              "steps": trainer.state.global_step}
    say(f"      regularized: R {r_start:.4g} -> {record['R_end']:.4g}, kept energy at "
        f"{cfg.compression:g}x {e_start:.3f} -> {record['kept_energy_at_target_end']:.3f}, "
        f"{spec.metric} {reg_metrics['main']:.4f} before the cut")
    st.run.save_model(reg_dir / MODEL_DIR, st.model, st.tok)
    st.run.write_done(reg_dir, record)
    barrier()
    del trainer
    st.mark("regularize", t0)
