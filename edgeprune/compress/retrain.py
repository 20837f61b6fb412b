"""Phase 4, masked retraining (+ distillation from the dense teacher): the pruned weights stay exactly zero,
or, for a gradual schedule, the masks tighten along it; the pruned checkpoint is written at the end."""
from __future__ import annotations

import time

from edgeprune.distributed import barrier

from .state import RunState, say

SCHEDULE_JSON = "schedule.json"


def _metrics_from_eval(d: dict) -> dict:
    skip = ("runtime", "samples_per_second", "steps_per_second", "epoch")
    return {k.removeprefix("eval_"): v for k, v in d.items() if k.removeprefix("eval_") not in skip}


def retrain(st: RunState) -> None:
    """Sets ``st.model``, ``st.masks`` (final) and ``st.pruned_metrics``; writes ``model/``."""
    from edgeprune.models import load_model
    from edgeprune.training import make_trainer

    from .cut import matrices
    from .trainer import GradualMaskCallback, MaskCallback, PruneTrainer, last_checkpoint

    cfg, spec, t0 = st.cfg, st.plan.task, time.perf_counter()
    rt_dir = st.run.phase_dir("retrain")
    epochs = cfg.retrain_epochs
    final_dir = st.run.model_dir
    done = st.run.done(rt_dir)
    if done is not None and (final_dir / "config.json").is_file():
        say("[4/4] masked retraining already done")
        st.model, st.tok = load_model(final_dir, num_labels=spec.num_labels)
        st.pruned_metrics = done["metrics"]
        st.mark("retrain", t0)
        return
    teacher = None
    if cfg.distill:
        teacher, _ = load_model(st.dense_dir, num_labels=spec.num_labels)
    gradual = st.masks is None
    say(f"[4/4] masked retraining ({epochs:g} epochs{', distilling from the dense model' if cfg.distill else ''}"
        f"{', pruning gradually' if gradual else ''})")
    last = last_checkpoint(rt_dir) if st.resume else None
    mats = matrices(st.model, cfg)
    if gradual:
        mask_cb = GradualMaskCallback(mats.params, mats.tilings, st.plan.keep, cfg.scope, st.plan.balanced,
                                      cfg.prune_ramp, cfg.prune_every, st.rms, resume_from=last)
    else:
        mask_cb = MaskCallback(mats.params, st.masks)
    train, tcfg = st.training_data(teacher, cfg.training("retrain"), epochs)
    trainer = make_trainer(st.model, st.tok, spec, train, st.dev, tcfg, rt_dir,
                           trainer_cls=PruneTrainer, callbacks=[mask_cb, *st.phase_callbacks("retrain")],
                           teacher=teacher, distill_alpha=cfg.distill_alpha,
                           distill_temperature=cfg.distill_temperature, distill_hidden=cfg.distill_hidden)
    if epochs > 0:
        trainer.train(resume_from_checkpoint=last)
    mask_cb.apply()
    if gradual:
        st.masks = {n: m.bool().cpu() for n, m in mask_cb.masks.items()}
        st.run.save_masks(st.masks)
        st.run.write(SCHEDULE_JSON, {"updates": mask_cb.history, "ramp_steps": mask_cb.ramp_steps,
                                     "schedule": mask_cb.schedule.get_config()})
    st.pruned_metrics = _metrics_from_eval(trainer.evaluate())
    st.model = trainer.model
    st.model.config.edgeprune_task = st.plan.task_key
    st.run.save_model(final_dir, st.model, st.tok, st.masks)
    st.run.write_done(rt_dir, {"metrics": st.pruned_metrics, "epochs": epochs,
                               "steps": int(trainer.state.global_step) if epochs > 0 else 0})
    barrier()
    del trainer
    st.mark("retrain", t0)
