"""Profiling: host / SSH / adb measurements, qemu instruction counts and roofline predictions.

``profile`` is imported lazily so ``import edgeprune.profiling`` stays cheap.
"""
from __future__ import annotations

from typing import Any

__all__ = ["profile", "ProfileConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
