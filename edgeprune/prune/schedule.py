"""Pruning schedules: when masks are (re)computed during training and how much they keep then.

Every schedule keeps tfmot's ``PruningSchedule`` contract: ``schedule(step) -> (should_prune, keep)``
(``keep``: the fraction of elements kept from that step on) and ``get_config()`` /
``from_config()`` round-trip it. Three exist:

* :class:`OneShotSchedule`: the paper's single hard prune, at step 0.
* :class:`GradualSchedule`: Zhu & Gupta ("To prune, or not to prune", 2017): a one-shot structured
  cut to 5x destroys a small model faster than a short retraining can repair it, so remove weights a
  little at a time instead, fastest at first while there is most redundancy, with a cubic ramp of
  sparsity s_t = s_f * (1 - (1 - t/T)^3). ``compress`` runs the ramp over the first ``ramp``
  fraction of masked retraining and retrains the rest at the final mask (``--prune-schedule gradual``).
* :class:`StagedSchedule`: piecewise-constant cuts (2x, 3x, ... to the target), each refitted and
  retrained before the next (``--stages``).

``SCHEDULES`` names the ones ``--prune-schedule`` selects.
"""
from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError


def cubic_keep(step: int, ramp_steps: int, final_keep: float) -> float:
    """Fraction of elements kept at ``step``: 1 at step 0, ``final_keep`` from ``ramp_steps`` on."""
    if not 0 < final_keep <= 1:
        raise ConfigError(f"final keep ratio {final_keep} must be in (0, 1]")
    if ramp_steps <= 0 or step >= ramp_steps:
        return final_keep
    frac = 1.0 - max(step, 0) / ramp_steps
    return final_keep + (1.0 - final_keep) * frac ** 3


def update_steps(ramp_steps: int, every: int) -> list[int]:
    """Steps at which masks are recomputed: every ``every`` steps from 0, and always at the ramp's end."""
    if every < 1:
        raise ConfigError("--prune-every must be a positive number of steps")
    steps = list(range(0, max(ramp_steps, 0), every))
    if not steps or steps[-1] != ramp_steps:
        steps.append(max(ramp_steps, 0))
    return steps


def default_every(ramp_steps: int, updates: int = 10) -> int:
    """About ``updates`` mask updates over the ramp (short schedules update every step)."""
    return max(1, math.ceil(ramp_steps / updates))


def _check_compression(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 1:
        raise ConfigError(f"{what} {value!r} must be a finite compression > 1 (e.g. 5 for 5x)")
    return float(value)


def staged_targets(final: float, step: float = 1.0, start: float = 2.0) -> list[float]:
    """Compression targets of a staged prune: ``start, start + step, ...`` below ``final``, then ``final``.

    Cutting to 2x, retraining, then 3x, ... lets each retraining repair a small cut instead of one
    large one (``5 -> [2, 3, 4, 5]``, ``2.5 -> [2, 2.5]``; a ``final`` at or below ``start`` is one stage).
    Targets are ``start + i * step`` (no accumulated rounding); the last is exactly ``final``.
    """
    final = _check_compression(final, "final compression")
    start = _check_compression(start, "first stage compression")
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0:
        raise ConfigError(f"stage step {step!r} must be a finite number > 0 (compression added per stage)")
    tol = 1e-9 * final
    n = max(0, math.ceil((final - tol - start) / step))  # stages strictly below final
    return [start + i * step for i in range(n)] + [final]


class PruningSchedule:
    """The contract: ``(should_prune, keep)`` at an optimizer step, and a config that rebuilds it."""

    def __call__(self, step: int) -> tuple[bool, float]:  # pragma: no cover - interface
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PruningSchedule:
        return cls(**config.get("config", config))


def _check_keep(final_keep: float) -> float:
    if isinstance(final_keep, bool) or not isinstance(final_keep, (int, float)) or not 0 < final_keep <= 1:
        raise ConfigError(f"final keep ratio {final_keep!r} must be in (0, 1]")
    return float(final_keep)


def _check_step(step: int) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ConfigError(f"step {step!r} must be a non-negative integer")
    return step


class OneShotSchedule(PruningSchedule):
    """One cut to ``final_keep`` at step 0; the masks then stay fixed (the paper's pipeline)."""

    def __init__(self, final_keep: float):
        self.final_keep = _check_keep(final_keep)

    def __call__(self, step: int) -> tuple[bool, float]:
        return _check_step(step) == 0, self.final_keep

    def get_config(self) -> dict[str, Any]:
        return {"class_name": type(self).__name__, "config": {"final_keep": self.final_keep}}


class GradualSchedule(PruningSchedule):
    """The cubic ramp from dense to ``final_keep`` over ``ramp_steps``, masks recomputed every ``every``
    steps (None: about 10 updates per ramp) and always at the ramp's end."""

    def __init__(self, final_keep: float, ramp_steps: int, every: int | None = None):
        self.final_keep = _check_keep(final_keep)
        self.ramp_steps = _check_step(ramp_steps)
        self.every = every or default_every(self.ramp_steps)
        self.steps = frozenset(update_steps(self.ramp_steps, self.every))

    def __call__(self, step: int) -> tuple[bool, float]:
        return _check_step(step) in self.steps, cubic_keep(step, self.ramp_steps, self.final_keep)

    def get_config(self) -> dict[str, Any]:
        return {"class_name": type(self).__name__,
                "config": {"final_keep": self.final_keep, "ramp_steps": self.ramp_steps, "every": self.every}}


SCHEDULES: dict[str, type[PruningSchedule]] = {"oneshot": OneShotSchedule, "gradual": GradualSchedule}


class StagedSchedule(PruningSchedule):
    """Piecewise-constant compression: stage ``k`` cuts to ``stages[k]`` at step ``k * steps_per_stage``
    and holds it until the next cut; the last stage holds for the rest of training.

    ``stages`` (increasing compressions ending at ``final``) defaults to ``staged_targets(final)``.
    ``get_config``/``from_config`` round-trip it like tfmot's ``PruningSchedule``.
    """

    def __init__(self, final: float, steps_per_stage: int, stages: list[float] | None = None):
        self.final = _check_compression(final, "final compression")
        if isinstance(steps_per_stage, bool) or not isinstance(steps_per_stage, int) or steps_per_stage < 1:
            raise ConfigError(f"steps per stage {steps_per_stage!r} must be a positive integer")
        self.steps_per_stage = steps_per_stage
        if stages is None:
            targets = staged_targets(self.final)
        else:
            if isinstance(stages, (str, bytes)) or not hasattr(stages, "__iter__"):
                raise ConfigError(f"stages {stages!r} must be a list of compressions (e.g. [2, 3, 4, 5])")
            targets = [_check_compression(s, "stage compression") for s in stages]
            if not targets:
                raise ConfigError("stages must list at least one compression")
            if any(b <= a for a, b in zip(targets, targets[1:])):
                raise ConfigError(f"stages {targets} must increase strictly (each stage cuts further)")
            if targets[-1] != self.final:
                raise ConfigError(f"the last stage {targets[-1]:g}x must be the final compression {self.final:g}x")
        self.stages = targets

    @property
    def boundaries(self) -> list[int]:
        """Optimizer steps at which each stage's cut happens (the first at step 0)."""
        return [k * self.steps_per_stage for k in range(len(self.stages))]

    @property
    def total_steps(self) -> int:
        """Steps until the last stage has had its own ``steps_per_stage`` of retraining."""
        return len(self.stages) * self.steps_per_stage

    def stage_of(self, step: int) -> int:
        """Index of the stage in force at ``step`` (the last one from its boundary on)."""
        return min(_check_step(step) // self.steps_per_stage, len(self.stages) - 1)

    def compression(self, step: int) -> float:
        """Compression in force at optimizer ``step``."""
        return self.stages[self.stage_of(step)]

    def keep_ratio(self, step: int) -> float:
        """Fraction of elements kept at ``step`` (``1 / compression``)."""
        return 1.0 / self.compression(step)

    def __call__(self, step: int) -> tuple[bool, float]:
        """(a cut happens at ``step``, keep ratio in force)."""
        k = self.stage_of(step)
        return step == k * self.steps_per_stage, 1.0 / self.stages[k]

    def get_config(self) -> dict:
        return {"class_name": type(self).__name__,
                "config": {"final": self.final, "steps_per_stage": self.steps_per_stage,
                           "stages": list(self.stages)}}

    @classmethod
    def from_config(cls, config: dict) -> StagedSchedule:
        cfg = config.get("config", config)
        return cls(cfg["final"], cfg["steps_per_stage"], cfg.get("stages"))

    def __repr__(self) -> str:
        return f"StagedSchedule(final={self.final:g}, steps_per_stage={self.steps_per_stage}, stages={self.stages})"
