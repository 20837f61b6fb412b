"""What every benchmark script shares: where things live, the machine record, tables and result files.

The scripts are modules of the ``bench`` package; run them from the repository root as
``python -m bench.NAME`` (nothing edits the import path). Committed results go to ``bench/results/``;
models, runs and caches to ``bench/work/`` (not committed).
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
# $EDGEPRUNE_BENCH_RESULTS redirects every result a script reads and writes (a scratch copy for smoke tests)
RESULTS = Path(os.environ.get("EDGEPRUNE_BENCH_RESULTS") or ROOT / "bench" / "results")
WORK = ROOT / "bench" / "work"
DENSE = WORK / "dense"  # the fine-tuned dense models bench.dense_baselines trains (one folder per task)


def glue_dir() -> Path:
    """The GLUE folder the benchmarks read: $EDGEPRUNE_GLUE, else ``shared/data/glue`` beside the checkout."""
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


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (benchmarks run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def probe_panels(d: dict, width: float, height: float):
    """``(plt, fig, [(axis, probe), ...])`` for a probe benchmark's one-panel-per-probe figure, or None when no
    probe has run yet (the probe scripts share this prologue)."""
    probes = list(d.get("probes", {}).values())
    if not probes:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(probes), figsize=(width * len(probes), height), squeeze=False)
    return plt, fig, list(zip(axes[0], probes))


def recorded_teacher(task: str) -> Path | None:
    """The dense teacher ``bench.dense_baselines`` recorded for ``task`` (the seed nearest the mean), if any."""
    from edgeprune.io import read_json

    path = RESULTS / "dense_baselines.json"
    if not path.is_file():
        return None
    t = read_json(path).get("tasks", {}).get(task, {}).get("teacher")
    return ROOT / t["model_dir"] if t else None


def module_argv(name: str, *args: Any) -> list[str]:
    """argv that runs ``bench.NAME`` in a fresh interpreter (timings and profiles need their own process).

    Pass ``cwd=ROOT`` to ``subprocess.run`` so that ``-m bench.NAME`` resolves from any working directory.
    """
    return [sys.executable, "-m", f"bench.{name}", *(str(a) for a in args)]


def cell(x: float | None, spec: str = ".2f", suffix: str = "") -> str:
    """A number formatted for a table cell (``format(x, spec) + suffix``); ``-`` for a missing one."""
    return "-" if x is None else format(x, spec) + suffix


def md_table(head: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """A markdown table as lines: ``| a | b |``, ``|---|---|``, then one line per row (an empty cell is ``| |``)."""
    def line(cells: Iterable[Any]) -> str:
        return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"

    head = list(head)
    return [line(head), "|" + "---|" * len(head), *(line(row) for row in rows)]


def write_result(name: str, data: dict, md_lines: Iterable[str] | None = None, results: Path = RESULTS) -> Path:
    """Write ``results/NAME.json`` (atomically) and, given its lines, ``results/NAME.md``; returns the JSON path."""
    from edgeprune.io import atomic_file, write_json

    results.mkdir(parents=True, exist_ok=True)
    path = write_json(results / f"{name}.json", data)
    if md_lines is not None:
        with atomic_file(results / f"{name}.md") as tmp:
            tmp.write_text("\n".join(md_lines) + "\n")
    return path
