"""One record per artifact type: how it is recognised, made, run, counted, costed and benchmarked.

Everything that used to branch on a suffix or a format name (the exporter, the engine of
``targets/remote_runner.py``, the parameter counter, the roofline's cost walker, the native device tool)
is a field of a :class:`Format` here. A new artifact type is one new record (plus the modules its
references name). The functions are referenced as ``"module:attribute"`` and imported on first use, the
way :mod:`edgeprune.exporters` names its modules: looking up a format never imports onnx, LiteRT or
torch, and the modules that hold the functions may themselves look formats up.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Format:
    """An artifact type. Function references are ``"module:attribute"``; None where the type has none."""

    name: str                        # the format name of manifests and reports ("onnx", "tflite", "hf")
    suffixes: tuple[str, ...]        # file suffixes, lower case; () for a folder format
    exporter: str                    # the name :func:`edgeprune.exporters.get_exporter` knows
    engine: str | None = None        # the engine of targets/remote_runner.py (--engine) that runs it
    param_counter: str | None = None  # (path) -> edgeprune.budget.params.ParamCount
    file_lister: str | None = None   # (path) -> edgeprune.budget.params.ArtifactFiles: what a device holds
    cost_walker: str | None = None   # (path, batch, seq_len) -> list of roofline OpCost
    io_reader: str | None = None     # (path) -> edgeprune.profiling.shapes.ArtifactIO: declared inputs, dtype
    device_tool: str | None = None   # an edgeprune.targets.tools.DeviceTool (native benchmark binary)
    xnnpack: bool = False            # its engine can run with or without the XNNPACK delegate
    gpu_delegate: bool = False       # a supported device tool can put it on a mobile GPU

    @property
    def profilable(self) -> bool:
        """An artifact file that the runners can measure."""
        return self.engine is not None

    def count_params(self, path: str | os.PathLike[str]) -> Any:
        return resolve(self._need("param_counter"))(Path(path))

    def files(self, path: str | os.PathLike[str]) -> Any:
        return resolve(self._need("file_lister"))(Path(path))

    def costs(self, path: str | os.PathLike[str], batch: int = 1, seq_len: int = 128) -> Any:
        return resolve(self._need("cost_walker"))(path, batch, seq_len)

    def io(self, path: str | os.PathLike[str]) -> Any:
        return resolve(self._need("io_reader"))(str(path))

    def tool(self) -> Any:
        return resolve(self._need("device_tool"))

    def _need(self, field_name: str) -> str:
        ref = getattr(self, field_name)
        if ref is None:
            from edgeprune.errors import ConfigError

            raise ConfigError(f"format {self.name!r} has no {field_name.replace('_', ' ')}")
        return ref


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add a format; its name and suffixes must be new."""
    taken = {s for f in FORMATS.values() for s in f.suffixes}
    if fmt.name in FORMATS or taken & set(fmt.suffixes):
        raise ValueError(f"format {fmt.name!r} or one of its suffixes {fmt.suffixes} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


register(Format("onnx", (".onnx",), exporter="onnx", engine="ort",
                param_counter="edgeprune.budget.params:count_onnx", file_lister="edgeprune.budget.params:onnx_files",
                cost_walker="edgeprune.profiling.roofline:onnx_costs", io_reader="edgeprune.profiling.shapes:onnx_io",
                device_tool="edgeprune.targets.tools:ONNXRUNTIME_PERF_TEST"))
register(Format("tflite", (".tflite",), exporter="tflite", engine="litert",
                param_counter="edgeprune.budget.params:count_tflite", file_lister="edgeprune.budget.params:single_file",
                cost_walker="edgeprune.profiling.roofline:tflite_costs", io_reader="edgeprune.profiling.shapes:tflite_io",
                device_tool="edgeprune.targets.tools:BENCHMARK_MODEL", xnnpack=True, gpu_delegate=True))
register(Format("hf", (), exporter="hf"))   # a transformers checkpoint folder: exported, not profiled


def format_of(path: str | os.PathLike[str]) -> Format | None:
    """The file format of ``path`` by its suffix (None for anything else; callers word the refusal)."""
    suffix = Path(path).suffix.lower()
    return next((f for f in FORMATS.values() if suffix in f.suffixes), None)


def profilable_suffixes() -> tuple[str, ...]:
    return tuple(s for f in FORMATS.values() if f.profilable for s in f.suffixes)


def resolve(ref: str) -> Callable[..., Any] | Any:
    """The attribute a ``"module:attribute"`` reference names."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)
