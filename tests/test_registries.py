"""Registry completeness: every registered artifact format and every registered runner is exercised.

The tests are parametrized over the registries themselves, so a format or runner added without an
entry in the tables below (how to make an artifact of it, which fixture its device tool's output is,
which test measures with the runner) fails here.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from edgeprune.formats import FORMATS, format_of, resolve
from edgeprune.targets import RUNNER_MODULES, get_runner
from edgeprune.targets.base import RunSpec

FIX = Path(__file__).parent / "fixtures"


def _tiny_onnx(d: Path) -> Path:
    from tests.support.testmodels import export_tiny_bert_onnx

    return export_tiny_bert_onnx(d / "tiny.onnx", d / "ckpt", seq_len=16)


def _tiny_tflite(d: Path) -> Path:
    from tests.support.testmodels import make_tiny_tflite

    return make_tiny_tflite(d / "tiny.tflite", seq_len=16)


# format -> how a test makes a small artifact of it (every profilable format needs one)
ARTIFACTS = {"onnx": _tiny_onnx, "tflite": _tiny_tflite}
# device tool -> a fixture of its real output
TOOL_OUTPUTS = {"onnxruntime_perf_test": "perf_test_current.txt", "benchmark_model": "benchmark_model_current.txt"}
# runner -> the test that measures an artifact with it end to end ("module::function")
RUNNER_TESTS = {
    "host": "tests.test_registries::test_profilable_format_is_measured_counted_and_costed",
    "ssh": "tests.test_ssh::test_profile_over_loopback_ssh_quotes_everything",
    "adb": "tests.test_profile_host::test_adb_cpu_and_gpu_runs_parse_fixture_output",
    "emulate": "tests.test_emulate::test_a72_onnx_tiny_bert_matches_host_and_count_is_stable",
}
PROFILABLE = [f for f in FORMATS if FORMATS[f].profilable]


@pytest.mark.parametrize("name", list(FORMATS))
def test_format_record_is_complete(name):
    from edgeprune.exporters import get_exporter
    from edgeprune.targets import remote_runner

    fmt = FORMATS[name]
    assert get_exporter(fmt.exporter).format_name == fmt.exporter
    assert all(s.startswith(".") and s == s.lower() for s in fmt.suffixes)
    for ref in (fmt.param_counter, fmt.file_lister, fmt.cost_walker, fmt.device_tool):
        if ref is not None:
            assert resolve(ref) is not None, ref
    if fmt.profilable:
        assert fmt.suffixes and fmt.engine in remote_runner.ENGINES
        assert fmt.param_counter and fmt.file_lister and fmt.cost_walker, f"{name}: a profilable format is counted"
        for s in fmt.suffixes:
            assert remote_runner.SUFFIX_ENGINES[s] == fmt.engine and format_of(f"m{s.upper()}") is fmt


@pytest.mark.parametrize("name", PROFILABLE)
def test_profilable_format_is_measured_counted_and_costed(name, tmp_path):
    from edgeprune.targets.host import HostRunner

    assert name in ARTIFACTS, f"format {name!r} has no test artifact: add one to ARTIFACTS"
    fmt = FORMATS[name]
    art = ARTIFACTS[name](tmp_path)
    assert format_of(art) is fmt
    assert fmt.count_params(art).stored > 0 and fmt.files(art).bytes == art.stat().st_size
    assert sum(c.flops for c in fmt.costs(art, 1, 16)) > 0
    (m,) = HostRunner().measure(RunSpec(art, seq_len=16, warmup=0, runs=2, timeout_s=300))
    assert m.runner == "host" and m.kind == "measured" and m.engine == fmt.engine and len(m.samples_ms) == 2
    row = m.row("host")
    assert row["target"] == "host" and row["latency_ms"]["mean"] > 0 and row["inputs"]["input_ids"] == [1, 16]


@pytest.mark.parametrize("name", [f for f in FORMATS if FORMATS[f].device_tool])
def test_device_tool_builds_its_command_and_parses_its_output(name, tmp_path):
    fmt = FORMATS[name]
    tool = fmt.tool()
    assert tool.name in TOOL_OUTPUTS, f"device tool {tool.name!r} has no output fixture: add one to TOOL_OUTPUTS"
    spec = RunSpec(tmp_path / f"m{fmt.suffixes[0]}", threads=2, batch=1, seq_len=16, runs=3)
    for unit in tool.units:
        argv = tool.argv("/bin/tool", "/dev/model", spec, unit)
        assert argv[0] == "/bin/tool" and any("/dev/model" in w for w in argv) and any("2" in w for w in argv)
    assert tool.parse((FIX / TOOL_OUTPUTS[tool.name]).read_text())["latency_ms"]["mean"] > 0
    assert tool.runs(tool.name)
    with pytest.raises(ValueError):
        tool.parse("no timings here")


@pytest.mark.parametrize("name", RUNNER_MODULES)
def test_runner_follows_the_protocol_and_is_exercised(name):
    runner = get_runner(name)
    assert runner.name == name
    assert dataclasses.is_dataclass(runner.config_type) and runner.config_type.__dataclass_params__.frozen
    assert callable(runner.measure) and callable(runner.describe)
    assert name in RUNNER_TESTS, f"runner {name!r} is measured by no test: add one to RUNNER_TESTS"
    module, _, test = RUNNER_TESTS[name].partition("::")
    assert callable(getattr(importlib.import_module(module), test))
