"""Which number in a profile.json gates a latency budget (a pure function of the report's results).

Rules, in order:
  1. results for the budget's target; a budget named ``<target>-gpu`` (e.g. ``phone-gpu``) reads the
     target's GPU-delegate results (``unit: "gpu"``, predicted ``gpu_latency_ms``), any other name
     the CPU ones;
  2. ``measured`` beats ``predicted`` (``emulated`` results carry instruction counts, not latency);
  3. the configured statistic (``p50`` by default); a result without it (predictions: ``mean`` only)
     uses ``mean`` and says so;
  4. TFLite profiled with and without XNNPACK: the XNNPACK runs gate (LiteRT's default); among the
     remaining configurations (threads, runners) the slowest gates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

GPU_SUFFIX = "-gpu"


@dataclass(frozen=True)
class LatencyPick:
    seconds: float
    kind: str  # measured | predicted
    statistic: str
    detail: str


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def select_latency(results: Sequence[Any], target: str, statistic: str = "p50") -> LatencyPick | None:
    rows = [r for r in results if isinstance(r, dict)]
    name, unit = target, "cpu"
    if not any(r.get("target") == target for r in rows) and target.endswith(GPU_SUFFIX):
        name, unit = target[: -len(GPU_SUFFIX)], "gpu"
    rows = [r for r in rows if r.get("target") == name]
    for kind in ("measured", "predicted"):
        picks = []
        for r in rows:
            if r.get("kind") != kind:
                continue
            if kind == "predicted" and unit == "gpu":
                lat = r.get("gpu_latency_ms")
            elif r.get("unit", "cpu") == unit:
                lat = r.get("latency_ms")
            else:
                continue
            if not isinstance(lat, dict):
                continue
            stat = statistic if _number(lat.get(statistic)) else "mean"
            if _number(lat.get(stat)):
                picks.append((float(lat[stat]) / 1e3, stat, r))
        if not picks:
            continue
        if any(p[2].get("xnnpack") is not False for p in picks):
            picks = [p for p in picks if p[2].get("xnnpack") is not False]
        seconds, stat, r = max(picks, key=lambda p: p[0])
        cfg = [f"{k}={r[k]}" for k in ("threads", "batch", "seq_len") if r.get(k) is not None]
        if r.get("xnnpack") is not None:
            cfg.append(f"xnnpack={'on' if r['xnnpack'] else 'off'}")
        if r.get("runner"):
            cfg.append(f"runner={r['runner']}")
        detail = f"{kind} {stat}" + (f" ({statistic} not reported)" if stat != statistic else "")
        detail += (f", {', '.join(cfg)}" if cfg else "") + (f"; {unit.upper()}" if unit == "gpu" else "")
        if len(picks) > 1:
            detail += f"; slowest of {len(picks)} configurations"
        return LatencyPick(seconds, kind, stat, detail)
    return None


def targets_in(results: Sequence[Any]) -> list[str]:
    return sorted({str(r.get("target")) for r in results if isinstance(r, dict)})
