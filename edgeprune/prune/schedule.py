"""Gradual pruning schedule: how much of each matrix to keep at a given training step.

A one-shot structured cut to 5x destroys a small model faster than a short retraining can
repair it (bench/results/compress.md). Zhu & Gupta ("To prune, or not to prune", 2017) remove
weights a little at a time instead, fastest at first while there is most redundancy, with a
cubic ramp of sparsity s_t = s_f * (1 - (1 - t/T)^3). Here the ramp runs over the first
``ramp`` fraction of masked retraining and the rest retrains at the final mask. The paper's
pipeline is ``oneshot``; ``gradual`` is our addition (``--prune-schedule gradual``).
"""
from __future__ import annotations

import math

from ..errors import ConfigError

SCHEDULES = ("oneshot", "gradual")


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
