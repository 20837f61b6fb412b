"""fp16 and int8 (dynamic, and static calibrated on GLUE train) variants of an exported ONNX model."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ExportError


def convert_dtype(src: Path, dst: Path, dtype: str, tokenizer, task: str | None, data_dir: str | os.PathLike[str],
                  seq_len: int | None, calib_examples: int, input_names: list[str]) -> str:
    """Rewrite ``src`` into ``dst`` at ``dtype``; returns a one-line note for the report."""
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
    # int8: onnxruntime's quantizer only sees the main graph, so the ai.edgeprune functions are inlined first
    # (this keeps the packed layout: the inliner does not fold constants).
    from onnx.inliner import inline_local_functions
    from onnxruntime.quantization import QuantType, quantize_dynamic

    inl = inline_local_functions(model)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "inlined.onnx"
        onnx.save(inl, str(tmp))
        if dtype == "int8-dynamic":
            quantize_dynamic(str(tmp), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gemm"], extra_options={"MatMulConstBOnly": True})
            return "int8-dynamic: functions inlined, onnxruntime quantize_dynamic (QInt8 per-channel, MatMul const B)"
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
                        op_types_to_quantize=["MatMul", "Gemm"], extra_options={"MatMulConstBOnly": True})
        return (f"int8 static: functions inlined, quantize_static QDQ (per-channel QInt8 weights, QUInt8 activations) "
                f"calibrated on {len(examples)} {task} train examples")


__all__ = ["convert_dtype", "np"]
