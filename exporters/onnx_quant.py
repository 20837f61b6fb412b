"""fp16 and int8 (dynamic, and static calibrated on GLUE train) variants of an exported ONNX model."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from edgeprune.errors import ExportError


def convert_dtype(src: Path, dst: Path, dtype: str, tokenizer, task: str | None, data_dir: str | os.PathLike[str],
                  seq_len: int | None, calib_examples: int, input_names: list[str],
                  quantize_embeddings: bool = True, int8_choice: str = "model", threads: int = 1,
                  rows: int = 128, in_features: dict[str, int] | None = None) -> tuple[str, list]:
    """Rewrite ``src`` into ``dst`` at ``dtype``; returns a one-line note for the report.

    ``quantize_embeddings``: int8 also stores the embedding tables (Gather over an initializer) as int8.
    Pruning leaves them dense and they are over half of a MiniLM file (47 of 90 MB), so without this a
    pruned int8 file is barely smaller than a dense int8 one; verification still gates the accuracy.
    Returns (note, per-layer int8 decisions: see :func:`quantize_packed_nodes`; empty for fp16)."""
    import onnx

    model = onnx.load(str(src))
    if dtype == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        try:
            m16 = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
        except Exception as e:
            raise ExportError(f"fp16 conversion failed ({type(e).__name__}: {str(e)[:200]})") from None
        onnx.save(m16, str(dst))
        return "fp16: onnxruntime.transformers.float16 (keep_io_types); packed values stored as fp16", []
    # int8: packed layers become BlockSparseMatMulInt8 (uint8 packed values + per-row scales; activations
    # quantized per call); onnxruntime's quantizer then handles the dense MatMuls of the main graph (it never
    # looks inside functions, so the packed layout survives).
    from onnxruntime.quantization import QuantType, quantize_dynamic

    decisions = quantize_packed_nodes(model, int8_choice, threads, rows, in_features)
    n_q = sum(not d.fallback for d in decisions)
    n_fb = len(decisions) - n_q
    how = "measured here" if int8_choice == "measure" else "cost model"
    packed_note = (f"{n_q} packed layers as BlockSparseMatMulInt8, {n_fb} fall back to the standard int8 MatMul "
                   f"(per-layer choice: {how})")
    op_types = ["MatMul", "Gemm"]
    emb = ""
    if quantize_embeddings:
        n_tab = quantize_gathers_per_row(model)
        emb = f" ({n_tab} embedding tables as int8 with one scale per row)"
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "packed_int8.onnx"
        onnx.save(model, str(tmp))
        if dtype == "int8-dynamic":
            quantize_dynamic(str(tmp), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=op_types, extra_options={"MatMulConstBOnly": True})
            _restore_functions(dst, model)
            return (f"int8-dynamic: {packed_note}; other MatMuls{emb} by onnxruntime quantize_dynamic (QInt8 "
                    "per-channel)"), decisions
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

        from edgeprune.quiet import stage
        from .prepared import encode_examples, load_examples

        examples = load_examples(task, data_dir, "train", calib_examples)
        stage(f"[export] calibrate int8 activations on {len(examples)} train examples")
        feeds = encode_examples(tokenizer, examples, seq_len, input_names)

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                n = len(examples)
                self.it = iter([{k: v[i:i + 1] for k, v in feeds.items()} for i in range(n)])

            def get_next(self):
                return next(self.it, None)

        quantize_static(str(tmp), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=op_types, extra_options={"MatMulConstBOnly": True})
        _restore_functions(dst, model)
        return (f"int8 static: {packed_note}; other MatMuls{emb} quantize_static QDQ (per-channel QInt8 weights, "
                f"QUInt8 activations) calibrated on {len(examples)} {task} train examples"), decisions


def quantize_gathers_per_row(model, min_elements: int = 16384) -> int:
    """Store every large embedding table (a ``Gather`` over a 2-D float initializer) as int8 with one scale
    per row, in place: ``Gather(W, ids)`` becomes ``Cast(Gather(W_q, ids)) * Gather(scale, ids)``.

    Why not onnxruntime's own Gather quantization: it gives the whole table one scale, and a pruned model
    whose layers were refitted reads its embeddings more precisely than the dense one did (SST-2, 5x whole
    heads + units, int8-dynamic at batch 1 on the full dev set: -0.80 points with one scale per table in the
    frontier run of commit b523f67, -0.57 with one per row in ``bench/results/frontier.md``); a row's scale
    costs 4 bytes, so the file stays as small. Returns the number of tables rewritten."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    users: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    new_nodes, done = [], 0
    for n in model.graph.node:
        t = inits.get(n.input[0]) if n.op_type == "Gather" and n.input else None
        axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
        if (t is None or t.data_type != TensorProto.FLOAT or len(t.dims) != 2 or axis != 0
                or t.dims[0] * t.dims[1] < min_elements or users.get(t.name, 0) != 1):
            new_nodes.append(n)
            continue
        w = numpy_helper.to_array(t).astype(np.float32)
        scale = np.abs(w).max(axis=1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        base = t.name
        model.graph.initializer.remove(t)
        model.graph.initializer.extend([numpy_helper.from_array(q, base + "_int8_rows"),
                                        numpy_helper.from_array(scale.astype(np.float32), base + "_row_scale")])
        out, ids = n.output[0], n.input[1]
        new_nodes += [helper.make_node("Gather", [base + "_int8_rows", ids], [out + "_q"], axis=0),
                      helper.make_node("Cast", [out + "_q"], [out + "_f"], to=TensorProto.FLOAT),
                      helper.make_node("Gather", [base + "_row_scale", ids], [out + "_s"], axis=0),
                      helper.make_node("Mul", [out + "_f", out + "_s"], [out])]
        done += 1
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return done


def _feature_dims(model) -> dict[str, int]:
    """Last dimension of every tensor whose shape onnx can infer (the packed layers' input widths)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    dims = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        d = vi.type.tensor_type.shape.dim
        if d and d[-1].HasField("dim_value"):
            dims[vi.name] = int(d[-1].dim_value)
    return dims


def quantize_packed_nodes(model, choice: str = "model", threads: int = 1, rows: int = 128,
                          in_features: dict[str, int] | None = None) -> list:
    """Decide every packed ``ai.edgeprune`` node's int8 formulation and rewrite it (in place).

    A node whose packed int8 op pays (:mod:`.onnx_int8`: cost model, or ``choice="measure"`` = timed here in
    onnxruntime at ``threads`` threads on ``rows`` activation rows) becomes ``BlockSparseMatMulInt8``
    (``...Direct`` without a row map); any other (and every ``PackedDenseMatMul``) becomes a standard
    ``MatMul`` + ``Add`` over its weight with the pruned entries zero, which onnxruntime's quantizer then turns
    into its own int8 MatMul. Returns one :class:`.onnx_int8.Int8Decision` per node.
    """
    from onnx import helper, numpy_helper

    from edgeprune.quiet import Progress
    from . import onnx_int8 as q8
    from . import onnx_ops as ops
    from .packing import PackedLinear, unpack_linear

    for node in model.graph.node:  # int8 works on the plain layout: undo the transposed-chain fusion
        if node.domain == ops.DOMAIN and node.op_type in (ops.BSMM_OUT_T, ops.BSMM_IN_T, ops.BSMM_SELECT_OUT_T):
            if node.op_type == ops.BSMM_IN_T:
                del node.input[4]
            node.op_type = ops.BSMM_SELECT if node.op_type == ops.BSMM_SELECT_OUT_T else ops.BSMM
            del model.graph.value_info[:]  # shapes of the chain changed back; re-inferred by the quantizer
    in_features = in_features or {}
    dims = {} if all(n.name in in_features for n in model.graph.node if n.domain == ops.DOMAIN) else \
        _feature_dims(model)
    inits = {t.name: t for t in model.graph.initializer}
    decisions = []
    new_nodes = []
    packed = (ops.BSMM, ops.BSMM_ROWMAP, ops.BSMM_SELECT, ops.PACKED_DENSE)
    timed = sum(n.domain == ops.DOMAIN and n.op_type in packed[:-1] for n in model.graph.node)
    progress = Progress("[export] time int8 layers", timed) if choice == "measure" else None
    for node in model.graph.node:
        if node.domain != ops.DOMAIN or node.op_type not in packed:
            new_nodes.append(node)
            continue
        x, vname, cname, bname = node.input[:4]
        values = numpy_helper.to_array(inits[vname])
        col_idx = numpy_helper.to_array(inits[cname])
        bias = numpy_helper.to_array(inits[bname])
        row_map = numpy_helper.to_array(inits[node.input[4]]) if len(node.input) > 4 else None
        out = int(bias.shape[0])
        inp = next((a.i for a in node.attribute if a.name == "in_features"), None) or in_features.get(node.name) \
            or dims.get(x)
        if inp is None:
            raise ExportError(f"cannot infer the input width of packed layer {node.name}; int8 needs it to choose "
                              "its formulation")
        base = node.name or vname.rsplit(".", 1)[0]  # onnxsim may share identical initializers between layers
        packed_op = ops.BSMM_INT8_DIRECT if row_map is None else (
            ops.BSMM_INT8_SELECT if int(row_map.max()) < values.shape[0] * values.shape[1] else ops.BSMM_INT8)
        q, scale = ops.quantize_values(values)
        if node.op_type == ops.PACKED_DENSE:
            d = q8.Int8Decision(node.name, q8.DENSE_INT8, 1.0, True,
                                "fp32 plan already chose the dense fallback (no block structure that pays)")
        else:
            d = q8.decide_by_model(node.name, out, inp, int(values.size), row_map is not None, packed_op)
            if choice == "measure":
                w, _ = unpack_linear(PackedLinear(values, col_idx, row_map, bias, (out, inp), 0, 0))
                pb = q8.packed_int8_layer_bytes(packed_op, q, scale, col_idx, bias, row_map, rows, inp)
                db = q8.dense_int8_layer_bytes(w.T, bias, rows)
                t_p, t_d = q8.measure_layer(pb, db, rows, inp, threads)
                d = q8.decide_by_times(node.name, packed_op, d.est_speedup, t_p, t_d)
                progress.advance()
        decisions.append(d)
        drop = {vname} | ({cname} | set(node.input[4:5]) if d.fallback else set())
        for name in drop:
            if name in inits and not any(name in n.input for n in model.graph.node if n is not node):
                model.graph.initializer.remove(inits.pop(name))
        if d.fallback:
            w, _ = unpack_linear(PackedLinear(values, col_idx, row_map, bias, (out, inp), 0, 0))
            wt = f"{base}.weight_t"
            model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.T.astype(np.float32)), wt))
            new_nodes.append(helper.make_node("MatMul", [x, wt], [f"{base}.matmul"], name=f"{node.name}.MatMul"))
            new_nodes.append(helper.make_node("Add", [f"{base}.matmul", bname], [node.output[0]],
                                              name=f"{node.name}.Add"))
            continue
        model.graph.initializer.extend([numpy_helper.from_array(q, f"{base}.values_q"),
                                        numpy_helper.from_array(scale, f"{base}.scale")])
        ins = [x, f"{base}.values_q", f"{base}.scale", cname, bname]
        if row_map is not None:
            ins.append(node.input[4])
        new_nodes.append(helper.make_node(packed_op, ins, [node.output[0]], name=node.name, domain=ops.DOMAIN))
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    used_names = {i for nd in model.graph.node for i in nd.input} | {o.name for o in model.graph.output}
    for t in [t for t in model.graph.initializer if t.name not in used_names]:  # packed arrays of fallbacks
        model.graph.initializer.remove(t)
    if decisions:
        del model.graph.value_info[:]  # layer outputs are produced by other ops now; re-inferred by the quantizer
    used = {nd.op_type for nd in model.graph.node if nd.domain == ops.DOMAIN}
    del model.functions[:]
    model.functions.extend(ops.functions(used))
    return decisions


def _restore_functions(path: Path, src) -> None:
    """The quantizer may drop model-local functions and the custom opset import; put them back."""
    import onnx

    from . import onnx_ops as ops

    m = onnx.load(str(path))
    if len(m.functions) != len(src.functions):
        del m.functions[:]
        m.functions.extend(src.functions)
    if not any(o.domain == ops.DOMAIN for o in m.opset_import):
        m.opset_import.append(onnx.helper.make_opsetid(ops.DOMAIN, ops.DOMAIN_VERSION))
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))


__all__ = ["convert_dtype", "quantize_packed_nodes"]
