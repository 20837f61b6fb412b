"""``edgeprune check``: every budget kind passing and failing, exit codes, reports, tampered bundles.

Fixture bundles are real: a tiny ONNX MatMul model (checked by onnx and run by onnxruntime), a
manifest written by :func:`edgeprune.bundle.write_manifest`, a verification record in the schema
of ``exporters/base.py`` and a profile.json in the schema of ``edgeprune profile``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from edgeprune.bundle import write_manifest
from edgeprune.io import write_json

K, N = 64, 32  # the fixture MatMul: 2048 parameters, counted by hand
# compression.json "compression" as compress writes it (edgeprune/prune/report.py compression_figures)
COMPRESSION = {"prunable_encoder": {"dense": 10000, "kept": 2000, "compression": 5.0, "sparsity": 0.8},
               "whole_encoder": {"dense": 12800, "kept": 4000, "compression": 3.2, "sparsity": 0.6875},
               "whole_model": {"dense": 21000, "kept": 10000, "compression": 2.1, "sparsity": 0.5238095238095238}}
VERIFICATION = {"passed": True, "reason": None, "dtype": "fp32", "num_examples": 200, "max_abs_diff": 1e-6,
                "atol": 1e-4, "metric": "accuracy", "metric_torch": 0.86, "metric_artifact": 0.855,
                "metric_diff_points": 0.5, "max_points": 0.0}
METRICS = {"dense": {"main": 0.87, "accuracy": 0.87}, "pruned": {"main": 0.862, "accuracy": 0.862}}
# By hand: drop = (0.87 - 0.862) * 100 + (0.86 - 0.855) * 100 = 0.8 + 0.5 = 1.3 points.
EXPECTED_DROP = 1.3


def tiny_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = (np.arange(K * N, dtype=np.float32).reshape(K, N) - 1000) / 997.0
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def profile_record(artifact: Path, results: list[dict] | None = None) -> dict:
    return {"artifact": artifact.name, "format": "onnx", "file_bytes": artifact.stat().st_size, "results": results if
            results is not None else [
                {"target": "host", "kind": "measured", "threads": 2, "batch": 1, "seq_len": 128,
                 "latency_ms": {"mean": 1.2, "p50": 1.1, "p90": 1.4, "p99": 1.9, "std": 0.1},
                 "peak_memory_bytes": 10_000_000, "instructions": None},
                {"target": "rpi4", "kind": "predicted", "threads": 4, "batch": 1, "seq_len": 128,
                 "latency_ms": {"mean": 7.5}},
            ]}


def make_bundle(root: Path, *, compression: dict | None = None, metrics: dict | None = METRICS,
                verification: dict | None = VERIFICATION, profile: dict | bool = True) -> Path:
    """A bundle as `edgeprune export` writes it, then `edgeprune profile` adds profile.json."""
    art = tiny_onnx(root / "model.onnx")
    (root / "tokenizer.json").write_text('{"version": "1.0"}')
    if verification is not None:
        write_json(root / "verification.json", verification)
    fields = {"format": "onnx", "artifact": "model.onnx", "model": "tiny-bert", "task": "sst2", "labels": ["0", "1"],
              "seq_len": 128, "dtype": "fp32", "mode": "packed",
              "compression": COMPRESSION if compression is None else compression, "verification": "verification.json"}
    if metrics is not None:
        fields["metrics"] = metrics
    write_manifest(root, fields)
    if profile:
        write_json(root / "profile.json", profile if isinstance(profile, dict) else profile_record(art))
    return root


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch):
    """Tests never append to a real GitHub job summary when the suite itself runs in Actions."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def run(capsys, *args: str) -> tuple[int, str, str]:
    """The real entry point (``edgeprune.cli.main``): exit codes as the shell sees them."""
    from edgeprune.cli import main

    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


ALL_PASS = ["--max-size", "30MB", "--max-params", "10k", "--min-compression", "5x", "--min-sparsity", "80%",
            "--max-latency", "host=25ms", "--max-latency", "rpi4=80ms", "--min-accuracy", "0.85",
            "--max-accuracy-drop", "1.5pt"]


@pytest.fixture
def bundle(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no budget file above: only flags
    return make_bundle(tmp_path / "bundle")


def test_fixture_model_is_real(bundle):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.ones((1, K), np.float32)
    assert sess.run(None, {"x": x})[0].shape == (1, N)


def test_all_budgets_hold(bundle, capsys, tmp_path):
    code, out, err = run(capsys, "check", str(bundle), *ALL_PASS, "--no-search", "--junit",
                         str(tmp_path / "reports" / "ci" / "j.xml"),  # missing folders are created
                         "--markdown", str(tmp_path / "md" / "s.md"), "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    assert (tmp_path / "reports" / "ci" / "j.xml").is_file() and (tmp_path / "md" / "s.md").is_file()
    assert "all 9 checks hold" in out
    for name in ("integrity", "max_size", "max_params", "min_compression[prunable_encoder]",
                 "min_sparsity[prunable_encoder]", "max_latency[host]", "max_latency[rpi4]", "min_accuracy",
                 "max_accuracy_drop"):
        assert name in out
    data = json.loads((tmp_path / "r.json").read_text())
    by = {r["name"]: r for r in data["results"]}
    assert by["max_size"]["actual"] == (bundle / "model.onnx").stat().st_size
    assert by["max_params"]["actual"] == K * N
    assert by["min_sparsity[prunable_encoder]"]["actual"] == pytest.approx(0.8)  # 1 - 1/5
    assert by["max_latency[host]"]["actual"] == pytest.approx(1.1e-3)  # measured p50
    assert by["max_latency[rpi4]"]["actual"] == pytest.approx(7.5e-3)  # predicted mean
    assert "predicted" in by["max_latency[rpi4]"]["detail"]
    assert by["min_accuracy"]["actual"] == pytest.approx(0.855)
    assert by["max_accuracy_drop"]["actual"] == pytest.approx(EXPECTED_DROP)


@pytest.mark.parametrize("flag, value, name, fragment", [
    ("--max-size", "8kB", "max_size", "artifact size"),
    ("--max-params", "2047", "max_params", "stored parameters 2048 exceeds the budget of 2047"),
    ("--min-compression", "6x", "min_compression[prunable_encoder]", "5x is below the budget of 6x"),
    ("--min-compression", "whole_model=3x", "min_compression[whole_model]", "2.1x is below"),
    ("--min-sparsity", "90%", "min_sparsity[prunable_encoder]", "80% is below the budget of 90%"),
    ("--max-latency", "host=1ms", "max_latency[host]", "host latency 1.1 ms exceeds the budget of 1 ms"),
    ("--max-latency", "1ms", "max_latency[host]", "exceeds the budget of 1 ms"),
    ("--max-latency", "rpi4=5ms", "max_latency[rpi4]", "rpi4 latency 7.5 ms exceeds"),
    ("--min-accuracy", "86%", "min_accuracy", "artifact accuracy 85.5% is below the budget of 86%"),
    ("--max-accuracy-drop", "1pt", "max_accuracy_drop", "accuracy drop vs dense 1.3 pt exceeds the budget of 1 pt"),
])
def test_each_budget_fails(bundle, capsys, flag, value, name, fragment):
    code, out, err = run(capsys, "check", str(bundle), "--no-search", flag, value)
    assert code == 1
    assert err.startswith("error: 1 of 2 checks failed") and name in err and fragment in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert "FAIL" in out


def test_boundaries_hold(bundle, capsys):
    """A model exactly at its budget passes (size in bytes, params, a 5x run at min 5x)."""
    size = (bundle / "model.onnx").stat().st_size
    code, _, err = run(capsys, "check", str(bundle), "--no-search", "--max-size", f"{size}B", "--max-params", "2048",
                       "--min-compression", "5x", "--max-latency", "host=1.1ms")
    assert code == 0, err
    code, _, err = run(capsys, "check", str(bundle), "--no-search", "--max-size", f"{size - 1}B")
    assert code == 1 and f"({size} B) exceeds the budget of" in err and f"({size - 1} B)" in err


def test_public_api(bundle):
    import edgeprune
    from edgeprune.budget import Budgets

    res = edgeprune.check(bundle, budgets=Budgets(max_params=4096))
    assert res.passed and res.exit_code == 0 and [r.name for r in res.results] == ["integrity", "max_params"]
    res = edgeprune.check(bundle, budgets=Budgets(max_params=4096), overrides={"max_params": "1k"})
    assert not res.passed and res.failures[0].name == "max_params" and res.failures[0].actual == K * N


def test_public_api_takes_the_toml_shapes_and_names_keys(bundle):
    """Python callers write budgets as in pyproject.toml; errors name those keys, not the CLI's flags."""
    import edgeprune
    from edgeprune.budget.reports import github_annotations
    from edgeprune.errors import ConfigError

    res = edgeprune.check(bundle, budgets={"max_params": "4k", "max_latency": {"host": "25ms", "rpi4": "80ms"}})
    assert res.passed and [r.name for r in res.results][1:] == ["max_params", "max_latency[host]",
                                                                "max_latency[rpi4]"]
    res = edgeprune.check(bundle, budgets={"max_params": "4k"}, overrides={"max_latency": {"host": "1ms"}})
    assert [r.name for r in res.failures] == ["max_latency[host]"]
    assert res.failures[0].budget_source == "check(overrides=...)"
    assert github_annotations(res)[-1].startswith("::error title=")  # not placed on a file line
    for kwargs, fragment in (({"budgets": {"max_latency": {"rpi4": "80"}}}, "max_latency.rpi4 = '80' has no unit"),
                             ({"budgets": {"max_sise": "1MB"}}, "unknown budget key max_sise"),
                             ({"overrides": {"max_size": "1mb"}}, "max_size = '1mb' has an unknown size unit"),
                             ({"search": False}, 'pass budgets={"max_size": "30MB"}'),
                             ({"profile": bundle / "nope.json", "budgets": {"max_size": "1MB"}},
                              "profile " + str(bundle / "nope.json") + " does not exist")):
        with pytest.raises(ConfigError) as e:
            edgeprune.check(bundle, **kwargs)
        assert fragment in str(e.value) and " --" not in str(e.value), str(e.value)


# ----------------------------------------------------------------------------------------------
# Missing measurements fail the budget (exit 1) and name the command that produces the data.

def test_latency_without_profile(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = make_bundle(tmp_path / "b", profile=False)
    code, out, err = run(capsys, "check", str(b), "--no-search", "--max-latency", "host=25ms", "--max-latency",
                         "rpi4=80ms", "--max-size", "30MB")
    assert code == 1
    assert "2 of 4 checks failed" in err and "no measurement: no profile.json; run `edgeprune profile b`" in err
    assert "`edgeprune profile b --target rpi4 --ssh USER@DEVICE`" in err and "predict it with `--target rpi4`" in err
    assert "MISSING" in out


def test_latency_target_not_profiled_and_stale_profile(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = make_bundle(tmp_path / "b")
    code, _, err = run(capsys, "check", str(b), "--no-search", "--max-latency", "pixel=10ms")
    assert code == 1 and "no measurement for pixel in profile.json (has: host, rpi4)" in err
    rec = profile_record(b / "model.onnx")
    rec["file_bytes"] += 1  # measured some other build of the model
    write_json(b / "profile.json", rec)
    code, _, err = run(capsys, "check", str(b), "--no-search", "--max-latency", "host=10ms")
    assert code == 1 and "stale profile" in err


def test_latency_prefers_measured_and_statistic(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = make_bundle(tmp_path / "b", profile=False)
    write_json(b / "profile.json", profile_record(b / "model.onnx", [
        {"target": "rpi4", "kind": "predicted", "latency_ms": {"mean": 50.0}},
        {"target": "rpi4", "kind": "measured", "threads": 4, "latency_ms": {"mean": 70, "p50": 65, "p90": 72, "p99": 90},
         **PI},
        {"target": "rpi4", "kind": "measured", "threads": 1, "latency_ms": {"mean": 80, "p50": 79, "p90": 85, "p99": 99},
         **PI},
        {"target": "rpi4", "kind": "emulated", "instructions": 123456},
    ]))
    from edgeprune.budget import Budgets, check

    r = check(b, budgets=Budgets(max_latency={"rpi4": 0.080})).results[-1]
    assert r.passed and r.actual == pytest.approx(0.079)  # measured beats predicted; slowest configuration (p50)
    assert "measured p50" in r.detail and "threads=1" in r.detail and "slowest of 2" in r.detail
    r = check(b, budgets=Budgets(max_latency={"rpi4": 0.080}, latency_statistic="p99")).results[-1]
    assert not r.passed and r.actual == pytest.approx(0.099)
    code, _, err = run(capsys, "check", str(b), "--no-search", "--max-latency", "rpi4=80ms", "--latency-stat", "p90")
    assert code == 1 and "85 ms" in err


# a measured rpi4 row as `profile --ssh` writes it: the device over ssh, an aarch64 machine
PI = {"runner": "ssh", "target_arch": "aarch64", "device": {"where": "ssh", "dest": "pi@pi:22", "machine": "aarch64",
                                                          "cpu": "0xd08"}}


def test_host_time_recorded_as_rpi4_never_passes(tmp_path, capsys, monkeypatch):
    """Issue 15: a profile.json that labels a host run `rpi4, measured` (what old versions wrote) cannot pass."""
    monkeypatch.chdir(tmp_path)
    b = make_bundle(tmp_path / "b", profile=False)
    host_as_pi = {"target": "rpi4", "kind": "measured", "runner": "host", "machine": "x86_64", "cpu": "AMD EPYC",
                  "latency_ms": {"mean": 26.0, "p50": 26.0}}
    write_json(b / "profile.json", profile_record(b / "model.onnx", [
        host_as_pi, {"target": "rpi4", "kind": "predicted", "latency_ms": {"mean": 349.0}}]))
    from edgeprune.budget import Budgets, check

    r = check(b, budgets=Budgets(max_latency={"rpi4": 0.080})).results[-1]
    assert not r.passed and r.actual == pytest.approx(0.349)       # the prediction gates, not the host's 26 ms
    assert "estimate" in r.detail and "ran on this machine (x86_64, AMD EPYC), not on a rpi4" in r.detail
    # an emulated run is instruction counts: still only the prediction gates, and the detail says why
    write_json(b / "profile.json", profile_record(b / "model.onnx", [
        host_as_pi, {"target": "rpi4", "kind": "predicted", "latency_ms": {"mean": 349.0}},
        {"target": "rpi4", "kind": "emulated", "instructions": 10**9}]))
    r = check(b, budgets=Budgets(max_latency={"rpi4": 0.080})).results[-1]
    assert r.actual == pytest.approx(0.349) and "1 emulated row(s): instruction counts" in r.detail
    # without a prediction: missing, and the line says which evidence is missing
    write_json(b / "profile.json", profile_record(b / "model.onnx", [host_as_pi]))
    code, _, err = run(capsys, "check", str(b), "--no-search", "--max-latency", "rpi4=80ms")
    assert code == 1
    assert "no rpi4 measurement in profile.json: its measured rpi4 rows do not count (it ran on this machine" in err
    assert "--ssh USER@DEVICE" in err
    # an ssh run on an x86 machine is no rpi4 run either; an aarch64 one is
    x86 = {**PI, "device": {**PI["device"], "machine": "x86_64"}}
    write_json(b / "profile.json", profile_record(b / "model.onnx", [
        {"target": "rpi4", "kind": "measured", "latency_ms": {"p50": 26.0}, **x86}]))
    assert check(b, budgets=Budgets(max_latency={"rpi4": 0.080})).results[-1].status == "missing"
    write_json(b / "profile.json", profile_record(b / "model.onnx", [
        {"target": "rpi4", "kind": "measured", "latency_ms": {"p50": 26.0}, **PI}]))
    assert check(b, budgets=Budgets(max_latency={"rpi4": 0.080})).results[-1].passed


def test_gpu_rows_count_only_when_fully_delegated(tmp_path):
    from edgeprune.budget.latency import rejected, select_latency

    def gpu(status, p50=12.0):
        return {"target": "phone", "kind": "measured", "unit": "gpu", "runner": "adb", "latency_ms": {"p50": p50},
                "delegation": {"status": status}}

    for status in ("partial", "failed", "none", "unknown"):
        assert select_latency([gpu(status)], "phone-gpu") is None, status
        assert rejected([gpu(status)], "phone-gpu") == [f"GPU delegation {status}: not a GPU latency"]
    legacy = gpu("full")
    del legacy["delegation"]                                    # written before delegation was recorded
    assert select_latency([legacy], "phone-gpu") is None
    assert select_latency([gpu("full")], "phone-gpu").seconds == pytest.approx(0.012)


def test_gpu_budget_on_onnx_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = make_bundle(tmp_path / "b", profile=False)
    write_json(b / "profile.json", profile_record(b / "model.onnx", [
        {"target": "phone", "kind": "predicted", "latency_ms": {"mean": 20.0}, "gpu_latency_ms": {"mean": 5.0}}]))
    code, _, err = run(capsys, "check", str(b), "--no-search", "--max-latency", "phone-gpu=10ms")
    assert code == 2 and "no supported runner puts an ONNX model on a GPU" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_latency_selection_rules():
    """XNNPACK runs gate a TFLite profile; ``<target>-gpu`` reads GPU results; emulated runs carry no latency."""
    from edgeprune.budget.latency import select_latency

    results = [
        {"target": "host", "kind": "measured", "xnnpack": True, "threads": 1, "latency_ms": {"p50": 8.0, "mean": 8.2}},
        {"target": "host", "kind": "measured", "xnnpack": False, "threads": 1, "latency_ms": {"p50": 100.0}},
        {"target": "phone", "kind": "measured", "unit": "cpu", "runner": "adb", "latency_ms": {"p50": 30.0}},
        {"target": "phone", "kind": "measured", "unit": "gpu", "runner": "adb", "latency_ms": {"p50": 12.0},
         "delegation": {"status": "full"}},
        {"target": "rpi5", "kind": "emulated", "instructions": 10**9},
        {"target": "rpi5", "kind": "predicted", "latency_ms": {"mean": 40.0}, "gpu_latency_ms": None},
        {"target": "pixel", "kind": "predicted", "latency_ms": {"mean": 20.0}, "gpu_latency_ms": {"mean": 5.0}},
    ]
    host = select_latency(results, "host")
    assert host.seconds == pytest.approx(0.008) and "xnnpack=on" in host.detail
    assert select_latency(results, "host", "mean").seconds == pytest.approx(0.0082)
    assert select_latency(results[1:2], "host").seconds == pytest.approx(0.1)  # only no-XNNPACK runs: they gate
    assert select_latency(results, "phone").seconds == pytest.approx(0.030)
    gpu = select_latency(results, "phone-gpu")
    assert gpu.seconds == pytest.approx(0.012) and gpu.kind == "measured" and "GPU" in gpu.detail
    rpi5 = select_latency(results, "rpi5")
    assert rpi5.kind == "predicted" and rpi5.seconds == pytest.approx(0.040) and "p50 not reported" in rpi5.detail
    assert select_latency(results, "pixel-gpu").seconds == pytest.approx(0.005)
    assert select_latency(results, "rpi5-gpu") is None and select_latency(results, "rpi4") is None


def test_profile_written_by_profile_for_a_bare_file_and_sha_staleness(tmp_path):
    """`edgeprune profile m.onnx` writes profile-m/profile.json; a recorded sha256 must match the artifact."""
    from edgeprune.budget import Budgets, check
    from edgeprune.io import sha256_file

    art = tiny_onnx(tmp_path / "m.onnx")
    rec = {**profile_record(art), "artifact": str(art), "sha256": sha256_file(art)}
    write_json(tmp_path / "profile-m" / "profile.json", rec)
    r = check(art, budgets=Budgets(max_latency={"host": 0.01})).results[0]
    assert r.passed and r.source.endswith(os.path.join("profile-m", "profile.json"))
    write_json(tmp_path / "profile-m" / "profile.json", {**rec, "sha256": "0" * 64})
    r = check(art, budgets=Budgets(max_latency={"host": 0.01})).results[0]
    assert r.status == "missing" and "another sha256" in r.reason


def test_compression_missing_on_dense_bundle(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = make_bundle(tmp_path / "b", compression={}, metrics=None)
    code, _, err = run(capsys, "check", str(b), "--no-search", "--min-compression", "2x", "--min-sparsity", "50%",
                       "--max-accuracy-drop", "1pt")
    assert code == 1 and "3 of 4 checks failed" in err
    assert "no compression record" in err and "edgeprune compress" in err
    assert "no dense reference metric" in err
    code, _, err = run(capsys, "check", str(make_bundle(tmp_path / "c")), "--no-search", "--min-compression", "bogus=2x")
    assert code == 1 and "has no 'bogus' definition (has: prunable_encoder, whole_encoder, whole_model)" in err


def test_compression_as_plain_ratios(tmp_path):
    """A manifest whose compression maps definitions straight to ratios: sparsity = 1 - 1/ratio."""
    from edgeprune.budget import Budgets, check

    b = make_bundle(tmp_path / "b", compression={"prunable_encoder": 4.0, "whole_model": 2.0})
    res = check(b, budgets=Budgets(min_sparsity={"prunable_encoder": 0.75, "whole_model": 0.6}))
    by = {r.name: r for r in res.results}
    assert by["min_sparsity[prunable_encoder]"].passed and by["min_sparsity[prunable_encoder]"].actual == 0.75
    assert not by["min_sparsity[whole_model]"].passed and by["min_sparsity[whole_model]"].actual == 0.5


def test_accuracy_missing_and_dense_metric_from_export_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = make_bundle(tmp_path / "b", verification={**VERIFICATION, "metric_artifact": None, "metric_torch": None})
    code, _, err = run(capsys, "check", str(b), "--no-search", "--min-accuracy", "0.5")
    assert code == 1 and "verification.json has no metric_artifact" in err
    s = make_bundle(tmp_path / "s", verification={"passed": True, "reason": "verification skipped (--no-verify)",
                                                 "skipped": True})
    code, _, err = run(capsys, "check", str(s), "--no-search", "--max-accuracy-drop", "1pt")
    assert code == 1 and "the export skipped verification (--no-verify)" in err
    # dense metric only in export_report.json; no pruned metric: drop = dense - artifact = (0.9 - 0.855) * 100
    c = tmp_path / "c"
    c.mkdir()
    write_json(c / "export_report.json", {"artifact": "model.onnx", "metrics": {"dense": 0.9}})
    make_bundle(c, metrics=None)
    from edgeprune.budget import Budgets, check

    r = check(c, budgets=Budgets(max_accuracy_drop=5.0)).results[-1]
    assert r.passed and r.actual == pytest.approx(4.5) and "export_report.json" in r.detail


# ----------------------------------------------------------------------------------------------
# Integrity: a tampered or truncated bundle fails the gate.

def test_tampered_bundle(bundle, capsys):
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[-5] ^= 0xFF  # same size, different bytes
    (bundle / "model.onnx").write_bytes(bytes(data))
    code, out, err = run(capsys, "check", str(bundle), "--no-search", "--max-size", "30MB")
    assert code == 1 and "integrity" in err and "sha256 differs" in err
    assert "1 of 2 checks failed" in err  # the size budget itself still holds and is reported


def test_truncated_and_missing_files(bundle, capsys):
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[: len(data) // 2])
    (bundle / "tokenizer.json").unlink()
    code, out, err = run(capsys, "check", str(bundle), "--no-search", "--max-params", "10k")
    assert code == 1
    assert "model.onnx" in err and "truncated or replaced" in err and "(+1 more)" in err
    assert "cannot be parsed as ONNX" in err  # the parameter count cannot be read either: it fails, no traceback


def test_artifact_path_inside_bundle_uses_the_bundle(bundle, capsys):
    (bundle / "tokenizer.json").write_text("{}")  # tampered sibling file
    code, _, err = run(capsys, "check", str(bundle / "model.onnx"), "--no-search", "--max-size", "30MB")
    assert code == 1 and "tokenizer.json" in err


# ----------------------------------------------------------------------------------------------
# Plain artifacts

def test_plain_artifact(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    art = tiny_onnx(tmp_path / "plain" / "m.onnx")
    code, out, err = run(capsys, "check", str(art), "--no-search", "--max-size", "30MB", "--max-params", "2048")
    assert code == 0, err
    assert "integrity" not in out  # nothing to verify without a manifest
    code, _, err = run(capsys, "check", str(art), "--no-search", "--min-accuracy", "0.8", "--min-compression", "2x",
                       "--max-latency", "host=5ms")
    assert code == 1 and "3 of 3 checks failed" in err
    assert "bare artifact carries no compression record" in err and "verification.json of a bundle" in err
    write_json(art.parent / "m.profile.json", profile_record(art))
    code, _, err = run(capsys, "check", str(art), "--no-search", "--max-latency", "host=5ms")
    assert code == 0, err


def test_plain_artifact_ignores_profile_of_another_model(tmp_path):
    from edgeprune.budget import Budgets, check

    art = tiny_onnx(tmp_path / "m.onnx")
    other = tiny_onnx(tmp_path / "other.onnx")
    write_json(tmp_path / "profile.json", profile_record(other))
    r = check(art, budgets=Budgets(max_latency={"host": 0.01})).results[0]
    assert r.status == "missing"
    r = check(other, budgets=Budgets(max_latency={"host": 0.01})).results[0]
    assert r.passed


def test_onnx_parameter_counting_rules(tmp_path):
    """Floats count; integer constants count only as dequantized values (also inside model-local functions);
    int64 shapes, uint8 indices and zero points don't; a sparse initializer counts its stored values."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgeprune.budget.params import artifact_files, count_onnx

    rng = np.random.default_rng(0)
    wq = rng.integers(-127, 127, size=(K, N), dtype=np.int8)
    inits = [numpy_helper.from_array(wq, "Wq"), numpy_helper.from_array(np.array(0.01, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "zp"),
             numpy_helper.from_array(rng.integers(-50, 50, size=N).astype(np.int32), "bq"),
             numpy_helper.from_array(np.array(0.0001, np.float32), "sb"),
             numpy_helper.from_array(rng.integers(-9, 9, size=N).astype(np.int8), "q2"),
             numpy_helper.from_array(rng.permutation(N).astype(np.uint8), "idx"),
             numpy_helper.from_array(np.array([1, N], np.int64), "shape")]
    sp_vals = numpy_helper.from_array(np.arange(1, 6, dtype=np.float32), "sp")
    sp_idx = numpy_helper.from_array(np.array([0, 3, 7, 11, 31], np.int64), "sp_idx")
    sparse = helper.make_sparse_tensor(sp_vals, sp_idx, [N])
    # a model-local function that dequantizes its int8 input with a Cast to float (like a packed int8 op)
    dq = helper.make_function("ai.edgeprune", "CastScale", ["q", "scale"], ["y"],
                              [helper.make_node("Cast", ["q"], ["qf"], to=TensorProto.FLOAT),
                               helper.make_node("Mul", ["qf", "scale"], ["y"])],
                              [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("DequantizeLinear", ["Wq", "s", "zp"], ["W"]),
             helper.make_node("DequantizeLinear", ["bq", "sb"], ["b"]),
             helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(N, np.float32))),
             helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y0"]),
             helper.make_node("Add", ["y0", "c"], ["y1"]), helper.make_node("Add", ["y1", "sp"], ["y2"]),
             helper.make_node("CastScale", ["q2", "s"], ["d"], domain="ai.edgeprune"),
             helper.make_node("Add", ["y2", "d"], ["y3"]),
             helper.make_node("Cast", ["idx"], ["idx64"], to=TensorProto.INT64),
             helper.make_node("Gather", ["y3", "idx64"], ["y4"], axis=1),
             helper.make_node("Reshape", ["y4", "shape"], ["y"])]
    graph = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])], inits,
                              sparse_initializer=[sparse])
    model = helper.make_model(graph, functions=[dq], opset_imports=[helper.make_opsetid("", 17),
                                                                    helper.make_opsetid("ai.edgeprune", 1)])
    onnx.checker.check_model(model)
    path = tmp_path / "q.onnx"
    onnx.save(model, str(path))
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": np.ones((1, K), np.float32)})
    pc = count_onnx(path)
    # Wq 2048 + s 1 + bq 32 (quantized bias) + sb 1 + Constant 32 + sparse 5 stored + q2 32 (dequantized in the
    # function); zp (zero point), idx (uint8 indices) and shape (int64) are not parameters
    assert pc.stored == K * N + 1 + N + 1 + N + 5 + N
    assert pc.dense_equivalent == pc.stored - 5 + N
    assert pc.by_dtype == {"int8": K * N + N, "float": 1 + 1 + N + 5, "int32": N}

    # External data: the size budget covers the .onnx and its weight file; the count does not load weights.
    ext = tmp_path / "ext" / "m.onnx"
    ext.parent.mkdir()
    onnx.save(onnx.load(str(tiny_onnx(tmp_path / "t.onnx"))), str(ext), save_as_external_data=True,
              all_tensors_to_one_file=True, location="m.onnx.data", size_threshold=0)
    files = artifact_files(ext)
    assert [p.name for p in files.files] == ["m.onnx", "m.onnx.data"]
    assert files.bytes == ext.stat().st_size + (ext.parent / "m.onnx.data").stat().st_size
    assert count_onnx(ext).stored == K * N
    (ext.parent / "m.onnx.data").unlink()
    assert artifact_files(ext).missing == ("m.onnx.data",)


def _tiny_tflite(path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A real FULLY_CONNECTED TFLite flatbuffer built with LiteRT's schema (no TensorFlow needed)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    bias = np.array([0.5, -1.0, 2.0], np.float32)

    def buffer(arr=None):
        b = s.BufferT()
        b.data = None if arr is None else np.frombuffer(arr.tobytes(), np.uint8)
        return b

    def tensor(name, shape, buf, ttype=s.TensorType.FLOAT32):
        t = s.TensorT()
        t.name, t.shape, t.buffer, t.type = name, np.array(shape, np.int32), buf, ttype
        return t

    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, np.array([0, 1, 2], np.int32), np.array([3], np.int32)
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT()
    sg = s.SubGraphT()
    sg.tensors = [tensor("x", [1, 4], 0), tensor("w", [3, 4], 1), tensor("b", [3], 2), tensor("y", [1, 3], 0),
                  tensor("shape", [2], 3, s.TensorType.INT32)]  # an unquantized int32 constant: not a parameter
    sg.inputs, sg.outputs, sg.operators = np.array([0], np.int32), np.array([3], np.int32), [op]
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    m = s.ModelT()
    m.version, m.operatorCodes, m.subgraphs = 3, [code], [sg]
    m.buffers = [buffer(), buffer(w), buffer(bias), buffer(np.array([1, 3], np.int32))]
    builder = flatbuffers.Builder(0)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path, w, bias


def test_tflite_parameter_count(tmp_path, capsys, monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    from edgeprune.budget.params import count_tflite

    path, w, bias = _tiny_tflite(tmp_path / "m.tflite")
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    x = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    np.testing.assert_allclose(interp.get_tensor(interp.get_output_details()[0]["index"]), x @ w.T + bias, rtol=1e-6)
    pc = count_tflite(path)
    assert pc.stored == 12 + 3 and pc.tensors == 2  # w and b; the int32 shape constant is not a parameter
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "check", str(path), "--no-search", "--max-params", "14")
    assert code == 1 and "stored parameters 15 exceeds the budget of 14" in err
    path.write_bytes(path.read_bytes()[:10])
    code, _, err = run(capsys, "check", str(path), "--no-search", "--max-params", "14")
    assert code == 2 and err.startswith("error:") and "truncated" in err


# ----------------------------------------------------------------------------------------------
# Bad input: exit 2, one line, nothing written.

@pytest.mark.parametrize("case", ["missing", "txt", "no_manifest", "no_budgets", "bad_override", "bad_toml",
                                  "unknown_key", "junit_parent_is_file", "plain_truncated", "bad_manifest"])
def test_bad_input_exits_2(tmp_path, capsys, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    b = make_bundle(tmp_path / "b")
    args = ["check", str(b), "--max-size", "30MB"]
    if case == "missing":
        args[1] = str(tmp_path / "nope")
    elif case == "txt":
        (tmp_path / "m.txt").write_text("x")
        args[1] = str(tmp_path / "m.txt")
    elif case == "no_manifest":
        (tmp_path / "empty").mkdir()
        args[1] = str(tmp_path / "empty")
    elif case == "no_budgets":
        args = ["check", str(b), "--no-search"]
    elif case == "bad_override":
        args += ["--max-latency", "rpi4=80"]
    elif case == "bad_toml":
        (tmp_path / "edgeprune.toml").write_text("[budgets\nmax_size = 1")
    elif case == "unknown_key":
        (tmp_path / "edgeprune.toml").write_text('[budgets]\nmax_sise = "30MB"\n')
    elif case == "junit_parent_is_file":
        args += ["--junit", str(b / "model.onnx" / "j.xml")]
    elif case == "plain_truncated":
        (tmp_path / "t.onnx").write_bytes((b / "model.onnx").read_bytes()[:100])
        args = ["check", str(tmp_path / "t.onnx"), "--no-search", "--max-params", "1M"]
    elif case == "bad_manifest":
        (b / "manifest.json").write_text("{not json")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out, err = run(capsys, *args)
    assert code == 2, (out, err)
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written
    expected = {"missing": "does not exist", "txt": "neither .onnx nor .tflite", "no_manifest": "is not a bundle",
                "no_budgets": "no budgets to check", "bad_override": "has no unit", "bad_toml": "not valid TOML",
                "unknown_key": "valid keys: max_size", "junit_parent_is_file": "is a file, not a folder",
                "plain_truncated": "cannot be parsed as ONNX", "bad_manifest": "not valid JSON"}[case]
    assert expected in err


# ----------------------------------------------------------------------------------------------
# Budget files through the command line

def test_pyproject_discovery_and_override_precedence(tmp_path, capsys, monkeypatch):
    project = tmp_path / "repo"
    b = make_bundle(project / "build" / "bundle")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.edgeprune.budgets]\nmax_size = "1kB"\nmax_latency = { host = "25ms" }\n')
    monkeypatch.chdir(tmp_path)  # found from the artifact's folder upward, not from the cwd
    code, out, err = run(capsys, "check", str(b), "--github")
    assert code == 1 and "max_size" in err and "budgets from" in out and "pyproject.toml" in out
    assert "::error file=repo/pyproject.toml,line=5,title=edgeprune check%3A max_size::" in out
    code, _, err = run(capsys, "check", str(b), "--max-size", "30MB")  # command line wins
    assert code == 0, err
    code, _, err = run(capsys, "check", str(b), "--max-size", "off")  # ... and can switch a budget off
    assert code == 0, err
    other = tmp_path / "strict.toml"
    other.write_text('[budgets]\nmax_params = "1k"\n')
    code, _, err = run(capsys, "check", str(b), "--config", str(other))  # --config replaces discovery
    assert code == 1 and "max_params" in err and "max_size" not in err


# ----------------------------------------------------------------------------------------------
# Reports

def test_junit_xml_structure(bundle, capsys, tmp_path):
    junit = tmp_path / "out" / "check.xml"
    junit.parent.mkdir()
    code, _, _ = run(capsys, "check", str(bundle), "--no-search", *ALL_PASS[:-1], "1pt", "--max-latency", "pixel=5ms",
                     "--junit", str(junit))
    assert code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    assert len(cases) == 10
    failed = [c for c in cases if c.find("failure") is not None]
    assert sorted(c.get("name") for c in failed) == ["max_accuracy_drop", "max_latency[pixel]"]
    for el in (root, suite):
        assert int(el.get("tests")) == len(cases)
        assert int(el.get("failures")) == len(failed)
        assert int(el.get("errors")) == 0 and int(el.get("skipped")) == 0
        float(el.get("time"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))
    for c in cases:
        assert c.get("name") and c.get("classname") == suite.get("name") == "edgeprune.check.bundle"
        assert float(c.get("time")) >= 0
        assert set(c.attrib) == {"name", "classname", "time"}
    kinds = {c.get("name"): c.find("failure").get("type") for c in failed}
    assert kinds == {"max_accuracy_drop": "BudgetExceeded", "max_latency[pixel]": "MissingMeasurement"}
    msg = dict((c.get("name"), c.find("failure").get("message")) for c in failed)
    assert "1.3 pt exceeds the budget of 1 pt" in msg["max_accuracy_drop"]
    assert "budget set in: --max-accuracy-drop" in [c for c in failed if c.get("name") == "max_accuracy_drop"][0] \
        .find("failure").text


def test_github_annotations_and_step_summary(bundle, capsys, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("previous step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (tmp_path / "edgeprune.toml").write_text('[budgets]\nmax_size = "30MB"\nmin_accuracy = "90%"\n')
    code, out, _ = run(capsys, "check", str(bundle), "--github")
    assert code == 1
    lines = [ln for ln in out.splitlines() if ln.startswith("::")]
    assert len(lines) == 3
    pattern = re.compile(r"^::(error|notice) (file=[^,:]+,line=\d+,)?title=[^:,]+::[^\r\n]+$")
    assert all(pattern.match(ln) for ln in lines), lines
    assert lines[0].startswith("::notice title=edgeprune check%3A integrity::")
    assert lines[1].startswith("::notice title=edgeprune check%3A max_size::")
    assert lines[2].startswith("::error file=edgeprune.toml,line=3,title=edgeprune check%3A min_accuracy::"
                               "artifact accuracy 85.5%25 is below the budget of 90%25")
    text = summary.read_text()
    assert text.startswith("previous step\n") and "### edgeprune check: ❌ 1 of 3 checks failed" in text


def test_annotation_escaping():
    from edgeprune.budget.reports import _escape_data, _escape_property

    assert _escape_data("50% done\nnext\r") == "50%25 done%0Anext%0D"
    assert _escape_property("a: b, c") == "a%3A b%2C c"


def test_markdown_summary(bundle, capsys, tmp_path):
    md = tmp_path / "pr.md"
    code, _, _ = run(capsys, "check", str(bundle), "--no-search", "--max-size", "1kB", "--max-params", "10k",
                     "--markdown", str(md))
    assert code == 1
    text = md.read_text()
    assert text.startswith("### edgeprune check: ❌ 1 of 3 checks failed")
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    assert [r.split("|")[1].strip() for r in rows] == ["`integrity`", "`max_size`", "`max_params`"]
    assert "❌ fail" in rows[1] and "✅ pass" in rows[2]
    assert "| check | limit | actual | result | details |" in text


def test_console_script_exit_codes(bundle, tmp_path):
    """The installed ``edgeprune`` command, as CI runs it."""
    exe = Path(sys.executable).with_name("edgeprune")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "edgeprune"]
    env = {**os.environ, "GITHUB_STEP_SUMMARY": ""}
    ok = subprocess.run([*cmd, "check", str(bundle), "--no-search", "--max-size", "30MB"], capture_output=True,
                        text=True, cwd=tmp_path, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*cmd, "check", str(bundle), "--no-search", "--max-size", "1kB"], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("error: 1 of 2 checks failed")
    worse = subprocess.run([*cmd, "check", str(bundle), "--no-search", "--max-size", "1kb"], capture_output=True,
                           text=True, cwd=tmp_path, env=env, timeout=120)
    assert worse.returncode == 2 and "bits" in worse.stderr and "Traceback" not in worse.stderr


def test_help_lists_every_flag():
    from click.testing import CliRunner

    from edgeprune.cli import cli

    res = CliRunner().invoke(cli, ["check", "--help"])
    assert res.exit_code == 0
    for flag in ("--config", "--max-size", "--max-params", "--min-compression", "--min-sparsity", "--max-latency",
                 "--min-accuracy", "--max-accuracy-drop", "--junit", "--github", "--markdown"):
        assert flag in res.output


def test_existing_reports_are_replaced_only_with_overwrite(bundle, capsys, tmp_path):
    for flag, name in (("--junit", "j.xml"), ("--markdown", "s.md"), ("--json", "r.json")):
        report = tmp_path / name
        report.write_text("old")
        code, out, err = run(capsys, "check", str(bundle), "--no-search", "--max-size", "30MB", flag, str(report))
        assert code == 2 and err == f"error: {report} already exists; pass --overwrite to replace it, or choose " \
            f"another {flag}\n" and report.read_text() == "old"
        code, _, err = run(capsys, "check", str(bundle), "--no-search", "--max-size", "30MB", flag, str(report),
                           "--overwrite")
        assert code == 0, err
        assert report.read_text() != "old"


def test_reports_written_next_to_failures_are_complete(bundle, capsys, tmp_path):
    """Reports are written for exit 1 (CI uploads them), atomically: no temp files left behind."""
    out = tmp_path / "reports"
    out.mkdir()
    run(capsys, "check", str(bundle), "--no-search", "--max-size", "1kB", "--junit", str(out / "j.xml"),
        "--markdown", str(out / "s.md"))
    assert sorted(p.name for p in out.iterdir()) == ["j.xml", "s.md"]
    shutil.rmtree(out)


# ----------------------------------------------------------------------------------------------
# The real thing: a bundle written by the ONNX exporter from a pruned tiny BERT.

def test_real_exported_bundle(tiny_bert, tmp_path, capsys, monkeypatch):
    import torch

    from edgeprune.arch import get_arch, prunable_linears
    from edgeprune.exporters.api import export
    from edgeprune.exporters.base import ExportConfig
    from edgeprune.models import load_model, save_model
    from edgeprune.prune.blocks import parse_block, tiling_for
    from edgeprune.prune.masks import magnitude_scores, prune_groups
    from edgeprune.prune.report import compression_figures
    from edgeprune.rundir import save_masks
    from tests.support.checkpoints import glue_dir

    from edgeprune.budget.params import count_onnx

    model, tok = load_model(tiny_bert)
    weights = {f"{n}.weight": m.weight.detach() for n, m in prunable_linears(model).items()}
    tilings = {n: tiling_for(tuple(w.shape), parse_block("16x16")) for n, w in weights.items()}
    masks = prune_groups(magnitude_scores(weights, tilings), tilings, 0.25).masks
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, m in masks.items():
            params[n].mul_(m.to(params[n].dtype))
    run_dir = tmp_path / "run"
    save_model(model, tok, run_dir / "model")
    save_masks(masks, run_dir / "model" / "masks.safetensors")
    figs = compression_figures(model, masks, get_arch(model.config.model_type).layer_regex)
    write_json(run_dir / "compression.json", {"task": "sst2", "compression": figs,
                                          "metrics": {"dense": {"main": 0.52}, "pruned": {"main": 0.51}}})
    bundle = tmp_path / "bundle"
    export(run_dir, ExportConfig(format="onnx", seq_len=32, task="sst2", data_dir=str(glue_dir()), verify_examples=32),
           bundle)
    monkeypatch.chdir(tmp_path)

    # stored parameters: every float initializer/constant, packed values only for the pruned layers
    pc = count_onnx(bundle / "model.onnx")
    kept_prunable = figs["prunable_encoder"]["kept"]
    assert kept_prunable < pc.stored < figs["whole_model"]["dense"] - figs["prunable_encoder"]["dense"] + 2 * kept_prunable
    assert set(pc.by_dtype) == {"float"}  # uint8 block indices are not parameters

    code, out, err = run(capsys, "check", "bundle", "--no-search", "--max-size", "1MB", "--max-params",
                         str(pc.stored), "--min-compression", "4x", "--min-sparsity", "75%", "--min-accuracy", "0",
                         "--max-accuracy-drop", "1pt", "--json", "r.json")
    assert code == 0, out + err
    by = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert by["min_compression[prunable_encoder]"]["actual"] == pytest.approx(figs["prunable_encoder"]["compression"])
    # drop = (0.52 - 0.51) * 100 + (metric_torch - metric_artifact) * 100, the latter 0 for a verified fp32 export
    ver = json.loads((bundle / "verification.json").read_text())
    assert by["max_accuracy_drop"]["actual"] == pytest.approx(1.0 + (ver["metric_torch"] - ver["metric_artifact"]) * 100)
    code, _, err = run(capsys, "check", "bundle", "--no-search", "--max-params", str(pc.stored - 1))
    assert code == 1 and f"({pc.stored}) exceeds the budget of" in err and f"({pc.stored - 1})" in err
