"""Shared helpers of the benchmark scripts (run them as ``python -m bench.NAME`` from the repository root)."""
from __future__ import annotations

import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work"


def glue_dir() -> Path:
    """The GLUE folder the benchmarks read: $EDGEPRUNE_GLUE, else ``../shared/data/glue`` beside the checkout."""
    env = os.environ.get("EDGEPRUNE_GLUE")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "glue"


def machine() -> dict:
    """CPU model, cores, thread setting and library versions: every result records where it ran."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "platform": platform.platform()}
