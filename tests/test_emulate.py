"""Emulated Cortex-A72 (Pi 4): a tiny exported BERT (ONNX) and a tiny TFLite graph run with the real aarch64
wheels under qemu-aarch64; outputs must match the host's and the instruction count must repeat (exactly on a quiet host, within
0.5% under CPU contention: see targets/emulate.py).
Needs `bash scripts/setup-test-system.sh` (sysroot, wheels, plugin); without it the tests fail saying so."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeprune.errors import TargetUnreachable
from edgeprune.targets import get_target
from edgeprune.targets.base import RunSpec
from edgeprune.targets.emulate import EmulateConfig, EmulateRunner, check_setup, emulate_once, run_emulate


@pytest.fixture(scope="module")
def setup_ok():
    try:
        return check_setup()
    except TargetUnreachable as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from tests.support.testmodels import export_tiny_bert_onnx

    d = tmp_path_factory.mktemp("emu_onnx")
    return export_tiny_bert_onnx(d / "tiny_bert.onnx", d / "ckpt", seq_len=16)


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    from tests.support.testmodels import make_tiny_tflite

    return make_tiny_tflite(tmp_path_factory.mktemp("emu_tfl") / "tiny.tflite", seq_len=16)


def test_a72_onnx_tiny_bert_matches_host_and_count_is_stable(setup_ok, tiny_onnx):
    a72 = get_target("rpi4")
    spec = RunSpec(tiny_onnx, seq_len=16, warmup=1, runs=0, timeout_s=300)
    (m,) = EmulateRunner(EmulateConfig(a72, marked_runs=2)).measure(spec)
    assert m.machine == "aarch64" and m.cpu == "0xd08" and m.details["qemu_cpu"] == "cortex-a72"
    assert m.details["outputs_match_host"] is True and m.details["max_abs_diff_vs_host"] < 1e-5
    assert m.kind == "emulated" and m.details["instructions"] > 100_000
    assert m.latency_ms is None and not m.samples_ms and "latency_ms" not in m.row("rpi4")   # never a latency
    first = m.result
    second = emulate_once(spec, a72, marked_runs=2)
    drift = abs(second["instructions_total"] - first["instructions_total"]) / first["instructions_total"]
    assert drift < 5e-3, (first["instructions_total"], second["instructions_total"])


def test_a72_tflite_matches_host_and_count_is_stable(setup_ok, tiny_tflite):
    a72 = get_target("rpi4")
    spec = RunSpec(tiny_tflite, seq_len=16, warmup=1, runs=0, timeout_s=300)
    first = run_emulate(spec, a72, marked_runs=2)
    assert first["engine"] == "litert" and first["outputs_match_host"] is True
    second = emulate_once(spec, a72, marked_runs=2)
    assert first["instructions_total"] > 10_000
    assert abs(second["instructions_total"] - first["instructions_total"]) / first["instructions_total"] < 5e-3


def test_cli_emulate_rpi4(setup_ok, tiny_onnx, tmp_path):
    out = tmp_path / "prof"
    p = subprocess.run([sys.executable, "-m", "edgeprune", "profile", str(tiny_onnx), "--emulate", "rpi4",
                        "--seq-len", "16", "--runs", "3", "--warmup", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rep = json.loads((out / "profile.json").read_text())
    emu = [r for r in rep["results"] if r["kind"] == "emulated"]
    assert len(emu) == 1 and emu[0]["target"] == "rpi4" and emu[0]["instructions"] > 0
    assert "latency_ms" not in emu[0]
    assert "rpi4 | emulated" in (out / "profile.md").read_text()


def test_missing_setup_says_how_to_fix(tmp_path, monkeypatch, tiny_tflite):
    monkeypatch.setenv("EDGEPRUNE_AARCH64_CACHE", str(tmp_path / "nothing"))
    with pytest.raises(TargetUnreachable, match="setup-test-system.sh"):
        emulate_once(RunSpec(tiny_tflite, seq_len=16), get_target("rpi4"))
