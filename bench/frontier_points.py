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
def issue14_targets(points: list[dict[str, Any]], within: float = 0.01, speedup: float = 1.3,
                    speedup_5x: float = 2.0) -> list[dict[str, Any]]:
    """The issue-14 targets, checked on one run's points, per (runtime, threads) panel.

    Only artifacts that passed verification (the 0.5-point rule) count, on both sides.
    Baseline = the fastest dense int8 artifact (dynamic or static) of the panel, what a user would ship
    instead. ``near``: the fastest pruned int8 artifact within ``within`` (absolute metric) of dense fp32, its
    speedup over the baseline and whether it is also smaller; ``at_5x``: the fastest pruned int8 artifact at
    5x and its speedup. A panel without the needed points reports None for them.
    """
    out = []
    panels = sorted({(p["runtime"], p["threads"]) for p in points})
    for rt, t in panels:
        ps = [p for p in points if p["runtime"] == rt and p["threads"] == t and p.get("verified", True)]
        fp32 = [p for p in ps if p["mode"] == "dense" and p["dtype"] == "fp32"]
        base = min((p for p in ps if p["mode"] == "dense" and p["dtype"].startswith("int8")),
                   key=lambda p: p["latency_ms"], default=None)
        pruned = [p for p in ps if p["mode"] != "dense" and p["dtype"].startswith("int8")]
        row: dict[str, Any] = {"runtime": rt, "threads": t, "dense_fp32_metric": fp32[0]["metric"] if fp32 else None,
                               "dense_int8": base and {k: base[k] for k in ("dtype", "latency_ms", "file_bytes")}}
        near = [p for p in pruned if fp32 and p["metric"] >= fp32[0]["metric"] - within]
        best = min(near, key=lambda p: p["latency_ms"], default=None)
        five = min((p for p in pruned if abs(p["compression"] - 5.0) < 0.1), key=lambda p: p["latency_ms"],
                   default=None)
        for name, p, need in (("near", best, speedup), ("at_5x", five, speedup_5x)):
            if p is None or base is None:
                row[name] = None
                continue
            x = base["latency_ms"] / p["latency_ms"]
            row[name] = {"artifact": p.get("artifact"), "metric": p["metric"], "latency_ms": p["latency_ms"],
                         "speedup": x, "holds": x >= need}
        if row["near"] is not None:  # the within-1-point artifact must also be smaller than dense int8
            row["near"]["smaller"] = best["file_bytes"] < base["file_bytes"]
            row["near"]["holds"] = row["near"]["holds"] and row["near"]["smaller"]
        out.append(row)
    return out


__all__ = ["Artifact", "POINT_KEYS", "RUNTIMES", "artifact_key", "check_point", "dominates", "issue14_targets",
           "mark_fronts",
           "pareto_front", "summarize_latency"]
