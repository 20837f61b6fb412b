"""Roofline prediction: FLOPs and bytes per op from the artifact, the target's peaks, an efficiency factor.

Per op, time = max(FLOPs / (peak(dtype) x threads x efficiency), bytes / memory bandwidth); the model's
time is the sum. Bytes are every operand and result an op touches (weights included), so small
activations that stay in cache are over-charged: the prediction is a device-class estimate, made
precise by fitting ``efficiency`` to one real run (:func:`calibrate_efficiency`).
ONNX: model-local functions (the ``ai.edgeprune`` packed ops) are inlined first, so their bodies are
counted op by op; shapes come from ONNX shape inference, completed by one onnxruntime run on the host.
TFLite: the interpreter's op list and tensor shapes after ``allocate_tensors``.
"""
from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from edgeprune.errors import ConfigError, ModelError

MATMUL_OPS = {"MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul", "MatMulNBits", "MatMulIntegerToFloat",
              "DynamicQuantizeMatMul"}
INT8_OPS = {"MatMulInteger", "QLinearMatMul", "ConvInteger", "QLinearConv", "MatMulIntegerToFloat",
            "DynamicQuantizeMatMul", "MatMulNBits"}
FREE_OPS = {"Shape", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Constant", "ConstantOfShape",
            "Range", "Size", "Dropout", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE"}
MOVE_OPS = {"Transpose", "Gather", "Concat", "Slice", "Split", "Expand", "Tile", "Pad", "Cast", "GatherElements",
            "ScatterND", "TRANSPOSE", "GATHER", "CONCATENATION", "SLICE", "STRIDED_SLICE", "SPLIT", "PAD", "CAST",
            "BROADCAST_TO", "DEQUANTIZE", "QUANTIZE", "EMBEDDING_LOOKUP", "GATHER_ND", "TILE"}
FLOPS_PER_ELEMENT = {"Softmax": 5, "LogSoftmax": 5, "SOFTMAX": 5, "LayerNormalization": 8,
                     "SkipLayerNormalization": 9, "Gelu": 8, "FastGelu": 8, "GELU": 8, "Erf": 4, "Tanh": 4, "TANH": 4}
ITEMSIZE = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 16: 2}   # onnx TensorProto elem types


@dataclass(frozen=True)
class OpCost:
    name: str
    op_type: str
    flops: float
    bytes: float
    dtype: str  # fp32 | fp16 | int8: which peak the op's arithmetic runs at


def _prod(shape: Any) -> int:
    return int(math.prod(int(d) for d in shape)) if shape is not None else 0


def _dtype_of(types: list[str | None]) -> str:
    if any(t == "int8" for t in types):
        return "int8"
    if any(t == "fp16" for t in types):
        return "fp16"
    return "fp32"


def _cost(name: str, op: str, ins: list[tuple[list[int] | None, int, str | None]],
          outs: list[tuple[list[int] | None, int, str | None]], attrs: dict[str, Any]) -> OpCost:
    """FLOPs/bytes of one op from (shape, itemsize, dtype) of its inputs and outputs."""
    if op in FREE_OPS:
        return OpCost(name, op, 0.0, 0.0, "fp32")
    out_elems = sum(_prod(s) for s, _, _ in outs)
    in_bytes = sum(_prod(s) * b for s, b, _ in ins if s is not None)
    out_bytes = sum(_prod(s) * b for s, b, _ in outs if s is not None)
    dtypes = [t for _, _, t in ins]
    flops = 0.0
    if op in MATMUL_OPS or op in ("BATCH_MATMUL",):
        a = ins[0][0]
        k = a[-1] if a else 0
        if op == "BATCH_MATMUL" and attrs.get("adj_x"):
            k = a[-2]
        flops = 2.0 * _prod(outs[0][0]) * k
        dtype = "int8" if op in INT8_OPS else _dtype_of(dtypes[:2])
    elif op == "Gemm":
        a = ins[0][0] or [0, 0]
        k = a[0] if attrs.get("transA") else a[-1]
        flops = 2.0 * _prod(outs[0][0]) * k + (_prod(outs[0][0]) if len(ins) > 2 else 0)
        dtype = _dtype_of(dtypes[:2])
    elif op == "FULLY_CONNECTED":
        w = ins[1][0] or [0, 0]
        flops = 2.0 * _prod(outs[0][0]) * w[-1] + (_prod(outs[0][0]) if len(ins) > 2 and ins[2][0] else 0)
        dtype = _dtype_of(dtypes[:2])
    elif op in ("Conv", "ConvInteger", "QLinearConv"):
        w = ins[3 if op == "QLinearConv" else 1][0] or [0, 0]
        flops = 2.0 * _prod(outs[0][0]) * _prod(w[1:])
        dtype = "int8" if op in INT8_OPS else _dtype_of(dtypes[:2])
    elif op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = ins[1][0] or [0, 0]
        flops = 2.0 * _prod(outs[0][0]) * (_prod(w[1:3]) if op == "DEPTHWISE_CONV_2D" else _prod(w[1:]))
        dtype = _dtype_of(dtypes[:2])
    elif op == "Einsum":
        flops = _einsum_flops(attrs.get("equation", ""), [s for s, _, _ in ins])
        dtype = _dtype_of(dtypes)
    elif op in MOVE_OPS:
        if op in ("Gather", "GATHER", "EMBEDDING_LOOKUP", "GATHER_ND"):  # reads only the gathered rows
            in_bytes = out_bytes + sum(_prod(s) * b for s, b, _ in ins[1:] if s is not None)
        dtype = "fp32"
    elif op.startswith("Reduce") or op in ("MEAN", "SUM", "REDUCE_MAX"):
        flops = float(sum(_prod(s) for s, _, _ in ins[:1]))
        dtype = _dtype_of(dtypes)
    else:
        flops = float(FLOPS_PER_ELEMENT.get(op, 1) * out_elems)
        dtype = _dtype_of([t for _, _, t in outs])
    return OpCost(name, op, flops, float(in_bytes + out_bytes), dtype)


def _einsum_flops(eq: str, shapes: list[list[int] | None]) -> float:
    lhs = eq.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for term, shape in zip(lhs, shapes):
        if shape is None or "." in term:
            return 0.0
        for ch, d in zip(term, shape):
            sizes[ch] = int(d)
    return 2.0 * math.prod(sizes.values()) if sizes else 0.0


# -------------------------------------------------------------------------------------------- ONNX
def _onnx_dtype(elem: int) -> str | None:
    return {1: "fp32", 10: "fp16", 2: "int8", 3: "int8", 16: "fp16"}.get(elem)


def onnx_costs(path: str | os.PathLike[str], batch: int = 1, seq_len: int = 128) -> list[OpCost]:
    import onnx
    from onnx import inliner, shape_inference

    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise ModelError(f"{path}: not a readable ONNX model ({e})") from None
    if model.functions:
        model = inliner.inline_local_functions(model)
    init_names = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in init_names:
            continue
        for i, dim in enumerate(inp.type.tensor_type.shape.dim):
            if not dim.HasField("dim_value") or dim.dim_value <= 0:
                dim.Clear()
                dim.dim_value = batch if i == 0 else seq_len
    try:
        inferred = shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        inferred = model
    info: dict[str, tuple[list[int] | None, int]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
        complete = tt.HasField("shape") and all(d is not None for d in dims)
        info[vi.name] = ([int(d) for d in dims] if complete else None, tt.elem_type)  # type: ignore[misc]
    for init in model.graph.initializer:
        info[init.name] = (list(init.dims), init.data_type)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    info[node.output[0]] = (list(a.t.dims), a.t.data_type)
    missing = [o for n in model.graph.node for o in n.output if o and (o not in info or info[o][0] is None)]
    if missing:
        info.update(_shapes_from_ort(model, missing, batch, seq_len))
    costs = []
    for n in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if isinstance(attrs.get("equation"), bytes):
            attrs["equation"] = attrs["equation"].decode()

        def desc(names: Any) -> list[tuple[list[int] | None, int, str | None]]:
            out = []
            for nm in names:
                if not nm:
                    continue
                shape, elem = info.get(nm, (None, 1))
                out.append((shape, ITEMSIZE.get(elem, 4), _onnx_dtype(elem)))
            return out

        costs.append(_cost(n.name or n.output[0], n.op_type, desc(n.input), desc(n.output), attrs))
    return costs


def _shapes_from_ort(model: Any, names: list[str], batch: int, seq_len: int) -> dict[str, tuple[list[int], int]]:
    """Shapes the static inference could not resolve: one host run with those tensors as outputs."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend([onnx.ValueInfoProto(name=n) for n in dict.fromkeys(names) if n not in have])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelError(f"cannot resolve tensor shapes of the ONNX graph with onnxruntime ({e})") from None
    types = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
             "tensor(float16)": np.float16, "tensor(bool)": np.bool_}
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else (batch if k == 0 else seq_len) for k, d in enumerate(i.shape)]
        fill = 0 if "type" in i.name else 1
        feeds[i.name] = np.full(shape, fill, dtype=types.get(i.type, np.float32))
    outs = [o.name for o in sess.get_outputs()]
    vals = sess.run(outs, feeds)
    np_elem = {np.dtype("float32"): 1, np.dtype("float16"): 10, np.dtype("int8"): 3, np.dtype("uint8"): 2,
               np.dtype("int64"): 7, np.dtype("int32"): 6, np.dtype("bool"): 9, np.dtype("float64"): 11}
    return {n: (list(v.shape), np_elem.get(np.asarray(v).dtype, 1)) for n, v in zip(outs, vals)}


# ------------------------------------------------------------------------------------------ TFLite
def tflite_costs(path: str | os.PathLike[str], batch: int = 1, seq_len: int = 128) -> list[OpCost]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        it = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except Exception as e:
        raise ModelError(f"{path}: not a loadable TFLite model ({e})") from None
    for d in it.get_input_details():
        sig = [int(x) for x in d.get("shape_signature", d["shape"])]
        want = [x if x > 0 else (batch if k == 0 else seq_len) for k, x in enumerate(sig)]
        if want != [int(x) for x in d["shape"]]:
            it.resize_tensor_input(d["index"], want)
    it.allocate_tensors()
    tensors = {}
    for t in it.get_tensor_details():
        dt = str(t["dtype"].__name__ if hasattr(t["dtype"], "__name__") else t["dtype"])
        itemsize = {"float32": 4, "float16": 2, "int8": 1, "uint8": 1, "int32": 4, "int64": 8, "bool_": 1,
                    "int16": 2}.get(dt, 4)
        kind = {"float32": "fp32", "float16": "fp16", "int8": "int8", "uint8": "int8"}.get(dt)
        tensors[t["index"]] = ([int(x) for x in t["shape"]], itemsize, kind)
    costs = []
    for op in it._get_ops_details():  # the interpreter's op list (no public equivalent in LiteRT 2.3)
        ins = [tensors.get(int(i), (None, 4, None)) for i in op["inputs"] if int(i) >= 0]
        outs = [tensors.get(int(i), (None, 4, None)) for i in op["outputs"] if int(i) >= 0]
        costs.append(_cost(f"{op['op_name']}_{op['index']}", op["op_name"], ins, outs, {}))
    return costs


def artifact_costs(path: str | os.PathLike[str], batch: int = 1, seq_len: int = 128) -> list[OpCost]:
    """Per-op costs by the artifact's own cost walker (its format record's ``cost_walker``)."""
    from edgeprune.formats import format_of

    fmt = format_of(path)
    if fmt is None or fmt.cost_walker is None:
        raise ConfigError(f"{path}: roofline needs an .onnx or .tflite artifact")
    return fmt.costs(path, batch, seq_len)


def totals(costs: list[OpCost]) -> dict[str, Any]:
    by_type: dict[str, dict[str, float]] = defaultdict(lambda: {"count": 0, "flops": 0.0, "bytes": 0.0})
    for c in costs:
        row = by_type[c.op_type]
        row["count"] += 1
        row["flops"] += c.flops
        row["bytes"] += c.bytes
    flops = sum(c.flops for c in costs)
    byts = sum(c.bytes for c in costs)
    return {"flops": flops, "bytes": byts, "ops": len(costs),
            "arithmetic_intensity": flops / byts if byts else None,
            "by_op_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1]["flops"]))}


# ---------------------------------------------------------------------------------------- predict
def predict_ms(costs: list[OpCost], target: Any, threads: int | None = None, efficiency: float | None = None,
               unit: str = "cpu") -> float:
    """Predicted latency (ms) of one inference on ``target`` (its CPU, or its GPU with ``unit="gpu"``)."""
    if unit not in ("cpu", "gpu"):
        raise ConfigError(f"unit must be cpu or gpu (got {unit!r})")
    if unit == "gpu" and target.gpu is None:
        raise ConfigError(f"target {target.name!r} has no [gpu] section")
    eff = efficiency if efficiency is not None else (target.efficiency if unit == "cpu" else target.gpu.efficiency)
    if not 0 < eff <= 1:
        raise ConfigError(f"efficiency must be in (0, 1] (got {eff})")
    bw = target.bandwidth_gbs * 1e9
    total = 0.0
    for c in costs:
        if c.flops == 0 and c.bytes == 0:
            continue
        if unit == "cpu":
            peak = target.peak_gflops(c.dtype, threads) * 1e9 * eff
        else:  # the GPU delegate computes fp32 graphs in fp16 by default (precision loss allowed)
            peak = target.gpu.peak_gflops("int8" if c.dtype == "int8" else "fp16") * 1e9 * eff
        total += max(c.flops / peak, c.bytes / bw)
    return total * 1e3


def calibrate_efficiency(costs: list[OpCost], target: Any, measured_ms: float, threads: int | None = None,
                         unit: str = "cpu") -> float:
    """The efficiency at which the prediction equals ``measured_ms`` (bisection; clamped to (1e-4, 1])."""
    if measured_ms <= 0:
        raise ConfigError("measured latency must be positive to calibrate")
    lo, hi = 1e-4, 1.0
    if predict_ms(costs, target, threads, hi, unit) >= measured_ms:
        return hi  # faster than the roofline at full peak: memory-bound or the peaks are understated
    if predict_ms(costs, target, threads, lo, unit) <= measured_ms:
        return lo
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if predict_ms(costs, target, threads, mid, unit) > measured_ms:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


