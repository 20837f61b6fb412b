"""Latency summaries: the same statistics for every runner (numpy's linear percentiles)."""
from __future__ import annotations

from collections.abc import Sequence


def summarize(latencies_ms: Sequence[float]) -> dict[str, float | int]:
    """mean, p10, p50, p90, p99, std (population), min, max and n of ``latencies_ms``."""
    import numpy as np

    if len(latencies_ms) == 0:
        raise ValueError("no latencies to summarize (runs=0)")
    a = np.asarray(latencies_ms, dtype=np.float64)
    p10, p50, p90, p99 = np.percentile(a, [10, 50, 90, 99])
    return {"mean": float(a.mean()), "p10": float(p10), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "std": float(a.std()), "min": float(a.min()), "max": float(a.max()), "n": int(a.size)}


def speedup(baseline_ms: float | None, ms: float | None) -> float | None:
    if not baseline_ms or not ms:
        return None
    return baseline_ms / ms
