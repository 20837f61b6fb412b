"""Parameter counts and on-disk size read from the artifact itself, not from what the exporter claims.

What counts as a parameter (the same rule for ONNX and TFLite):
  * floating-point constant tensors (weights, biases, packed block values): their *stored* element
    count, so a packed block-sparse initializer counts only the surviving values and a sparse
    tensor counts its non-zeros;
  * integer constants (int4..int32) only when they are quantized *values*: in ONNX when they reach
    ``DequantizeLinear`` / ``MatMulInteger`` / ``QLinear*`` / a Cast to float (followed through
    reshapes and into the model-local ``ai.edgeprune`` functions), in TFLite when the tensor has
    quantization scales;
  * other integer and bool tensors (shapes, axes, masks, packed block indices such as uint8
    ``col_idx``/``row_map``) are bookkeeping, not parameters.
``dense_equivalent`` is the element count had every sparse tensor been stored dense.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.errors import ModelError
from edgeprune.formats import Format, format_of


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


def countable_format(path: Path) -> Format:
    """The registered format of an artifact file that can be counted; a ModelError otherwise."""
    fmt = format_of(path)
    if fmt is None or fmt.param_counter is None:
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


_ONNX_FLOATS = ("FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
                "FLOAT8E5M2FNUZ", "FLOAT4E2M1")
_ONNX_QUANT_INTS = ("INT8", "UINT8", "INT4", "UINT4", "INT16", "UINT16", "INT32")
# (op, input positions) that consume quantized integer *values* (weights, biases), not indices.
_VALUE_SINKS = {"DequantizeLinear": {0}, "MatMulInteger": {0, 1}, "ConvInteger": {0, 1}, "QLinearMatMul": {0, 3},
                "QLinearConv": {0, 3, 8}, "QGemm": {0, 3, 6}, "DynamicQuantizeMatMul": {1}, "MatMulNBits": {1},
                "GatherBlockQuantized": {0}, "QAttention": {1}, "QLinearAdd": {0, 3}, "QLinearMul": {0, 3}}
_PASS_THROUGH = {"Reshape", "Transpose", "Identity", "Unsqueeze", "Squeeze", "Flatten"}  # input 0 -> output 0


class _Uses:
    """Who consumes each tensor, across the main graph and the model-local functions it calls."""

    def __init__(self, model) -> None:
        from onnx import TensorProto

        self.funcs = {(f.domain, f.name): f for f in model.functions}
        self.float_types = {getattr(TensorProto, n) for n in _ONNX_FLOATS if hasattr(TensorProto, n)}
        self.cons: dict[tuple[Any, str], list] = {}
        scopes = [("", model.graph.node)] + [((f.domain, f.name), f.node) for f in model.functions]
        for scope, nodes in scopes:
            for node in nodes:
                for i, name in enumerate(node.input):
                    if name:
                        self.cons.setdefault((scope, name), []).append((scope, node, i))

    def is_value(self, name: str, scope: Any = "", depth: int = 0) -> bool:
        """True when an integer tensor is dequantized into values somewhere downstream (a quantized weight)."""
        if depth > 12:
            return False
        for sc, node, i in self.cons.get((scope, name), []):
            key = (node.domain, node.op_type)
            if key in self.funcs:
                f = self.funcs[key]
                if i < len(f.input) and self.is_value(f.input[i], key, depth + 1):
                    return True
            elif i in _VALUE_SINKS.get(node.op_type, ()):
                return True
            elif node.op_type == "Cast":
                to = next((a.i for a in node.attribute if a.name == "to"), None)
                if to in self.float_types or self.is_value(node.output[0], sc, depth + 1):
                    return True
            elif node.op_type in _PASS_THROUGH and i == 0 and self.is_value(node.output[0], sc, depth + 1):
                return True
        return False


def _onnx_counted(dtype: int, name: str, uses: _Uses) -> bool:
    from onnx import TensorProto

    if dtype in uses.float_types:
        return True
    ints = {getattr(TensorProto, n) for n in _ONNX_QUANT_INTS if hasattr(TensorProto, n)}
    return dtype in ints and uses.is_value(name)


def count_onnx(path: Path) -> ParamCount:
    """Stored parameters of an ONNX model: initializers, sparse initializers and Constant nodes."""
    from onnx import TensorProto

    model = _load_onnx(path)
    uses = _Uses(model)
    stored = dense = tensors = 0
    by_dtype: dict[str, int] = {}

    def add(dtype: int, n_stored: int, n_dense: int) -> None:
        nonlocal stored, dense, tensors
        stored += n_stored
        dense += n_dense
        tensors += 1
        name = TensorProto.DataType.Name(dtype).lower()
        by_dtype[name] = by_dtype.get(name, 0) + n_stored

    for init in model.graph.initializer:
        if _onnx_counted(init.data_type, init.name, uses):
            n = math.prod(init.dims)
            add(init.data_type, n, n)
    for sp in model.graph.sparse_initializer:
        if _onnx_counted(sp.values.data_type, sp.values.name, uses):
            add(sp.values.data_type, math.prod(sp.values.dims), math.prod(sp.dims))
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    for node in nodes:
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            continue
        out = node.output[0] if node.output else ""
        for attr in node.attribute:
            if attr.name == "value" and attr.HasField("t"):
                if _onnx_counted(attr.t.data_type, out, uses):
                    n = math.prod(attr.t.dims)
                    add(attr.t.data_type, n, n)
            elif attr.name == "sparse_value" and attr.HasField("sparse_tensor"):
                sp = attr.sparse_tensor
                if _onnx_counted(sp.values.data_type, out, uses):
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
_TFLITE_COUNTED = {"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16", "FLOAT8_E4M3FN", "FLOAT8_E5M2"}
_TFLITE_QUANT_INT = {"INT32", "INT16", "UINT16", "INT8", "UINT8", "INT4", "UINT4"}


def count_tflite(path: Path) -> ParamCount:
    """Stored parameters of a TFLite model: tensors backed by a non-empty constant buffer."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - the tflite extra is missing
        raise ModelError("counting TFLite parameters needs ai-edge-litert; pip install 'edgeprune[tflite]'") from None

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


def single_file(path: Path) -> ArtifactFiles:
    """A format whose artifact is one self-contained file."""
    return ArtifactFiles((path,), path.stat().st_size)


def count_params(path: str | os.PathLike[str]) -> ParamCount:
    path = Path(path)
    return countable_format(path).count_params(path)


def artifact_files(path: str | os.PathLike[str]) -> ArtifactFiles:
    path = Path(path)
    return countable_format(path).files(path)
