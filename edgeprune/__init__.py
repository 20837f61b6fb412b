"""edgeprune: hardware-friendly block-structured pruning of BERT-family models for edge devices.

The public API is this short list; it is imported lazily so ``import edgeprune`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "finetune": "edgeprune.training",
    "evaluate": "edgeprune.training",
    "TrainConfig": "edgeprune.training",
    "compress": "edgeprune.compress",
    "CompressConfig": "edgeprune.compress",
    "export": "edgeprune.exporters.api",
    "ExportConfig": "edgeprune.exporters.base",
    "profile": "edgeprune.profiling",
    "check": "edgeprune.budget",
    "load_model": "edgeprune.models",
    "infer_task": "edgeprune.data.files",  # your own CSV/TSV/JSONL data -> a task for finetune/evaluate/compress
    "EdgepruneError": "edgeprune.errors",
    "ConfigError": "edgeprune.errors",
    "DataError": "edgeprune.errors",
    "ModelError": "edgeprune.errors",
    "ExportError": "edgeprune.errors",
    "NumericMismatchError": "edgeprune.errors",
    "BudgetExceeded": "edgeprune.errors",
    "TargetUnreachable": "edgeprune.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'edgeprune' has no attribute {name!r}")
