"""Exporters, one module per artifact format, registered by name.

``get_exporter("onnx")`` imports only that module, so exporting to ONNX never imports TensorFlow. Each
exporter takes its own typed options (``options_type``); :func:`exporter_for` finds it by that type.
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


def exporter_for(options: object) -> type:
    """The exporter registered for this options type (``ExportConfig.options``: torchao's config -> handler)."""
    from edgeprune.errors import ConfigError

    for cls in EXPORTERS.values():
        if type(options) is getattr(cls, "options_type", None):
            return cls
    raise ConfigError(f"no exporter takes {type(options).__name__}")


def get_exporter(name: str) -> type:
    from edgeprune.errors import ConfigError

    if name not in EXPORTERS:
        if name not in _MODULES:
            raise ConfigError(f"unknown export format {name!r}; choose one of: {', '.join(sorted(_MODULES))}")
        importlib.import_module(_MODULES[name])
    return EXPORTERS[name]
