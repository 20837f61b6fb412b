"""What every runner returns: :class:`Measurement`, one per run, and the :class:`Runner` protocol.

A runner is built from its own typed config (``HostConfig``, ``SSHConfig``, ``AdbConfig``,
``EmulateConfig``) and measures a :class:`~.base.RunSpec`; ``profile`` only labels the rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .stats import summarize

if TYPE_CHECKING:
    from .base import OnProgress, RunSpec

MEASURED, EMULATED = "measured", "emulated"
LATENCY_KEYS = ("mean", "p10", "p50", "p90", "p99", "std")   # the statistics a measured row reports


@dataclass(frozen=True)
class Measurement:
    """One run of one artifact, the same shape from every runner; :meth:`row` is its profile.json entry.

    ``details`` are the runner's own report fields (engine version, tool, delegation verdict, instruction
    counts), ``raw`` the tools' output kept under the report's ``raw``, ``result`` the runner's full answer
    (the remote_runner.py JSON or the parsed tool output) for callers that need more than the report.
    """

    runner: str
    kind: str                                    # measured | emulated (instruction counts, never a latency)
    threads: int
    batch: int
    seq_len: int
    inputs: dict[str, list[int]] | None = None   # the shapes fed (None: the runner cannot tell)
    engine: str | None = None                    # remote_runner.py's engine; None for a native device tool
    unit: str | None = None                      # cpu | gpu where the runner tells them apart
    latency_ms: dict[str, float] | None = None   # statistics of the timed runs
    samples_ms: tuple[float, ...] = ()           # the timed runs themselves, when the runner has them
    load_ms: float | None = None
    peak_memory_bytes: int | None = None
    machine: str | None = None                   # platform.machine() where it ran
    cpu: str | None = None                       # the CPU model where it ran
    device: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)

    def row(self, target: str) -> dict[str, Any]:
        """The profile.json result row, recorded under ``target``."""
        row: dict[str, Any] = {"target": target, "kind": self.kind, "runner": self.runner}
        if self.unit is not None:
            row["unit"] = self.unit
        if self.engine is not None:
            row["engine"] = self.engine
        row.update({"inputs": self.inputs, "threads": self.threads, "batch": self.batch, "seq_len": self.seq_len})
        if self.kind == MEASURED:   # an emulated row holds instruction counts, never a latency or a device
            row.update({"device": dict(self.device), "latency_ms": self.latency_ms, "load_ms": self.load_ms,
                        "peak_memory_bytes": self.peak_memory_bytes})
        row.update(self.details)
        return row


def runner_measurement(res: dict[str, Any], runner: str, **device: Any) -> Measurement:
    """A remote_runner.py answer (host or SSH device) as a measured :class:`Measurement`."""
    stats = summarize(res["latencies_ms"])
    return Measurement(
        runner=runner, kind=MEASURED, threads=res["threads"], batch=res["batch"], seq_len=res["seq_len"],
        inputs=res.get("inputs"), engine=res["engine"], latency_ms={k: stats[k] for k in LATENCY_KEYS},
        samples_ms=tuple(res["latencies_ms"]), load_ms=res["load_ms"], peak_memory_bytes=res.get("peak_rss_bytes"),
        machine=res.get("machine"), cpu=res.get("cpu"),
        device={"where": runner, "machine": res.get("machine"), "cpu": res.get("cpu"), **device},
        details={"runtime_version": res.get("runtime_version"), "xnnpack": res.get("xnnpack"),
                 "rss_after_load_bytes": res.get("rss_after_load_bytes"), "rss_start_bytes": res.get("rss_start_bytes"),
                 "runs": len(res["latencies_ms"]), "machine": res.get("machine"), "cpu": res.get("cpu")},
        result=res)


class Runner(Protocol):
    """``RunnerClass(config, on_progress=None).measure(spec) -> list[Measurement]``."""

    name: ClassVar[str]
    config_type: ClassVar[type]

    def __init__(self, config: Any, on_progress: OnProgress | None = None) -> None: ...

    def describe(self, spec: RunSpec) -> str:
        """What the run is about to do, for the stage line after the target's name ("" for nothing)."""
        ...

    def measure(self, spec: RunSpec) -> list[Measurement]: ...
