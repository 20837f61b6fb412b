"""The ai.edgeprune ops: checker, strict shape inference, NumPy semantics, onnx.reference vs onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgeprune.exporters import onnx_ops as ops
from edgeprune.exporters.onnx_verify import ort_session
from edgeprune.exporters.packing import pack_linear
from tests.support.exports import block_mask


def _layer(seed, out=96, inp=64, R=32, C=1, keep=0.3, balanced=True, drop_rows=False):
    rng = np.random.default_rng(seed)
    m = block_mask(rng, out, inp, R, C, keep, balanced)
    if drop_rows:
        m[5:9] = False
    w = rng.standard_normal((out, inp)).astype(np.float32)
    b = rng.standard_normal(out).astype(np.float32)
    return w, m, b, pack_linear(w, m, b)


CASES = [
    (ops.BSMM, {}), (ops.BSMM_ROWMAP, {"drop_rows": True}), (ops.BSMM_ROWMAP, {"R": 1, "C": None, "balanced": False}),
    (ops.BSMM, {"R": None}), (ops.PACKED_DENSE, {"R": 16, "C": 16, "balanced": False}),
    (ops.PACKED_DENSE, {"keep": 0.6, "drop_rows": True}),
]


@pytest.mark.parametrize("op,kw", CASES)
def test_op_checker_shapes_numpy_reference_and_ort_agree(op, kw):
    w, m, b, p = _layer(len(kw) + hash(op) % 97, **kw)
    model = ops.packed_model_for_layer(p, ["B", "S", 64], op)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, check_type=True, data_prop=True)
    dims = inferred.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["B", "S", 96]
    x = np.random.default_rng(0).standard_normal((3, 7, 64)).astype(np.float32)
    expected = x @ (w * m).T + b
    y_ort = ort_session(model.SerializeToString()).run(None, {"X": x})[0]
    y_ref = ops.reference_session(model).run(None, {"X": x})[0]
    np.testing.assert_allclose(y_ort, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y_ref, y_ort, rtol=1e-4, atol=1e-4)


def test_select_op_for_padded_block_rows_without_pruned_rows():
    """Runs of 40 and 56 identical rows (as head removal leaves them) pack into padded 56-row blocks: the row map
    only selects computed rows, so the exporter picks the Select body (no zero row, no Concat)."""
    from edgeprune.exporters.onnx import choose_op
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(5)
    m = np.zeros((96, 64), bool)
    m[:40, rng.choice(64, 20, replace=False)] = True
    m[40:, rng.choice(64, 20, replace=False)] = True
    w = rng.standard_normal((96, 64)).astype(np.float32)
    b = rng.standard_normal(96).astype(np.float32)
    p = pack_linear(w, m, b)
    assert p.row_map is not None and p.nb * p.block_rows > 96 and int(p.row_map.max()) < p.nb * p.block_rows
    assert choose_op(p)[0] == ops.BSMM_SELECT
    model = ops.packed_model_for_layer(p, ["B", 64], ops.BSMM_SELECT)
    onnx.checker.check_model(model, full_check=True)
    body = [n.op_type for n in model.functions[0].node]
    assert "ConstantOfShape" not in body and body.count("Gather") == 2  # no zero row appended: X^T rows, out rows
    x = rng.standard_normal((5, 64)).astype(np.float32)
    expected = x @ (w * m).T + b
    np.testing.assert_allclose(ort_session(model.SerializeToString()).run(None, {"X": x})[0], expected, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(ReferenceEvaluator(model).run(None, {"X": x})[0], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ops.reference_session(model).run(None, {"X": x})[0], expected, rtol=1e-4, atol=1e-4)
    m[3] = False  # a pruned output row needs the zero row again
    assert choose_op(pack_linear(w, m, b))[0] == ops.BSMM_ROWMAP


def test_function_body_alone_matches_reference():
    """Running the FunctionProto body in onnx.reference (no new_ops) gives the NumPy semantics too."""
    from onnx.reference import ReferenceEvaluator

    w, m, b, p = _layer(7, drop_rows=True)
    model = ops.packed_model_for_layer(p, [5, 64], ops.BSMM_ROWMAP)
    x = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
    np.testing.assert_allclose(ReferenceEvaluator(model).run(None, {"X": x})[0], x @ (w * m).T + b, rtol=1e-4,
                               atol=1e-4)


def test_int8_op_reference_agrees_with_ort():
    from onnx import helper, numpy_helper

    w, m, b, p = _layer(11, keep=0.5)
    q, scale = ops.quantize_values(p.values)
    rm = np.arange(96).astype(np.uint8)
    inits = [numpy_helper.from_array(q, "q"), numpy_helper.from_array(scale, "s"),
             numpy_helper.from_array(p.col_idx, "c"), numpy_helper.from_array(b, "b"), numpy_helper.from_array(rm, "r")]
    node = helper.make_node(ops.BSMM_INT8, ["X", "q", "s", "c", "b", "r"], ["Y"], domain=ops.DOMAIN)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [16, 64])],
                          [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [16, 96])], inits)
    model = ops.finalize_model(g, {ops.BSMM_INT8})
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(2).standard_normal((16, 64)).astype(np.float32)
    y_ort = ort_session(model.SerializeToString()).run(None, {"X": x})[0]
    y_ref = ops.reference_session(model).run(None, {"X": x})[0]
    np.testing.assert_allclose(y_ref, y_ort, rtol=1e-3, atol=1e-3)
    exact = x @ (w * m).T + b
    assert np.abs(y_ort - exact).max() < 0.05 * np.abs(exact).max()  # int8 error, not a wrong result


def _optimized_initializer_bytes(model, tmp_path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    opt = onnx.load(str(tmp_path / "opt.onnx"))
    return max(numpy_helper_size(t) for t in opt.graph.initializer)


def numpy_helper_size(t):
    from onnx import numpy_helper

    return numpy_helper.to_array(t).size


def test_ort_keeps_gather_body_packed_but_folds_fallback(tmp_path):
    """onnxruntime's optimizer must not densify BlockSparseMatMul; the fallback is folded (by design)."""
    w, m, b, p = _layer(5, out=128, inp=128, keep=0.25)
    dense_elems = 128 * 128
    for op, densified in ((ops.BSMM, False), (ops.PACKED_DENSE, True)):
        model = ops.packed_model_for_layer(p, [32, 128], op)
        biggest = _optimized_initializer_bytes(model, tmp_path)
        assert (biggest >= dense_elems) == densified, op


def test_onnxsim_keeps_packed_initializers():
    import onnxsim

    w, m, b, p = _layer(6)
    model = ops.packed_model_for_layer(p, [8, 64], ops.BSMM)
    sim, ok = onnxsim.simplify(model, check_n=0)
    assert ok and len(sim.functions) == 1
    assert sorted(t.name for t in sim.graph.initializer) == sorted(t.name for t in model.graph.initializer)


def test_fp16_values_run_in_ort():
    w, m, b, p = _layer(8)
    model = ops.packed_model_for_layer(p, [4, 64], ops.BSMM, dtype=np.float16)
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float16)
    y = ort_session(model.SerializeToString()).run(None, {"X": x})[0]
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32), x.astype(np.float32) @ (w * m).T + b, rtol=2e-2, atol=5e-2)


def test_transposed_chain_ops_match_plain_ops():
    """OutT -> elementwise GELU -> InT equals BlockSparseMatMul -> GELU -> BlockSparseMatMul (ORT and reference)."""
    from onnx import helper, numpy_helper

    from edgeprune.exporters.onnx_graph import fuse_transposed_chains

    w1, m1, b1, p1 = _layer(21, out=96, inp=64)
    w2, m2, b2, p2 = _layer(22, out=64, inp=96)
    inits = []
    for tag, p in (("a", p1), ("b", p2)):
        inits += [numpy_helper.from_array(p.values, f"{tag}.v"), numpy_helper.from_array(p.col_idx, f"{tag}.c"),
                  numpy_helper.from_array(p.bias, f"{tag}.b")]
    inits += [numpy_helper.from_array(np.array(0.5, np.float32), "half"),
              numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    nodes = [ops.make_node(ops.BSMM, "X", "a.v", "a.c", "a.b", None, "H", "a"),
             helper.make_node("Mul", ["H", "half"], ["H2"]), helper.make_node("Erf", ["H2"], ["E"]),
             helper.make_node("Add", ["E", "one"], ["E1"]), helper.make_node("Mul", ["H", "E1"], ["G"]),
             ops.make_node(ops.BSMM, "G", "b.v", "b.c", "b.b", None, "Y", "b")]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, ["B", 5, 64])],
                          [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, ["B", 5, 64])], inits)
    plain = ops.finalize_model(g, {ops.BSMM})
    fused = onnx.ModelProto()
    fused.CopyFrom(plain)
    used = fuse_transposed_chains(fused.graph)
    assert used == {ops.BSMM_OUT_T, ops.BSMM_IN_T}
    del fused.functions[:]
    fused.functions.extend(ops.functions({ops.BSMM, *used}))
    onnx.checker.check_model(fused, full_check=True)
    onnx.shape_inference.infer_shapes(fused, strict_mode=True, check_type=True)
    x = np.random.default_rng(4).standard_normal((3, 5, 64)).astype(np.float32)
    y_plain = ort_session(plain.SerializeToString()).run(None, {"X": x})[0]
    y_fused = ort_session(fused.SerializeToString()).run(None, {"X": x})[0]
    y_ref = ops.reference_session(fused).run(None, {"X": x})[0]
    np.testing.assert_allclose(y_fused, y_plain, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y_ref, y_plain, rtol=1e-4, atol=1e-4)
