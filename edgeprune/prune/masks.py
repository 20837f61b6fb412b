"""Hard pruning: choose which groups survive so that the whole set hits a target exactly.

A *slot* is the unit of selection: one group, or (balanced) the j-th best group of every block
row of a layer at once, so that every block row keeps the same number of groups. Groups are
ranked by RMS (group norm / sqrt(real size)), so padded partial groups and layers with
different group sizes compare fairly. ``uniform`` keeps the same fraction of every layer;
``global`` ranks slots of all layers together. Both take the nearest achievable element count
(the target is hit to one slot); every layer keeps at least one slot.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .blocks import Tiling, expand_group_mask, group_norms, group_sizes

if TYPE_CHECKING:  # pragma: no cover
    import torch

SCOPES = ("uniform", "global")


@dataclass(frozen=True)
class PruneResult:
    group_masks: dict[str, Any]  # name -> bool [nbr, nbc]
    masks: dict[str, Any]  # name -> bool [out, in]
    kept: dict[str, int]  # kept elements per layer
    total: int  # dense elements over all pruned layers
    target_kept: float

    @property
    def kept_total(self) -> int:
        return sum(self.kept.values())

    @property
    def compression(self) -> float:
        return self.total / max(self.kept_total, 1)


def group_scores(w: torch.Tensor, t: Tiling) -> torch.Tensor:
    """RMS of every group ``[nbr, nbc]``: the ranking score for hard pruning."""
    import torch

    with torch.no_grad():
        return group_norms(w.detach().float(), t, floor=0.0) / group_sizes(t, w.device).float().sqrt()


def _slots(scores: torch.Tensor, t: Tiling, balanced: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(slot scores descending, slot element costs) for one layer."""
    import torch

    sizes = group_sizes(t, scores.device)
    if balanced:
        # slot j = the j-th best group in every block row; its score is their mean, its cost their sizes
        srt, idx = scores.sort(dim=1, descending=True)
        cost = torch.gather(sizes, 1, idx).sum(dim=0)
        return srt.mean(dim=0), cost
    flat, idx = scores.flatten().sort(descending=True)
    return flat, sizes.flatten()[idx]


def _mask_from_count(scores: torch.Tensor, t: Tiling, balanced: bool, k: int) -> torch.Tensor:
    """Keep the ``k`` best slots: top-``k`` per block row (balanced) or top-``k`` groups overall."""
    import torch

    gm = torch.zeros_like(scores, dtype=torch.bool)
    if k <= 0:
        return gm
    if balanced:
        idx = scores.topk(k, dim=1).indices
        gm.scatter_(1, idx, True)
    else:
        idx = scores.flatten().topk(k).indices
        gm.view(-1)[idx] = True
    return gm


def _nearest_prefix(cum: torch.Tensor, target: float) -> int:
    """Number of slots (>= 1) whose cumulative cost is nearest to ``target``."""
    import torch

    i = int(torch.searchsorted(cum, torch.tensor(target, dtype=cum.dtype)).item())
    cands = [c for c in (i - 1, i) if 0 <= c < len(cum)]
    best = min(cands, key=lambda c: (abs(float(cum[c]) - target), c))
    return best + 1


def prune_groups(scores: dict[str, torch.Tensor], tilings: dict[str, Tiling], keep_ratio: float,
                 scope: str = "uniform", balanced: bool | dict[str, bool] = False) -> PruneResult:
    """Group masks keeping ``keep_ratio`` of the elements, to one slot.

    Raises ConfigError when the target would leave some layer with no group at all.
    """
    import torch

    if scope not in SCOPES:
        raise ConfigError(f"unknown pruning scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    if not 0 < keep_ratio <= 1:
        raise ConfigError(f"keep ratio {keep_ratio} must be in (0, 1]")
    bal = {n: (balanced[n] if isinstance(balanced, dict) else balanced) for n in scores}
    slots = {n: _slots(scores[n], tilings[n], bal[n]) for n in scores}
    total = sum(t.numel for t in tilings.values())
    target = keep_ratio * total
    counts: dict[str, int] = {}
    if scope == "uniform":
        for n, (_, cost) in slots.items():
            cum = cost.cumsum(0).double()
            want = keep_ratio * tilings[n].numel
            if want < float(cost[0]) / 2:
                raise ConfigError(_unreachable(n, tilings[n], bal[n], keep_ratio, float(cost[0])))
            counts[n] = _nearest_prefix(cum, want)
    else:
        # every layer keeps its best slot; the rest compete globally by score
        names = list(slots)
        base = {n: float(slots[n][1][0]) for n in names}
        if target < sum(base.values()) / 2:
            raise ConfigError(f"keep ratio {keep_ratio:.5f} would prune every group of some layers; the highest "
                              f"compression this block shape can reach is about {total / sum(base.values()):.1f}x")
        rest_scores = torch.cat([slots[n][0][1:].double() for n in names])
        rest_costs = torch.cat([slots[n][1][1:].double() for n in names])
        owner = torch.cat([torch.full((len(slots[n][0]) - 1,), i, dtype=torch.int64) for i, n in enumerate(names)])
        order = rest_scores.argsort(descending=True, stable=True)
        cum = torch.cat([torch.zeros(1, dtype=torch.float64), rest_costs[order].cumsum(0)])
        remaining = target - sum(base.values())
        m = _nearest_prefix(cum, remaining) - 1  # number of extra slots (0 allowed)
        picked = owner[order[:m]]
        extra = torch.bincount(picked, minlength=len(names))
        counts = {n: 1 + int(extra[i]) for i, n in enumerate(names)}
    gmasks, masks, kept = {}, {}, {}
    for n, sc in scores.items():
        t = tilings[n]
        gm = _mask_from_count(sc, t, bal[n], counts[n])
        gmasks[n] = gm
        masks[n] = expand_group_mask(gm, t)
        kept[n] = int(masks[n].sum())
    return PruneResult(gmasks, masks, kept, total, target)


def _unreachable(name: str, t: Tiling, balanced: bool, keep_ratio: float, min_cost: float) -> str:
    per = t.nbc if balanced else t.num_groups
    unit = "groups per block row" if balanced else "groups"
    return (f"target {1 / keep_ratio:.4g}x would prune every group of {name} ({per} {unit} of {t.R}x{t.C}); "
            f"the highest compression this block shape reaches there is {t.numel / min_cost:.4g}x; "
            "choose a lower target or a smaller block")


def magnitude_scores(weights: dict[str, torch.Tensor], tilings: dict[str, Tiling],
                     input_rms: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Group RMS of ``W`` (the paper's rule) or, with ``input_rms`` (per input feature, ``[in]``), of
    ``W * diag(input_rms)``: activation-aware, so that small weights reading large activations
    (outlier features behind LayerNorm gains) are not mistaken for unimportant ones."""
    if input_rms is None:
        return {n: group_scores(w, tilings[n]) for n, w in weights.items()}
    return {n: group_scores(w.detach().float() * input_rms[n].to(w.device).float()[None, :], tilings[n])
            for n, w in weights.items()}


def parse_target(text: str | float) -> float:
    """``'5x'`` -> 5.0 (compression); ``'0.8'`` -> sparsity 0.8 -> 5.0."""
    s = str(text).strip().lower()
    try:
        if s.endswith("x"):
            c = float(s[:-1])
        else:
            sp = float(s)
            if not 0 <= sp < 1:
                raise ConfigError(f"target {text!r}: a sparsity must be in [0, 1); write a compression as e.g. 5x")
            c = 1.0 / (1.0 - sp)
    except ValueError:
        raise ConfigError(f"target {text!r} is neither a compression like 5x nor a sparsity like 0.8") from None
    if not math.isfinite(c) or c < 1:
        raise ConfigError(f"target {text!r}: compression must be >= 1x")
    return c


def apply_masks(model, masks: dict[str, Any]) -> None:
    """Zero the pruned weights of the in-memory model, after checking the masks fit it (the one place masks
    are applied outside training; the files on disk are never touched)."""
    import torch

    from edgeprune.rundir import check_masks_match

    check_masks_match(masks, model)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, m in masks.items():
            params[name].mul_(m.to(params[name].dtype))
