"""bench/ is a package whose scripts run as ``python -m bench.NAME``: each one imports, answers ``--help``,
and the report renderers rebuild their reports from a copy of the committed ``bench/results/``.

Every script runs in its own interpreter from the repository root, as a user would start it. Nothing is
trained, exported or timed, and the committed results are never written (``$EDGEPRUNE_BENCH_RESULTS``
points the scripts at a scratch copy).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
MODULES = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__")
SCRIPTS = [m for m in MODULES if 'if __name__ == "__main__"' in (BENCH / f"{m}.py").read_text()]
LIBRARIES = [m for m in MODULES if m not in SCRIPTS]


def _run(*args: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_bench_is_a_package_with_shared_helpers():
    assert (BENCH / "__init__.py").is_file()
    from bench import common

    assert common.ROOT == ROOT and common.WORK == ROOT / "bench" / "work"
    assert common.md_table(["a", "b"], [[1, "x"], ["y", ""]]) == ["| a | b |", "|---|---|", "| 1 | x |", "| y | |"]
    assert (common.cell(None), common.cell(2.0), common.cell(0.5, ".3f", "x")) == ("-", "2.00", "0.500x")
    assert common.module_argv("frontier", "--x", 1)[1:] == ["-m", "bench.frontier", "--x", "1"]


def test_write_result_writes_json_and_markdown(tmp_path: Path):
    from bench.common import write_result
    from edgeprune.io import read_json

    path = write_result("probe", {"a": 1}, ["# t", "", "| a |"], results=tmp_path)
    assert read_json(path) == {"a": 1}
    assert (tmp_path / "probe.md").read_text() == "# t\n\n| a |\n"


@pytest.mark.parametrize("name", MODULES)
def test_no_sys_path_edits_or_development_paths(name: str):
    text = (BENCH / f"{name}.py").read_text()
    assert "sys.path" not in text
    assert not re.search(r"(?<![\w.])/(work|home)/|python bench/", text), "paths from bench.common; run as -m bench.NAME"


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_help_runs(name: str):
    r = _run("-m", f"bench.{name}", "--help", timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage:" in r.stdout


@pytest.mark.parametrize("name", LIBRARIES)
def test_helper_module_imports(name: str):
    r = _run("-c", f"import bench.{name}", timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.fixture
def results_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "results"
    shutil.copytree(BENCH / "results", dst)
    return dst


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.mark.parametrize("argv,report", [
    (["-m", "bench.compress", "--report-only"], "compress.md"),
    (["-m", "bench.distill_probe", "--report-only"], "distill_probe.md"),
    (["-m", "bench.export_onnx_md"], "export_onnx.md"),
    (["-m", "bench.export_tflite_md"], "export_tflite.md"),
    (["-m", "bench.litert_torch_md"], "litert_torch_ab.md"),
])
def test_reports_render_from_the_committed_results(argv, report, results_copy: Path, glue: Path):
    committed = _mtimes(BENCH / "results")
    (results_copy / report).unlink()
    needs_data = "--report-only" in argv
    r = _run(*argv, *(["--data", str(glue)] if needs_data else []),
             env={"EDGEPRUNE_BENCH_RESULTS": str(results_copy)})
    assert r.returncode == 0, r.stderr[-2000:]
    text = (results_copy / report).read_text()
    assert text.startswith("# ") and "|---|" in text
    assert _mtimes(BENCH / "results") == committed


def test_export_speed_counts_child_processes_memory():
    """A parent holding ~60 MB that starts a child holding ~120 MB: the tree's summed peak counts both."""
    from bench.export_speed import run_sampled

    child = "import time; b = bytearray(120 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"
    parent = (f"import subprocess, sys; a = bytearray(60 << 20); a[::4096] = b'y' * len(a[::4096]); "
              f"subprocess.run([sys.executable, '-c', {child!r}])")
    p, tree = run_sampled([sys.executable, "-c", parent], dict(os.environ))
    assert p.returncode == 0, p.stderr
    assert tree >= (60 + 120) << 20


def test_export_speed_report_judges_memory_per_process_and_per_tree():
    from bench.export_speed import TARGETS, report_lines

    rows = [{"format": "tflite", "dtype": "fp32", "wall_s": 40.0, "peak_rss_bytes": int(1.9e9),
             "peak_tree_rss_bytes": int(2.4e9)},
            {"format": "tflite", "dtype": "int8-dynamic", "wall_s": 40.0, "peak_rss_bytes": int(3.7e9)}]
    d = {"machine": {"cpu": "cpu", "cores": 2}, "run": "r", "targets": TARGETS, "rows": rows}
    lines = report_lines(d)
    assert any("| 1.90 | 2.40 | <= 2 (one process yes, tree **no**) |" in ln for ln in lines), lines
    assert any("| 3.70 | - | <= 2 (one process **no**) |" in ln for ln in lines), lines
