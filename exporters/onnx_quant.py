"""fp16 and int8 (dynamic, and static calibrated on GLUE train) variants of an exported ONNX model."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ExportError


def convert_dtype(src: Path, dst: Path, dtype: str, tokenizer, task: str | None, data_dir: str | os.PathLike[str],
                  seq_len: int | None, calib_examples: int, input_names: list[str],
                  quantize_embeddings: bool = True) -> str:
    """Rewrite ``src`` into ``dst`` at ``dtype``; returns a one-line note for the report.

    ``quantize_embeddings``: int8 also stores the embedding tables (Gather over an initializer) as int8.
    Pruning leaves them dense and they are over half of a MiniLM file (47 of 90 MB), so without this a
    pruned int8 file is barely smaller than a dense int8 one; verification still gates the accuracy."""
    import onnx

    model = onnx.load(str(src))
    if dtype == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        try:
            m16 = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
        except Exception as e:
            raise ExportError(f"fp16 conversion failed ({type(e).__name__}: {str(e)[:200]})") from None
        onnx.save(m16, str(dst))
        return "fp16: onnxruntime.transformers.float16 (keep_io_types); packed values stored as fp16"
    # int8: packed layers become BlockSparseMatMulInt8 (uint8 packed values + per-row scales; activations
    # quantized per call); onnxruntime's quantizer then handles the dense MatMuls of the main graph (it never
    # looks inside functions, so the packed layout survives).
    from onnxruntime.quantization import QuantType, quantize_dynamic

    n_q = quantize_packed_nodes(model)
    op_types = ["MatMul", "Gemm"] + (["Gather"] if quantize_embeddings else [])
    emb = " and embedding Gathers" if quantize_embeddings else ""
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "packed_int8.onnx"
        onnx.save(model, str(tmp))
        if dtype == "int8-dynamic":
            quantize_dynamic(str(tmp), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=op_types, extra_options={"MatMulConstBOnly": True})
            _restore_functions(dst, model)
            return (f"int8-dynamic: {n_q} packed layers as BlockSparseMatMulInt8; other MatMuls{emb} by onnxruntime "
                    "quantize_dynamic (QInt8 per-channel)")
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

        from .onnx_verify import encode_examples, load_examples

        examples = load_examples(task, data_dir, "train", calib_examples)
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
        return (f"int8 static: {n_q} packed layers as BlockSparseMatMulInt8; other MatMuls{emb} quantize_static QDQ "
                f"(per-channel QInt8 weights, QUInt8 activations) calibrated on {len(examples)} {task} train examples")


def quantize_packed_nodes(model) -> int:
    """Swap every gather-body ``ai.edgeprune`` node for its int8 twin (in place); returns how many."""
    from onnx import numpy_helper

    from . import onnx_ops as ops
    from .packing import index_dtype

    for node in model.graph.node:  # int8 works on the plain layout: undo the transposed-chain fusion
        if node.domain == ops.DOMAIN and node.op_type in (ops.BSMM_OUT_T, ops.BSMM_IN_T):
            if node.op_type == ops.BSMM_IN_T:
                del node.input[4]
            node.op_type = ops.BSMM
            del model.graph.value_info[:]  # shapes of the chain changed back; re-inferred by the quantizer
    inits = {t.name: t for t in model.graph.initializer}
    n = 0
    for i, node in enumerate(model.graph.node):
        if node.domain != ops.DOMAIN or node.op_type not in (ops.BSMM, ops.BSMM_ROWMAP):
            continue
        x, vname, cname, bname = node.input[:4]
        values = numpy_helper.to_array(inits[vname])
        q, scale = ops.quantize_values(values)
        base = vname.rsplit(".", 1)[0]
        new = {f"{base}.values_q": q, f"{base}.scale": scale}
        if node.op_type == ops.BSMM:
            out = values.shape[0] * values.shape[1]
            new[f"{base}.row_map"] = np.arange(out).astype(index_dtype(out))
            rm = f"{base}.row_map"
        else:
            rm = node.input[4]
        model.graph.initializer.remove(inits[vname])
        for k, v in new.items():
            model.graph.initializer.append(numpy_helper.from_array(v, k))
        qn = ops.make_node(ops.BSMM_INT8, x, f"{base}.values_q", cname, bname, rm, node.output[0], node.name)
        qn.input.insert(2, f"{base}.scale")
        model.graph.node.remove(node)
        model.graph.node.insert(i, qn)
        n += 1
    used = {nd.op_type for nd in model.graph.node if nd.domain == ops.DOMAIN}
    del model.functions[:]
    model.functions.extend(ops.functions(used))
    return n


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
