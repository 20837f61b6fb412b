"""Android over adb: push the artifact and a user-supplied benchmark binary, run CPU and GPU benchmarks.

CPU runs are pinned to the big cores with ``taskset <mask>`` (the target's ``big_core_mask``); the GPU
run adds ``--use_gpu=true`` (TFLite ``benchmark_model`` only). The tools' own output is parsed by
:mod:`.parsers` (with the tool records of :mod:`.tools`) and kept raw beside the numbers.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.errors import ConfigError, TargetUnreachable
from edgeprune.formats import FORMATS

from . import register_runner
from .base import OnProgress, RunSpec, last_line
from .delegation import UNKNOWN, Delegation, parse_delegation
from .measurement import MEASURED, Measurement

DEVICE_DIR = "/data/local/tmp/edgeprune"


class Adb:
    def __init__(self, serial: str, adb_binary: str | None = None, timeout: float = 600):
        exe = adb_binary or shutil.which("adb")
        if not exe or not Path(exe).exists():
            raise TargetUnreachable("adb not found: install Android platform-tools or pass --adb-binary PATH "
                                    "(no phone can be profiled without it)")
        self.exe, self.serial, self.timeout = str(exe), serial, timeout

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.exe, "-s", self.serial, *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise TargetUnreachable(f"adb {self.serial}: `{args[0]}` timed out after {self.timeout:.0f} s") from None
        if check and proc.returncode != 0:
            raise TargetUnreachable(f"adb {self.serial}: `{args[0]}` failed: {last_line(proc.stderr or proc.stdout)}")
        return proc

    def shell(self, words: list[str]) -> subprocess.CompletedProcess[str]:
        """One device shell command; every word quoted for the device's shell."""
        return self("shell", " ".join(shlex.quote(w) for w in words), check=False)


def run_adb(spec: RunSpec, serial: str, benchmark_binary: str, adb_binary: str | None = None, use_gpu: bool = False,
            big_core_mask: str | None = None) -> list[dict[str, Any]]:
    """The tool's CPU (and with ``use_gpu`` GPU-delegate) runs of ``spec.artifact`` on the phone ``serial``."""
    binary = Path(benchmark_binary) if benchmark_binary else None
    tools = {f.name: f.tool() for f in FORMATS.values() if f.device_tool}
    if binary is None or not binary.is_file():
        raise ConfigError(f"--benchmark-binary {benchmark_binary!r}: no such file; pass an Android arm64 " +
                          " or ".join(f"{t.name} (for {' '.join(FORMATS[n].suffixes)})" for n, t in tools.items()))
    tool = tools.get(spec.format)
    if tool is None or not tool.runs(binary.name):
        raise ConfigError(f"{binary.name} cannot run a .{spec.format} artifact; use "
                          f"{tool.name if tool else 'another runner'}")
    if use_gpu and "gpu" not in tool.units:
        raise ConfigError("--use-gpu needs a .tflite artifact and benchmark_model (the TFLite GPU delegate)")
    adb = Adb(serial, adb_binary, spec.timeout_s)
    state = adb("get-state", check=False)
    if state.returncode != 0 or state.stdout.strip() != "device":
        raise TargetUnreachable(f"no Android device {serial!r} is attached and authorised "
                                f"(adb get-state: {last_line(state.stderr or state.stdout)}); "
                                "check `adb devices`")
    adb("shell", f"mkdir -p {DEVICE_DIR}")
    device_binary = f"{DEVICE_DIR}/{tool.name}"
    model = f"{DEVICE_DIR}/model{spec.artifact_type.suffixes[0]}"
    adb("push", str(binary), device_binary)
    adb("push", str(spec.artifact), model)
    for name in tool.libraries:
        if (binary.parent / name).is_file():
            adb("push", str(binary.parent / name), f"{DEVICE_DIR}/{name}")
    adb("shell", f"chmod 755 {device_binary}")
    prefix = ["env", f"LD_LIBRARY_PATH={DEVICE_DIR}"]
    if big_core_mask:
        prefix += ["taskset", big_core_mask]
    runs = []
    units = ["cpu"] + (["gpu"] if use_gpu else [])
    for unit in units:
        words = tool.argv(device_binary, model, spec, unit)
        proc = adb.shell((prefix if unit == "cpu" else prefix[:2]) + words)
        text = proc.stdout + "\n" + proc.stderr
        try:
            parsed = tool.parse(text)
        except ValueError:
            if unit != "gpu":
                raise TargetUnreachable(f"adb {serial}: {tool.name} ({unit}) printed no timings: "
                                        f"{last_line(text)}") from None
            # a failed GPU delegation ends the tool before any timing: record the failure, not a latency
            parsed = {"tool": tool.name, "latency_ms": None, "delegation": parse_delegation(text).to_dict()}
        if unit == "gpu" and "delegation" not in parsed:
            parsed["delegation"] = parse_delegation(text).to_dict()
        runs.append({"unit": unit, "tool": tool.name, "parsed": parsed, "raw": text[-6000:],
                     "command": " ".join(shlex.quote(w) for w in words), "returncode": proc.returncode})
    adb("shell", f"rm -rf {DEVICE_DIR}", check=False)
    return runs


@dataclass(frozen=True)
class AdbConfig:
    """The phone and the benchmark binary the user built for it."""

    serial: str
    benchmark_binary: str
    adb_binary: str | None = None
    use_gpu: bool = False                 # also a GPU-delegate run (a tool with a "gpu" unit)
    big_core_mask: str | None = None      # taskset mask for the CPU runs (the target's big cores)


@register_runner("adb")
class AdbRunner:
    """An Android phone over adb: the format's native tool on the CPU (and the GPU delegate)."""

    config_type = AdbConfig

    def __init__(self, config: AdbConfig, on_progress: OnProgress | None = None) -> None:
        self.config, self.on_progress = config, on_progress   # the native tools report no progress

    def describe(self, spec: RunSpec) -> str:
        c = self.config
        return (f" (adb {c.serial}): {Path(c.benchmark_binary).name}, {spec.warmup} warm-up and {spec.runs} timed "
                f"runs" + (", then on the GPU" if c.use_gpu else ""))

    def measure(self, spec: RunSpec) -> list[Measurement]:
        c = self.config
        out = []
        for run in run_adb(spec, c.serial, c.benchmark_binary, c.adb_binary, c.use_gpu, c.big_core_mask):
            p = run["parsed"]
            lat = {k: p["latency_ms"][k] for k in ("mean", "p50", "p90", "p99", "std") if k in (p["latency_ms"] or {})}
            mem = p.get("peak_memory_bytes")
            if mem is None and p.get("memory_mb"):
                mem = int(p["memory_mb"]["overall"] * 1e6)
            details = {"tool": run["tool"], "command": run["command"], "parsed": p}
            if run["unit"] == "gpu":
                verdict = gpu_verdict(p, lat)
                lat = verdict.pop("latency_ms", lat)
                details.update(verdict)
            out.append(Measurement(
                runner="adb", kind=MEASURED, threads=spec.threads, batch=spec.batch, seq_len=spec.seq_len,
                unit=run["unit"], latency_ms=lat, load_ms=p.get("init_ms") or p.get("session_creation_ms"),
                peak_memory_bytes=mem, device={"where": "adb", "serial": c.serial}, details=details,
                raw={f"adb_{run['unit']}": run["raw"]}, result=run))
        return out


def gpu_verdict(parsed: dict[str, Any], lat: dict[str, float]) -> dict[str, Any]:
    """A GPU-delegate row: a latency only when the delegate took the whole graph."""
    d = parsed.get("delegation") or {"status": UNKNOWN}
    verdict = Delegation(**{**d, "unsupported": tuple(d.get("unsupported", ())), "lines": tuple(d.get("lines", ()))})
    out: dict[str, Any] = {"delegation": verdict.to_dict()}
    if not verdict.is_gpu_latency:
        out["latency_ms"] = None
        out["mixed_latency_ms"] = lat or None   # CPU fallback or CPU+GPU mix: kept, never called a GPU time
        out["note"] = verdict.describe()
    return out
