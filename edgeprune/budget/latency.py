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

A measured row counts only when its recorded device is the budget's target (:func:`device_problem`): a
``host`` budget needs a run on this machine; any other target a run over ``--ssh`` (on a machine of the
target's architecture) or ``--adb``. A GPU row counts only when benchmark_model delegated the whole graph.
Rows that fail these rules are never a latency; :func:`rejected` says why, for the failure line.
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


def _norm_arch(machine: Any) -> str:
    m = str(machine or "").lower()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(m, m)


def device_problem(r: dict[str, Any], target: str) -> str | None:
    """Why measured row ``r`` is not evidence for ``target`` (None when it is)."""
    runner = r.get("runner")
    dev = r.get("device") if isinstance(r.get("device"), dict) else {}
    machine = dev.get("machine") or r.get("machine")
    if target == "host":
        if runner not in (None, "host"):
            return f"a {runner} run recorded as host"
        return None
    if runner in (None, "host"):
        where = ", ".join(str(x) for x in (machine, dev.get("cpu") or r.get("cpu")) if x) or "unknown CPU"
        return f"it ran on this machine ({where}), not on a {target}"
    if runner == "ssh":
        arch = r.get("target_arch")
        if not machine:
            return "the ssh run records no device architecture"
        if arch and _norm_arch(machine) != arch:
            return f"the ssh device is {machine}, not {arch}"
    if r.get("unit", "cpu") == "gpu":
        status = (r.get("delegation") or {}).get("status")
        if status != "full":
            return f"GPU delegation {status or 'not recorded'}: not a GPU latency"
    return None


def split_target(results: Sequence[Any], target: str) -> tuple[str, str]:
    """(target name, unit): ``phone-gpu`` is the phone's GPU unless a target is literally named so."""
    rows = [r for r in results if isinstance(r, dict)]
    if not any(r.get("target") == target for r in rows) and target.endswith(GPU_SUFFIX):
        return target[: -len(GPU_SUFFIX)], "gpu"
    return target, "cpu"


def rejected(results: Sequence[Any], target: str) -> list[str]:
    """Why each measured row for ``target`` does not count (one phrase per row)."""
    name, unit = split_target(results, target)
    out = []
    for r in results:
        if isinstance(r, dict) and r.get("target") == name and r.get("kind") == "measured" \
                and r.get("unit", "cpu") == unit:
            why = device_problem(r, name)
            if why:
                out.append(why)
    return out


def select_latency(results: Sequence[Any], target: str, statistic: str = "p50") -> LatencyPick | None:
    rows = [r for r in results if isinstance(r, dict)]
    name, unit = split_target(rows, target)
    rows = [r for r in rows if r.get("target") == name
            and not (r.get("kind") == "measured" and device_problem(r, name))]
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
