"""Pruning math, pure functions on tensors: block specs and group norms (``blocks``), the (reweighted)
group-Lasso regularizer (``group_lasso``), exact hard pruning (``masks``), presets per architecture and
runtime (``presets``) and the compression report and plot (``report``)."""
