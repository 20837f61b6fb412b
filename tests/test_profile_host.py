"""Host profiling end to end (API and CLI), bundles, baselines, the profile.json contract, and the adb
runner against a fake `adb` on PATH that replays documented benchmark_model output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune.errors import ConfigError
from edgeprune.profiling import profile

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from tests.support.testmodels import export_tiny_bert_onnx

    d = tmp_path_factory.mktemp("host_onnx")
    return export_tiny_bert_onnx(d / "tiny_bert.onnx", d / "ckpt", seq_len=16)


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    from tests.support.testmodels import make_tiny_tflite

    return make_tiny_tflite(tmp_path_factory.mktemp("host_tfl") / "tiny.tflite", seq_len=16)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeprune", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_profile_onnx_contract(tiny_onnx, tmp_path):
    rep = profile(tiny_onnx, out=tmp_path / "p", seq_len=16, warmup=2, runs=7)
    saved = json.loads((tmp_path / "p" / "profile.json").read_text())
    assert saved["artifact"] == str(tiny_onnx) and saved["format"] == "onnx"
    assert saved["file_bytes"] == tiny_onnx.stat().st_size and saved["load_ms"] > 0
    measured = [r for r in saved["results"] if r["kind"] == "measured"]
    assert len(measured) == 1
    m = measured[0]
    assert m["target"] == "host" and m["threads"] == 1 and m["batch"] == 1 and m["seq_len"] == 16
    assert set(m["latency_ms"]) == {"mean", "p10", "p50", "p90", "p99", "std"} and m["runs"] == 7
    assert m["latency_ms"]["p10"] <= m["latency_ms"]["p50"]
    assert m["device"]["where"] == "host" and m["device"]["machine"] and m["runner"] == "host"
    # the shapes that ran, read from the artifact and reported by the runner
    assert saved["inputs"] == {"input_ids": [1, 16], "attention_mask": [1, 16], "token_type_ids": [1, 16]}
    assert m["inputs"] == saved["inputs"] and saved["declared_inputs"]["input_ids"] == "[?, ?]"
    assert m["latency_ms"]["p50"] <= m["latency_ms"]["p99"]
    assert m["peak_memory_bytes"] > m["rss_start_bytes"] > 0    # the subprocess's own peak RSS
    predicted = {r["target"]: r for r in saved["results"] if r["kind"] == "predicted"}
    assert set(predicted) >= {"host", "rpi4", "rpi5", "phone"}
    assert all(list(r["latency_ms"]) == ["mean"] and r["latency_ms"]["mean"] > 0 for r in predicted.values())
    assert "gpu_latency_ms" not in predicted["phone"]   # no supported runner puts an ONNX file on a GPU
    assert all("estimate" in r["note"] for r in predicted.values())
    # same FLOPs, slower peak: the Pi 4 prediction is slower than the Pi 5's
    assert predicted["rpi4"]["latency_ms"]["mean"] > predicted["rpi5"]["latency_ms"]["mean"]
    assert 0 < m["efficiency_fit"] <= 1
    assert rep["costs"]["flops"] > 0
    md = (tmp_path / "p" / "profile.md").read_text()
    assert "Predicted next to measured" in md and "| host | measured |" in md
    assert "inputs fed (read from the artifact): input_ids [1, 16]" in md and "| rpi4 | predicted (estimate) |" in md
    assert (tmp_path / "p" / "profile.png").read_bytes()[:4] == b"\x89PNG"

    # --calibrate: the measured run's fitted efficiency replaces the TOML prior for that target
    cal = profile(tiny_onnx, seq_len=16, measure_host=False, calibrate=str(tmp_path / "p" / "profile.json"))
    host_pred = next(r for r in cal["results"] if r["kind"] == "predicted" and r["target"] == "host")
    assert host_pred["efficiency_source"] == "calibrated" and host_pred["efficiency"] == m["efficiency_fit"]
    if m["efficiency_fit"] < 1.0:   # not clamped: the calibrated roofline reproduces the measured mean
        assert host_pred["latency_ms"]["mean"] == pytest.approx(m["latency_ms"]["mean"], rel=1e-6)
    else:
        assert host_pred["latency_ms"]["mean"] >= m["latency_ms"]["mean"]
    rpi4_pred = next(r for r in cal["results"] if r["kind"] == "predicted" and r["target"] == "rpi4")
    assert rpi4_pred["efficiency_source"] == "prior"
    assert not [r for r in cal["results"] if r["kind"] == "measured"]


def test_target_alone_predicts_and_a_host_run_stays_host(tiny_onnx, tmp_path):
    """Issue 15: `--target rpi4` without --ssh never records this machine's time as an rpi4 time."""
    rep = profile(tiny_onnx, target="rpi4", seq_len=16, warmup=1, runs=3)
    assert rep["predict_only"] == "rpi4" and rep["measured_on"] == []
    assert not [r for r in rep["results"] if r["kind"] == "measured"]
    rpi4 = [r for r in rep["results"] if r["target"] == "rpi4"]
    assert [r["kind"] for r in rpi4] == ["predicted"]
    # asked for a host run as well (--host): it is recorded as host, with this machine's CPU
    both = profile(tiny_onnx, target="rpi4", seq_len=16, warmup=1, runs=3, measure_host=True)
    measured = [r for r in both["results"] if r["kind"] == "measured"]
    assert [r["target"] for r in measured] == ["host"] and measured[0]["device"]["machine"]
    # end to end: the CLI says it predicted, and check cannot pass rpi4 on the host's time
    out = tmp_path / "p"
    p = cli("profile", str(tiny_onnx), "--target", "rpi4", "--seq-len", "16", "--runs", "2", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "rpi4: predicted only (an estimate)" in p.stdout
    md = (out / "profile.md").read_text()
    assert "measured on: nothing: every latency below is an estimate" in md
    chk = cli("check", str(tiny_onnx), "--no-search", "--profile", str(out / "profile.json"), "--max-latency",
              "rpi4=1000s")
    assert chk.returncode == 0 and "predicted" in chk.stdout + chk.stderr


def test_calibrate_ignores_a_host_run_labelled_as_a_device(tiny_onnx, tmp_path):
    old = tmp_path / "old.json"     # what an older version wrote: the host's time under rpi4
    old.write_text(json.dumps({"results": [{"target": "rpi4", "kind": "measured", "runner": "host",
                                            "machine": "x86_64", "efficiency_fit": 0.9, "latency_ms": {"mean": 1}}]}))
    with pytest.raises(ConfigError, match="no measured results with an efficiency fit"):
        profile(tiny_onnx, seq_len=16, measure_host=False, calibrate=str(old))


def test_fixed_shape_artifact_refuses_another_seq_len(tiny_tflite, tmp_path):
    p = cli("profile", str(tiny_tflite), "--seq-len", "128", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    err = p.stderr.strip().splitlines()[-1]
    assert "--seq-len 128" in err and "fixed input shapes" in err and "--seq-len 16" in err
    assert not (tmp_path / "o" / "profile.json").exists()
    rep = profile(tiny_tflite, warmup=1, runs=2, predict=False)   # no --seq-len: the artifact's own 16
    assert rep["seq_len"] == 16 and rep["inputs"] == {"input_ids": [1, 16], "attention_mask": [1, 16]}
    assert all(r["inputs"] == rep["inputs"] for r in rep["results"])


def test_baseline_with_other_shapes_is_refused_unless_allowed(tiny_tflite, tmp_path):
    from tests.support.testmodels import make_tiny_tflite

    other = make_tiny_tflite(tmp_path / "seq32.tflite", seq_len=32)
    p = cli("profile", str(tiny_tflite), "--baseline", str(other), "--runs", "2", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "[[1, 32]] differ from tiny.tflite's [[1, 16]]" in p.stderr and "--allow-mismatch" in p.stderr
    p = cli("profile", str(tiny_tflite), "--baseline", str(other), "--allow-mismatch", "--runs", "2", "--warmup", "1",
            "--xnnpack", "--out", str(tmp_path / "o"))
    assert p.returncode == 0, p.stderr
    rep = json.loads((tmp_path / "o" / "profile.json").read_text())
    assert rep["baseline"]["seq_len"] == 32 and rep["baseline"]["inputs"]["input_ids"] == [1, 32]
    pair = next(r for r in rep["comparison"] if r["kind"] == "measured")
    assert pair["differs"] == ["inputs [[1, 16]] vs [[1, 32]]"]
    # the measured pair is printed, with the difference next to the speed-up
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("host measured:"))
    assert " ms vs baseline " in line and "x faster" in line and "[differs: inputs [[1, 16]] vs [[1, 32]]]" in line
    assert "Not like for like: inputs" in (tmp_path / "o" / "profile.md").read_text()


def test_baseline_of_another_format_is_labelled(tiny_onnx, tiny_tflite, tmp_path):
    rep = profile(tiny_tflite, baseline=str(tiny_onnx), warmup=1, runs=2, xnnpack="on")
    measured = [r for r in rep["comparison"] if r["kind"] == "measured"]
    assert len(measured) == 1 and measured[0]["speedup"] > 0     # the TFLite (XNNPACK) run pairs with the ORT run
    assert "format tflite vs onnx" in measured[0]["differs"]


def test_tflite_xnnpack_on_and_off_in_separate_processes(tiny_tflite, tmp_path):
    rep = profile(tiny_tflite, seq_len=16, warmup=1, runs=3, predict=False)
    measured = [r for r in rep["results"] if r["kind"] == "measured"]
    assert [r["xnnpack"] for r in measured] == [True, False]
    assert all(r["engine"] == "litert" for r in measured)
    only_off = profile(tiny_tflite, seq_len=16, warmup=1, runs=3, predict=False, xnnpack="off")
    assert [r["xnnpack"] for r in only_off["results"]] == [False]


def test_bundle_default_out_and_manifest_shape(tiny_onnx, tmp_path):
    from edgeprune.bundle import write_manifest

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(tiny_onnx.read_bytes())
    write_manifest(bundle, {"format": "onnx", "artifact": "model.onnx", "model": "tiny", "seq_len": 16,
                            "dtype": "fp32", "mode": "dense", "compression": 1.0})
    before = (bundle / "model.onnx").read_bytes()
    p = cli("profile", str(bundle), "--runs", "3", "--warmup", "1", "--baseline", str(tiny_onnx))
    assert p.returncode == 0, p.stderr
    rep = json.loads((bundle / "profile.json").read_text())   # default --out is the bundle itself
    assert rep["seq_len"] == 16 and rep["bundle"] == str(bundle)
    assert rep["baseline"]["artifact"] == str(tiny_onnx) and rep["baseline"]["seq_len"] == 16
    kinds = {(row["target"], row["kind"]) for row in rep["comparison"]}
    assert ("host", "measured") in kinds and ("rpi4", "predicted") in kinds
    pred = [row for row in rep["comparison"] if row["kind"] == "predicted"]
    assert all(row["speedup"] == pytest.approx(1.0) for row in pred)   # identical graphs predict identically
    assert "Against the baseline" in (bundle / "profile.md").read_text()
    assert (bundle / "model.onnx").read_bytes() == before


def test_bad_inputs_are_one_line_exit_2(tmp_path, tiny_onnx):
    (tmp_path / "model.pt").write_bytes(b"x")
    for args, needle in ((["profile", str(tmp_path / "model.pt")], "unsupported artifact type"),
                         (["profile", str(tiny_onnx), "--emulate", "phone"], "--emulate 'phone'"),
                         (["profile", str(tiny_onnx), "--threads", "0"], "--threads must be a positive integer"),
                         (["profile", str(tiny_onnx), "--adb", "X"], "--adb needs --benchmark-binary"),
                         (["profile", str(tiny_onnx), "--use-gpu"], "--use-gpu needs --adb SERIAL"),
                         (["profile", str(tiny_onnx), "--ssh", "pi@pi", "--target", "host"],
                          "--target host means this machine"),
                         (["profile", str(tiny_onnx), "--accept-new-host-key"], "applies to --ssh only"),
                         (["profile", str(tmp_path)], "is not a bundle")):
        p = cli(*args, "--out", str(tmp_path / "o"))
        assert p.returncode == 2, (args, p.stderr)
        assert needle in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) <= 2   # at most a "[profile] ..." stage line + one error line
    assert not (tmp_path / "o" / "profile.json").exists()
    with pytest.raises(ConfigError):
        profile(tiny_onnx, xnnpack="maybe")


def test_cli_stage_lines_table_and_overwrite_rule(tiny_onnx, tmp_path):
    """Load, warm-up, timed runs i/N and prediction on stderr; the results table on stdout; a profile
    already in the output folder is replaced only with --overwrite."""
    out = tmp_path / "o"
    args = ["profile", str(tiny_onnx), "--seq-len", "16", "--warmup", "2", "--runs", "3", "--out", str(out)]
    p = cli(*args)
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines() == ["[profile] tiny_bert.onnx: onnx, batch 1, seq 16, 1 thread",
                                     "[profile] host: load",
                                     "[profile] host: warm-up 0/2", "[profile] host: warm-up 2/2",
                                     "[profile] host: timed runs 0/3", "[profile] host: timed runs 3/3",
                                     "[profile] predict 4 targets (roofline estimates)"]
    assert "┃ target" in p.stdout and "│ host " in p.stdout and "Results" in p.stdout   # the shared table style
    assert "EDGEPRUNE_PROGRESS" not in json.dumps(json.loads((out / "profile.json").read_text()))
    again = cli(*args)
    assert again.returncode == 2 and again.stderr.strip() == (f"error: {out / 'profile.json'} already exists; pass "
                                                              "--overwrite to replace it, or choose another --out")
    assert cli(*args, "--overwrite").returncode == 0


def test_runner_progress_lines_stream_and_stay_out_of_stderr(tmp_path):
    from edgeprune.errors import TargetUnreachable
    from edgeprune.targets.base import run_checked

    seen = []
    script = ("import sys, time\n"
              "for i in range(3):\n"
              "    sys.stderr.write(f'EDGEPRUNE_PROGRESS run {i} 2\\n'); sys.stderr.flush()\n"
              "sys.stderr.write('a real error line\\n'); print('EDGEPRUNE_RESULT {}')\n")
    proc = run_checked([sys.executable, "-c", script], "host", 60, on_progress=lambda *a: seen.append(a))
    assert seen == [("run", 0, 2), ("run", 1, 2), ("run", 2, 2)]
    assert proc.returncode == 0 and proc.stderr == "a real error line\n" and proc.stdout == "EDGEPRUNE_RESULT {}\n"
    with pytest.raises(TargetUnreachable, match="no answer within 1 s"):
        run_checked([sys.executable, "-c", "import time; time.sleep(30)"], "host", 1, on_progress=lambda *a: None)


FAKE_ADB = r"""#!/bin/sh
# fake adb: logs every call, replays fixture output for benchmark_model runs
echo "$@" >> "$FAKE_ADB_LOG"
[ "$1" = "-s" ] && shift 2
case "$1" in
  get-state) if [ -n "$FAKE_ADB_NODEVICE" ]; then echo "error: device 'X' not found" >&2; exit 1; fi; echo device ;;
  push) echo "1 file pushed" ;;
  shell)
    case "$2" in
      *use_gpu=true*) cat "$FAKE_GPU_OUT" ;;
      *benchmark_model*) cat "$FAKE_CPU_OUT" ;;
    esac ;;
esac
exit 0
"""


@pytest.fixture()
def fake_adb(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(FAKE_ADB)
    adb.chmod(0o755)
    tool = tmp_path / "benchmark_model"
    tool.write_bytes(b"\x7fELF fake")
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "FAKE_ADB_LOG": str(tmp_path / "adb.log"),
           "FAKE_CPU_OUT": str(FIX / "benchmark_model_current.txt"),
           "FAKE_GPU_OUT": str(FIX / "benchmark_model_gpu_full.txt")}
    return {"env": env, "tool": tool, "log": tmp_path / "adb.log"}


def test_adb_cpu_and_gpu_runs_parse_fixture_output(fake_adb, tiny_tflite, tmp_path):
    out = tmp_path / "prof"
    p = cli("profile", str(tiny_tflite), "--adb", "emulator-5554", "--benchmark-binary", str(fake_adb["tool"]),
            "--use-gpu", "--big-cores", "--threads", "4", "--runs", "50", "--out", str(out), env=fake_adb["env"])
    assert p.returncode == 0, p.stderr
    rep = json.loads((out / "profile.json").read_text())
    measured = [r for r in rep["results"] if r["kind"] == "measured"]
    assert [(r["target"], r["unit"]) for r in measured] == [("phone", "cpu"), ("phone", "gpu")]
    assert measured[0]["latency_ms"]["mean"] == pytest.approx(63.7432)   # fixture: Inference (avg) 63743.2 us
    assert measured[0]["latency_ms"]["p50"] == pytest.approx(63.5)
    assert measured[1]["latency_ms"]["mean"] == pytest.approx(119.375)   # fully delegated: a GPU latency
    assert measured[1]["delegation"]["status"] == "full" and measured[1]["delegation"]["delegate_kernels"] == 1
    log = fake_adb["log"].read_text()
    assert "-s emulator-5554 push" in log and "taskset f0" in log and "--num_threads=4" in log
    assert "--use_gpu=true" in log and "--use_xnnpack=true" in log
    assert "raw" in rep and "Inference timings in us" in rep["raw"]["adb_cpu"]


def test_adb_without_device_or_binary_says_so(fake_adb, tiny_tflite, tmp_path):
    env = {**fake_adb["env"], "FAKE_ADB_NODEVICE": "1"}
    p = cli("profile", str(tiny_tflite), "--adb", "X", "--benchmark-binary", str(fake_adb["tool"]),
            "--out", str(tmp_path / "o"), env=env)
    assert p.returncode == 2 and "no Android device 'X'" in p.stderr and "Traceback" not in p.stderr
    p = cli("profile", str(tiny_tflite), "--adb", "X", "--benchmark-binary", str(fake_adb["tool"]),
            "--adb-binary", str(tmp_path / "no-such-adb"), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "adb not found" in p.stderr


@pytest.mark.parametrize("fixture,status", [("benchmark_model_gpu_partial.txt", "partial"),
                                            ("benchmark_model_gpu_failed.txt", "failed"),
                                            ("benchmark_model_older_gpu.txt", "unknown")])
def test_adb_gpu_run_not_fully_delegated_is_no_gpu_latency(fake_adb, tiny_tflite, tmp_path, fixture, status):
    out = tmp_path / "prof"
    env = {**fake_adb["env"], "FAKE_GPU_OUT": str(FIX / fixture)}
    p = cli("profile", str(tiny_tflite), "--adb", "emulator-5554", "--benchmark-binary", str(fake_adb["tool"]),
            "--use-gpu", "--runs", "5", "--out", str(out), env=env)
    assert p.returncode == 0, p.stderr
    rep = json.loads((out / "profile.json").read_text())
    gpu = next(r for r in rep["results"] if r["kind"] == "measured" and r["unit"] == "gpu")
    assert gpu["delegation"]["status"] == status and gpu["latency_ms"] is None and "not a GPU latency" in gpu["note"]
    if status == "partial":
        assert gpu["mixed_latency_ms"]["mean"] == pytest.approx(23.6558)   # kept, but never as a GPU time
    md = (out / "profile.md").read_text()
    assert f"measured, delegation {status}: not a GPU latency" in md and f"GPU delegation {status}" in md
    chk = cli("check", str(tiny_tflite), "--no-search", "--profile", str(out / "profile.json"), "--max-latency",
              "phone-gpu=1000s")
    assert chk.returncode == 1 and f"GPU delegation {status}" in chk.stderr


def test_plot_bars_kinds_spread_and_png(tmp_path):
    """Plot data: measured vs predicted kinds, p10-p90 spread only on measured bars; the PNG is written."""
    from edgeprune.profiling.report import COLOURS, plot, plot_bars

    rep = {"artifact": "m.onnx", "batch": 1, "seq_len": 16, "threads": 1, "results": [
        {"target": "host", "kind": "measured", "runner": "host",
         "latency_ms": {"mean": 2.0, "p10": 1.5, "p50": 1.9, "p90": 2.6}},
        {"target": "rpi4", "kind": "predicted", "latency_ms": {"mean": 9.0}},
        {"target": "phone", "kind": "predicted", "latency_ms": {"mean": 4.0}, "gpu_latency_ms": {"mean": 1.0}},
        {"target": "phone", "kind": "measured", "runner": "adb", "unit": "gpu", "latency_ms": None,
         "mixed_latency_ms": {"mean": 3.0}, "delegation": {"status": "partial"}},
    ]}
    bars = plot_bars(rep)
    assert bars["host\nmeasured"] == {"value": 2.0, "kind": "measured", "spread": (1.5, 2.6)}
    assert bars["rpi4\npredicted"]["kind"] == "predicted" and bars["rpi4\npredicted"]["spread"] is None
    assert bars["phone (gpu)\npredicted"]["value"] == 1.0
    assert not any("adb" in k for k in bars)            # a partial delegation is no GPU bar
    assert COLOURS["measured"] != COLOURS["predicted"]
    plot(rep, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
