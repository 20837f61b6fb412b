"""Device targets (one TOML per device) and the runners that reach them, each in one registry.

A target is data: cores, clock, per-dtype peaks, memory bandwidth, ISA flags, the qemu CPU model and
the sources of those figures. Built-in TOMLs live beside this file; a user adds a device by dropping a
TOML into a directory named by ``$EDGEPRUNE_TARGETS`` (``os.pathsep``-separated) or ``--targets-dir``.
Runners (``host``, ``ssh``, ``adb``, ``emulate``) are classes of the :class:`~.measurement.Runner` protocol,
each with its typed config, registered with :func:`register_runner`.
"""
from __future__ import annotations

import importlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgeprune.errors import ConfigError

if TYPE_CHECKING:
    from .measurement import Runner

BUILTIN_DIR = Path(__file__).resolve().parent
ENV_VAR = "EDGEPRUNE_TARGETS"
DTYPES = ("fp32", "fp16", "int8")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class GPU:
    model: str
    fp32_gflops: float
    fp16_gflops: float
    int8_gops: float
    efficiency: float

    def peak_gflops(self, dtype: str) -> float:
        return {"fp32": self.fp32_gflops, "fp16": self.fp16_gflops, "int8": self.int8_gops}[dtype]


@dataclass(frozen=True)
class Target:
    """One device class; figures per core so that a thread count scales them."""

    name: str
    description: str
    cpu_model: str
    cores: int
    clock_ghz: float
    flops_per_cycle: dict[str, float]   # per core, keys fp32 / fp16 / int8
    isa: tuple[str, ...]
    efficiency: float
    bandwidth_gbs: float
    theoretical_gbs: float | None = None
    qemu_cpu: str | None = None
    cpuinfo: dict[str, Any] = field(default_factory=dict)
    big_core_mask: str | None = None
    gpu: GPU | None = None
    sources: dict[str, str] = field(default_factory=dict)
    path: str = ""

    def peak_gflops(self, dtype: str = "fp32", threads: int | None = None) -> float:
        """Peak GFLOP/s (GOP/s for int8) on ``threads`` cores (all cores when None)."""
        n = self.cores if threads is None else max(1, min(int(threads), self.cores))
        return self.flops_per_cycle[dtype] * self.clock_ghz * n

    def cpuinfo_text(self, n_cpus: int) -> str:
        """A /proc/cpuinfo for the emulated guest (the runtimes' cpuinfo parsers need an ARM one)."""
        if not self.cpuinfo:
            raise ConfigError(f"target {self.name!r} has no [qemu] cpuinfo fields; it cannot be emulated")
        block = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
                 "CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n\n")
        return "".join(block.format(i=i, **self.cpuinfo) for i in range(max(1, n_cpus)))

    @property
    def arch(self) -> str | None:
        """aarch64 / x86_64 from the ISA flags (None when they say neither)."""
        if "asimd" in self.isa:
            return "aarch64"
        if set(self.isa) & {"x86_64", "avx2", "avx512f", "sse4_2"}:
            return "x86_64"
        return None

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "cpu": self.cpu_model, "cores": self.cores,
                "clock_ghz": self.clock_ghz,
                "peak_gflops": {d: round(self.peak_gflops(d), 2) for d in DTYPES},
                "bandwidth_gbs": self.bandwidth_gbs, "efficiency": self.efficiency, "qemu_cpu": self.qemu_cpu,
                "gpu": self.gpu.model if self.gpu else None, "path": self.path}


# ----------------------------------------------------------------------------------------- validation
_SCHEMA: dict[str, set[str]] = {
    "": {"name", "description", "detect", "cpu", "memory", "qemu", "gpu", "sources"},
    "cpu": {"model", "cores", "clock_ghz", "fp32_flops_per_cycle", "fp16_flops_per_cycle", "int8_ops_per_cycle",
            "isa", "efficiency", "big_core_mask"},
    "memory": {"bandwidth_gbs", "theoretical_gbs"},
    "qemu": {"cpu", "cpuinfo_part", "cpuinfo_variant", "cpuinfo_revision", "cpuinfo_features"},
    "gpu": {"model", "fp32_gflops", "fp16_gflops", "int8_gops", "efficiency"},
}
QEMU_CPUS = ("cortex-a35", "cortex-a53", "cortex-a57", "cortex-a72", "cortex-a76", "neoverse-n1", "a64fx", "max")


class _Checker:
    def __init__(self, path: Path, data: dict[str, Any]):
        self.path, self.data = path, data

    def fail(self, msg: str) -> None:
        raise ConfigError(f"target file {self.path}: {msg}")

    def table(self, key: str, required: bool = True) -> dict[str, Any]:
        v = self.data.get(key)
        if v is None:
            if required:
                self.fail(f"missing table [{key}]")
            return {}
        if not isinstance(v, dict):
            self.fail(f"[{key}] must be a table")
        unknown = set(v) - _SCHEMA.get(key, set(v))
        if unknown:
            self.fail(f"unknown key(s) {sorted(unknown)} in [{key}]; valid: {sorted(_SCHEMA[key])}")
        return v

    def num(self, tbl: dict[str, Any], key: str, where: str, *, required: bool = True, integer: bool = False,
            maximum: float | None = None) -> Any:
        v = tbl.get(key)
        if v is None:
            if required:
                self.fail(f"missing {where}.{key}")
            return None
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or v <= 0 or (maximum is not None and v > maximum):
            kind = "a positive integer" if integer else "a positive number"
            rng = f" <= {maximum}" if maximum is not None else ""
            self.fail(f"{where}.{key} must be {kind}{rng} (got {v!r})")
        return v

    def text(self, tbl: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
        v = tbl.get(key)
        if v is None:
            if required:
                self.fail(f"missing {where}.{key}")
            return None
        if not isinstance(v, str) or not v.strip():
            self.fail(f"{where}.{key} must be a non-empty string (got {v!r})")
        return v


def parse_target(path: str | os.PathLike[str], data: dict[str, Any] | None = None) -> Target:
    """Validate one target TOML; every problem is a ConfigError naming the file and the key."""
    path = Path(path)
    if data is None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"target file {path}: not valid TOML ({e})") from None
        except OSError as e:
            raise ConfigError(f"target file {path}: cannot be read ({e.strerror})") from None
    c = _Checker(path, data)
    unknown = set(data) - _SCHEMA[""]
    if unknown:
        c.fail(f"unknown top-level key(s) {sorted(unknown)}; valid: {sorted(_SCHEMA[''])}")
    name = c.text(data, "name", "")
    assert name is not None
    if not _NAME_RE.match(name):
        c.fail(f"name {name!r} must be lowercase letters, digits, '-' or '_'")
    if name != path.stem:
        c.fail(f"name {name!r} must match the file name ({path.stem}.toml)")
    cpu, mem = c.table("cpu"), c.table("memory")
    qemu, gpu_t, sources = c.table("qemu", False), c.table("gpu", False), c.table("sources", False)
    isa = cpu.get("isa", [])
    if not isinstance(isa, list) or not all(isinstance(x, str) for x in isa):
        c.fail("cpu.isa must be a list of strings")
    if not all(isinstance(v, str) for v in sources.values()):
        c.fail("[sources] values must be strings")
    cores = c.num(cpu, "cores", "cpu", integer=True)
    clock = c.num(cpu, "clock_ghz", "cpu", maximum=10)
    if data.get("detect") is True:
        cores, clock = _detect_host(cores, clock)
    fpc = {"fp32": c.num(cpu, "fp32_flops_per_cycle", "cpu"), "fp16": c.num(cpu, "fp16_flops_per_cycle", "cpu"),
           "int8": c.num(cpu, "int8_ops_per_cycle", "cpu")}
    qemu_cpu = c.text(qemu, "cpu", "qemu", required=bool(qemu))
    if qemu_cpu is not None and qemu_cpu not in QEMU_CPUS:
        c.fail(f"qemu.cpu {qemu_cpu!r} is not a qemu-aarch64 CPU model; valid: {', '.join(QEMU_CPUS)}")
    cpuinfo: dict[str, Any] = {}
    if qemu:
        cpuinfo = {"part": c.text(qemu, "cpuinfo_part", "qemu"), "variant": qemu.get("cpuinfo_variant", "0x0"),
                   "revision": qemu.get("cpuinfo_revision", 0),
                   "features": c.text(qemu, "cpuinfo_features", "qemu")}
    mask = cpu.get("big_core_mask")
    if mask is not None and (not isinstance(mask, str) or not re.fullmatch(r"[0-9a-fA-F]+", mask)):
        c.fail(f"cpu.big_core_mask must be a hex taskset mask like 'f0' (got {mask!r})")
    gpu = None
    if gpu_t:
        gpu = GPU(model=c.text(gpu_t, "model", "gpu") or "", fp32_gflops=c.num(gpu_t, "fp32_gflops", "gpu"),
                  fp16_gflops=c.num(gpu_t, "fp16_gflops", "gpu"), int8_gops=c.num(gpu_t, "int8_gops", "gpu"),
                  efficiency=c.num(gpu_t, "efficiency", "gpu", maximum=1))
    return Target(
        name=name, description=c.text(data, "description", "") or "", cpu_model=c.text(cpu, "model", "cpu") or "",
        cores=cores, clock_ghz=float(clock), flops_per_cycle={k: float(v) for k, v in fpc.items()},
        isa=tuple(isa), efficiency=float(c.num(cpu, "efficiency", "cpu", maximum=1)),
        bandwidth_gbs=float(c.num(mem, "bandwidth_gbs", "memory")),
        theoretical_gbs=c.num(mem, "theoretical_gbs", "memory", required=False), qemu_cpu=qemu_cpu,
        cpuinfo=cpuinfo, big_core_mask=mask, gpu=gpu, sources=dict(sources), path=str(path))


def _detect_host(cores: int, clock: float) -> tuple[int, float]:
    """Cores from the scheduler affinity and clock from /proc/cpuinfo (``cpu MHz``), when readable."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or cores
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("cpu mhz"):
                clock = round(float(line.split(":", 1)[1]) / 1000.0, 3)
                break
    except (OSError, ValueError):
        pass
    return cores, clock


def target_dirs(extra: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None) -> list[Path]:
    dirs = [BUILTIN_DIR]
    env = os.environ.get(ENV_VAR)
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    if extra:
        dirs += [Path(p) for p in (extra if isinstance(extra, list) else [extra])]
    for d in dirs[1:]:
        if not d.is_dir():
            raise ConfigError(f"targets directory {d} does not exist (from ${ENV_VAR} or --targets-dir)")
    return dirs


def load_targets(extra: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None) -> dict[str, Target]:
    """All targets: built-ins first; a later directory's file with the same name overrides."""
    out: dict[str, Target] = {}
    for d in target_dirs(extra):
        for p in sorted(d.glob("*.toml")):
            t = parse_target(p)
            out[t.name] = t
    return out


def get_target(name: str, extra: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None) -> Target:
    targets = load_targets(extra)
    if name not in targets:
        raise ConfigError(f"unknown target {name!r}; known: {', '.join(sorted(targets))} "
                          f"(add one as a TOML file in --targets-dir or ${ENV_VAR})")
    return targets[name]


def same_arch(machine: str | None, arch: str | None) -> bool:
    """Whether ``platform.machine()`` of a device names the architecture ``arch``."""
    norm = {"arm64": "aarch64", "aarch64": "aarch64", "amd64": "x86_64", "x86_64": "x86_64"}
    return bool(machine) and norm.get(str(machine).lower(), str(machine).lower()) == arch


# ------------------------------------------------------------------------------------------- runners
RUNNERS: dict[str, type[Runner]] = {}
RUNNER_MODULES = ("host", "ssh", "adb", "emulate")   # runner name -> the module of this package that registers it


def register_runner(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.name = name  # type: ignore[attr-defined]
        RUNNERS[name] = cls
        return cls
    return deco


def get_runner(name: str) -> type[Runner]:
    """The runner class ``name`` (its module imported on first use)."""
    if name not in RUNNER_MODULES:
        raise ConfigError(f"unknown runner {name!r}; valid: {', '.join(RUNNER_MODULES)}")
    importlib.import_module(f"{__name__}.{name}")
    return RUNNERS[name]
