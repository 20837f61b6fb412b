"""Exporters, one module per artifact format, registered by name.

``get_exporter("onnx")`` imports only that module, so exporting to ONNX never imports TensorFlow.
"""
from __future__ import annotations

import importlib

EXPORTERS: dict[str, type] = {}

# format name -> module that registers it (lets us import lazily)
_MODULES = {"onnx": "edgeprune.exporters.onnx", "tflite": "edgeprune.exporters.tflite",
            "hf": "edgeprune.exporters.hf"}


def register_exporter(name: str):
    def deco(cls: type) -> type:
        cls.format_name = name
        EXPORTERS[name] = cls
        return cls

    return deco


def get_exporter(name: str) -> type:
    from edgeprune.errors import ConfigError

    if name not in EXPORTERS:
        if name not in _MODULES:
            raise ConfigError(f"unknown export format {name!r}; choose one of: {', '.join(sorted(_MODULES))}")
        importlib.import_module(_MODULES[name])
    return EXPORTERS[name]
