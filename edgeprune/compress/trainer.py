"""The ``transformers.Trainer`` pieces of ``compress``: a loss with regularizer / distillation, and callbacks.

* :class:`PruneTrainer` adds the group-Lasso term and (optionally) logit distillation from the
  dense teacher to the task loss; evaluation is untouched.
* :class:`ReweightCallback` recomputes the reweighting coefficients at the paper's epoch
  milestones (or every N steps) and stores them in every checkpoint, so ``--resume`` continues
  with the same coefficients.
* :class:`MaskCallback` keeps pruned weights exactly zero: gradients are masked in backward
  (tensor hooks, so clipping and DDP's all-reduce see masked gradients), weights are re-masked
  after every optimizer step, and AdamW's moments of pruned weights are zeroed.
* :class:`GradualMaskCallback` is a MaskCallback whose masks tighten during training along a
  ``prune.schedule.GradualSchedule`` (``--prune-schedule gradual``); its masks are stored in
  every checkpoint, so ``--resume`` continues with the same ones.

Parameters are captured from the unwrapped model, so names never carry DDP's ``module.`` prefix.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback

from edgeprune.prune.group_lasso import GroupLassoRegularizer, milestone_steps

REG_STATE = "edgeprune_reg.pt"
MASK_STATE = "edgeprune_masks.pt"


def load_state(resume_from: str | os.PathLike[str] | None, name: str) -> dict[str, Any] | None:
    """A callback's state stored as ``name`` in the checkpoint being resumed (None: fresh run or none saved)."""
    if resume_from is None or not (Path(resume_from) / name).is_file():
        return None
    return torch.load(Path(resume_from) / name, map_location="cpu", weights_only=False)


def save_state(args, state, name: str, obj: dict[str, Any]) -> None:
    """Store a callback's state in the checkpoint the Trainer has just written (rank 0 only)."""
    if state.is_world_process_zero:
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            torch.save(obj, ckpt / name)


def last_checkpoint(phase_dir: Path) -> str | None:
    """The newest Trainer checkpoint of a phase folder (what ``--resume`` continues from), or None."""
    from transformers.trainer_utils import get_last_checkpoint

    ck = phase_dir / "checkpoints"
    return get_last_checkpoint(str(ck)) if ck.is_dir() else None


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float, regression: bool) -> torch.Tensor:
    """Hinton KD: ``T^2 * KL(softmax(t/T) || softmax(s/T))``; MSE to the teacher's output for regression."""
    if regression:
        return F.mse_loss(student.float().view(-1), teacher.float().view(-1))
    t = temperature
    return F.kl_div(F.log_softmax(student.float() / t, dim=-1), F.softmax(teacher.float() / t, dim=-1),
                    reduction="batchmean") * (t * t)


def hidden_distill_loss(student: tuple, teacher: tuple, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over layers of the MSE between student and teacher hidden states at real (unpadded) tokens.

    Every layer gets a target (TinyBERT-style), which is far more signal per example than the logits
    alone: what a short masked retraining needs to repair a structured cut."""
    losses = []
    for s, t in zip(student[1:], teacher[1:]):  # [0] = embeddings, never pruned
        d = (s.float() - t.float()).pow(2).mean(-1)
        if mask is not None:
            m = mask.to(d.dtype)
            losses.append((d * m).sum() / m.sum().clamp_min(1))
        else:
            losses.append(d.mean())
    return torch.stack(losses).mean()


class PruneTrainer(Trainer):
    """Trainer whose training loss is ``(1-a) task + a KD + R(W)``."""

    def __init__(self, *args: Any, regularizer: GroupLassoRegularizer | None = None, teacher=None,
                 distill_alpha: float = 0.5, distill_temperature: float = 2.0, distill_hidden: float = 0.0,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.regularizer = regularizer
        self.teacher = teacher
        self.distill_alpha = distill_alpha
        self.distill_temperature = distill_temperature
        self.distill_hidden = distill_hidden
        self._last_hid: torch.Tensor | None = None
        self._last_reg: torch.Tensor | None = None
        self._last_kd: torch.Tensor | None = None
        if teacher is not None:
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
            teacher.to(self.args.device)

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        hidden = model.training and self.teacher is not None and self.distill_hidden > 0
        if hidden:
            inputs = {**inputs, "output_hidden_states": True}
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            if self.teacher is not None:
                with torch.no_grad():
                    t_out = self.teacher(**{k: v for k, v in inputs.items() if k != "labels"})
                kd = distill_loss(outputs.logits, t_out.logits, self.distill_temperature,
                                  regression=outputs.logits.shape[-1] == 1)
                loss = (1 - self.distill_alpha) * loss + self.distill_alpha * kd
                self._last_kd = kd.detach()
                if hidden:
                    hid = hidden_distill_loss(outputs.hidden_states, t_out.hidden_states, inputs.get("attention_mask"))
                    loss = loss + self.distill_hidden * hid
                    self._last_hid = hid.detach()
            if self.regularizer is not None:
                reg = self.regularizer()
                loss = loss + reg.to(loss.device)
                self._last_reg = reg.detach()
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs:
            if self._last_reg is not None:
                logs["reg"] = round(float(self._last_reg), 6)
            if self._last_kd is not None:
                logs["kd"] = round(float(self._last_kd), 6)
            if self._last_hid is not None:
                logs["hid"] = round(float(self._last_hid), 6)
        super().log(logs, *args, **kwargs)


class ReweightCallback(TrainerCallback):
    """Reweight at the start of epoch milestones (paper: 4, 8, 12, 16) and/or every ``every`` steps."""

    def __init__(self, regularizer: GroupLassoRegularizer, milestones: tuple[int, ...] = (), every: int | None = None,
                 resume_from: str | os.PathLike[str] | None = None):
        self.reg = regularizer
        self.milestones = tuple(milestones)
        self.every = every
        self.resume_from = resume_from
        self.steps: set[int] = set()
        self.last = 0
        self.history: list[int] = [0]  # steps at which coefficients were (re)computed

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        if train_dataloader is not None:
            spe = max(len(train_dataloader) // max(args.gradient_accumulation_steps, 1), 1)
            self.steps = milestone_steps(self.milestones, spe)
        st = load_state(self.resume_from, REG_STATE)
        if st is not None:
            self.reg.load_state_dict(st["regularizer"])
            self.last, self.history = st["last"], st["history"]

    def on_step_begin(self, args, state, control, **kwargs):
        s = state.global_step
        due = s in self.steps or (self.every is not None and s > 0 and s % self.every == 0)
        if due and s != self.last:
            self.reg.reweight()
            self.last = s
            self.history.append(s)

    def on_save(self, args, state, control, **kwargs):
        save_state(args, state, REG_STATE, {"regularizer": self.reg.state_dict(), "last": self.last,
                                            "history": self.history})


class MaskCallback(TrainerCallback):
    """Pruned weights stay exactly zero: masked gradients, re-masked weights, zeroed Adam moments."""

    def __init__(self, params: dict[str, torch.nn.Parameter], masks: dict[str, torch.Tensor]):
        missing = sorted(set(masks) - set(params))
        if missing:
            raise KeyError(f"masks without parameters: {missing[:3]}")
        self.params = params
        self.masks = {n: m.bool() for n, m in masks.items()}
        self._hooks: list[Any] = []

    def _mask_of(self, name: str, like: torch.Tensor) -> torch.Tensor:
        m = self.masks[name]
        if m.device != like.device:
            m = self.masks[name] = m.to(like.device)
        return m

    def apply(self) -> None:
        with torch.no_grad():
            for n, m in self.masks.items():
                p = self.params[n]
                p.mul_(self._mask_of(n, p))

    def on_train_begin(self, args, state, control, **kwargs):
        self.apply()
        if not self._hooks:
            for n in self.masks:
                p = self.params[n]
                self._hooks.append(p.register_hook(lambda g, n=n: g * self._mask_of(n, g)))

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.apply()
        self._mask_moments(optimizer)

    def _mask_moments(self, optimizer) -> None:
        if optimizer is None:
            return
        opt = getattr(optimizer, "optimizer", optimizer)
        with torch.no_grad():
            for n, m in self.masks.items():
                st = opt.state.get(self.params[n])
                if not st:
                    continue
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in st and st[key].shape == m.shape:
                        st[key].mul_(m.to(st[key].device))

    def on_train_end(self, args, state, control, **kwargs):
        self.apply()
        for h in self._hooks:
            h.remove()
        self._hooks.clear()


class GradualMaskCallback(MaskCallback):
    """Masks that start dense and reach ``final_keep`` after ``ramp`` of the training steps.

    At each update the groups still alive are ranked by ``magnitude_scores`` of the current weights
    (times the calibrated input RMS when given); groups pruned earlier rank last, so a pruned group
    never comes back and the kept count follows the schedule exactly.
    """

    def __init__(self, params: dict[str, torch.nn.Parameter], tilings: dict[str, Any], final_keep: float,
                 scope: str, balanced: bool, ramp: float, every: int | None = None,
                 input_rms: dict[str, torch.Tensor] | None = None,
                 resume_from: str | os.PathLike[str] | None = None):
        from edgeprune.prune.blocks import expand_group_mask

        self.tilings = tilings
        self.final_keep = final_keep
        self.scope, self.balanced = scope, balanced
        self.ramp, self.every = ramp, every
        self.input_rms = input_rms
        self.resume_from = resume_from
        self.group_masks = {n: torch.ones(t.nbr, t.nbc, dtype=torch.bool) for n, t in tilings.items()}
        super().__init__(params, {n: expand_group_mask(g, tilings[n]) for n, g in self.group_masks.items()})
        self.ramp_steps = 0
        self.schedule: Any = None  # a GradualSchedule, once the number of training steps is known
        self.last = -1
        self.history: list[tuple[int, float]] = []  # (step, kept fraction) of every update

    def on_train_begin(self, args, state, control, **kwargs):
        from edgeprune.prune.schedule import GradualSchedule

        total = max(int(state.max_steps), 1)
        self.ramp_steps = min(round(self.ramp * total), max(total - 1, 0))  # the final mask trains >= 1 step
        self.schedule = GradualSchedule(self.final_keep, self.ramp_steps, self.every)
        st = load_state(self.resume_from, MASK_STATE)
        if st is not None:
            self._set(st["group_masks"])
            self.last, self.history = st["last"], [tuple(x) for x in st["history"]]
        super().on_train_begin(args, state, control, **kwargs)

    def _set(self, group_masks: dict[str, torch.Tensor]) -> None:
        from edgeprune.prune.blocks import expand_group_mask

        self.group_masks = {n: g.bool().cpu() for n, g in group_masks.items()}
        for n, g in self.group_masks.items():
            self.masks[n] = expand_group_mask(g, self.tilings[n]).to(self.params[n].device)

    def update(self, step: int) -> None:
        from edgeprune.prune.masks import magnitude_scores, prune_groups

        _, keep = self.schedule(step)
        weights = {n: p.detach() for n, p in self.params.items()}
        scores = magnitude_scores(weights, self.tilings, self.input_rms)
        scores = {n: torch.where(self.group_masks[n].to(s.device), s, torch.full_like(s, -1.0))
                  for n, s in scores.items()}
        res = prune_groups(scores, self.tilings, keep, scope=self.scope, balanced=self.balanced)
        self._set(res.group_masks)
        self.apply()
        self.last = step
        self.history.append((step, res.kept_total / res.total))

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        s = state.global_step
        if self.schedule(s)[0] and s != self.last:
            self.update(s)
            self._mask_moments(optimizer)

    def on_save(self, args, state, control, **kwargs):
        save_state(args, state, MASK_STATE, {"group_masks": self.group_masks, "last": self.last,
                                             "history": self.history})

    def on_train_end(self, args, state, control, **kwargs):
        if self.last < self.ramp_steps:  # a run shorter than its ramp still ends at the target
            self.update(self.ramp_steps)
        super().on_train_end(args, state, control, **kwargs)


class ProximalCallback(TrainerCallback):
    """The group-Lasso term applied as a proximal step after every optimizer step (``--reg-form proximal``).

    Added to the loss, the penalty goes through AdamW, whose normalized step caps how far any weight
    moves at about the summed learning rate and hides lambda behind task-gradient noise: the stage
    did nothing (R fell 0.8% in 32 steps, the same result for lambda 1e-5..1e-3). The proximal
    operator of ``lr_t * lambda * alpha_g * ||W_g||`` is the group analogue of AdamW's decoupled
    weight decay, ``W_g <- W_g * max(0, 1 - lr_t lambda alpha_g / ||W_g||)``: lambda acts directly and
    a group whose norm falls below the threshold becomes exactly zero.
    """

    def __init__(self, regularizer: GroupLassoRegularizer):
        self.reg = regularizer
        self._lr = 0.0

    def on_step_begin(self, args, state, control, lr_scheduler=None, optimizer=None, **kwargs):
        if lr_scheduler is not None:
            self._lr = float(lr_scheduler.get_last_lr()[0])
        elif optimizer is not None:
            self._lr = float(optimizer.param_groups[0]["lr"])

    def on_step_end(self, args, state, control, **kwargs):
        from edgeprune.prune.group_lasso import group_soft_threshold

        with torch.no_grad():
            for term in self.reg.terms:
                alpha = term.alpha.to(term.param.device) if term.alpha is not None else 1.0
                term.param.copy_(group_soft_threshold(term.param.detach(), term.tiling, self._lr * term.lam * alpha))
