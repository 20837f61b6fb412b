"""One pruned linear layer ``y = x @ W.T + b`` in several formulations that lower to TFLite builtins.

Each formulation is a small PyTorch module (:meth:`Formulation.module`) of index_select, (batch) matmul,
transpose and reshape; litert-torch lowers them to GATHER_ND, FULLY_CONNECTED / BATCH_MATMUL,
TRANSPOSE and RESHAPE (docs/litert-torch.md).

The block structure becomes speed only through the graph's shape (TFLite's native sparse encoding
is never faster; docs/speed-notes.md, "TFLite sparse encoding / XNNPACK"), so each formulation is
plain dense kernels on less data:

* ``dense``      FULLY_CONNECTED on the whole (zero-masked) weight.
* ``cols``       GATHER of the kept input columns, then a smaller FULLY_CONNECTED.
* ``rows_cols``  ``cols`` restricted to the kept output rows, scattered back with one GATHER
                 (pruned rows output their bias).
* ``segments``   output rows in groups of ``R``; each group keeps its own ``k`` input columns
                 (balanced by padding with zero weights): GATHER [T,G,k] -> TRANSPOSE ->
                 BATCH_MATMUL [G,k,R] -> TRANSPOSE -> RESHAPE.
* ``segments_t`` the same in the transposed activation layout: TRANSPOSE x once, GATHER rows
                 (contiguous copies) -> BATCH_MATMUL [G,R,k] x [G,k,T] -> RESHAPE -> TRANSPOSE.

:func:`candidates` lists the formulations a weight's mask allows; the exporter times them on the
runtime (see ``tflite.LinearTimer``) and keeps the fastest per layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("dense", "cols", "rows_cols", "segments", "segments_t")
# only formulations that save at least this fraction of the dense MACs are worth timing
MIN_SAVING = 0.15


@dataclass
class Formulation:
    """A concrete formulation: its kind, the constant arrays it needs and its shape facts."""

    kind: str
    n_out: int
    n_in: int
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def macs_per_token(self) -> int:
        m = self.meta
        if self.kind == "dense":
            return self.n_in * self.n_out
        if self.kind == "cols":
            return m["k"] * self.n_out
        if self.kind == "rows_cols":
            return m["k"] * m["rows"]
        return m["groups"] * m["k"] * m["R"]  # segments*

    @property
    def param_count(self) -> int:
        return int(sum(a.size for k, a in self.arrays.items() if k in ("w", "b")))

    def shape_key(self, tokens: int) -> tuple:
        """What its latency depends on (not the index values)."""
        return (self.kind, tokens, self.n_in, self.n_out, tuple(sorted(self.meta.items())))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "in": self.n_in, "out": self.n_out, **self.meta,
                "macs_per_token": self.macs_per_token}

    def module(self):
        """A ``torch.nn.Module`` computing this formulation on ``x`` [T, n_in] -> [T, n_out]."""
        return _packed_linear(self)


def _packed_linear(f: Formulation):
    import torch

    class PackedLinear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kind, self.meta = f.kind, dict(f.meta)
            for name, a in f.arrays.items():
                t = torch.from_numpy(np.ascontiguousarray(a.astype(np.float32) if a.dtype.kind == "f"
                                                          else a.astype(np.int64)))
                self.register_buffer(name, t)

        def forward(self, x):
            if self.kind == "dense":
                return x @ self.w + self.b
            if self.kind == "cols":
                return torch.index_select(x, 1, self.idx) @ self.w + self.b
            if self.kind == "rows_cols":
                y = torch.index_select(x, 1, self.idx) @ self.w
                y = torch.nn.functional.pad(y, (0, 1))  # the extra zero column serves the pruned rows
                return torch.index_select(y, 1, self.rows_map) + self.b
            g, r, k = self.meta["groups"], self.meta["R"], self.meta["k"]
            if self.kind == "segments":
                xg = torch.index_select(x, 1, self.idx.reshape(-1)).reshape(x.shape[0], g, k).permute(1, 0, 2)
                y = torch.matmul(xg, self.w).permute(1, 0, 2)  # [G, T, R] -> [T, G, R]
                return y.reshape(x.shape[0], g * r) + self.b
            if self.kind == "segments_t":
                xg = torch.index_select(x.t(), 0, self.idx.reshape(-1)).reshape(g, k, x.shape[0])  # [G, k, T]
                return torch.matmul(self.w, xg).reshape(g * r, x.shape[0]).t() + self.b  # [G, R, T] -> [T, N]
            raise ValueError(f"unknown formulation {self.kind!r}")

    return PackedLinear().eval()


def dense(w: np.ndarray, b: np.ndarray) -> Formulation:
    """``w`` in PyTorch layout [out, in]."""
    return Formulation("dense", w.shape[0], w.shape[1], {"w": np.ascontiguousarray(w.T, np.float32),
                                                        "b": b.astype(np.float32)})


def cols(w: np.ndarray, b: np.ndarray, keep_cols: np.ndarray) -> Formulation:
    idx = np.flatnonzero(keep_cols).astype(np.int32)
    if idx.size == 0:
        idx = np.zeros(1, np.int32)
    return Formulation("cols", w.shape[0], w.shape[1],
                       {"w": np.ascontiguousarray(w[:, idx].T, np.float32), "b": b.astype(np.float32), "idx": idx},
                       {"k": int(idx.size)})


def rows_cols(w: np.ndarray, b: np.ndarray, keep_rows: np.ndarray, keep_cols: np.ndarray) -> Formulation:
    rows = np.flatnonzero(keep_rows).astype(np.int32)
    if rows.size == 0:
        rows = np.zeros(1, np.int32)
    idx = np.flatnonzero(keep_cols).astype(np.int32)
    if idx.size == 0:
        idx = np.zeros(1, np.int32)
    rows_map = np.full(w.shape[0], rows.size, np.int32)
    rows_map[rows] = np.arange(rows.size, dtype=np.int32)
    wk = w[rows][:, idx]
    return Formulation("rows_cols", w.shape[0], w.shape[1],
                       {"w": np.ascontiguousarray(wk.T, np.float32), "b": b.astype(np.float32), "idx": idx,
                        "rows_map": rows_map}, {"k": int(idx.size), "rows": int(rows.size)})


def segment_columns(mask: np.ndarray, r: int) -> tuple[np.ndarray, int]:
    """Per group of ``r`` consecutive output rows, the union of its kept input columns.

    Returns (groups x K bool, k = the largest group's column count).
    """
    n, k_in = mask.shape
    groups = mask.reshape(n // r, r, k_in).any(axis=1)
    return groups, int(groups.sum(axis=1).max()) if groups.size else 0


def segments(w: np.ndarray, b: np.ndarray, mask: np.ndarray, r: int, transposed: bool) -> Formulation:
    """Balanced column-segment block rows: each group of ``r`` rows gathers the same number of columns."""
    n, k_in = w.shape
    groups, k = segment_columns(mask, r)
    k = max(k, 1)
    g = n // r
    idx = np.zeros((g, k), np.int32)
    wg = np.zeros((g, k, r), np.float32)
    for gi in range(g):
        cols_g = np.flatnonzero(groups[gi])
        pad = np.setdiff1d(np.arange(k_in), cols_g)[: k - cols_g.size]  # zero-weight padding columns
        sel = np.concatenate([cols_g, pad]).astype(np.int32)
        idx[gi] = sel
        wg[gi] = (w[gi * r:(gi + 1) * r][:, sel] * (mask[gi * r:(gi + 1) * r][:, sel] > 0)).T
    if transposed:
        return Formulation("segments_t", n, k_in, {"w": np.ascontiguousarray(wg.transpose(0, 2, 1)),
                                                   "b": b.astype(np.float32), "idx": idx},
                           {"groups": g, "k": k, "R": r})
    return Formulation("segments", n, k_in, {"w": wg, "b": b.astype(np.float32), "idx": idx},
                       {"groups": g, "k": k, "R": r})


def segment_sizes(n: int) -> list[int]:
    """Group heights worth trying: large ones (few, tall groups batch well), dividing ``n``."""
    cands = {n // 2, n // 3, n // 4, 512, 256, 128, 64, 32, 16}
    return sorted((r for r in cands if 0 < r < n and n % r == 0), reverse=True)


def candidates(w: np.ndarray, b: np.ndarray, mask: np.ndarray | None, *, allow_rows: bool,
               allow_segments: bool, max_segments: int = 2, layouts: tuple[bool, ...] = (True,)) -> list[Formulation]:
    """The formulations worth considering for this weight, dense first.

    ``mask`` is [out, in] (nonzero = kept); None means a dense layer. Only formulations that save at
    least ``MIN_SAVING`` of the dense MACs are listed besides dense. ``layouts`` lists which segment
    layouts to try (True = transposed); the transposed one won every shape we timed (bench/results/
    export_tflite.md), so it is the only default.
    """
    if mask is None:
        return [dense(w, b)]
    m = mask > 0
    w = w * m
    out = [dense(w, b)]
    budget = (1.0 - MIN_SAVING) * w.size
    keep_cols, keep_rows = m.any(axis=0), m.any(axis=1)
    if keep_cols.sum() * w.shape[0] <= budget:
        out.append(cols(w, b, keep_cols))
    if allow_rows and keep_cols.sum() * keep_rows.sum() <= budget and not keep_rows.all():
        out.append(rows_cols(w, b, keep_rows, keep_cols))
    if allow_segments:
        segs = []
        for r in segment_sizes(w.shape[0]):
            _, k = segment_columns(m, r)
            if k * w.shape[0] <= budget and k < keep_cols.sum():
                segs.append((k * w.shape[0], -r, r))
        for _, _, r in sorted(segs)[:max_segments]:
            out.extend(segments(w, b, m, r, transposed=t) for t in layouts)
    return out


SEGMENT_MAC_SLACK = 0.10  # segment heights within 10% of the fewest MACs count as equally cheap
DENSE_DROP = 0.7  # dense is not timed once another candidate of its kind needs <= 70% of its MACs
COLS_KEEP = 1.5  # float dtypes: cols is timed only while it needs <= 1.5x the MACs of the cheapest segments
INT8_SEGMENT_KEEP = 0.3  # int8: float segments are timed only while they need <= 0.3x the int8 FC's MACs
SEGMENT_KINDS = ("segments", "segments_t")
FC_KINDS = ("dense", "cols", "rows_cols")  # the formulations that lower to FULLY_CONNECTED


def shortlist(cands: list[Formulation], dtype: str) -> list[Formulation]:
    """The candidates worth timing (each one costs about 0.4 s of litert-torch conversion, most of a cold export).

    Measured on a 5x 128x1 MiniLM-L6 (36 linears, XNNPACK, 1 thread), every rule below agreeing with the
    timing on all 36 linears:

    * of segment heights with (nearly) the same MACs the tallest won (fewer, larger batched matmuls; the
      tallest of two at +5% MACs was 2% faster, the shorter at +16% won): one height is timed, the cheapest,
      or the tallest within 10% of it;
    * dense never won against a candidate needing <= 70% of its MACs (float, closest: 0.70 of the MACs and
      13% faster; int8: cols at <= 0.65 of the MACs won every race against dense);
    * float: ``cols`` beat the segments 4 times, each needing at most 1.3x their MACs, and lost every time
      it needed 1.8x or more: it is timed while it needs <= 1.5x;
    * int8 (dynamic and static): the segments' batched matmuls run in float (their weights are int8 only
      in the file) and lost every race to an int8 FULLY_CONNECTED needing 1.3-2.7x their MACs: they are
      timed only while they need <= 0.3x the cheapest FULLY_CONNECTED formulation's MACs.

    Of the 106 candidate shapes fp32 keeps 38 and int8-dynamic 36 (one per linear: nothing is left to time),
    each picking what timing all of them picked, on all 36 linears.
    """
    segs = [f for f in cands if f.kind in SEGMENT_KINDS]
    keep = [f for f in cands if f.kind not in SEGMENT_KINDS]
    if segs:
        least = min(f.macs_per_token for f in segs)
        near = [f for f in segs if f.macs_per_token <= least * (1 + SEGMENT_MAC_SLACK)]
        best_r = max(f.meta["R"] for f in near)
        keep += [f for f in near if f.meta["R"] == best_r]  # both layouts if both were listed
    quantized = dtype in ("int8", "int8-dynamic")
    fc = [f for f in keep if f.kind in FC_KINDS]
    seg = [f for f in keep if f.kind in SEGMENT_KINDS]
    if quantized and seg and fc:
        fc_least = min(f.macs_per_token for f in fc)
        keep = [f for f in keep if f.kind not in SEGMENT_KINDS or f.macs_per_token <= INT8_SEGMENT_KEEP * fc_least]
    dense = [f for f in keep if f.kind == "dense"]
    rivals = [f for f in keep if f.kind != "dense" and (f.kind in FC_KINDS or not quantized)]
    if dense and rivals and min(f.macs_per_token for f in rivals) <= DENSE_DROP * dense[0].macs_per_token:
        keep = [f for f in keep if f.kind != "dense"]
    seg = [f for f in keep if f.kind in SEGMENT_KINDS]
    if seg and not quantized:  # float gathers of whole columns lose to segments needing 1/1.5 of their MACs
        least = min(f.macs_per_token for f in seg)
        keep = [f for f in keep if f.kind != "cols" or f.macs_per_token <= COLS_KEEP * least]
    return [f for f in cands if any(f is k for k in keep)]
