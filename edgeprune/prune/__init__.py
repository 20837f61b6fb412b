"""Pruning math, pure functions on tensors: block specs and group norms (``blocks``), the (reweighted)
group-Lasso regularizer (``group_lasso``), exact hard pruning (``masks``), schedules (``schedule``),
presets per architecture and runtime (``presets``), the compression report and plot (``report``),
and the public one-shot verb :func:`prune` (``oneshot``)."""
from .oneshot import prune

__all__ = ["prune"]
