"""int8 on every pruned formulation: structured mode (dynamic and static), the per-layer packed-int8 vs standard
int8 MatMul choice, and the failure message. Tiny real BERT / RoBERTa / DistilBERT, verified on real GLUE dev."""
from __future__ import annotations

import json

import onnx
import pytest

from edgeprune.errors import ConfigError, NumericMismatchError
from edgeprune.exporters import onnx_int8 as q8
from edgeprune.exporters import onnx_ops as ops
from edgeprune.exporters.api import export
from edgeprune.exporters.onnx import OnnxOptions
from tests.support.exports import cfg, edgeprune_nodes, force_packed_int8, make_run, run_cli

INT8_OPS = {ops.BSMM_INT8, ops.BSMM_INT8_DIRECT}


# --- the choice, as pure functions (hand-computed) -------------------------------------------------

def test_cost_model_by_hand():
    # 384x384 at 2x (128x1 balanced, no padding): 0.10 + 50000/147456 + 1.15*0.5 = 1.0141 -> standard int8 MatMul
    t = q8.predicted_int8_ratio(384, 384, 384 * 192, row_map=False)
    assert t == pytest.approx(0.10 + 50000 / 147456 + 0.575)
    d = q8.decide_by_model("l", 384, 384, 384 * 192, False, ops.BSMM_INT8_DIRECT)
    assert d.fallback and d.op == q8.DENSE_INT8 and "standard int8 MatMul" in d.reason
    # 1536x384 at 5x: 0.10 + 50000/589824 + 1.15*0.2 = 0.41477 -> packed, 2.41x predicted
    d = q8.decide_by_model("l", 1536, 384, 1536 * 77, False, ops.BSMM_INT8_DIRECT)
    assert not d.fallback and d.op == ops.BSMM_INT8_DIRECT
    assert d.est_speedup == pytest.approx(1 / (0.10 + 50000 / 589824 + 1.15 * 1536 * 77 / 589824))
    # a row map costs 0.03 more
    assert q8.predicted_int8_ratio(1536, 384, 1000, True) - q8.predicted_int8_ratio(1536, 384, 1000, False) == \
        pytest.approx(0.03)


def test_measured_choice_needs_a_real_gain():
    assert not q8.decide_by_times("l", ops.BSMM_INT8, 2.0, packed_ms=1.0, dense_ms=2.0).fallback
    d = q8.decide_by_times("l", ops.BSMM_INT8, 2.0, packed_ms=0.97, dense_ms=1.0)  # 3% faster: not worth it
    assert d.fallback and d.op == q8.DENSE_INT8 and d.measured_ms == {ops.BSMM_INT8: 0.97, q8.DENSE_INT8: 1.0}
    assert d.record()["int8_measured_ms"][q8.DENSE_INT8] == 1.0


# --- structured int8 end to end ---------------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_roberta", "tiny_distilbert"])
@pytest.mark.parametrize("dtype", ["int8-dynamic", "int8"])
def test_structured_int8_verified_on_real_dev(fixture, dtype, request, tmp_path, glue):
    """Structured int8: whole FFN units removed (smaller standard MatMuls), the rest per layer; on these tiny
    layers packed int8 never pays, so every packed layer falls back to the standard int8 MatMul and says so."""
    run = make_run(request.getfixturevalue(fixture), tmp_path / "run", seed=4, whole_units=True)
    res = export(run, cfg(glue, mode="structured", dtype=dtype, seq_len=16, calib_examples=16), tmp_path / "b")
    v = json.loads((res.bundle_dir / "verification.json").read_text())
    assert v["passed"] and v["dtype"] == dtype and v["num_examples"] == 32 and v["split"] == "dev"
    assert v["metric_diff_points"] <= 0.5
    rep = res.report
    ffn = [l_ for l_ in rep["layers"] if l_["layer"].endswith(("intermediate.dense", "ffn.lin1"))]
    assert ffn and all(l_["exported_shape"][0] < l_["shape"][0] for l_ in ffn)  # units really removed
    decided = [l_ for l_ in rep["layers"] if "int8_op" in l_]
    assert decided and all(l_["int8_fallback"] and l_["int8_op"] == q8.DENSE_INT8 for l_ in decided)
    assert sorted(rep["int8_fallback_layers"]) == sorted(l_["layer"] for l_ in decided)
    assert all(l_["int8_reason"] for l_ in decided)
    assert edgeprune_nodes(res.artifact) == []  # standard ops only
    m = onnx.load(str(res.artifact))
    types = {n.op_type for n in m.graph.node}
    assert ({"DynamicQuantizeLinear", "MatMulInteger"} <= types if dtype == "int8-dynamic"
            else {"QuantizeLinear", "DequantizeLinear"} <= types)
    assert any("fall back to the standard int8 MatMul" in n for n in rep["notes"])
    fp32 = export(run, cfg(glue, mode="structured", seq_len=16), tmp_path / "fp32")
    assert res.artifact.stat().st_size < fp32.artifact.stat().st_size


@pytest.mark.parametrize("mode", ["structured", "packed"])
def test_packed_int8_where_it_pays(mode, tiny_bert, tmp_path, glue, monkeypatch):
    """With the fixed cost off every packed layer keeps the packed int8 op (Direct without a row map)."""
    force_packed_int8(monkeypatch)
    run = make_run(tiny_bert, tmp_path / "run", seed=5, whole_units=True)
    res = export(run, cfg(glue, mode=mode, dtype="int8-dynamic", seq_len=16), tmp_path / "b")
    assert res.verification["passed"] and res.verification["metric_diff_points"] <= 0.5
    nodes = edgeprune_nodes(res.artifact)
    assert nodes and set(nodes) <= INT8_OPS
    packed = [l_ for l_ in res.report["layers"] if l_.get("int8_op") in INT8_OPS]
    assert len(packed) == len(nodes) and not any(l_["int8_fallback"] for l_ in packed)
    # PackedDenseMatMul layers (fp32 fallback) are quantized by onnxruntime, not left in float
    assert all(l_["int8_fallback"] for l_ in res.report["layers"] if l_["layer"] in res.report["fallback_layers"])


def test_measured_layer_choice_is_recorded(tiny_bert, tmp_path, glue):
    run = make_run(tiny_bert, tmp_path / "run", seed=6)
    res = export(run, cfg(glue, dtype="int8-dynamic", seq_len=16, options=OnnxOptions(int8_choice="measure")), tmp_path / "b")
    assert res.verification["passed"]
    measured = [l_ for l_ in res.report["layers"] if "int8_measured_ms" in l_]
    assert measured
    for l_ in measured:  # the recorded decision follows the recorded times (no claim about which is faster)
        t = l_["int8_measured_ms"]
        packed_ms = next(v for k, v in t.items() if k != q8.DENSE_INT8)
        assert l_["int8_fallback"] == (not packed_ms < t[q8.DENSE_INT8] * q8.MIN_GAIN)
        assert l_["int8_reason"].startswith("measured")
    assert set(edgeprune_nodes(res.artifact)) <= INT8_OPS
    assert any("measured here" in n for n in res.report["notes"])


def test_quantized_failure_is_one_clear_message(tiny_bert, tmp_path, glue, monkeypatch):
    from edgeprune.exporters.base import Exporter

    run = make_run(tiny_bert, tmp_path / "run", seed=7, whole_units=True)
    monkeypatch.setattr(Exporter, "MAX_POINTS", -1.0)  # any int8 artifact fails the rule now
    with pytest.raises(NumericMismatchError) as e:
        export(run, cfg(glue, mode="structured", dtype="int8-dynamic", seq_len=16), tmp_path / "b")
    msg = str(e.value)
    assert "\n" not in msg
    assert "onnx structured int8-dynamic artifact failed verification" in msg
    assert "metric differs by" in msg and "32 mrpc dev examples" in msg and "nothing was written" in msg
    assert "--dtype int8 (static, calibrated)" in msg and "--float-embeddings" in msg
    assert not (tmp_path / "b").exists()


def test_cli_bad_int8_flags_exit_2(tiny_bert, tmp_path, glue, capsys):

    run = make_run(tiny_bert, tmp_path / "run", seed=8)
    with pytest.raises(ConfigError, match="int8-layer-choice"):
        export(run, cfg(glue, options=OnnxOptions(int8_choice="measure")), tmp_path / "b1")  # fp32
    code, _, err = run_cli(["export", str(run), "--data", str(glue), "--task", "mrpc", "--dtype", "int8-dynamic",
                            "--int8-layer-choice", "fastest", "--out", str(tmp_path / "b2")], capsys)
    assert code == 2 and "int8-layer-choice" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b1").exists() and not (tmp_path / "b2").exists()


def test_embedding_tables_quantize_per_row_exactly_enough():
    """quantize_gathers_per_row: Gather(W) -> Cast(Gather(W_q)) * Gather(scale); each row within half a step."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgeprune.exporters.onnx_quant import quantize_gathers_per_row

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((300, 64)) * rng.uniform(0.01, 10, (300, 1))).astype(np.float32)  # rows of any scale
    w[7] = 0.0
    g = helper.make_graph([helper.make_node("Gather", ["W", "ids"], ["y"], axis=0)], "g",
                          [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 64])],
                          [numpy_helper.from_array(w, "W")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert quantize_gathers_per_row(m) == 1
    onnx.checker.check_model(m)
    assert {t.name: t.data_type for t in m.graph.initializer} == {"W_int8_rows": TensorProto.INT8,
                                                                  "W_row_scale": TensorProto.FLOAT}
    ids = np.array([[0, 7, 299, 5, 5], [1, 2, 3, 4, 100]], np.int64)
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
    step = np.abs(w).max(axis=1) / 127
    assert np.all(np.abs(y - w[ids]) <= step[ids][..., None] / 2 + 1e-6)
    assert np.all(y[0, 1] == 0)
    small = helper.make_model(helper.make_graph(
        [helper.make_node("Gather", ["W", "ids"], ["y"])], "s",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.ones((10, 4), np.float32), "W")]), opset_imports=[helper.make_opsetid("", 17)])
    assert quantize_gathers_per_row(small) == 0  # tiny tables stay float
