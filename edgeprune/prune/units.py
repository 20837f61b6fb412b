"""Whole attention heads and FFN units: the pruning structure that every stock runtime turns into speed.

Removing a head shrinks Q/K/V, the attention products, the softmax and the output projection; removing an
FFN unit shrinks both FFN matrices and the activation between them. So the dense int8 graph, whose linears
are only about half its time, is shrunk almost everywhere (``bench/results/frontier.md``: the SST-2 models
of ``bench.compress --runs gen3-units`` against dense int8, same run), where column-segment pruning of the
linears alone is bounded near 1.75x.

The cut only ranks and refits the two matrices that read a unit's output, whose input columns are the units:
the attention output projection (``attn_out``, column groups of one head each) and the FFN output
(``ffn_out``, single columns). Everything else follows exactly: a head whose output columns are all pruned
contributes nothing, whatever its Q/K/V rows hold, so those rows are pruned too; an FFN unit whose output
column is pruned likewise frees its ``ffn_in`` row. :func:`partner_masks` derives those masks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .blocks import Tiling

CUT_ROLES = ("attn_out", "ffn_out")  # ranked, cut and refitted
PARTNERS = {"attn_out": ("q", "k", "v"), "ffn_out": ("ffn_in",)}  # rows follow the cut matrix's columns


@dataclass(frozen=True)
class UnitLayout:
    """Which matrix each pruned matrix follows: name -> the cut matrix whose kept columns are its kept rows."""

    follows: dict[str, str]
    cut: tuple[str, ...]  # the matrices the cut ranks, in the order given

    def size_factor(self, shapes: dict[str, tuple[int, int]]) -> dict[str, float]:
        """Weights removed per weight of each cut matrix (itself and its partners): the allocation's price."""
        out = {}
        for c in self.cut:
            own = shapes[c][0] * shapes[c][1]
            out[c] = (own + sum(shapes[p][0] * shapes[p][1] for p, s in self.follows.items() if s == c)) / own
        return out


def layout(roles: dict[str, str | None], layers: dict[str, int | None]) -> UnitLayout:
    """The unit layout of a model's prunable matrices (names -> role, names -> encoder layer)."""
    by = {(layers[n], r): n for n, r in roles.items() if r is not None}
    follows, cut = {}, []
    for n, r in roles.items():
        if r in CUT_ROLES:
            cut.append(n)
            for pr in PARTNERS[r]:
                p = by.get((layers[n], pr))
                if p is not None:
                    follows[p] = n
    return UnitLayout(follows, tuple(cut))


def unit_tiling(role: str, shape: tuple[int, int], head_dim: int) -> Tiling:
    """The group of each matrix: ``attn_out`` one head's columns, ``ffn_out`` one column, partners one row."""
    out_f, in_f = shape
    if role == "attn_out":
        return Tiling(out_f, in_f, out_f, head_dim)
    if role == "ffn_out":
        return Tiling(out_f, in_f, out_f, 1)
    return Tiling(out_f, in_f, 1, in_f)


def partner_masks(masks: dict[str, torch.Tensor], lay: UnitLayout,
                  shapes: dict[str, tuple[int, int]]) -> dict[str, torch.Tensor]:
    """The masks of the partner matrices: row ``i`` kept iff column ``i`` of the matrix it follows is kept."""
    out = {}
    for p, c in lay.follows.items():
        if c in masks:
            cols = masks[c].bool().any(dim=0)  # [in] of the cut matrix = [out] of the partner
            out[p] = cols[:, None].expand(shapes[p]).clone()
    return out


def kept_units(mask: torch.Tensor, group: int) -> int:
    """Heads (``group`` = head size) or units (``group`` = 1) a cut matrix's column mask keeps."""
    cols = mask.bool().any(dim=0)
    return int(cols.view(-1, group).any(dim=1).sum())


def exact_keep(keep: dict[str, float], heads: dict[str, int], size: dict[str, float], budget: float,
               cap: dict[str, float]) -> dict[str, float]:
    """Kept fractions that hit ``budget`` exactly although heads come whole.

    Each head-granular matrix (``heads``: name -> head count) keeps the nearest whole number of heads to its
    fraction (at least one, at most its cap); the fine-grained ones (FFN units) then share what is left of the
    budget by one common scale, each clipped to its cap. ``size``: the weights each matrix's fraction stands for
    (partners included), ``budget``: kept weights wanted in all.
    """
    from edgeprune.calibrate import fill_budget

    out = {}
    for n, h in heads.items():
        top = max(1, int(round(cap.get(n, 1.0) * h + 1e-9)))
        out[n] = min(top, max(1, int(round(keep[n] * h)))) / h
    fine = {n: keep[n] for n in keep if n not in heads}
    left = budget - sum(out[n] * size[n] for n in heads)
    if fine:
        out.update(fill_budget(fine, {n: cap.get(n, 1.0) for n in fine}, {n: size[n] for n in fine},
                               max(left, 0.0)))
    return out
