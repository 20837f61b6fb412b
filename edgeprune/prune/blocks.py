"""Block specs, the partition of a linear weight into groups, and group norms (pure tensor math).

Weights are in PyTorch ``[out_features, in_features]`` layout. A block spec ``RxC`` tiles a
weight into tiles of ``R`` output rows x ``C`` input columns; one tile is one group (pruned and
regularized together). Each side is an integer, ``all`` (the whole dimension) or ``all/N``
(the dimension split into ``N`` equal parts, e.g. ``all/4x1`` = column segments a quarter of
the output rows tall). ``128x1`` = column segments of 128 output rows (the paper's group),
``allx1`` = whole input columns, ``1xall`` = whole output rows, ``16x16`` = square blocks,
``1x1`` = unstructured.

Shapes that do not tile a weight are **padded**, as the authors do: the last block row / block
column is partial, its norm is computed over its real elements only (zero padding), and the
layer is recorded as ``padded`` in ``compression.json``. Nothing is ever refused for not tiling.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

_SIDE = re.compile(r"^(?:(\d+)|all(?:/(\d+))?)$")


@dataclass(frozen=True)
class Side:
    """One side of a block: ``size`` elements, or (``size`` None) the dimension split in ``parts``."""

    size: int | None
    parts: int = 1

    def resolve(self, dim: int) -> int:
        if self.size is not None:
            return min(self.size, dim)
        return math.ceil(dim / self.parts)

    def __str__(self) -> str:
        if self.size is not None:
            return str(self.size)
        return "all" if self.parts == 1 else f"all/{self.parts}"

    def to_json(self) -> int | None | str:
        if self.size is not None:
            return self.size
        return None if self.parts == 1 else str(self)


def _parse_side(text: str, what: str, spec: str) -> Side:
    m = _SIDE.match(text.strip().lower())
    if not m:
        raise ConfigError(f"bad block shape {spec!r}: {what} {text!r} must be a positive integer, 'all' or 'all/N' "
                          "(e.g. 128x1, allx1, 1xall, all/4x1, 16x16)")
    if m.group(1) is not None:
        n = int(m.group(1))
        if n < 1:
            raise ConfigError(f"bad block shape {spec!r}: {what} must be >= 1")
        return Side(n)
    parts = int(m.group(2)) if m.group(2) else 1
    if parts < 1:
        raise ConfigError(f"bad block shape {spec!r}: all/N needs N >= 1")
    return Side(None, parts)


@dataclass(frozen=True)
class BlockSpec:
    """A block shape: ``rows`` output rows x ``cols`` input columns per group."""

    rows: Side
    cols: Side

    @property
    def unstructured(self) -> bool:
        return self.rows == Side(1) and self.cols == Side(1)

    @property
    def is_column_segment(self) -> bool:
        """One input column inside a (tall) block of output rows: the paper's group."""
        return self.cols == Side(1) and self.rows != Side(1)

    @property
    def is_row_segment(self) -> bool:
        return self.rows == Side(1) and self.cols != Side(1)

    def __str__(self) -> str:
        return f"{self.rows}x{self.cols}"

    def to_json(self) -> list | None:
        """``[R, C]`` with null for ``all`` (``"all/N"`` kept as a string); null when unstructured."""
        if self.unstructured:
            return None
        return [self.rows.to_json(), self.cols.to_json()]


def parse_block(text: str) -> BlockSpec:
    """Parse ``RxC`` (see module doc); ``unstructured`` means ``1x1``."""
    s = str(text).strip().lower()
    if s in ("unstructured", "irregular"):
        return BlockSpec(Side(1), Side(1))
    parts = s.split("x")
    if len(parts) != 2:
        raise ConfigError(f"bad block shape {text!r}: write it as RxC with R output rows and C input columns, "
                          "each an integer, 'all' or 'all/N' (e.g. 128x1, allx1, 1xall, all/4x1, 16x16)")
    return BlockSpec(_parse_side(parts[0], "R", text), _parse_side(parts[1], "C", text))


@dataclass(frozen=True)
class Tiling:
    """How one ``[out, in]`` weight is cut: ``nbr x nbc`` tiles of ``R x C`` (the last ones maybe partial)."""

    out_features: int
    in_features: int
    R: int
    C: int

    @property
    def nbr(self) -> int:
        return math.ceil(self.out_features / self.R)

    @property
    def nbc(self) -> int:
        return math.ceil(self.in_features / self.C)

    @property
    def num_groups(self) -> int:
        return self.nbr * self.nbc

    @property
    def pad_rows(self) -> int:
        return self.nbr * self.R - self.out_features

    @property
    def pad_cols(self) -> int:
        return self.nbc * self.C - self.in_features

    @property
    def padded(self) -> bool:
        return bool(self.pad_rows or self.pad_cols)

    @property
    def numel(self) -> int:
        return self.out_features * self.in_features


def tiling_for(shape: tuple[int, ...] | list[int], spec: BlockSpec) -> Tiling:
    if len(shape) != 2:
        raise ConfigError(f"only 2-D weights can be block-pruned; got shape {tuple(shape)}")
    out_f, in_f = int(shape[0]), int(shape[1])
    return Tiling(out_f, in_f, spec.rows.resolve(out_f), spec.cols.resolve(in_f))


def _padded(w: torch.Tensor, t: Tiling) -> torch.Tensor:
    import torch.nn.functional as F

    if t.padded:
        return F.pad(w, (0, t.pad_cols, 0, t.pad_rows))
    return w


def group_sq_norms(w: torch.Tensor, t: Tiling) -> torch.Tensor:
    """Squared L2 norm of every group, ``[nbr, nbc]``; differentiable, one reshape, no loops."""
    x = _padded(w, t)
    return (x * x).reshape(t.nbr, t.R, t.nbc, t.C).sum(dim=(1, 3))


def group_norms(w: torch.Tensor, t: Tiling, floor: float = 1e-24) -> torch.Tensor:
    """L2 norm of every group, ``[nbr, nbc]``.

    ``floor`` keeps the gradient finite at an all-zero group (its subgradient is then 0).
    """
    return group_sq_norms(w, t).clamp_min(floor).sqrt()


def group_sizes(t: Tiling, device=None) -> torch.Tensor:
    """Number of real (unpadded) elements of every group, ``[nbr, nbc]`` (int64)."""
    import torch

    rows = torch.full((t.nbr,), t.R, dtype=torch.int64, device=device)
    cols = torch.full((t.nbc,), t.C, dtype=torch.int64, device=device)
    rows[-1] -= t.pad_rows
    cols[-1] -= t.pad_cols
    return rows[:, None] * cols[None, :]


def expand_group_mask(gmask: torch.Tensor, t: Tiling) -> torch.Tensor:
    """Group mask ``[nbr, nbc]`` -> elementwise mask ``[out, in]`` (same dtype)."""
    if tuple(gmask.shape) != (t.nbr, t.nbc):
        raise ValueError(f"group mask shape {tuple(gmask.shape)} != {(t.nbr, t.nbc)}")
    full = gmask.repeat_interleave(t.R, dim=0).repeat_interleave(t.C, dim=1)
    return full[: t.out_features, : t.in_features]


def group_mask_of(mask: torch.Tensor, t: Tiling) -> torch.Tensor:
    """Elementwise mask -> ``[nbr, nbc]`` bool: which groups have any kept element."""
    return group_sq_norms(mask.float(), t) > 0
