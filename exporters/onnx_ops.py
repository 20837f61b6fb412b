"""The ``ai.edgeprune`` ONNX ops: schemas as model-local FunctionProtos built from standard ops, and NumPy
references as ``onnx.reference`` ops.

Inputs of every op (see docs/onnx-ops.md): ``X [..., in]``, ``values [nb, R, k]`` (surviving values of each
block row), ``col_idx [nb, k]`` (uint8/uint16/int32), ``bias [out]``, and for the ``RowMap``/fallback ops
``row_map [out]`` (output row -> computed row, ``nb * R`` = zero row).

Why this body: onnxruntime's Gather along the last axis copies element by element and was the cost of
the naive formulation; gathering *rows* of the transposed activation ``X^T [in, N]`` copies contiguous
rows, and ``values [nb, R, k] @ X^T[col_idx] [nb, k, N]`` is one batched MatMul whose ``[nb, R, N]``
result is already the transposed output in row order (a free reshape). Measured on 384-wide layers this
runs 1.5-1.7x faster than dense at 50% kept and 3-4x at 20% kept (bench/results/export_onnx.md).
Function bodies take no shape attributes, so onnxruntime cannot fold them back into a dense MatMul.
``PackedDenseMatMul`` is the fallback for masks with no usable block structure: its body rebuilds the
dense weight from static shapes, which onnxruntime folds at load (dense speed, packed file).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper
from onnx.reference.op_run import OpRun

from .packing import packed_matmul_arrays

DOMAIN = "ai.edgeprune"
DOMAIN_VERSION = 1
BODY_OPSET = 17

BSMM = "BlockSparseMatMul"
BSMM_ROWMAP = "BlockSparseMatMulRowMap"
PACKED_DENSE = "PackedDenseMatMul"
BSMM_INT8 = "BlockSparseMatMulInt8"
BSMM_INT8_DIRECT = "BlockSparseMatMulInt8Direct"  # int8 without row_map (computed row i = output row i)
# row_map that only selects / reorders computed rows (no output row is pruned whole, so no zero row): a plain
# Gather of the computed rows, without the Concat that appends the zero row (one [nb*R, N] copy less per layer).
# Structured mode makes these common: removing heads leaves row counts that are not multiples of R (padded blocks).
BSMM_SELECT = "BlockSparseMatMulSelect"
BSMM_INT8_SELECT = "BlockSparseMatMulInt8Select"
BSMM_SELECT_OUT_T = "BlockSparseMatMulSelectOutT"  # Select with the transposed output (FFN chain in structured mode)
BSMM_OUT_T = "BlockSparseMatMulOutT"  # X [..., in] -> Y^T [out, N]   (feeds an elementwise chain + BSMM_IN_T)
BSMM_IN_T = "BlockSparseMatMulInT"  # X^T [in, N] (+ like [..., in']) -> Y [..., out]
OP_TYPES = (BSMM, BSMM_ROWMAP, PACKED_DENSE, BSMM_INT8, BSMM_INT8_DIRECT, BSMM_OUT_T, BSMM_IN_T, BSMM_SELECT,
            BSMM_INT8_SELECT, BSMM_SELECT_OUT_T)
INT8_ZERO_POINT = 128  # values_q = round(values / scale) + 128, stored as uint8 (MatMulInteger's uint8 x uint8 path)


def _c(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [len(values)],
                                                                            values))


def _rows_by_row_map(src: str, width: str, out: str, like: str | None = "values") -> list[onnx.NodeProto]:
    """``out = concat(src, zero row)[row_map]``: computed rows go to their output rows, pruned rows read zeros.

    Needs the constant ``one`` ([1]) in the body; ``like`` gives the zero row the values' dtype.
    """
    zero = "zr32" if like else "zrow"
    n = [helper.make_node("Concat", ["one", width], ["zrshape"], axis=0),
         helper.make_node("ConstantOfShape", ["zrshape"], [zero])]
    if like:
        n.append(helper.make_node("CastLike", [zero, like], ["zrow"]))
    return n + [helper.make_node("Concat", [src, "zrow"], [f"{src}_z"], axis=0),
                helper.make_node("Cast", ["row_map"], ["rm"], to=TensorProto.INT64),
                helper.make_node("Gather", [f"{src}_z", "rm"], [out], axis=0)]


def _computed_rows_shape(values: str = "values") -> list[onnx.NodeProto]:
    """``pshape = [nb*R, -1]`` from ``Shape(values)``: constant inputs only, so onnxruntime folds it at load
    (a Shape/Concat pair on the activation cost ~30 us per layer at run time)."""
    return [helper.make_node("Shape", [values], ["nbr"], end=2),
            helper.make_node("ReduceProd", ["nbr"], ["nbxr"], keepdims=1),
            helper.make_node("Concat", ["nbxr", "neg1"], ["pshape"], axis=0)]


def _select_rows(src: str, out: str) -> list[onnx.NodeProto]:
    """``out = src[row_map]`` (row_map < nb*R: no zero row needed)."""
    return [helper.make_node("Cast", ["row_map"], ["rm"], to=TensorProto.INT64),
            helper.make_node("Gather", [src, "rm"], [out], axis=0)]


def _bsmm_function(row_map: bool, zero_row: bool = True) -> onnx.FunctionProto:
    inputs = ["X", "values", "col_idx", "bias"] + (["row_map"] if row_map else [])
    n = [
        _c("neg1", [-1]),
        helper.make_node("Shape", ["X"], ["lead"], end=-1),
        helper.make_node("Flatten", ["X"], ["X2"], axis=-1),  # [N, in]: one op, no shape arithmetic at run time
        helper.make_node("Transpose", ["X2"], ["Xt"], perm=[1, 0]),  # [in, N]
        helper.make_node("Cast", ["col_idx"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["Xt", "idx"], ["G"], axis=0),  # [nb, k, N]: contiguous row copies
        helper.make_node("MatMul", ["values", "G"], ["P"]),  # [nb, R, N]
        *_computed_rows_shape(),  # [nb*R, -1] from the values initializer: folded at session load
        helper.make_node("Reshape", ["P", "pshape"], ["Pr"]),  # [nb*R, N] = Y^T in computed-row order
    ]
    last = "Pr"
    if row_map and not zero_row:
        n += _select_rows("Pr", "Pm")
        last = "Pm"
    elif row_map:
        n += [_c("one", [1]), helper.make_node("Shape", ["Xt"], ["ndim"], start=1)]
        n += _rows_by_row_map("Pr", "ndim", "Pm")  # [out, N]
        last = "Pm"
    n += [
        helper.make_node("Transpose", [last], ["Yt"], perm=[1, 0]),  # [N, out]
        helper.make_node("Add", ["Yt", "bias"], ["Yb"]),
        helper.make_node("Shape", ["bias"], ["odim"]),
        helper.make_node("Concat", ["lead", "odim"], ["oshape"], axis=0),
        helper.make_node("Reshape", ["Yb", "oshape"], ["Y"]),
    ]
    name = (BSMM_ROWMAP if zero_row else BSMM_SELECT) if row_map else BSMM
    return helper.make_function(DOMAIN, name, inputs, ["Y"], n,
                                [helper.make_opsetid("", BODY_OPSET)], doc_string=(
                                    "Y[..., :] = (X[..., col_idx[b]] @ values[b]^T per block row b) + bias"))


def _bsmm_out_t_function(select: bool = False) -> onnx.FunctionProto:
    """Like BlockSparseMatMul (``select``: BlockSparseMatMulSelect) but returns the transposed output ``[out, N]``
    (bias added per row)."""
    n = [
        _c("neg1", [-1]), _c("ax1", [1]),
        helper.make_node("Flatten", ["X"], ["X2"], axis=-1),
        helper.make_node("Transpose", ["X2"], ["Xt"], perm=[1, 0]),
        helper.make_node("Cast", ["col_idx"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["Xt", "idx"], ["G"], axis=0),
        helper.make_node("MatMul", ["values", "G"], ["P"]),
        *_computed_rows_shape(),  # [nb*R, -1] from the values initializer: folded at session load
        helper.make_node("Reshape", ["P", "pshape"], ["Pr"]),
        *(_select_rows("Pr", "Pm") if select else []),  # [out, N]: rows selected, still transposed
        helper.make_node("Unsqueeze", ["bias", "ax1"], ["bcol"]),
        helper.make_node("Add", ["Pm" if select else "Pr", "bcol"], ["Yt"]),
    ]
    inputs = ["X", "values", "col_idx", "bias"] + (["row_map"] if select else [])
    return helper.make_function(DOMAIN, BSMM_SELECT_OUT_T if select else BSMM_OUT_T, inputs, ["Yt"], n,
                                [helper.make_opsetid("", BODY_OPSET)],
                                doc_string="Y^T [out, N] = BlockSparseMatMul(X)^T; no transpose back")


def _bsmm_in_t_function() -> onnx.FunctionProto:
    """Like BlockSparseMatMul but reads the transposed input ``X^T [in, N]``; ``like`` gives the leading dims."""
    n = [
        _c("neg1", [-1]),
        helper.make_node("Shape", ["like"], ["lead"], end=-1),
        helper.make_node("Cast", ["col_idx"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["Xt", "idx"], ["G"], axis=0),
        helper.make_node("MatMul", ["values", "G"], ["P"]),
        *_computed_rows_shape(),  # [nb*R, -1] from the values initializer: folded at session load
        helper.make_node("Reshape", ["P", "pshape"], ["Pr"]),
        helper.make_node("Transpose", ["Pr"], ["Yt"], perm=[1, 0]),
        helper.make_node("Add", ["Yt", "bias"], ["Yb"]),
        helper.make_node("Shape", ["bias"], ["odim"]),
        helper.make_node("Concat", ["lead", "odim"], ["oshape"], axis=0),
        helper.make_node("Reshape", ["Yb", "oshape"], ["Y"]),
    ]
    return helper.make_function(DOMAIN, BSMM_IN_T, ["Xt", "values", "col_idx", "bias", "like"], ["Y"], n,
                                [helper.make_opsetid("", BODY_OPSET)],
                                doc_string="BlockSparseMatMul of X given as X^T [in, N]; output [*like[:-1], out]")


def _bsmm_int8_function(row_map: bool = True, zero_row: bool = True) -> onnx.FunctionProto:
    """Int8 variant: uint8 packed values (zero point 128) x the dynamically quantized activation.

    The activation is quantized once, before the gather (one range over all of ``X``, as onnxruntime's own
    dynamic int8 MatMul does), so the transpose and the gather move uint8 instead of float (4x fewer bytes):
    measured 1.1-1.4x faster than quantizing the gathered columns (docs/onnx-ops.md, int8 layer study).
    ``row_map=False`` (``BlockSparseMatMulInt8Direct``) skips the row reorder when computed row i is
    output row i (balanced block rows), saving one ``[out, N]`` float copy per layer."""
    n = [
        _c("neg1", [-1]), _c("one", [1]),
        helper.make_node("Shape", ["X"], ["lead"], end=-1),
        helper.make_node("Flatten", ["X"], ["X2"], axis=-1),
        helper.make_node("DynamicQuantizeLinear", ["X2"], ["Xq", "Xs", "Xz"]),  # [N, in] uint8, per tensor
        helper.make_node("Transpose", ["Xq"], ["Xt"], perm=[1, 0]),  # [in, N] uint8
        helper.make_node("Cast", ["col_idx"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["Xt", "idx"], ["Gq"], axis=0),  # [nb, k, N] uint8 row copies
        helper.make_node("Constant", [], ["wz"], value=helper.make_tensor("wz", TensorProto.UINT8, [],
                                                                          [INT8_ZERO_POINT])),
        helper.make_node("MatMulInteger", ["values_q", "Gq", "wz", "Xz"], ["P32"]),  # [nb, R, N] int32
        helper.make_node("Cast", ["P32"], ["Pf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["scale", "Xs"], ["s2"]),
        helper.make_node("Mul", ["Pf", "s2"], ["P"]),
        *_computed_rows_shape("values_q"),
        helper.make_node("Reshape", ["P", "pshape"], ["Pr"]),
    ]
    last = "Pr"
    if row_map and not zero_row:
        n += _select_rows("Pr", "Pm")
        last = "Pm"
    elif row_map:
        n += [helper.make_node("Shape", ["Xt"], ["ndim"], start=1),
              *_rows_by_row_map("Pr", "ndim", "Pm", like=None)]  # float products: the zero row is float already
        last = "Pm"
    n += [
        helper.make_node("Transpose", [last], ["Yt"], perm=[1, 0]),
        helper.make_node("Add", ["Yt", "bias"], ["Yb"]),
        helper.make_node("Shape", ["bias"], ["odim"]),
        helper.make_node("Concat", ["lead", "odim"], ["oshape"], axis=0),
        helper.make_node("Reshape", ["Yb", "oshape"], ["Y"]),
    ]
    inputs = ["X", "values_q", "scale", "col_idx", "bias"] + (["row_map"] if row_map else [])
    name = (BSMM_INT8 if zero_row else BSMM_INT8_SELECT) if row_map else BSMM_INT8_DIRECT
    return helper.make_function(DOMAIN, name, inputs, ["Y"], n,
                                [helper.make_opsetid("", BODY_OPSET)],
                                doc_string="Int8 BlockSparseMatMul: (values_q - 128) * scale, X quantized per call "
                                           "(DynamicQuantizeLinear over all of X) before the gather.")


def quantize_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-computed-row int8 of ``values [nb, R, k]``: (uint8 values_q, float32 scale [nb, R, 1])."""
    v = values.astype(np.float32)
    scale = np.abs(v).max(axis=2, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(v / scale), -127, 127).astype(np.int16) + INT8_ZERO_POINT
    return q.astype(np.uint8), scale.astype(np.float32)


def _packed_dense_function() -> onnx.FunctionProto:
    kattr = AttributeProto()
    kattr.name, kattr.ref_attr_name, kattr.type = "value_int", "in_features", AttributeProto.INT
    kconst = helper.make_node("Constant", [], ["kscalar"])
    kconst.attribute.append(kattr)
    n = [
        kconst,
        _c("neg1", [-1]), _c("one", [1]), _c("ax1", [1]),
        helper.make_node("Reshape", ["kscalar", "one"], ["kdim"]),
        helper.make_node("Cast", ["col_idx"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Unsqueeze", ["idx", "ax1"], ["idx3"]),
        helper.make_node("Shape", ["values"], ["vshape"]),
        helper.make_node("Expand", ["idx3", "vshape"], ["idxE"]),  # [nb, R, k]
        helper.make_node("Shape", ["values"], ["nbr"], end=2),
        helper.make_node("Concat", ["nbr", "kdim"], ["zshape"], axis=0),
        helper.make_node("ConstantOfShape", ["zshape"], ["z32"]),
        helper.make_node("CastLike", ["z32", "values"], ["Z"]),
        helper.make_node("ScatterElements", ["Z", "idxE", "values"], ["Wc"], axis=2),  # [nb, R, in]
        helper.make_node("Concat", ["neg1", "kdim"], ["wshape"], axis=0),
        helper.make_node("Reshape", ["Wc", "wshape"], ["Wc2"]),
        *_rows_by_row_map("Wc2", "kdim", "W"),  # [out, in]
        helper.make_node("Transpose", ["W"], ["Wt"], perm=[1, 0]),
        helper.make_node("MatMul", ["X", "Wt"], ["XW"]),
        helper.make_node("Add", ["XW", "bias"], ["Y"]),
    ]
    return helper.make_function(DOMAIN, PACKED_DENSE, ["X", "values", "col_idx", "bias", "row_map"], ["Y"], n,
                                [helper.make_opsetid("", BODY_OPSET)], attributes=["in_features"],
                                doc_string="Fallback: rebuilds the dense weight (folded by onnxruntime at load).")


def functions(used: set[str] | None = None) -> list[onnx.FunctionProto]:
    """FunctionProtos of the ops in ``used`` (all when None), for ``ModelProto.functions``."""
    fs = {BSMM: _bsmm_function(False), BSMM_ROWMAP: _bsmm_function(True), PACKED_DENSE: _packed_dense_function(),
          BSMM_INT8: _bsmm_int8_function(True), BSMM_INT8_DIRECT: _bsmm_int8_function(False),
          BSMM_SELECT: _bsmm_function(True, zero_row=False), BSMM_SELECT_OUT_T: _bsmm_out_t_function(True), BSMM_INT8_SELECT: _bsmm_int8_function(True, False),
          BSMM_OUT_T: _bsmm_out_t_function(), BSMM_IN_T: _bsmm_in_t_function()}
    return [f for name, f in fs.items() if used is None or name in used]


def make_node(op_type: str, x: str, values: str, col_idx: str, bias: str, row_map: str | None, y: str,
              name: str, in_features: int | None = None) -> onnx.NodeProto:
    if op_type not in OP_TYPES:
        raise ValueError(f"unknown op {op_type}; one of {OP_TYPES}")
    inputs = [x, values, col_idx, bias] + ([row_map] if op_type != BSMM else [])  # int8: caller inserts scale
    kw = {"in_features": int(in_features)} if op_type == PACKED_DENSE else {}
    return helper.make_node(op_type, inputs, [y], name=name, domain=DOMAIN, **kw)


# --- NumPy references (onnx.reference) -------------------------------------------------------------

class BlockSparseMatMul(OpRun):
    op_domain = DOMAIN

    def _run(self, X, values, col_idx, bias):  # type: ignore[override]
        return (packed_matmul_arrays(X, values, col_idx, bias, None),)


class BlockSparseMatMulRowMap(OpRun):
    op_domain = DOMAIN

    def _run(self, X, values, col_idx, bias, row_map):  # type: ignore[override]
        return (packed_matmul_arrays(X, values, col_idx, bias, row_map),)


class BlockSparseMatMulSelect(OpRun):
    op_domain = DOMAIN

    def _run(self, X, values, col_idx, bias, row_map):  # type: ignore[override]
        if row_map.size and int(row_map.max()) >= values.shape[0] * values.shape[1]:
            raise ValueError("BlockSparseMatMulSelect: row_map points at the zero row; use BlockSparseMatMulRowMap")
        return (packed_matmul_arrays(X, values, col_idx, bias, row_map),)


class BlockSparseMatMulInt8Select(OpRun):
    op_domain = DOMAIN

    def _run(self, X, values_q, scale, col_idx, bias, row_map):  # type: ignore[override]
        return (int8_packed_reference(X, values_q, scale, col_idx, bias, row_map),)


class PackedDenseMatMul(OpRun):
    op_domain = DOMAIN

    def _run(self, X, values, col_idx, bias, row_map, in_features=None):  # type: ignore[override]
        if in_features is not None and X.shape[-1] != in_features:
            raise ValueError(f"X has {X.shape[-1]} features, op says in_features={in_features}")
        return (packed_matmul_arrays(X, values, col_idx, bias, row_map),)


def int8_packed_reference(X, values_q, scale, col_idx, bias, row_map):
    """NumPy semantics of the int8 ops, as onnxruntime computes them: uint8 activations from one
    DynamicQuantizeLinear over all of ``X``, exact integer products, float rescale."""
    nb, h, k = values_q.shape
    x2 = X.reshape(-1, X.shape[-1]).astype(np.float32)
    lo, hi = min(0.0, float(x2.min())), max(0.0, float(x2.max()))
    xs = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
    xz = np.clip(np.round(-lo / xs), 0, 255)
    xq = np.clip(np.round(x2 / xs) + xz, 0, 255)
    g = xq.T[col_idx.astype(np.int64)]  # [nb, k, N]
    p = np.matmul(values_q.astype(np.float64) - INT8_ZERO_POINT, g - xz) * (scale * xs)
    p = p.reshape(nb * h, -1)
    if row_map is not None:
        p = np.concatenate([p, np.zeros((1, p.shape[1]))], axis=0)[row_map.astype(np.int64)]
    y = p.T + bias
    return y.reshape(*X.shape[:-1], -1).astype(np.float32)


class BlockSparseMatMulInt8(OpRun):
    op_domain = DOMAIN

    def _run(self, X, values_q, scale, col_idx, bias, row_map):  # type: ignore[override]
        return (int8_packed_reference(X, values_q, scale, col_idx, bias, row_map),)


class BlockSparseMatMulInt8Direct(OpRun):
    op_domain = DOMAIN

    def _run(self, X, values_q, scale, col_idx, bias):  # type: ignore[override]
        return (int8_packed_reference(X, values_q, scale, col_idx, bias, None),)


class BlockSparseMatMulOutT(OpRun):
    op_domain = DOMAIN

    def _run(self, X, values, col_idx, bias):  # type: ignore[override]
        y = packed_matmul_arrays(X.reshape(-1, X.shape[-1]), values, col_idx, bias, None)
        return (np.ascontiguousarray(y.T),)


class BlockSparseMatMulSelectOutT(OpRun):
    op_domain = DOMAIN

    def _run(self, X, values, col_idx, bias, row_map):  # type: ignore[override]
        y = packed_matmul_arrays(X.reshape(-1, X.shape[-1]), values, col_idx, bias, row_map)
        return (np.ascontiguousarray(y.T),)


class BlockSparseMatMulInT(OpRun):
    op_domain = DOMAIN

    def _run(self, Xt, values, col_idx, bias, like):  # type: ignore[override]
        y = packed_matmul_arrays(np.ascontiguousarray(Xt.T), values, col_idx, bias, None)
        return (y.reshape(*like.shape[:-1], y.shape[-1]),)


REFERENCE_OPS = [BlockSparseMatMul, BlockSparseMatMulRowMap, PackedDenseMatMul, BlockSparseMatMulInt8,
                 BlockSparseMatMulInt8Direct, BlockSparseMatMulSelect, BlockSparseMatMulInt8Select,
                 BlockSparseMatMulSelectOutT,
                 BlockSparseMatMulOutT, BlockSparseMatMulInT]


def reference_session(model: onnx.ModelProto):
    """An ``onnx.reference.ReferenceEvaluator`` that runs the ``ai.edgeprune`` ops with the NumPy references."""
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model, new_ops=REFERENCE_OPS)


def packed_model_for_layer(p, x_shape: list, op_type: str = BSMM, dtype: np.dtype = np.float32) -> onnx.ModelProto:
    """A one-node model running a packed layer (tests and per-layer timing)."""
    from onnx import numpy_helper

    out, inp = p.shape
    bias = p.bias if p.bias is not None else np.zeros(out, dtype)
    inits = [numpy_helper.from_array(p.values.astype(dtype), "values"), numpy_helper.from_array(p.col_idx, "col_idx"),
             numpy_helper.from_array(np.asarray(bias, dtype), "bias")]
    rm = None
    if op_type != BSMM:
        from .packing import index_dtype

        rmap = p.row_map if p.row_map is not None else np.arange(out).astype(index_dtype(out))
        inits.append(numpy_helper.from_array(rmap, "row_map"))
        rm = "row_map"
    elif p.row_map is not None:
        raise ValueError("BlockSparseMatMul needs an identity row order; use BlockSparseMatMulRowMap")
    elt = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    node = make_node(op_type, "X", "values", "col_idx", "bias", rm, "Y", "layer", in_features=inp)
    g = helper.make_graph([node], "packed_layer", [helper.make_tensor_value_info("X", elt, x_shape)],
                          [helper.make_tensor_value_info("Y", elt, list(x_shape[:-1]) + [out])], inits)
    return finalize_model(g, {op_type})


def finalize_model(graph: onnx.GraphProto, used_ops: set[str], opset: int = BODY_OPSET) -> onnx.ModelProto:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
                          functions=functions(used_ops), producer_name="edgeprune")
    m.ir_version = 10
    return m
