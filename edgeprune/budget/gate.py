"""Evaluate every budget against the evidence: one typed result per budget, never an exception.

A budget whose measurement is missing (latency budget, no profile) *fails* with status
``missing`` and a reason naming the command that produces the data: a gate that passes because
nothing was measured is no gate. Bad input (unreadable files, malformed budgets) is raised
before evaluation, as a ConfigError (exit 2).

Comparisons: ``max_*`` hold when actual <= limit, ``min_*`` when actual >= limit, with a relative
tolerance of 1e-9 so that a run pruned to exactly 5x passes ``min_compression = "5x"``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from edgeprune.errors import EdgepruneError
from .config import Budgets
from .evidence import Evidence
from .latency import rejected, select_latency, targets_in
from .units import (format_count, format_fraction, format_points, format_ratio, format_size, format_time)

REL_TOL = 1e-9
PASS, FAIL, MISSING = "pass", "fail", "missing"


@dataclass(frozen=True)
class BudgetResult:
    """One budget's verdict. ``limit``/``actual`` are SI numbers (bytes, seconds, fractions, points)."""

    name: str  # "max_size", "max_latency[rpi4]", "integrity"
    status: str  # pass | fail | missing
    limit: float | None
    actual: float | None
    limit_text: str
    actual_text: str
    reason: str  # one line for people
    source: str | None = None  # the file the measurement came from
    budget_source: str | None = None  # where the budget was set: "pyproject.toml:12", "--max-size"
    detail: str = ""  # how it was measured
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _holds(actual: float, limit: float, upper: bool) -> bool:
    tol = REL_TOL * max(abs(limit), 1e-12)
    return actual <= limit + tol if upper else actual >= limit - tol


def _compare(name: str, limit: float, actual: float, upper: bool, fmt: Callable[[float], str], source: str | None,
             detail: str = "", what: str = "", exact: Callable[[float], str] | None = None) -> BudgetResult:
    """``exact`` formats the numbers in the failure reason when rounding could hide the difference."""
    ok = _holds(actual, limit, upper)
    lt, at = fmt(limit), fmt(actual)
    what = what or name
    if ok:
        reason = f"{at} {'<=' if upper else '>='} {lt}"
    else:
        rl, ra = (exact(limit), exact(actual)) if exact else (lt, at)
        if rl == ra:  # rounding hid the difference: show the raw SI numbers
            rl, ra = f"{rl} ({limit:.9g})", f"{ra} ({actual:.9g})"
        reason = f"{what} {ra} {'exceeds the budget of' if upper else 'is below the budget of'} {rl}"
    return BudgetResult(name, PASS if ok else FAIL, limit, actual, lt, at, reason, source, detail=detail)


def _missing(name: str, limit: float, fmt: Callable[[float], str], reason: str, source: str | None = None) -> BudgetResult:
    return BudgetResult(name, MISSING, limit, None, fmt(limit), "n/a", reason, source)


# ----------------------------------------------------------------------------------------------
# One function per budget kind.

def _integrity(ev: Evidence) -> BudgetResult:
    problems = ev.integrity or []
    src = ev.rel(ev.bundle_dir / "manifest.json") if ev.bundle_dir else None
    n = len((ev.manifest or {}).get("files") or {})
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return BudgetResult("integrity", FAIL, None, float(len(problems)), "sha256 match", f"{len(problems)} bad",
                            f"bundle files do not match manifest.json: {problems[0]}{more}", src,
                            detail="; ".join(problems))
    return BudgetResult("integrity", PASS, None, 0.0, "sha256 match", f"{n} files ok",
                        f"all {n} files match their sha256 in manifest.json", src)


def _size(ev: Evidence, limit: float) -> BudgetResult:
    if not ev.artifact.is_file():
        return _missing("max_size", limit, format_size, f"artifact {ev.rel(ev.artifact)} is missing")
    try:
        files = ev.files()
    except EdgepruneError as e:
        if not ev.is_bundle:
            raise  # a bare artifact that cannot be parsed is bad input (exit 2)
        # In a bundle an unreadable ONNX still has a size: the file itself (integrity says why).
        from .params import ArtifactFiles

        files = ArtifactFiles((ev.artifact,), ev.artifact.stat().st_size)
        detail = f"external data not inspected: {e}"
    else:
        detail = ""
    if files.missing:
        return _missing("max_size", limit, format_size,
                        f"external data file(s) {', '.join(files.missing)} referenced by {ev.artifact.name} are missing",
                        ev.rel(ev.artifact))
    names = ", ".join(p.name for p in files.files)
    detail = detail or (f"{files.bytes} bytes in {names}" + (f" ({format_size(files.bytes, binary=True)})"
                                                             if files.bytes >= 1024 else ""))
    return _compare("max_size", limit, float(files.bytes), True, format_size, ev.rel(ev.artifact), detail,
                    what="artifact size", exact=_exact_size)


def _exact_size(n: float) -> str:
    return format_size(n) if n < 1000 else f"{format_size(n)} ({int(n)} B)"


def _params(ev: Evidence, limit: float) -> BudgetResult:
    if not ev.artifact.is_file():
        return _missing("max_params", limit, format_count, f"artifact {ev.rel(ev.artifact)} is missing")
    try:
        pc = ev.params()
    except EdgepruneError as e:
        if not ev.is_bundle:
            raise  # a bare artifact that cannot be parsed is bad input (exit 2); in a bundle it fails the gate
        return BudgetResult("max_params", FAIL, limit, None, format_count(limit), "unreadable", str(e),
                            ev.rel(ev.artifact))
    detail = f"{pc.stored} stored values in {pc.tensors} constant tensors"
    if pc.dense_equivalent != pc.stored:
        detail += f"; {pc.dense_equivalent} dense-equivalent"
    whole = ev.compression().get("whole_model")
    if isinstance(whole, dict) and isinstance(whole.get("dense"), int):
        detail += f"; dense model: {whole['dense']} (manifest compression.whole_model.dense)"
    return _compare("max_params", limit, float(pc.stored), True, format_count, ev.rel(ev.artifact), detail,
                    what="stored parameters", exact=lambda n: format_count(n) if n < 10_000 else f"{format_count(n)} ({int(n)})")


def _ratio_of(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("ratio", value.get("compression"))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def _no_compression_reason(ev: Evidence, definition: str) -> str:
    if not ev.is_bundle:
        return ("no measurement: a bare artifact carries no compression record; check the bundle folder that "
                "`edgeprune export` wrote")
    comp = ev.compression()
    if not comp:
        return ("no measurement: the bundle's manifest.json has no compression record (exported from a dense "
                "checkpoint?); run `edgeprune compress` and export its run directory")
    have = ", ".join(k for k in comp if _ratio_of(comp[k]) is not None) or "none"
    return f"no measurement: manifest.json compression has no {definition!r} definition (has: {have})"


def _compression(ev: Evidence, definition: str, limit: float) -> BudgetResult:
    name = f"min_compression[{definition}]"
    ratio = _ratio_of(ev.compression().get(definition)) if ev.is_bundle else None
    if ratio is None:
        return _missing(name, limit, format_ratio, _no_compression_reason(ev, definition))
    entry = ev.compression().get(definition)
    counts = f": {entry['dense']} / {entry['kept']} weights" if isinstance(entry, dict) and \
        isinstance(entry.get("dense"), int) and isinstance(entry.get("kept"), int) else ""
    return _compare(name, limit, ratio, False, format_ratio, ev.rel(ev.bundle_dir / "manifest.json"),
                    f"dense / kept, manifest compression.{definition}{counts}", what=f"{definition} compression")


def _sparsity(ev: Evidence, definition: str, limit: float) -> BudgetResult:
    name = f"min_sparsity[{definition}]"
    comp = ev.compression() if ev.is_bundle else {}
    entry = comp.get(definition)
    explicit = entry.get("sparsity") if isinstance(entry, dict) else None  # compress: {dense, kept, compression, sparsity}
    if isinstance(explicit, (int, float)) and not isinstance(explicit, bool) and 0 <= explicit <= 1:
        actual = float(explicit)
        counts = f", {entry['dense'] - entry['kept']} of {entry['dense']} weights removed" \
            if isinstance(entry.get("dense"), int) and isinstance(entry.get("kept"), int) else ""
        detail = f"manifest compression.{definition}.sparsity{counts}"
    else:
        ratio = _ratio_of(comp.get(definition))
        if ratio is None:
            return _missing(name, limit, format_fraction, _no_compression_reason(ev, definition))
        actual, detail = 1.0 - 1.0 / ratio, f"1 - 1/{ratio:.4g} (compression {definition!r})"
    return _compare(name, limit, actual, False, format_fraction, ev.rel(ev.bundle_dir / "manifest.json"), detail,
                    what=f"{definition} sparsity")


def _verification_metric(ev: Evidence) -> tuple[dict[str, Any] | None, str]:
    """(verification record, '') or (None, reason)."""
    if not ev.is_bundle:
        return None, ("no measurement: accuracy comes from the verification.json of a bundle; check the bundle "
                      "folder that `edgeprune export` wrote")
    rep = ev.verification
    if rep is None:
        return None, "no measurement: the bundle has no verification.json; re-run `edgeprune export` with verification on"
    if rep.data is None:
        return None, f"no measurement: {rep.problem}"
    if rep.data.get("skipped"):
        return None, ("no measurement: the export skipped verification (--no-verify); re-run `edgeprune export` "
                      "with verification on")
    if not isinstance(rep.data.get("metric_artifact"), (int, float)):
        return None, ("no measurement: verification.json has no metric_artifact; re-run `edgeprune export` with "
                      "--task and --data so the artifact is evaluated")
    return rep.data, ""


def _accuracy(ev: Evidence, limit: float) -> BudgetResult:
    rec, why = _verification_metric(ev)
    if rec is None:
        return _missing("min_accuracy", limit, format_fraction, why)
    metric = rec.get("metric") or "metric"
    detail = f"{metric} of the {rec.get('dtype', '')} artifact on {rec.get('num_examples', '?')} dev examples " \
             f"(verification.json metric_artifact)"
    return _compare("min_accuracy", limit, float(rec["metric_artifact"]), False, format_fraction,
                    ev.rel(ev.verification.path), detail, what=f"artifact {metric}")


def _accuracy_drop(ev: Evidence, limit: float) -> BudgetResult:
    """Points lost vs the dense model: (dense - pruned) on the dev set + (torch - artifact) in export.

    Without ``metrics.pruned`` the drop is dense - metric_artifact directly (different example sets
    when verification used a subset; said in the detail).
    """
    rec, why = _verification_metric(ev)
    if rec is None:
        return _missing("max_accuracy_drop", limit, format_points, why)
    dense = ev.reference_metric("dense")
    if dense is None:
        return _missing("max_accuracy_drop", limit, format_points,
                        "no measurement: no dense reference metric (manifest.json or export_report.json "
                        "metrics.dense); export a run directory written by `edgeprune compress`")
    art = float(rec["metric_artifact"])
    pruned = ev.reference_metric("pruned")
    if pruned is not None and isinstance(rec.get("metric_torch"), (int, float)):
        prune_pts = (dense[0] - pruned[0]) * 100.0
        export_pts = (float(rec["metric_torch"]) - art) * 100.0
        drop = prune_pts + export_pts
        detail = (f"pruning {prune_pts:+.3g} pt (dense {dense[0]:.4f} -> pruned {pruned[0]:.4f}, {dense[1]}) "
                  f"+ export {export_pts:+.3g} pt (torch {float(rec['metric_torch']):.4f} -> artifact {art:.4f} "
                  f"on {rec.get('num_examples', '?')} examples)")
    else:
        drop = (dense[0] - art) * 100.0
        detail = (f"dense {dense[0]:.4f} ({dense[1]}) - artifact {art:.4f} (verification.json, "
                  f"{rec.get('num_examples', '?')} examples; example sets may differ)")
    return _compare("max_accuracy_drop", limit, drop, True, format_points,
                    ev.rel(ev.verification.path), detail, what="accuracy drop vs dense")


def _profile_is_stale(ev: Evidence, data: dict[str, Any]) -> str | None:
    """Why profile.json does not describe this artifact (sha256 when recorded, else size), or None."""
    if not ev.artifact.is_file():
        return None
    size = ev.artifact.stat().st_size
    fb = data.get("file_bytes")
    if isinstance(fb, int) and fb != size:
        return f"it measured a {fb}-byte file but {ev.artifact.name} has {size} bytes"
    sha = data.get("sha256")
    if isinstance(sha, str) and len(sha) == 64:
        from edgeprune.io import sha256_file

        if sha256_file(ev.artifact) != sha:
            return f"it measured a file with another sha256 than {ev.artifact.name}"
    return None


def _latency(ev: Evidence, target: str, limit: float, statistic: str) -> BudgetResult:
    name = f"max_latency[{target}]"
    shown = ev.rel(ev.bundle_dir if ev.is_bundle else ev.artifact)  # profile writes into a bundle it is given
    how = (f"run `edgeprune profile {shown}`" if target == "host" else
           f"measure it on the device: `edgeprune profile {shown} --target {target} --ssh USER@DEVICE` "
           f"(--adb SERIAL for a phone), or predict it with `--target {target}`")
    rep = ev.profile
    if rep is None:
        return _missing(name, limit, format_time, f"no measurement: no profile.json; {how}")
    if rep.data is None:
        return _missing(name, limit, format_time, f"no measurement: {rep.problem}; {how}", ev.rel(rep.path))
    src = ev.rel(rep.path)
    stale = _profile_is_stale(ev, rep.data)
    if stale:
        return _missing(name, limit, format_time, f"stale profile: {stale}; {how}", src)
    results = rep.data.get("results") or []
    rows = results if isinstance(results, list) else []
    pick = select_latency(rows, target, statistic)
    rej = sorted(set(rejected(rows, target)))
    if pick is None:
        if rej:
            return _missing(name, limit, format_time,
                            f"no {target} measurement in {rep.path.name}: its measured {target} rows do not count "
                            f"({'; '.join(rej)}); {how}", src)
        have = targets_in(rows)
        return _missing(name, limit, format_time,
                        f"no measurement for {target} in {rep.path.name} (has: {', '.join(have) or 'none'}); {how}",
                        src)
    gpu_refused = [r for r in rej if r.startswith("GPU delegation")]
    if gpu_refused and pick.kind == "predicted":   # the device showed the model does not run on its GPU
        return _missing(name, limit, format_time,
                        f"no {target} latency: the device run says {'; '.join(gpu_refused)}; a prediction cannot "
                        f"stand in for a GPU the model does not fully run on", src)
    detail = pick.detail
    if pick.kind == "predicted":
        detail += "; an estimate, nothing measured on the device"
        emulated = sum(1 for r in rows if isinstance(r, dict) and r.get("target") == target
                       and r.get("kind") == "emulated")
        if emulated:
            detail += f" ({emulated} emulated row(s): instruction counts under qemu, not a latency)"
    if rej:
        detail += f"; ignored measured rows ({'; '.join(rej)})"
    return _compare(name, limit, pick.seconds, True, format_time, src, detail, what=f"{target} latency")


def evaluate_budgets(budgets: Budgets, ev: Evidence) -> list[BudgetResult]:
    """Integrity (bundles) first, then every budget that is set, in a fixed order."""
    jobs: list[tuple[str, Callable[[], BudgetResult]]] = []
    if ev.is_bundle:
        jobs.append(("integrity", lambda: _integrity(ev)))
    if budgets.max_size is not None:
        jobs.append(("max_size", lambda: _size(ev, float(budgets.max_size))))
    if budgets.max_params is not None:
        jobs.append(("max_params", lambda: _params(ev, float(budgets.max_params))))
    for d, v in budgets.min_compression.items():
        jobs.append((f"min_compression[{d}]", lambda d=d, v=v: _compression(ev, d, v)))
    for d, v in budgets.min_sparsity.items():
        jobs.append((f"min_sparsity[{d}]", lambda d=d, v=v: _sparsity(ev, d, v)))
    for t, v in budgets.max_latency.items():
        jobs.append((f"max_latency[{t}]", lambda t=t, v=v: _latency(ev, t, v, budgets.latency_statistic)))
    if budgets.min_accuracy is not None:
        jobs.append(("min_accuracy", lambda: _accuracy(ev, budgets.min_accuracy)))
    if budgets.max_accuracy_drop is not None:
        jobs.append(("max_accuracy_drop", lambda: _accuracy_drop(ev, budgets.max_accuracy_drop)))
    out = []
    for name, job in jobs:
        t0 = time.perf_counter()
        res = job()
        src = budgets.sources.get(name)
        out.append(BudgetResult(**{**asdict(res), "budget_source": src, "duration_s": time.perf_counter() - t0}))
    return out


__all__ = ["BudgetResult", "evaluate_budgets", "PASS", "FAIL", "MISSING"]
