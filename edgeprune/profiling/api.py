"""``profile(artifact, target="host", ...)``: measured, emulated and predicted numbers for one artifact.

Measured results come from real runs (host subprocess, SSH device, adb phone), emulated ones from
qemu-aarch64 with instruction counts (never a latency), predicted ones from the roofline model for every
known target. With ``baseline`` the dense counterpart is profiled the same way and compared.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeprune.errors import ConfigError

XNNPACK_CHOICES = ("on", "off", "both")


@dataclass(frozen=True)
class ProfileConfig:
    target: str | None = None          # label of the measured device: host (default), rpi4 for --ssh, phone for --adb
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
    known_hosts: str | None = None
    adb: str | None = None
    adb_binary: str | None = None
    benchmark_binary: str | None = None
    use_gpu: bool = False
    big_cores: bool = False
    baseline: str | None = None
    targets_dir: str | None = None
    calibrate: str | None = None       # a profile.json whose measured runs fit each target's efficiency
    timeout_s: float = 600.0
    extra: dict[str, Any] = field(default_factory=dict)

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
        if self.timeout_s <= 0:
            raise ConfigError("--timeout must be positive")

    @property
    def label(self) -> str:
        if self.target:
            return self.target
        return "rpi4" if self.ssh else "phone" if self.adb else "host"


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


def _latency(res: dict[str, Any]) -> dict[str, float]:
    from .stats import summarize

    s = summarize(res["latencies_ms"])
    return {k: s[k] for k in ("mean", "p50", "p90", "p99", "std")}


def _measured_entry(res: dict[str, Any], target: str, runner: str) -> dict[str, Any]:
    return {"target": target, "kind": "measured", "runner": runner, "engine": res["engine"],
            "runtime_version": res.get("runtime_version"), "xnnpack": res.get("xnnpack"),
            "latency_ms": _latency(res), "threads": res["threads"], "batch": res["batch"], "seq_len": res["seq_len"],
            "load_ms": res["load_ms"], "peak_memory_bytes": res.get("peak_rss_bytes"),
            "rss_after_load_bytes": res.get("rss_after_load_bytes"), "rss_start_bytes": res.get("rss_start_bytes"),
            "runs": len(res["latencies_ms"]), "machine": res.get("machine"), "cpu": res.get("cpu")}


def _calibration(path: str | None) -> dict[str, float]:
    """target -> efficiency fitted earlier (``efficiency_fit`` of the measured results of a profile.json)."""
    if not path:
        return {}
    from edgeprune.io import read_json

    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"--calibrate {path}: not a readable profile.json ({e})") from None
    fits = {}
    for r in data.get("results", []):
        if r.get("kind") == "measured" and r.get("efficiency_fit") and r["target"] not in fits:
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
        base = _profile_one(cfg.baseline, replace(cfg, baseline=None, batch=report["batch"], seq_len=report["seq_len"]))
        report["baseline"] = base
        report["comparison"] = compare(report, base)
    if out is not None:
        from .report import write_report

        report["files"] = write_report(report, out)
    return report


def _profile_one(artifact: str | os.PathLike[str], cfg: ProfileConfig) -> dict[str, Any]:
    from edgeprune.bundle import tool_versions
    from edgeprune.io import sha256_file
    from edgeprune.targets import get_runner, get_target, load_targets
    from edgeprune.targets.base import RunSpec, artifact_format

    from . import roofline

    path, manifest = resolve_artifact(artifact)
    fmt = artifact_format(path)
    if manifest and manifest.get("format") and manifest["format"] != fmt:
        raise ConfigError(f"{artifact}: manifest says format {manifest['format']!r} but the artifact is .{fmt}")
    seq_len = cfg.seq_len or (manifest or {}).get("seq_len") or 128
    batch = cfg.batch or (manifest or {}).get("batch") or 1
    targets = load_targets(cfg.targets_dir)
    label = cfg.label
    if label not in targets:
        raise ConfigError(f"unknown target {label!r}; known: {', '.join(sorted(targets))}")
    for name in cfg.emulate:
        t = targets.get(name)
        if t is None or not t.qemu_cpu:
            emulable = sorted(n for n, tt in targets.items() if tt.qemu_cpu)
            raise ConfigError(f"--emulate {name!r}: choose one of {', '.join(emulable)}")
    spec = RunSpec(path, threads=cfg.threads, batch=int(batch), seq_len=int(seq_len), warmup=cfg.warmup,
                   runs=cfg.runs, timeout_s=cfg.timeout_s)
    measure_host = cfg.measure_host if cfg.measure_host is not None else not (cfg.ssh or cfg.adb)
    results: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    if measure_host and cfg.runs < 1:
        raise ConfigError("--runs must be at least 1 for a measured run")
    if measure_host:
        host = get_runner("host")
        variants = [True, False] if fmt == "tflite" and cfg.xnnpack == "both" else [cfg.xnnpack != "off"]
        for xnn in variants if fmt == "tflite" else [True]:
            res = host(replace(spec, xnnpack=xnn))
            results.append(_measured_entry(res, "host" if label == "host" else label, "host"))
    if cfg.ssh:
        res = get_runner("ssh")(spec, cfg.ssh, identity=cfg.identity, remote_python=cfg.remote_python,
                                known_hosts=cfg.known_hosts)
        entry = _measured_entry(res, label, "ssh")
        entry.update({"device": res.get("device"), "label": res.get("label")})
        if "tool" in res:
            entry["tool"] = {k: res["tool"][k] for k in ("tool", "path", "parsed")}
        raw["ssh"] = res.get("raw_stdout")
        results.append(entry)
    if cfg.adb:
        tgt = targets[label]
        mask = tgt.big_core_mask if cfg.big_cores else None
        if cfg.big_cores and not mask:
            raise ConfigError(f"--big-cores: target {label!r} has no cpu.big_core_mask")
        for run in get_runner("adb")(spec, cfg.adb, cfg.benchmark_binary, adb_binary=cfg.adb_binary,
                                     use_gpu=cfg.use_gpu, big_core_mask=mask):
            p = run["parsed"]
            lat = {k: p["latency_ms"][k] for k in ("mean", "p50", "p90", "p99", "std") if k in p["latency_ms"]}
            mem = p.get("peak_memory_bytes")
            if mem is None and p.get("memory_mb"):
                mem = int(p["memory_mb"]["overall"] * 1e6)
            results.append({"target": label, "kind": "measured", "runner": "adb", "unit": run["unit"],
                            "tool": run["tool"], "latency_ms": lat, "threads": spec.threads, "batch": spec.batch,
                            "seq_len": spec.seq_len, "peak_memory_bytes": mem,
                            "load_ms": p.get("init_ms") or p.get("session_creation_ms"),
                            "command": run["command"], "parsed": p})
            raw[f"adb_{run['unit']}"] = run["raw"]
    for name in cfg.emulate:
        res = get_runner("emulate")(spec, targets[name], marked_runs=cfg.marked_runs)
        results.append({"target": name, "kind": "emulated", "runner": "emulate", "engine": res["engine"],
                        "qemu_cpu": res["qemu_cpu"], "instructions": res["instructions"],
                        "instructions_total": res["instructions_total"], "marked_runs": res["marked_runs"],
                        "threads": 1, "batch": spec.batch, "seq_len": spec.seq_len,
                        "outputs_match_host": res.get("outputs_match_host"),
                        "max_abs_diff_vs_host": res.get("max_abs_diff_vs_host"),
                        "emulation_wall_s": res["emulation_wall_s"],
                        "note": "instruction count per inference; emulated wall time is not a device latency"})
    costs_summary = None
    if cfg.predict:
        costs = roofline.artifact_costs(path, spec.batch, spec.seq_len)
        costs_summary = roofline.totals(costs)
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
                     "efficiency_source": "calibrated" if eff is not None else "prior"}
            if t.gpu is not None:
                entry["gpu_latency_ms"] = {"mean": roofline.predict_ms(costs, t, unit="gpu")}
                entry["gpu_efficiency"] = t.gpu.efficiency
            results.append(entry)
    first = next((r for r in results if r["kind"] == "measured" and r.get("load_ms") is not None), None)
    return {
        "artifact": str(path), "format": fmt, "file_bytes": path.stat().st_size, "sha256": sha256_file(path),
        "bundle": str(Path(artifact)) if manifest else None, "model": (manifest or {}).get("model"),
        "compression": (manifest or {}).get("compression"), "batch": spec.batch, "seq_len": spec.seq_len,
        "threads": spec.threads, "warmup": spec.warmup, "runs": spec.runs,
        "load_ms": first["load_ms"] if first else None, "results": results, "costs": costs_summary,
        "raw": raw, "machine": {"platform": platform.platform(), "processor": platform.processor() or None,
                                "cpu_count": os.cpu_count()},
        "tools": tool_versions(),
    }


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["target"], r["kind"], r.get("unit", "cpu"), r.get("xnnpack"), r.get("runner"))


def compare(report: dict[str, Any], base: dict[str, Any]) -> list[dict[str, Any]]:
    """Pruned next to dense for every (target, kind) present in both: latency speed-up, instruction ratio."""
    from .stats import speedup

    base_by = {_key(r): r for r in base["results"]}
    rows = []
    for r in report["results"]:
        b = base_by.get(_key(r))
        if b is None:
            continue
        row = {"target": r["target"], "kind": r["kind"], "unit": r.get("unit", "cpu"), "xnnpack": r.get("xnnpack")}
        if "latency_ms" in r:
            row.update({"latency_ms": r["latency_ms"]["mean"], "baseline_latency_ms": b["latency_ms"]["mean"],
                        "speedup": speedup(b["latency_ms"]["mean"], r["latency_ms"]["mean"])})
        if "instructions" in r:
            row.update({"instructions": r["instructions"], "baseline_instructions": b["instructions"],
                        "instruction_ratio": b["instructions"] / r["instructions"] if r["instructions"] else None})
        rows.append(row)
    rows.append({"target": "-", "kind": "file", "file_bytes": report["file_bytes"],
                 "baseline_file_bytes": base["file_bytes"],
                 "size_ratio": base["file_bytes"] / report["file_bytes"] if report["file_bytes"] else None})
    return rows
