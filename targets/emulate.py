"""Emulated aarch64: the real aarch64 wheels under qemu-user with the target's CPU model.

Counts the instructions of K inferences (marked by the runner with syscall 4095) with the edgeprune
TCG plugin, single thread and PYTHONHASHSEED=0. On a quiet host the count repeats exactly; under host CPU
contention onnxruntime's count drifts by up to ~0.2% (measured: five runs at nice 19 beside two training
jobs spread 0.19%, the same with an exact per-instruction count and with qemu's reserved guest address
space, so it is the guest taking timing-dependent paths, not the counter). Compares the outputs with
the host's. Emulated wall time is never a device latency and is reported only as ``emulation_wall_s``.
Set-up (sysroot, wheels, plugin) comes from ``scripts/setup-test-system.sh``.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.errors import ConfigError, NumericMismatchError, TargetUnreachable

from . import Target, register_runner
from .base import RUNNER_SCRIPT, OnProgress, RunSpec, last_line, parse_runner_output, run_checked
from .host import run_host
from .measurement import EMULATED, Measurement

CACHE_ENV = "EDGEPRUNE_AARCH64_CACHE"
SETUP_HINT = "run `bash scripts/setup-test-system.sh` as root from the edgeprune checkout"
COUNT_RE = re.compile(r"edgeprune-insncount regions=(\d+) instructions=(\d+)")
RTOL, ATOL = 1e-4, 1e-5


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".cache" / "aarch64"


def check_setup(cache: Path | None = None) -> dict[str, Path]:
    """Paths of the emulation set-up; a TargetUnreachable naming what is missing and how to get it."""
    cache = cache or cache_dir()
    paths = {"python": cache / "sysroot" / "usr" / "bin" / "python3.11", "site": cache / "site",
             "plugin": cache / "libinsncount.so", "sysroot": cache / "sysroot"}
    missing = [k for k, p in paths.items() if not p.exists()]
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        missing.append("qemu-aarch64 (Debian package qemu-user)")
    if missing:
        raise TargetUnreachable(f"emulation is not set up in {cache} (missing: {', '.join(missing)}); {SETUP_HINT}")
    paths["qemu"] = Path(qemu)
    return paths


def guest_root(target: Target, cache: Path) -> Path:
    """A -L prefix for ``target``: the shared sysroot plus this target's fake /proc/cpuinfo."""
    root = cache / "roots" / target.name
    (root / "proc").mkdir(parents=True, exist_ok=True)
    for entry in ("usr", "lib", "etc"):
        link = root / entry
        if not link.is_symlink():
            link.symlink_to(cache / "sysroot" / entry)
    text = target.cpuinfo_text(os.cpu_count() or 1)
    cpuinfo = root / "proc" / "cpuinfo"
    if not cpuinfo.exists() or cpuinfo.read_text() != text:
        tmp = cpuinfo.with_name(f".cpuinfo.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, cpuinfo)
    return root


def emulate_once(spec: RunSpec, target: Target, marked_runs: int = 2, save_outputs: str | None = None,
                 cache: Path | None = None) -> dict[str, Any]:
    """One emulated process: warm-up, then ``marked_runs`` counted inferences; no timed runs."""
    if not target.qemu_cpu:
        raise ConfigError(f"target {target.name!r} has no [qemu] cpu model; emulate one of the Pi targets")
    if marked_runs < 1:
        raise ConfigError("marked_runs must be at least 1")
    paths = check_setup(cache)
    cache = paths["sysroot"].parent
    root = guest_root(target, cache)
    with tempfile.TemporaryDirectory(prefix="edgeprune-qemu-") as tmp:
        log = Path(tmp) / "plugin.log"
        args = spec.runner_args(str(Path(spec.artifact).resolve()))
        # single thread, no timed runs: only the counted region matters under emulation
        args[args.index("--threads") + 1] = "1"
        args[args.index("--runs") + 1] = "0"
        args[args.index("--warmup") + 1] = str(max(1, spec.warmup if spec.warmup < 3 else 2))
        # always the same argv and environment layout (same-length temp paths): the guest stack, and with
        # it buffer alignments inside memcpy & co, then sits at the same address and the count repeats
        guest_out = Path(tmp) / "outputs.npz"
        args += ["--mark", str(marked_runs), "--save-outputs", str(guest_out)]
        cmd = [str(paths["qemu"]), "-L", str(root), "-cpu", target.qemu_cpu, "-plugin", str(paths["plugin"]),
               "-d", "plugin", "-D", str(log), str(paths["python"]), str(RUNNER_SCRIPT), *args]
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(paths["site"]), "OMP_NUM_THREADS": "1",
               "TF_CPP_MIN_LOG_LEVEL": "3", "LC_ALL": "C"}
        t0 = time.perf_counter()
        proc = run_checked(cmd, f"emulated {target.name}", spec.timeout_s, env=env, cwd=tmp)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            why = last_line(proc.stderr or proc.stdout)
            if proc.returncode in (-4, 132) or "Illegal instruction" in (proc.stderr or ""):
                why = f"illegal instruction: the runtime needs an ISA feature {target.qemu_cpu} lacks ({why})"
            raise TargetUnreachable(f"emulated {target.name} ({target.qemu_cpu}) run failed: {why}")
        res = parse_runner_output(proc.stdout, f"emulated {target.name}")
        m = COUNT_RE.search(log.read_text() if log.exists() else "")
        if not m or int(m.group(1)) != 1:
            raise TargetUnreachable(f"emulated {target.name}: the count plugin reported no marked region; {SETUP_HINT}")
        total = int(m.group(2))
        if save_outputs:
            shutil.copyfile(guest_out, save_outputs)
    res.pop("latencies_ms", None)
    res.update({"instructions": total // marked_runs, "instructions_total": total, "marked_runs": marked_runs,
                "qemu_cpu": target.qemu_cpu, "emulation_wall_s": round(wall, 2)})
    return res


def compare_outputs(host_npz: str, guest_npz: str) -> tuple[bool, float]:
    import numpy as np

    a, b = np.load(host_npz), np.load(guest_npz)
    if sorted(a.files) != sorted(b.files):
        return False, float("inf")
    worst, ok = 0.0, True
    for k in a.files:
        x, y = a[k].astype("float64"), b[k].astype("float64")
        if x.shape != y.shape:
            return False, float("inf")
        worst = max(worst, float(np.abs(x - y).max()) if x.size else 0.0)
        ok = ok and bool(np.allclose(x, y, rtol=RTOL, atol=ATOL))
    return ok, worst


def run_emulate(spec: RunSpec, target: Target, marked_runs: int = 2, check_outputs: bool = True,
                cache: Path | None = None) -> dict[str, Any]:
    """Emulated run on ``target`` with an instruction count and, by default, an output check against the host."""
    with tempfile.TemporaryDirectory(prefix="edgeprune-emu-") as tmp:
        guest = os.path.join(tmp, "guest.npz")
        res = emulate_once(spec, target, marked_runs, save_outputs=guest, cache=cache)
        if check_outputs:
            host = os.path.join(tmp, "host.npz")
            host_spec = RunSpec(spec.artifact, threads=1, batch=spec.batch, seq_len=spec.seq_len, warmup=1, runs=0,
                                xnnpack=spec.xnnpack, timeout_s=spec.timeout_s)
            run_host(host_spec, save_outputs=host)
            ok, worst = compare_outputs(host, guest)
            res.update({"outputs_match_host": ok, "max_abs_diff_vs_host": worst})
            if not ok:
                raise NumericMismatchError(
                    f"emulated {target.name} outputs differ from the host's (max abs diff {worst:.3g} > "
                    f"rtol {RTOL}/atol {ATOL}): the aarch64 kernels disagree with x86 for {spec.artifact}")
    return res


@dataclass(frozen=True)
class EmulateConfig:
    """The emulated device class and how many inferences to count."""

    target: Target
    marked_runs: int = 2
    check_outputs: bool = True           # compare the guest's outputs with the host's
    cache: Path | None = None            # the emulation set-up (default: $EDGEPRUNE_AARCH64_CACHE or .cache)

    def __post_init__(self) -> None:
        if not self.target.qemu_cpu:
            raise ConfigError(f"target {self.target.name!r} has no [qemu] cpu model; emulate one of the Pi targets")
        if self.marked_runs < 1:
            raise ConfigError("marked_runs must be at least 1")


@register_runner("emulate")
class EmulateRunner:
    """qemu-aarch64 with the target's CPU model: an instruction count per inference, never a latency."""

    config_type = EmulateConfig

    def __init__(self, config: EmulateConfig, on_progress: OnProgress | None = None) -> None:
        self.config, self.on_progress = config, on_progress   # the emulated run reports no progress

    def describe(self, spec: RunSpec) -> str:
        c = self.config
        return f" (emulated): qemu-aarch64 {c.target.qemu_cpu}, counting the instructions of {c.marked_runs} runs"

    def measure(self, spec: RunSpec) -> list[Measurement]:
        c = self.config
        res = run_emulate(spec, c.target, c.marked_runs, c.check_outputs, c.cache)
        return [Measurement(
            runner="emulate", kind=EMULATED, threads=1, batch=spec.batch, seq_len=spec.seq_len,
            inputs=res.get("inputs"), engine=res["engine"], machine=res.get("machine"), cpu=res.get("cpu"),
            details={"qemu_cpu": res["qemu_cpu"], "instructions": res["instructions"],
                     "instructions_total": res["instructions_total"], "marked_runs": res["marked_runs"],
                     "outputs_match_host": res.get("outputs_match_host"),
                     "max_abs_diff_vs_host": res.get("max_abs_diff_vs_host"),
                     "emulation_wall_s": res["emulation_wall_s"],
                     "note": "instruction count per inference; emulated wall time is not a device latency"},
            result=res)]
