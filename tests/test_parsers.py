"""Parsers on fixtures written from the tools' documented output formats (docs/arm.md section 7)."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgeprune.targets.parsers import parse_benchmark_model, parse_litert_json, parse_perf_test
from edgeprune.targets.stats import summarize

FIX = Path(__file__).parent / "fixtures"


def read(name: str) -> str:
    return (FIX / name).read_text()


def test_benchmark_model_current_generation():
    r = parse_benchmark_model(read("benchmark_model_current.txt"))
    assert r["generation"] == "current"
    # "Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2"
    assert r["init_ms"] == pytest.approx(119.515)
    assert r["first_ms"] == pytest.approx(87.112)
    assert r["warmup_avg_ms"] == pytest.approx(58.1474)
    assert r["latency_ms"]["mean"] == pytest.approx(63.7432)
    # the timed stats line (after the last "Running benchmark"), with percentiles: median=63500 p95=67200 std=1841
    assert r["latency_ms"]["p50"] == pytest.approx(63.5)
    assert r["latency_ms"]["p95"] == pytest.approx(67.2)
    assert r["latency_ms"]["std"] == pytest.approx(1.841)
    assert r["latency_ms"]["n"] == 50
    assert r["warmup_us"]["count"] == 9
    assert r["memory_mb"] == {"init": 55.4961, "overall": 55.4961, "kind": "delta"}


def test_benchmark_model_older_generation_gpu_run():
    r = parse_benchmark_model(read("benchmark_model_older_gpu.txt"))
    assert r["generation"] == "older"
    assert r["latency_ms"]["mean"] == pytest.approx(35.8804)
    assert "p50" not in r["latency_ms"]          # this generation prints no percentiles
    assert r["latency_ms"]["min"] == pytest.approx(34.87)
    assert r["memory_mb"] == {"init": 212.109, "overall": 268.492, "kind": "peak"}
    assert r["init_ms"] == pytest.approx(1423.02)


def test_benchmark_model_oldest_generation():
    r = parse_benchmark_model(read("benchmark_model_oldest.txt"))
    assert r["generation"] == "oldest"
    # "Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9"
    assert r["latency_ms"]["mean"] == pytest.approx(79.7609)
    assert r["init_ms"] == pytest.approx(38.467)
    assert r["warmup_avg_ms"] == pytest.approx(83.235)


def test_benchmark_model_op_profile_table():
    r = parse_benchmark_model(read("benchmark_model_op_profile.txt"))
    assert r["latency_ms"]["mean"] == pytest.approx(28.4213)
    types = {row["node_type"]: row for row in r["op_profile"]}
    assert list(types) == ["FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "ADD"]
    assert types["FULLY_CONNECTED"]["avg_ms"] == pytest.approx(20.114)
    assert types["FULLY_CONNECTED"]["times_called"] == 72
    assert types["ADD"]["cdf_percent"] == pytest.approx(100.0)
    assert sum(row["percent"] for row in r["op_profile"]) == pytest.approx(100.0, abs=0.01)


def test_litert_compiled_model_block():
    r = parse_benchmark_model(read("litert_compiled_model.txt"))
    assert r["generation"] == "compiled_model"
    assert r["init_ms"] == pytest.approx(12.5)
    assert r["latency_ms"] == {"mean": 7.25, "min": 7.01, "max": 8.1, "std": 0.21}
    assert r["peak_memory_mb"] == pytest.approx(31.2)


def test_litert_python_tool_text_and_json_agree():
    text = parse_benchmark_model(read("litert_python_tool.txt"))
    js = parse_litert_json(read("litert_python_tool.json"))
    assert text["latency_ms"]["mean"] == js["latency_ms"]["mean"] == pytest.approx(4.97)
    assert text["latency_ms"]["p50"] == js["latency_ms"]["p50"] == pytest.approx(4.95)
    assert text["latency_ms"]["p95"] == js["latency_ms"]["p95"] == pytest.approx(5.30)
    assert text["fully_accelerated"] is True and js["latency_ms"]["n"] == 20
    assert js["init_ms"] == pytest.approx(10.02)


def test_perf_test_current_with_stats():
    r = parse_perf_test(read("perf_test_current.txt"))
    assert r["generation"] == "current"
    assert r["latency_ms"]["mean"] == pytest.approx(98.961997)
    assert r["latency_ms"]["min"] == pytest.approx(95.8204)       # 0.0958204 s
    assert r["latency_ms"]["p50"] == pytest.approx(98.1377)
    assert r["latency_ms"]["p99"] == pytest.approx(104.512)
    assert r["session_creation_ms"] == pytest.approx(217.932)
    assert r["peak_memory_bytes"] == 271122432
    assert r["requests"] == 5 and r["first_ms"] == pytest.approx(196)


def test_perf_test_older_format():
    r = parse_perf_test(read("perf_test_older.txt"))
    assert r["generation"] == "older"
    assert r["latency_ms"] == {"mean": 9.67, "n": 20}
    assert r["peak_memory_bytes"] == 52318208


def test_parsers_reject_text_without_timings():
    with pytest.raises(ValueError):
        parse_benchmark_model("ERROR: Could not open 'model.tflite'.\n")
    with pytest.raises(ValueError):
        parse_perf_test("Error: model file not found")


def test_summarize_hand_computed():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    # mean 2.5; population std sqrt(1.25); linear percentiles: p50 2.5, p90 3.7, p99 3.97
    assert s["mean"] == pytest.approx(2.5)
    assert s["std"] == pytest.approx(1.25 ** 0.5)
    assert (s["p50"], s["p90"], s["p99"]) == pytest.approx((2.5, 3.7, 3.97))
    with pytest.raises(ValueError):
        summarize([])


# --- GPU delegation verdicts (fixtures: real benchmark_model logs, see fixtures/README.md) -------------------
def test_gpu_fully_delegated():
    from edgeprune.targets.delegation import parse_delegation

    text = read("benchmark_model_gpu_full.txt")
    d = parse_delegation(text)
    assert d.status == "full" and d.is_gpu_latency and d.created and d.delegate_kernels == 1
    assert d.lines[-1].startswith("Explicitly applied GPU delegate, and the model graph will be completely executed")
    r = parse_benchmark_model(text)
    assert r["delegation"]["status"] == "full"
    assert r["latency_ms"]["mean"] == pytest.approx(119.375) and r["init_ms"] == pytest.approx(870.557)


def test_gpu_partially_delegated_logcat():
    from edgeprune.targets.delegation import parse_delegation

    d = parse_delegation(read("benchmark_model_gpu_partial.txt"))
    assert d.status == "partial" and not d.is_gpu_latency
    assert d.delegate_kernels == 2 and (d.nodes_delegated, d.nodes_total) == (294, 297)
    assert d.unsupported == ("UNPACK: Operation is not supported.",)
    assert "only partially applied (294 of 297 nodes on the GPU)" in d.describe()
    assert parse_benchmark_model(read("benchmark_model_gpu_partial.txt"))["delegation"]["status"] == "partial"


def test_gpu_delegation_failed_has_no_timings():
    from edgeprune.targets.delegation import parse_delegation

    text = read("benchmark_model_gpu_failed.txt")
    d = parse_delegation(text)
    assert d.status == "failed" and d.created and not d.is_gpu_latency
    assert any("Failed to apply GPU delegate" in ln for ln in d.lines)
    with pytest.raises(ValueError):
        parse_benchmark_model(text)


def test_gpu_delegation_other_verdicts():
    from edgeprune.targets.delegation import parse_delegation

    # no verdict line (the older fixture): unknown, never a GPU latency
    assert parse_delegation(read("benchmark_model_older_gpu.txt")).status == "unknown"
    # "Though GPU delegate is explicitly applied, ..." and the old "First 0 operations will run on the GPU"
    none = parse_delegation("INFO: Created TensorFlow Lite delegate for GPU.\nFirst 0 operations will run on the GPU, "
                            "and the remaining 65 on the CPU.\nThough GPU delegate is explicitly applied, the model "
                            "graph will not be executed by the delegate.\n")
    assert none.status == "none" and (none.nodes_delegated, none.nodes_total) == (0, 65)
    # "completely" contradicted by the node counts: partial
    mixed = parse_delegation("Replacing 290 out of 297 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2 "
                             "partitions for the whole graph.\nExplicitly applied GPU delegate, and the model graph "
                             "will be completely executed by the delegate.\n")
    assert mixed.status == "partial"
    full = parse_delegation("Replacing 290 out of 290 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 "
                            "partitions for the whole graph.\nExplicitly applied GPU delegate, and the model graph "
                            "will be completely executed by the delegate.\n")
    assert full.status == "full" and full.delegate_kernels == 1
    # a CPU (XNNPACK) run carries no delegation record
    assert "delegation" not in parse_benchmark_model(read("benchmark_model_current.txt"))
