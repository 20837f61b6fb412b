"""Parameter counts and on-disk size read from the artifact itself, not from what the exporter claims.

What counts as a parameter (the same rule for ONNX and TFLite):
  * constant tensors of floating point, int8/uint8 or int4/uint4 type (weights, packed block values,
    quantized weights): their *stored* element count, so a packed block-sparse initializer counts
    only the surviving values and a sparse tensor counts its non-zeros;
  * int32/int16 tensors only when they are quantized values (an int32 bias feeding ONNX
    ``DequantizeLinear``, a TFLite tensor with quantization scales);
  * other integer tensors (shapes, axes, packed block indices) are bookkeeping, not parameters.
``dense_equivalent`` is the element count had every sparse tensor been stored dense.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError

FORMATS = {".onnx": "onnx", ".tflite": "tflite"}


@dataclass(frozen=True)
class ParamCount:
    stored: int
    dense_equivalent: int
    tensors: int  # constant tensors counted
    by_dtype: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactFiles:
    """The model file plus any ONNX external-data files it needs: what a device has to hold."""

    files: tuple[Path, ...]
    bytes: int
    missing: tuple[str, ...] = ()


def artifact_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ModelError(f"{path} is neither .onnx nor .tflite; pass an exported artifact or its bundle folder")
    return fmt


# ----------------------------------------------------------------------------------------------
# ONNX

def _load_onnx(path: Path):
    import onnx

    try:
        # Graph structure only: external weight files are not read, only their sizes are needed.
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ModelError(f"{path} cannot be parsed as ONNX ({type(e).__name__}); the file is truncated or "
                         "not an ONNX model") from None


def _onnx_counted(dtype: int, quantized_int: bool) -> bool:
    from onnx import TensorProto as T

    floats = {T.FLOAT, T.FLOAT16, T.DOUBLE, T.BFLOAT16}
    floats |= {getattr(T, n) for n in ("FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ",
                                       "FLOAT4E2M1") if hasattr(T, n)}
    small = {T.INT8, T.UINT8} | {getattr(T, n) for n in ("INT4", "UINT4") if hasattr(T, n)}
    return dtype in floats or dtype in small or (quantized_int and dtype in (T.INT32, T.INT16, T.UINT16))


def count_onnx(path: Path) -> ParamCount:
    """Stored parameters of an ONNX model: initializers, sparse initializers and Constant nodes."""
    from onnx import TensorProto

    model = _load_onnx(path)
    graphs = [model.graph]
    dequant_inputs: set[str] = set()
    stored = dense = tensors = 0
    by_dtype: dict[str, int] = {}

    def add(dtype: int, n_stored: int, n_dense: int) -> None:
        nonlocal stored, dense, tensors
        stored += n_stored
        dense += n_dense
        tensors += 1
        name = TensorProto.DataType.Name(dtype).lower()
        by_dtype[name] = by_dtype.get(name, 0) + n_stored

    nodes = []
    for g in graphs:
        nodes += list(g.node)
    for f in model.functions:
        nodes += list(f.node)
    for node in nodes:
        if node.op_type == "DequantizeLinear" and node.input:
            dequant_inputs.add(node.input[0])

    for init in model.graph.initializer:
        if _onnx_counted(init.data_type, init.name in dequant_inputs):
            n = math.prod(init.dims)
            add(init.data_type, n, n)
    for sp in model.graph.sparse_initializer:
        if _onnx_counted(sp.values.data_type, sp.values.name in dequant_inputs):
            add(sp.values.data_type, math.prod(sp.values.dims), math.prod(sp.dims))
    for node in nodes:
        if node.op_type != "Constant":
            continue
        for attr in node.attribute:
            if attr.name == "value" and attr.HasField("t"):
                t = attr.t
                if _onnx_counted(t.data_type, bool(node.output) and node.output[0] in dequant_inputs):
                    n = math.prod(t.dims)
                    add(t.data_type, n, n)
            elif attr.name == "sparse_value" and attr.HasField("sparse_tensor"):
                sp = attr.sparse_tensor
                if _onnx_counted(sp.values.data_type, False):
                    add(sp.values.data_type, math.prod(sp.values.dims), math.prod(sp.dims))
    return ParamCount(stored, dense, tensors, by_dtype)


def onnx_files(path: Path) -> ArtifactFiles:
    """The .onnx file and the external-data files its initializers point to."""
    from onnx import TensorProto

    model = _load_onnx(path)
    locations: list[str] = []
    for init in model.graph.initializer:
        if init.data_location == TensorProto.EXTERNAL:
            for entry in init.external_data:
                if entry.key == "location" and entry.value not in locations:
                    locations.append(entry.value)
    files = [path]
    missing = []
    for loc in locations:
        p = path.parent / loc
        (files.append(p) if p.is_file() else missing.append(loc))
    return ArtifactFiles(tuple(files), sum(p.stat().st_size for p in files), tuple(missing))


# ----------------------------------------------------------------------------------------------
# TFLite (read from the flatbuffer with LiteRT's own generated schema; no interpreter, no TF)

_TFLITE_ITEMSIZE = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "INT16": 2, "INT8": 1,
                    "FLOAT64": 8, "UINT16": 2, "UINT32": 4, "UINT64": 8, "BFLOAT16": 2, "INT4": 0.5, "UINT4": 0.5,
                    "FLOAT8_E4M3FN": 1, "FLOAT8_E5M2": 1}
_TFLITE_COUNTED = {"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16", "INT8", "UINT8", "INT4", "UINT4",
                   "FLOAT8_E4M3FN", "FLOAT8_E5M2"}
_TFLITE_QUANT_INT = {"INT32", "INT16", "UINT16"}


def count_tflite(path: Path) -> ParamCount:
    """Stored parameters of a TFLite model: tensors backed by a non-empty constant buffer."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - the tf extra is missing
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError:
            raise ModelError("counting TFLite parameters needs ai-edge-litert; pip install 'edgeprune[tf]'") from None

    buf = path.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier); the file is truncated or wrong")
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    except Exception as e:
        raise ModelError(f"{path} cannot be parsed as TFLite ({type(e).__name__}); the file is truncated") from None
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    buffers = model.buffers or []
    stored = dense = tensors = 0
    by_dtype: dict[str, int] = {}
    seen: set[int] = set()
    for sg in model.subgraphs or []:
        for t in sg.tensors or []:
            b = t.buffer
            if not b or b in seen or b >= len(buffers):
                continue
            buffer = buffers[b]
            nbytes = len(buffer.data) if buffer.data is not None else 0
            if not nbytes and (buffer.size or 0) > 0 and (buffer.offset or 0) > 1:
                nbytes = int(buffer.size)  # weights stored after the flatbuffer (models > 2 GB)
            if not nbytes:
                continue
            dtype = names.get(t.type, str(t.type))
            quantized = t.quantization is not None and t.quantization.scale is not None and \
                len(t.quantization.scale) > 0
            if dtype not in _TFLITE_COUNTED and not (quantized and dtype in _TFLITE_QUANT_INT):
                continue
            seen.add(b)
            n_dense = math.prod(int(d) for d in (t.shape if t.shape is not None else []))
            n_stored = int(nbytes / _TFLITE_ITEMSIZE.get(dtype, 1)) if t.sparsity is not None else n_dense
            stored += n_stored
            dense += n_dense
            tensors += 1
            by_dtype[dtype.lower()] = by_dtype.get(dtype.lower(), 0) + n_stored
    return ParamCount(stored, dense, tensors, by_dtype)


def count_params(path: str | os.PathLike[str]) -> ParamCount:
    path = Path(path)
    return count_onnx(path) if artifact_format(path) == "onnx" else count_tflite(path)


def artifact_files(path: str | os.PathLike[str]) -> ArtifactFiles:
    path = Path(path)
    if artifact_format(path) == "onnx":
        return onnx_files(path)
    return ArtifactFiles((path,), path.stat().st_size)
