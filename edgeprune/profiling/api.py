"""``profile(artifact, target="host", ...)``: measured, emulated and predicted numbers for one artifact.

Measured results come from real runs (host subprocess, SSH device, adb phone) and are labelled by where
they ran: a run on this machine is always ``host``; ``--target T`` alone only predicts T. Emulated results
come from qemu-aarch64 with instruction counts (never a latency), predicted ones (estimates) from the
roofline model for every known target. The input shapes fed are read from the artifact and recorded. With
``baseline`` the dense counterpart is profiled the same way (same input shapes, unless ``allow_mismatch``)
and compared, with format / dtype / shape differences named.

Every runner answers in one shape (:class:`edgeprune.targets.measurement.Measurement`): this module only
picks the runners and their configs from :class:`ProfileConfig`, labels their rows and adds the predictions.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeprune.errors import ConfigError
from edgeprune.hostinfo import cpu_model

if TYPE_CHECKING:
    from edgeprune.quiet import Progress
    from edgeprune.targets import Target
    from edgeprune.targets.base import RunSpec
    from edgeprune.targets.measurement import Runner

XNNPACK_CHOICES = ("on", "off", "both")


@dataclass(frozen=True)
class ProfileConfig:
    target: str | None = None          # the device: host (default); rpi4 for --ssh, phone for --adb. Alone: predict
    threads: int = 1
    batch: int | None = None           # None: the bundle manifest's value, else 1
    seq_len: int | None = None         # None: the bundle manifest's value, else 128
    warmup: int = 5
    runs: int = 20
    xnnpack: str = "both"              # .tflite only: XNNPACK on, off or both (two measurements)
    measure_host: bool | None = None   # None: measure on the host unless --ssh/--adb measure elsewhere
    predict: bool = True
    emulate: tuple[str, ...] = ()
    marked_runs: int = 2
    ssh: str | None = None
    identity: str | None = None
    remote_python: str = "python3"
    known_hosts: str | None = None     # None: ssh's own known_hosts files and configuration
    accept_new_host_key: bool = False  # --ssh: accept (and pin) a host key seen for the first time
    adb: str | None = None
    adb_binary: str | None = None
    benchmark_binary: str | None = None
    use_gpu: bool = False
    big_cores: bool = False
    baseline: str | None = None
    allow_mismatch: bool = False       # --baseline with other input shapes: compare anyway, labelled
    targets_dir: str | None = None
    calibrate: str | None = None       # a profile.json whose measured runs fit each target's efficiency
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.xnnpack not in XNNPACK_CHOICES:
            raise ConfigError(f"xnnpack must be one of {', '.join(XNNPACK_CHOICES)} (got {self.xnnpack!r})")
        if self.marked_runs < 1:
            raise ConfigError("marked runs must be at least 1")
        if self.adb and not self.benchmark_binary:
            raise ConfigError("--adb needs --benchmark-binary PATH (an Android benchmark_model or "
                              "onnxruntime_perf_test built for arm64)")
        if self.ssh and self.adb:
            raise ConfigError("use one of --ssh and --adb per run")
        if self.target == "host" and (self.ssh or self.adb):
            raise ConfigError("--target host means this machine; name the target of the device that --ssh/--adb "
                              "reaches (e.g. --target rpi4), or add a TOML for it with --targets-dir")
        if self.use_gpu and not self.adb:
            raise ConfigError("--use-gpu needs --adb SERIAL: only an Android phone running benchmark_model puts a "
                              "model on a GPU here; drop --use-gpu or add --adb and --benchmark-binary")
        if self.accept_new_host_key and not self.ssh:
            raise ConfigError("--accept-new-host-key applies to --ssh only")
        if self.timeout_s <= 0:
            raise ConfigError("--timeout must be positive")

    @property
    def label(self) -> str:
        """The device the --ssh/--adb run is recorded under (a host run is always "host")."""
        if self.target:
            return self.target
        return "rpi4" if self.ssh else "phone" if self.adb else "host"

    @property
    def predict_only(self) -> bool:
        """``--target T`` without --ssh/--adb: T is predicted, never measured (this machine is not T)."""
        return self.label != "host" and not (self.ssh or self.adb)


def resolve_artifact(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any] | None]:
    """An artifact file, or a bundle folder whose manifest.json names one."""
    p = Path(path)
    if p.is_dir():
        from edgeprune.bundle import read_manifest

        man = read_manifest(p)
        rel = man.get("artifact")
        if not rel:
            raise ConfigError(f"{p}/manifest.json has no 'artifact' field; re-export the bundle")
        art = p / rel
        if not art.is_file():
            raise ConfigError(f"{p}: the manifest's artifact {rel} is missing")
        return art, man
    if not p.is_file():
        raise ConfigError(f"{p}: no such artifact; pass an .onnx/.tflite file or a bundle folder")
    return p, None


def _calibration(path: str | None) -> dict[str, float]:
    """target -> efficiency fitted earlier (``efficiency_fit`` of the measured results of a profile.json)."""
    if not path:
        return {}
    from edgeprune.io import read_json

    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"--calibrate {path}: not a readable profile.json ({e})") from None
    from edgeprune.budget.latency import device_problem

    fits = {}
    for r in data.get("results", []):
        if r.get("kind") == "measured" and r.get("efficiency_fit") and r["target"] not in fits \
                and not device_problem(r, r["target"]):   # a host run labelled rpi4 never calibrates rpi4
            fits[r["target"]] = float(r["efficiency_fit"])
    if not fits:
        raise ConfigError(f"--calibrate {path}: it has no measured results with an efficiency fit")
    return fits


def profile(artifact: str | os.PathLike[str], target: str | None = None, out: str | os.PathLike[str] | None = None,
            config: ProfileConfig | None = None, **kwargs: Any) -> dict[str, Any]:
    """Profile ``artifact`` (file or bundle); write profile.json/.md/.png to ``out`` when given.

    ``kwargs`` are :class:`ProfileConfig` fields. A bundle folder is the default ``out`` of the CLI.
    """
    cfg = config or ProfileConfig(target=target, **kwargs)
    if config is not None and (target or kwargs):
        cfg = replace(config, **({"target": target} if target else {}), **kwargs)
    report = _profile_one(artifact, cfg)
    if cfg.baseline:
        same = _baseline_shape_check(report, cfg)
        shape = {"batch": report["batch"], "seq_len": report["seq_len"]} if same else {"batch": None, "seq_len": None}
        base = _profile_one(cfg.baseline, replace(cfg, baseline=None, **shape), role="baseline ")
        report["baseline"] = base
        report["comparison"] = compare(report, base)
    if out is not None:
        from .report import write_report

        report["files"] = write_report(report, out)
    return report


def _baseline_shape_check(report: dict[str, Any], cfg: ProfileConfig) -> bool:
    """True when the baseline runs with the same input shapes; a mismatch is refused unless allowed."""
    from .shapes import fed_shapes, read_io, resolve_shape, shape_key

    assert cfg.baseline is not None
    bpath, _ = resolve_artifact(cfg.baseline)
    bio = read_io(bpath)
    try:
        b, s = resolve_shape(bio, str(bpath), report["batch"], report["seq_len"], report["batch"], report["seq_len"])
        same = shape_key(fed_shapes(bio, b, s)) == shape_key(report["inputs"])
    except ConfigError:
        same = False
    if same or cfg.allow_mismatch:
        return same
    theirs = shape_key(fed_shapes(bio, bio.fixed(0) or report["batch"], bio.fixed(1) or report["seq_len"]))
    raise ConfigError(f"--baseline {cfg.baseline}: its input shapes {theirs} differ from "
                      f"{Path(report['artifact']).name}'s {shape_key(report['inputs'])}; a speed-up across "
                      f"shapes is not a speed-up: profile a baseline exported at the same --seq-len/--batch, "
                      f"or pass --allow-mismatch to compare anyway (labelled)")


class RunnerStages:
    """A runner's progress (``load``, ``warmup``, ``run``) as edgeprune stage lines on stderr:
    ``[profile] host: timed runs 12/20``."""

    NAMES = {"load": "load", "warmup": "warm-up", "run": "timed runs"}

    def __init__(self, label: str) -> None:
        self.label = label
        self.phase: str | None = None
        self.progress: Progress | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        from edgeprune.quiet import Progress, stage

        name = f"{self.label}: {self.NAMES.get(phase, phase)}"
        if phase != self.phase:
            self.phase = phase
            self.progress = None
            if total <= 1:  # a single step (loading): one line when it starts
                stage(name)
            else:
                self.progress = Progress(name, total)
        if self.progress is not None:
            self.progress.update(done)


def _runs(cfg: ProfileConfig, spec: RunSpec, targets: dict[str, Target],
          role: str) -> list[tuple[str, Runner, RunSpec]]:
    """(target label, runner, spec) of every measurement ``cfg`` asks for, in report order: each runner
    built from its typed config, so that every one measures and reports the same way."""
    from edgeprune.targets.adb import AdbConfig, AdbRunner
    from edgeprune.targets.emulate import EmulateConfig, EmulateRunner
    from edgeprune.targets.host import HostRunner
    from edgeprune.targets.ssh import SSHConfig, SSHRunner

    label, runs = cfg.label, []
    measure_host = cfg.measure_host if cfg.measure_host is not None else not (cfg.ssh or cfg.adb or cfg.predict_only)
    if measure_host and cfg.runs < 1:
        raise ConfigError("--runs must be at least 1 for a measured run")
    if measure_host:   # this machine is "host", whatever --target says
        variants = ([True, False] if cfg.xnnpack == "both" else [cfg.xnnpack != "off"]) \
            if spec.artifact_type.xnnpack else [True]
        for xnn in variants:
            where = "host" + ("" if xnn else " (no-xnnpack)")
            runs.append(("host", HostRunner(on_progress=RunnerStages(f"[profile] {role}{where}")),
                         replace(spec, xnnpack=xnn)))
    if cfg.ssh:
        ssh = SSHConfig(cfg.ssh, identity=cfg.identity, remote_python=cfg.remote_python, known_hosts=cfg.known_hosts,
                        accept_new_host_key=cfg.accept_new_host_key, target=targets[label])
        runs.append((label, SSHRunner(ssh, on_progress=RunnerStages(f"[profile] {role}{label} (ssh)")), spec))
    if cfg.adb:
        mask = targets[label].big_core_mask if cfg.big_cores else None
        if cfg.big_cores and not mask:
            raise ConfigError(f"--big-cores: target {label!r} has no cpu.big_core_mask")
        adb = AdbConfig(cfg.adb, cfg.benchmark_binary or "", adb_binary=cfg.adb_binary, use_gpu=cfg.use_gpu,
                        big_core_mask=mask)
        runs.append((label, AdbRunner(adb), spec))
    for name in cfg.emulate:
        t = targets.get(name)
        if t is None or not t.qemu_cpu:
            emulable = sorted(n for n, tt in targets.items() if tt.qemu_cpu)
            raise ConfigError(f"--emulate {name!r}: choose one of {', '.join(emulable)}")
        runs.append((name, EmulateRunner(EmulateConfig(t, marked_runs=cfg.marked_runs)), spec))
    return runs


def _profile_one(artifact: str | os.PathLike[str], cfg: ProfileConfig, role: str = "") -> dict[str, Any]:
    from edgeprune.bundle import tool_versions
    from edgeprune.io import sha256_file
    from edgeprune.quiet import stage
    from edgeprune.targets import load_targets
    from edgeprune.targets.base import RunSpec, profilable_format

    from .shapes import fed_shapes, list_shape, read_io, resolve_shape

    path, manifest = resolve_artifact(artifact)
    fmt = profilable_format(path).name
    if manifest and manifest.get("format") and manifest["format"] != fmt:
        raise ConfigError(f"{artifact}: manifest says format {manifest['format']!r} but the artifact is .{fmt}")
    io = read_io(path)
    batch, seq_len = resolve_shape(io, str(path), cfg.batch, cfg.seq_len, int((manifest or {}).get("batch") or 1),
                                   int((manifest or {}).get("seq_len") or 128))
    targets = load_targets(cfg.targets_dir)
    if cfg.label not in targets:
        raise ConfigError(f"unknown target {cfg.label!r}; known: {', '.join(sorted(targets))}")
    spec = RunSpec(path, threads=cfg.threads, batch=int(batch), seq_len=int(seq_len), warmup=cfg.warmup,
                   runs=cfg.runs, timeout_s=cfg.timeout_s)
    runs = _runs(cfg, spec, targets, role)
    stage(f"[profile] {role}{path.name}: {fmt}, batch {spec.batch}, seq {spec.seq_len}, {spec.threads} thread"
          + ("s" if spec.threads > 1 else ""))
    results: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for label, runner, run_spec in runs:
        line = runner.describe(run_spec)
        if line:
            stage(f"[profile] {role}{label}{line}")
        for m in runner.measure(run_spec):
            row = m.row(label)
            row["inputs"] = row["inputs"] or fed_shapes(io, spec.batch, spec.seq_len)
            results.append(row)
            raw.update(m.raw)
    costs_summary = _predict(path, spec, cfg, targets, results, role) if cfg.predict else None
    first = next((r for r in results if r["kind"] == "measured" and r.get("load_ms") is not None), None)
    return {
        "artifact": str(path), "format": fmt, "file_bytes": path.stat().st_size, "sha256": sha256_file(path),
        "bundle": str(Path(artifact)) if manifest else None, "model": (manifest or {}).get("model"),
        "compression": (manifest or {}).get("compression"), "batch": spec.batch, "seq_len": spec.seq_len,
        "inputs": fed_shapes(io, spec.batch, spec.seq_len),
        "declared_inputs": {i.name: list_shape(i.shape) for i in io.inputs},
        "dtype": (manifest or {}).get("dtype") or io.weight_dtype,
        "measured_on": sorted({r["target"] for r in results if r["kind"] == "measured"}),
        "predict_only": cfg.label if cfg.predict_only else None,
        "threads": spec.threads, "warmup": spec.warmup, "runs": spec.runs,
        "load_ms": first["load_ms"] if first else None, "results": results, "costs": costs_summary,
        "raw": raw, "machine": {"platform": platform.platform(), "processor": platform.processor() or None,
                                "machine": platform.machine(), "cpu": cpu_model(), "cpu_count": os.cpu_count()},
        "tools": tool_versions(),
    }


def _predict(path: Path, spec: RunSpec, cfg: ProfileConfig, targets: dict[str, Target],
             results: list[dict[str, Any]], role: str) -> dict[str, Any]:
    """Roofline rows for every target (appended to ``results``), and each measured CPU row's efficiency fit."""
    from edgeprune.quiet import stage

    from . import roofline

    stage(f"[profile] {role}predict {len(targets)} targets (roofline estimates)")
    costs = roofline.artifact_costs(path, spec.batch, spec.seq_len)
    fits = _calibration(cfg.calibrate)
    for r in results:
        if r["kind"] == "measured" and r["target"] in targets and r.get("unit", "cpu") == "cpu":
            r["efficiency_fit"] = roofline.calibrate_efficiency(costs, targets[r["target"]],
                                                                r["latency_ms"]["mean"], r["threads"])
    for name, t in targets.items():
        eff = fits.get(name)
        entry = {"target": name, "kind": "predicted", "unit": "cpu",
                 "latency_ms": {"mean": roofline.predict_ms(costs, t, spec.threads, eff)},
                 "threads": min(spec.threads, t.cores), "batch": spec.batch, "seq_len": spec.seq_len,
                 "efficiency": eff if eff is not None else t.efficiency,
                 "efficiency_source": "calibrated" if eff is not None else "prior",
                 "note": "estimate (roofline model), not a measurement"}
        if t.gpu is not None and spec.artifact_type.gpu_delegate:   # only a device tool's GPU delegate
            entry["gpu_latency_ms"] = {"mean": roofline.predict_ms(costs, t, unit="gpu")}
            entry["gpu_efficiency"] = t.gpu.efficiency
        results.append(entry)
    return roofline.totals(costs)


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    """Rows that pair up: an ONNX run (xnnpack None) pairs with the TFLite run on LiteRT's default (XNNPACK on)."""
    return (r["target"], r["kind"], r.get("unit", "cpu"), r.get("xnnpack") is not False, r.get("runner"))


def differences(report: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """What differs between the two artifacts besides the pruning: format, dtype, input shapes."""
    from .shapes import shape_key

    out = []
    if report["format"] != base["format"]:
        out.append(f"format {report['format']} vs {base['format']}")
    if report.get("dtype") != base.get("dtype"):
        out.append(f"dtype {report.get('dtype')} vs {base.get('dtype')}")
    mine, theirs = shape_key(report.get("inputs") or {}), shape_key(base.get("inputs") or {})
    if mine != theirs:
        out.append(f"inputs {mine} vs {theirs}")
    return out


def compare(report: dict[str, Any], base: dict[str, Any]) -> list[dict[str, Any]]:
    """Pruned next to dense for every (target, kind) present in both: latency speed-up, instruction ratio."""
    from edgeprune.targets.stats import speedup

    base_by = {_key(r): r for r in base["results"]}
    differs = differences(report, base)
    rows = []
    for r in report["results"]:
        b = base_by.get(_key(r))
        if b is None:
            continue
        row = {"target": r["target"], "kind": r["kind"], "unit": r.get("unit", "cpu"), "xnnpack": r.get("xnnpack"),
               "differs": differs}
        if r.get("latency_ms") and b.get("latency_ms"):
            row.update({"latency_ms": r["latency_ms"]["mean"], "baseline_latency_ms": b["latency_ms"]["mean"],
                        "speedup": speedup(b["latency_ms"]["mean"], r["latency_ms"]["mean"])})
        if "instructions" in r:
            row.update({"instructions": r["instructions"], "baseline_instructions": b["instructions"],
                        "instruction_ratio": b["instructions"] / r["instructions"] if r["instructions"] else None})
        rows.append(row)
    rows.append({"target": "-", "kind": "file", "differs": differs, "file_bytes": report["file_bytes"],
                 "baseline_file_bytes": base["file_bytes"],
                 "size_ratio": base["file_bytes"] / report["file_bytes"] if report["file_bytes"] else None})
    return rows
