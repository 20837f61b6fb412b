"""Pure functions of bench/frontier.py: the frontier's points, their latency summary and the Pareto front.

No I/O, no timing: everything here is tested by hand-computed examples (tests/test_frontier.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Any, Iterable

POINT_KEYS = ("runtime", "threads", "compression", "dtype", "mode", "metric", "latency_ms", "file_bytes",
              "peak_rss_bytes")
RUNTIMES = ("onnxruntime", "litert")


@dataclass(frozen=True)
class Artifact:
    """One shippable file: which model, how it was exported, for which runtime."""

    key: str  # unique, filesystem-safe
    source: str  # run dir (compress run or dense finetune run)
    runtime: str  # onnxruntime / litert
    mode: str  # dense / structured / packed
    dtype: str  # fp32 / fp16 / int8-dynamic / int8
    compression: float  # dense params / kept params of the prunable linears (1.0 for dense)

    @property
    def format(self) -> str:
        return "onnx" if self.runtime == "onnxruntime" else "tflite"


def artifact_key(runtime: str, compression: float, mode: str, dtype: str, tag: str = "") -> str:
    return f"{runtime}_{compression:.2f}x_{mode}_{dtype}{('_' + tag) if tag else ''}"


def summarize_latency(round_medians: Iterable[float]) -> dict[str, float]:
    """Median over the interleaved rounds of each round's median, and the spread (min, max) of those."""
    xs = sorted(float(x) for x in round_medians)
    if not xs:
        raise ValueError("no timings")
    return {"latency_ms": median(xs), "latency_min_ms": xs[0], "latency_max_ms": xs[-1], "rounds": len(xs)}


def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """``a`` is at least as fast and as accurate as ``b`` and strictly better in one of the two."""
    return (a["latency_ms"] <= b["latency_ms"] and a["metric"] >= b["metric"]
            and (a["latency_ms"] < b["latency_ms"] or a["metric"] > b["metric"]))


def pareto_front(points: list[dict[str, Any]]) -> list[int]:
    """Indices of the points no other point dominates (low latency, high metric), ordered by latency."""
    front = [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]
    return sorted(front, key=lambda i: (points[i]["latency_ms"], -points[i]["metric"]))


def mark_fronts(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``points`` with ``pareto`` set per (runtime, threads) panel (what one chart compares)."""
    out = [dict(p, pareto=False) for p in points]
    panels: dict[tuple, list[int]] = {}
    for i, p in enumerate(out):
        panels.setdefault((p["runtime"], p["threads"]), []).append(i)
    for idx in panels.values():
        for j in pareto_front([out[i] for i in idx]):
            out[idx[j]]["pareto"] = True
    return out


def check_point(p: dict[str, Any]) -> None:
    """Raise ValueError when a point lacks a schema key or has the wrong kind of value."""
    missing = [k for k in POINT_KEYS if k not in p]
    if missing:
        raise ValueError(f"point lacks {missing}")
    if p["runtime"] not in RUNTIMES:
        raise ValueError(f"unknown runtime {p['runtime']!r}")
    if not (isinstance(p["threads"], int) and p["threads"] >= 1):
        raise ValueError(f"threads must be a positive int, got {p['threads']!r}")
    for k in ("compression", "metric", "latency_ms"):
        if not isinstance(p[k], (int, float)):
            raise ValueError(f"{k} must be a number, got {p[k]!r}")
    for k in ("file_bytes", "peak_rss_bytes"):
        if not (isinstance(p[k], int) and p[k] > 0):
            raise ValueError(f"{k} must be a positive int, got {p[k]!r}")


__all__ = ["Artifact", "POINT_KEYS", "RUNTIMES", "artifact_key", "check_point", "dominates", "mark_fronts",
           "pareto_front", "summarize_latency"]
