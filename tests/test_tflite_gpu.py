"""The export-time GPU compatibility check (ai-edge-litert's ModelAnalyzer) and its verdict."""
from __future__ import annotations

from edgeprune.exporters.tflite_gpu import gpu_compatibility, parse_analyzer

# the analyzer's own lines (tensorflow/lite/python/analyzer_wrapper/model_analyzer.cc)
INCOMPATIBLE = """Subgraph#0 main(T#0) -> [T#3]
  Op#0 UNPACK(T#0) -> [T#1, T#2]
GPU COMPATIBILITY WARNING: Not supported op UNPACK
  Op#1 ADD(T#1, T#2) -> [T#3]

GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 0 on TFLite runtime version 2.21.0
"""
COMPATIBLE = """Your model looks compatible with GPU delegate on TFLite runtime version 2.21.0.
This does not guarantee that your model will work well with GPU delegate because there could still be runtime incompatibililties.
"""


def test_parse_analyzer_verdicts():
    bad = parse_analyzer(INCOMPATIBLE)
    assert bad["verdict"] == "incompatible" and bad["warnings"] == ["GPU COMPATIBILITY WARNING: Not supported op UNPACK"]
    assert bad["num_warnings"] == 1 and "at nodes 0" in bad["summary"][0]
    good = parse_analyzer(COMPATIBLE)
    assert good == {"verdict": "compatible", "runtime_version": "2.21.0", "warnings": [], "num_warnings": 0,
                    "summary": []}
    assert parse_analyzer("")["verdict"] == "unknown"


def test_analyzer_runs_on_a_real_tflite(tmp_path):
    from tests.support.testmodels import make_tiny_tflite

    art = make_tiny_tflite(tmp_path / "tiny.tflite", seq_len=8)
    rec = gpu_compatibility(art)
    assert rec["verdict"] == "compatible" and rec["tool"].startswith("ai_edge_litert ModelAnalyzer")
    assert "benchmark_model --use_gpu=true" in rec["note"]   # static check only: says what would really show it
    missing = gpu_compatibility(tmp_path / "nope.tflite")
    assert missing["verdict"] == "not checked" and missing["reason"]
