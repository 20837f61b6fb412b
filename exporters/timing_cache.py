"""A persistent cache of formulation timings, so that a second TFLite export of the same shapes skips timing.

Timing every candidate formulation of every pruned linear is most of a TFLite export's wall time
(bench/results/export_speed.md), and a latency depends only on the linear's shape, the dtype, the thread
count, the LiteRT build and the CPU, never on the weight values. This cache keys each median latency by
exactly that, so CI pipelines that export the same model architecture again and again time each shape once
per machine. It lives in ``$EDGEPRUNE_CACHE_DIR`` (default: ``$XDG_CACHE_HOME/edgeprune`` or
``~/.cache/edgeprune``); delete ``formulation-timing.json`` there, or export with ``--tflite-retime``, to
time afresh (a cached latency taken on a busy machine stays until then).
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from edgeprune.hostinfo import cpu_model
from edgeprune.io import write_json

FILE = "formulation-timing.json"
VERSION = 1


def cache_dir() -> Path:
    env = os.environ.get("EDGEPRUNE_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeprune"


def machine_key(threads: int, runs: int) -> str:
    """What every cached latency of one file section shares: runtime build, CPU, core count, threads, runs."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        litert = version("ai-edge-litert")
    except PackageNotFoundError:
        litert = "unknown"
    return json.dumps({"litert": litert, "cpu": cpu_model() or platform.machine(), "cores": os.cpu_count(),
                       "arch": platform.machine(), "threads": threads, "runs": runs, "v": VERSION}, sort_keys=True)


def entry_key(shape_key: tuple) -> str:
    return json.dumps(shape_key, default=str)


class TimingCache:
    """Median latencies (ms) by formulation shape for one machine key, read once and written atomically.

    ``read=False`` (``--tflite-retime``) starts from nothing and overwrites what it times."""

    def __init__(self, threads: int, runs: int, path: Path | None = None, read: bool = True) -> None:
        self.path = path or cache_dir() / FILE
        self.section = machine_key(threads, runs)
        self.read = read
        self.hits = self.misses = 0
        self._entries: dict[str, float] = self._read().get(self.section, {}) if read else {}

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):  # absent or damaged: start afresh (it is only a cache)
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, shape_key: tuple) -> float | None:
        ms = self._entries.get(entry_key(shape_key))
        if ms is None:
            self.misses += 1
        else:
            self.hits += 1
        return ms

    def put_all(self, timings: dict[tuple, float]) -> None:
        """Record new latencies and write the file (merged with what another process wrote meanwhile)."""
        if not timings:
            return
        self._entries.update({entry_key(k): float(v) for k, v in timings.items()})  # unrounded: same choice
        data = self._read()
        data[self.section] = {**data.get(self.section, {}), **self._entries}
        try:
            write_json(self.path, data)  # creates the folder
        except OSError:  # a read-only home must not fail an export
            pass

    def record(self) -> dict[str, Any]:
        return {"path": str(self.path), "read": self.read, "hits": self.hits, "misses": self.misses}
