"""Roofline: FLOPs/bytes per op from ONNX (incl. model-local ai.edgeprune functions) and TFLite, prediction
and calibration checked against numbers computed by hand."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeprune.errors import ConfigError
from edgeprune.profiling.roofline import (OpCost, artifact_costs, calibrate_efficiency, onnx_costs, predict_ms,
                                          tflite_costs, totals)
from edgeprune.targets import get_target

M, K, N = 128, 256, 512
# hand-computed: MatMul [1,128,256] x [256,512]: 2*M*K*N FLOPs, fp32 bytes of X, W and Y
MM_FLOPS = 2 * M * K * N                               # 33,554,432
MM_BYTES = 4 * (M * K + K * N + M * N)                 # 917,504
ADD_FLOPS = M * N                                      # 65,536
ADD_BYTES = 4 * (M * N + N + M * N)                    # 526,336


def _weights():
    rng = np.random.default_rng(0)
    return (numpy_helper.from_array(rng.standard_normal((K, N)).astype("float32"), "W"),
            numpy_helper.from_array(rng.standard_normal(N).astype("float32"), "B"))


def plain_model(path):
    w, b = _weights()
    g = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm"), helper.make_node("Add", ["Y", "B"], ["Z"], name="add")],
        "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", "seq", K])],
        [helper.make_tensor_value_info("Z", TensorProto.FLOAT, ["batch", "seq", N])], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, path)
    return path


def function_model(path):
    """The same computation behind a model-local function in the ai.edgeprune domain (how packed ops ship)."""
    w, b = _weights()
    fn = helper.make_function("ai.edgeprune", "PackedLinear", ["x", "w", "b"], ["z"],
                              [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Add", ["y", "b"], ["z"])],
                              [helper.make_opsetid("", 17)])
    g = helper.make_graph(
        [helper.make_node("PackedLinear", ["X", "W", "B"], ["Z"], domain="ai.edgeprune", name="packed")],
        "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", "seq", K])],
        [helper.make_tensor_value_info("Z", TensorProto.FLOAT, ["batch", "seq", N])], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.edgeprune", 1)],
                          functions=[fn])
    onnx.save(m, path)
    return path


def test_onnx_costs_by_hand(tmp_path):
    costs = onnx_costs(plain_model(tmp_path / "m.onnx"), batch=1, seq_len=M)
    by = {c.op_type: c for c in costs}
    assert by["MatMul"].flops == MM_FLOPS and by["MatMul"].bytes == MM_BYTES and by["MatMul"].dtype == "fp32"
    assert by["Add"].flops == ADD_FLOPS and by["Add"].bytes == ADD_BYTES
    t = totals(costs)
    assert t["flops"] == MM_FLOPS + ADD_FLOPS and t["bytes"] == MM_BYTES + ADD_BYTES
    # batch scales activations, not weights
    c2 = {c.op_type: c for c in onnx_costs(tmp_path / "m.onnx", batch=2, seq_len=M)}
    assert c2["MatMul"].flops == 2 * MM_FLOPS and c2["MatMul"].bytes == 4 * (2 * M * K + K * N + 2 * M * N)


def test_model_local_function_body_is_counted(tmp_path):
    plain = totals(onnx_costs(plain_model(tmp_path / "p.onnx"), 1, M))
    packed = totals(onnx_costs(function_model(tmp_path / "f.onnx"), 1, M))
    assert packed["flops"] == plain["flops"] == MM_FLOPS + ADD_FLOPS
    assert packed["bytes"] == plain["bytes"]


def test_prediction_by_hand():
    rpi4 = get_target("rpi4")
    costs = [OpCost("mm", "MatMul", MM_FLOPS, MM_BYTES, "fp32"), OpCost("add", "Add", ADD_FLOPS, ADD_BYTES, "fp32")]
    # 1 thread, efficiency 0.5: 8 FLOP/cycle x 1.5 GHz x 0.5 = 6 GFLOP/s; STREAM 5.56 GB/s
    mm = max(MM_FLOPS / 6e9, MM_BYTES / 5.56e9)          # 5.5924 ms, compute-bound
    add = max(ADD_FLOPS / 6e9, ADD_BYTES / 5.56e9)       # 0.0947 ms, memory-bound
    assert predict_ms(costs, rpi4, threads=1, efficiency=0.5) == pytest.approx((mm + add) * 1e3)
    assert predict_ms(costs, rpi4, threads=1, efficiency=0.5) == pytest.approx(5.68707, rel=1e-5)
    # 4 threads: compute 4x faster, memory unchanged
    mm4 = max(MM_FLOPS / 24e9, MM_BYTES / 5.56e9)
    assert predict_ms(costs, rpi4, threads=4, efficiency=0.5) == pytest.approx((mm4 + add) * 1e3)
    # int8 op runs at the int8 peak (16 ops/cycle on the A72 = 2x fp32)
    q = [OpCost("q", "MatMulInteger", MM_FLOPS, MM_BYTES / 4, "int8")]
    assert predict_ms(q, rpi4, 1, 0.5) == pytest.approx(max(MM_FLOPS / 12e9, MM_BYTES / 4 / 5.56e9) * 1e3)


def test_gpu_prediction_uses_fp16_peak():
    phone = get_target("phone")
    costs = [OpCost("mm", "MatMul", MM_FLOPS, MM_BYTES, "fp32")]
    expect = max(MM_FLOPS / (1797.0e9 * 0.25), MM_BYTES / 17.0e9) * 1e3
    assert predict_ms(costs, phone, unit="gpu") == pytest.approx(expect)
    with pytest.raises(ConfigError, match="no \\[gpu\\]"):
        predict_ms(costs, get_target("rpi4"), unit="gpu")


def test_calibration_recovers_efficiency():
    rpi5 = get_target("rpi5")
    costs = [OpCost("mm", "MatMul", MM_FLOPS, MM_BYTES, "fp32"), OpCost("add", "Add", ADD_FLOPS, ADD_BYTES, "fp32")]
    measured = predict_ms(costs, rpi5, 2, efficiency=0.23)
    assert calibrate_efficiency(costs, rpi5, measured, threads=2) == pytest.approx(0.23, rel=1e-6)
    # faster than the roofline allows at full peak: clamped to 1
    assert calibrate_efficiency(costs, rpi5, measured / 100, threads=2) == 1.0


def test_tflite_costs_by_hand(tmp_path):
    pytest.importorskip("litert_torch")
    import torch

    from edgeprune.exporters.tflite_convert import convert

    class F(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w", torch.from_numpy(np.random.default_rng(0).standard_normal((32, 64)).astype("float32")))

        def forward(self, x):
            return torch.relu(x @ self.w)

    p = tmp_path / "m.tflite"
    p.write_bytes(convert([("serving_default", F().eval(), {"x": torch.zeros(1, 16, 32)})], "fp32"))
    costs = tflite_costs(p)
    mm = [c for c in costs if c.op_type in ("FULLY_CONNECTED", "BATCH_MATMUL")]
    assert len(mm) == 1
    assert mm[0].flops == 2 * 16 * 32 * 64                     # 65,536
    assert mm[0].bytes == 4 * (16 * 32 + 32 * 64 + 16 * 64)    # input, weights, output
    assert totals(artifact_costs(p))["flops"] >= 2 * 16 * 32 * 64


def test_unsupported_artifact(tmp_path):
    with pytest.raises(ConfigError, match=".onnx or .tflite"):
        artifact_costs(tmp_path / "model.pt")
