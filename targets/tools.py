"""The native benchmark binaries a device may carry, each with its argv builder and its output parser.

A :class:`edgeprune.formats.Format` names its tool here (``device_tool``); the SSH runner runs it when
the device has it on PATH, the adb runner pushes the one the user built. Parsers: :mod:`.parsers`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .parsers import parse_benchmark_model, parse_perf_test

if TYPE_CHECKING:
    from .base import RunSpec


@dataclass(frozen=True)
class DeviceTool:
    """``argv(binary, model, spec, unit)``: the command line; ``parse(text)``: its numbers (ValueError if none)."""

    name: str
    argv: Callable[[str, str, "RunSpec", str], list[str]]
    parse: Callable[[str], dict[str, Any]]
    units: tuple[str, ...] = ("cpu",)   # compute units it can target ("gpu": a delegate)
    binary_mark: str = ""                # a user's binary is this tool when its file name holds this
    foreign_mark: str | None = None      # ... and does not hold this (another tool's mark)
    libraries: tuple[str, ...] = ()      # shared libraries pushed beside the binary when found next to it

    def runs(self, binary_name: str) -> bool:
        """Whether a binary of this file name is this tool."""
        return self.binary_mark in binary_name and not (self.foreign_mark and self.foreign_mark in binary_name)


def _perf_test_argv(binary: str, model: str, spec: RunSpec, unit: str = "cpu") -> list[str]:
    return [binary, "-e", "cpu", "-m", "times", "-r", str(max(1, spec.runs)), "-x", str(spec.threads), "-s", "-I",
            "-f", f"batch:{spec.batch}", "-f", f"seq:{spec.seq_len}", model]


def _benchmark_model_argv(binary: str, model: str, spec: RunSpec, unit: str = "cpu") -> list[str]:
    words = [binary, f"--graph={model}", f"--num_threads={spec.threads}", f"--warmup_runs={spec.warmup}",
             f"--num_runs={max(1, spec.runs)}"]
    return words + (["--use_gpu=true"] if unit == "gpu" else [f"--use_xnnpack={'true' if spec.xnnpack else 'false'}"])


ONNXRUNTIME_PERF_TEST = DeviceTool("onnxruntime_perf_test", _perf_test_argv, parse_perf_test,
                                   binary_mark="perf_test", libraries=("libonnxruntime.so",))
BENCHMARK_MODEL = DeviceTool("benchmark_model", _benchmark_model_argv, parse_benchmark_model, ("cpu", "gpu"),
                             foreign_mark="perf_test")
