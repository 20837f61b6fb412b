"""Pack block-pruned linear weights into dense blocks of surviving values plus compact indices.

Pure NumPy, no I/O. The structure is derived from the mask itself (no block hint needed):

* output rows whose mask is all zero are dropped (``row_map`` sends them to a zero row);
* the remaining rows are grouped into runs of consecutive rows with *identical* mask rows
  (a run is a "block row": its rows read the same input columns);
* runs are cut / padded to a common height ``R`` and each block keeps ``k`` input columns
  (padded with unused columns whose values are zero when block rows keep unequal counts).

The packed layer computes ``Y[..., row] = X[..., col_idx[b]] @ values[b, r, :] + bias[row]`` for the
computed row ``b * R + r = row_map[row]`` (and ``bias[row]`` alone where ``row_map[row] == nb * R``).
Whole-input-column pruning is ``nb == 1``; whole-output-row pruning is a ``row_map``; ``128x1``
column segments are ``R == 128`` with the balanced ``k``; square ``16x16`` blocks give ``R == 16``.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

INDEX_DTYPES = (np.uint8, np.uint16, np.int32)


def index_dtype(max_value: int) -> np.dtype:
    """Smallest unsigned/signed integer type that holds ``max_value`` (what the file stores)."""
    for dt in INDEX_DTYPES:
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"index {max_value} does not fit int32")


@dataclass(frozen=True)
class MaskStructure:
    """What a ``[out, in]`` mask looks like, summarised for choosing a formulation."""

    shape: tuple[int, int]
    kept: int  # number of kept elements
    zero_rows: int  # output rows pruned whole
    zero_cols: int  # input columns pruned whole
    runs: tuple[int, ...]  # lengths of the runs of identical (non-zero) mask rows, in order
    kept_per_run: tuple[int, ...]  # kept input columns of each run
    balanced: bool  # every run keeps the same number of columns

    @property
    def density(self) -> float:
        return self.kept / float(self.shape[0] * self.shape[1])

    @property
    def is_full(self) -> bool:
        return self.kept == self.shape[0] * self.shape[1]

    @property
    def is_empty(self) -> bool:
        return self.kept == 0

    def kind(self) -> str:
        """A human name: full, empty, rows (whole output rows), cols (whole input columns), blockrows, irregular."""
        if self.is_full:
            return "full"
        if self.is_empty:
            return "empty"
        if all(k == self.shape[1] for k in self.kept_per_run):
            return "rows"
        if len(set(self.kept_per_run)) == 1 and len(self.runs) == 1:
            return "cols"
        if min(self.runs) >= 32:
            return "blockrows"
        return "irregular"


def _row_runs(mask: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Kept output rows, reordered so rows with identical mask rows are adjacent, and the (start, stop) runs.

    Grouping by identical rows (not only adjacent ones) keeps a block row together even when some of
    its rows are pruned whole; ``row_map`` puts every row back in place.
    """
    kept = np.flatnonzero(mask.any(axis=1))
    groups: dict[bytes, list[int]] = {}
    for r in kept:
        groups.setdefault(np.packbits(mask[r]).tobytes(), []).append(int(r))
    rows = np.array([r for g in groups.values() for r in g], dtype=np.int64)
    runs, start = [], 0
    for g in groups.values():
        runs.append((start, start + len(g)))
        start += len(g)
    return rows, runs


def analyze_mask(mask: np.ndarray) -> MaskStructure:
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D [out, in], got shape {m.shape}")
    rows, runs = _row_runs(m)
    kept_per_run = tuple(int(m[rows[a]].sum()) for a, _ in runs)
    return MaskStructure(
        shape=(int(m.shape[0]), int(m.shape[1])),
        kept=int(m.sum()),
        zero_rows=int(m.shape[0] - len(rows)),
        zero_cols=int((~m.any(axis=0)).sum()),
        runs=tuple(b - a for a, b in runs),
        kept_per_run=kept_per_run,
        balanced=len(set(kept_per_run)) <= 1,
    )


@dataclass(frozen=True)
class PackedLinear:
    """A packed ``[out, in]`` weight (PyTorch layout) with its bias.

    values:  [nb, R, k] float, surviving values of each block row (padding is zero)
    col_idx: [nb, k] smallest int type, input columns read by each block row (sorted, distinct)
    row_map: [out] smallest int type, output row -> computed row (``nb * R`` = the zero row), or None
             when output row i is computed row i for every i (``nb * R == out``)
    """

    values: np.ndarray
    col_idx: np.ndarray
    row_map: np.ndarray | None
    bias: np.ndarray | None
    shape: tuple[int, int]
    kept: int  # kept elements of the original mask (without padding)
    ideal_index_count: int  # col indices without padding + row_map entries when present

    @property
    def nb(self) -> int:
        return int(self.values.shape[0])

    @property
    def block_rows(self) -> int:
        return int(self.values.shape[1])

    @property
    def k(self) -> int:
        return int(self.values.shape[2])

    @property
    def flops_per_row(self) -> int:
        """Multiply-adds per activation row that the packed formulation executes (padding included)."""
        return int(self.values.size)

    def stored_bytes(self, value_bytes: int | None = None) -> int:
        vb = self.values.dtype.itemsize if value_bytes is None else value_bytes
        n = self.values.size * vb + self.col_idx.nbytes
        return n + (self.row_map.nbytes if self.row_map is not None else 0)

    def ideal_bytes(self, value_bytes: int | None = None) -> int:
        """Surviving values + the indices a perfect packing needs (no padding)."""
        vb = self.values.dtype.itemsize if value_bytes is None else value_bytes
        n = self.kept * vb + (self.ideal_index_count - (len(self.row_map) if self.row_map is not None else 0)) \
            * self.col_idx.dtype.itemsize
        return n + (self.row_map.nbytes if self.row_map is not None else 0)


def _choose_height(runs: list[int], kept: list[int], block_overhead: float) -> int:
    """Common block height R minimising padded work plus a per-block overhead (in multiply-adds)."""
    kmax = max(kept)
    cands = {max(runs), gcd(*runs), *(h for h in (256, 128, 64, 32, 16) if h <= max(runs))}
    best, best_cost = max(runs), float("inf")
    for h in sorted(cands, reverse=True):
        nb = sum(-(-r // h) for r in runs)
        cost = nb * h * kmax + nb * block_overhead
        if cost < best_cost:
            best, best_cost = h, cost
    return best


def pack_linear(weight: np.ndarray, mask: np.ndarray, bias: np.ndarray | None = None,
                block_overhead: float = 2048.0) -> PackedLinear:
    """Pack ``weight * mask`` (``[out, in]``). Works for any mask; block-structured masks pack tightly."""
    w = np.asarray(weight)
    m = np.asarray(mask).astype(bool)
    if w.shape != m.shape or w.ndim != 2:
        raise ValueError(f"weight {w.shape} and mask {m.shape} must be the same 2-D shape")
    out, inp = m.shape
    rows, runs = _row_runs(m)
    if not runs:  # empty layer: one zero block keeps shapes valid
        values = np.zeros((1, 1, 1), w.dtype)
        col_idx = np.zeros((1, 1), index_dtype(max(inp - 1, 0)))
        row_map = np.full(out, 1, index_dtype(1))
        return PackedLinear(values, col_idx, row_map, bias, (out, inp), 0, out)
    lengths = [b - a for a, b in runs]
    kept = [int(m[rows[a]].sum()) for a, _ in runs]
    h = _choose_height(lengths, kept, block_overhead)
    k = max(kept)
    blocks: list[tuple[np.ndarray, np.ndarray]] = []  # (row indices, cols)
    for (a, b), _kc in zip(runs, kept):
        cols = np.flatnonzero(m[rows[a]])
        for s in range(a, b, h):
            blocks.append((rows[s:min(s + h, b)], cols))
    nb = len(blocks)
    values = np.zeros((nb, h, k), dtype=w.dtype)
    col_idx = np.zeros((nb, k), dtype=np.int64)
    computed_of_row = np.full(out, nb * h, dtype=np.int64)
    for bi, (brows, cols) in enumerate(blocks):
        pad = np.setdiff1d(np.arange(inp), cols, assume_unique=True)[: k - len(cols)]
        full_cols = np.sort(np.concatenate([cols, pad]))
        col_idx[bi] = full_cols
        sub = w[np.ix_(brows, full_cols)] * m[np.ix_(brows, full_cols)]
        values[bi, : len(brows)] = sub
        computed_of_row[brows] = bi * h + np.arange(len(brows))
    identity = nb * h == out and np.array_equal(computed_of_row, np.arange(out))
    row_map = None if identity else computed_of_row.astype(index_dtype(nb * h))
    ideal_idx = sum(kept[i] * -(-lengths[i] // h) for i in range(len(runs))) + (0 if identity else out)
    return PackedLinear(values, col_idx.astype(index_dtype(max(inp - 1, 0))), row_map,
                        None if bias is None else np.asarray(bias), (out, inp), int(m.sum()), int(ideal_idx))


def unpack_linear(p: PackedLinear) -> tuple[np.ndarray, np.ndarray]:
    """Dense ``[out, in]`` weight and the mask of stored (non-padding) positions, from a packed layer."""
    out, inp = p.shape
    nb, h, k = p.values.shape
    comp_w = np.zeros((nb * h + 1, inp), dtype=p.values.dtype)
    comp_m = np.zeros((nb * h + 1, inp), dtype=bool)
    for b in range(nb):
        cols = p.col_idx[b].astype(np.int64)
        comp_w[b * h:(b + 1) * h, cols] = p.values[b]
        comp_m[b * h:(b + 1) * h, cols] = True
    rmap = np.arange(out) if p.row_map is None else p.row_map.astype(np.int64)
    return comp_w[rmap], comp_m[rmap]


def packed_matmul(x: np.ndarray, p: PackedLinear) -> np.ndarray:
    """NumPy semantics of the packed layer: ``x [..., in] -> [..., out]`` (the op's reference)."""
    return packed_matmul_arrays(x, p.values, p.col_idx, p.bias, p.row_map)


def packed_matmul_arrays(x: np.ndarray, values: np.ndarray, col_idx: np.ndarray, bias: np.ndarray | None,
                         row_map: np.ndarray | None) -> np.ndarray:
    nb, h, k = values.shape
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    g = x2[:, col_idx.astype(np.int64)]  # [N, nb, k]
    y = np.einsum("nbk,brk->nbr", g, values).reshape(x2.shape[0], nb * h)
    if row_map is not None:
        y = np.concatenate([y, np.zeros((y.shape[0], 1), y.dtype)], axis=1)[:, row_map.astype(np.int64)]
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, y.shape[-1]).astype(x.dtype, copy=False)
