"""What ``benchmark_model`` says about the GPU delegate: created, fully / partially applied, or failed.

The tool prints one verdict line after it applies a delegate (tensorflow/lite/tools/benchmark/
benchmark_tflite_model.cc), e.g. ``Explicitly applied GPU delegate, and the model graph will be completely
executed by the delegate.``; the GPU delegate itself logs ``Replacing N out of M node(s) with delegate
(TfLiteGpuDelegateV2) node, yielding K partitions`` and ``N operations will run on the GPU, and the remaining
M operations will run on the CPU.`` Only a *full* delegation makes a run's time a GPU latency.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

FULL, PARTIAL, NONE, FAILED, UNKNOWN = "full", "partial", "none", "failed", "unknown"

_FULL_RE = re.compile(r"Explicitly applied (\w+) delegate, and the model graph will be completely executed")
_PARTIAL_RE = re.compile(r"Explicitly applied (\w+) delegate, and the model graph will be partially executed by the "
                         r"delegate w/ (\d+) delegate kernels")
_NOT_RE = re.compile(r"Though (\w+) delegate is explicitly applied, the model graph will not be executed")
_FAILED_RE = re.compile(r"Failed to apply (?:the )?(\w+)? ?delegate[^\n]*")
_REPLACING_RE = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\) node, yielding (\d+) partition")
_SPLIT_RE = re.compile(r"(\d+) operations will run on the GPU, and the remaining (\d+) operations? will run on the CPU")
_FIRST_RE = re.compile(r"First (\d+) operations will run on the GPU, and the remaining (\d+) on the CPU")
_KERNELS_RE = re.compile(r"Created (\d+) GPU delegate kernels")


@dataclass(frozen=True)
class Delegation:
    """The GPU delegate's verdict in one ``benchmark_model`` log."""

    status: str                                 # full | partial | none | failed | unknown
    created: bool = False                       # "Created TensorFlow Lite delegate for GPU."
    delegate_kernels: int | None = None         # partitions the delegate runs
    nodes_delegated: int | None = None
    nodes_total: int | None = None
    unsupported: tuple[str, ...] = ()           # "UNPACK: Operation is not supported."
    lines: tuple[str, ...] = field(default_factory=tuple)  # the tool's own lines this verdict rests on

    @property
    def is_gpu_latency(self) -> bool:
        return self.status == FULL

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unsupported"], d["lines"] = list(self.unsupported), list(self.lines)
        return d

    def describe(self) -> str:
        if self.status == FULL:
            return "GPU delegate applied to the whole graph"
        nodes = (f" ({self.nodes_delegated} of {self.nodes_total} nodes on the GPU)"
                 if self.nodes_delegated is not None and self.nodes_total is not None else "")
        if self.status == PARTIAL:
            return f"GPU delegate only partially applied{nodes}; the rest ran on the CPU: not a GPU latency"
        if self.status == NONE:
            return "GPU delegate applied to no node; everything ran on the CPU: not a GPU latency"
        if self.status == FAILED:
            return "GPU delegate failed to apply: not a GPU latency"
        return "benchmark_model printed no delegation verdict: not a GPU latency"


def _clean(line: str) -> str:
    """A log line without logcat / INFO prefixes."""
    line = re.sub(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+\S+\s*:\s*", "", line.strip())
    return re.sub(r"^(?:INFO|ERROR|WARNING|VERBOSE):\s*", "", line)


def parse_delegation(text: str) -> Delegation:
    """The GPU delegation verdict of one ``benchmark_model`` run (``unknown`` when the log has none)."""
    lines = [_clean(ln) for ln in text.splitlines()]
    created = any("Created TensorFlow Lite delegate for GPU" in ln or ln == "GPU delegate created." for ln in lines)
    kept: list[str] = []
    status, kernels, done, total = UNKNOWN, None, None, None
    unsupported: list[str] = []
    in_unsupported = False
    for ln in lines:
        if "not supported by GPU delegate" in ln:
            in_unsupported = True
            kept.append(ln)
            continue
        if in_unsupported:
            m = re.match(r"([A-Z_0-9]+):\s*(.*)", ln)
            if m:
                unsupported.append(ln)
                continue
            in_unsupported = False
        if m := _REPLACING_RE.search(ln):
            done, total = int(m.group(1)), int(m.group(2))
            kernels = kernels if kernels is not None else int(m.group(4))
            kept.append(ln)
        elif m := (_SPLIT_RE.search(ln) or _FIRST_RE.search(ln)):
            done, total = int(m.group(1)), int(m.group(1)) + int(m.group(2))
            kept.append(ln)
        elif m := _KERNELS_RE.search(ln):
            kernels = int(m.group(1))
            kept.append(ln)
        elif m := _FULL_RE.search(ln):
            if m.group(1).upper() == "GPU":
                status = FULL
                kept.append(ln)
        elif m := _PARTIAL_RE.search(ln):
            if m.group(1).upper() == "GPU":
                status, kernels = PARTIAL, int(m.group(2))
                kept.append(ln)
        elif m := _NOT_RE.search(ln):
            if m.group(1).upper() == "GPU":
                status = NONE
                kept.append(ln)
        elif _FAILED_RE.search(ln) and ("GPU" in ln or "Gpu" in ln or created):
            status = FAILED
            kept.append(ln)
    if status == FULL and done is not None and total is not None and done < total:
        status = PARTIAL  # the node counts contradict "completely": trust the counts
    return Delegation(status=status, created=created, delegate_kernels=kernels, nodes_delegated=done,
                      nodes_total=total, unsupported=tuple(unsupported), lines=tuple(kept))
