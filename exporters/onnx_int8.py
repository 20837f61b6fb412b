"""Per-layer int8 formulation: the packed int8 op, or the layer's standard (structured / dense) int8 MatMul.

onnxruntime's fused dense int8 MatMul (``DynamicQuantizeMatMul`` / QDQ ``MatMulInteger``) is much harder to beat
than the fp32 one: at low sparsity the packed int8 body is slower than it (docs/onnx-ops.md, int8 layer
study). So every packed layer of an int8 export is decided on its own, either by a cost model fitted on that
study (default, deterministic) or by timing both candidates in onnxruntime on this machine
(``int8_choice="measure"``). A layer that falls back becomes a plain ``MatMul`` + ``Add`` over its (structured:
shrunk) weight with the pruned entries zero, which onnxruntime's quantizer turns into its own int8 MatMul.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

DENSE_INT8 = "MatMul (int8, onnxruntime quantizer)"
CHOICES = ("model", "measure")

# t_packed_int8 / t_dense_int8 ~ OVERHEAD + FIXED_MACS / (out * in) + SLOPE * work, fitted (1 thread, 128 rows)
# on the int8 layer study: 384x384 ran 0.98x / 1.20x / 1.51x at 2x / 3x / 5x, 1536x384 and 384x1536
# 1.07-1.50x / 1.26-1.70x / 1.76-2.93x. The fixed term is the per-call cost of quantize + transpose + gather +
# rescale that does not shrink with the layer (it is why small layers need more sparsity to pay).
INT8_OVERHEAD = 0.10
INT8_FIXED_MACS = 50_000.0
INT8_SLOPE = 1.15
INT8_ROW_MAP = 0.03  # the row reorder copy
MIN_GAIN = 0.95  # the packed op must be predicted at least ~5% faster


@dataclass(frozen=True)
class Int8Decision:
    """What one packed layer became in the int8 artifact, and why."""

    layer: str
    op: str  # BSMM_INT8 / BSMM_INT8_DIRECT, or DENSE_INT8 (fallback)
    est_speedup: float  # predicted packed-int8 speedup over the layer's dense int8 MatMul (cost model)
    fallback: bool
    reason: str
    measured_ms: dict[str, float] | None = None  # int8_choice="measure": median ms of each candidate

    def record(self) -> dict[str, Any]:
        r = {"layer": self.layer, "int8_op": self.op, "int8_est_speedup": round(self.est_speedup, 2),
             "int8_fallback": self.fallback, "int8_reason": self.reason}
        if self.measured_ms is not None:
            r["int8_measured_ms"] = {k: round(v, 4) for k, v in self.measured_ms.items()}
        return r


def predicted_int8_ratio(out: int, inp: int, executed_macs: int, row_map: bool) -> float:
    """Predicted packed-int8 time / dense-int8 time of one layer (pure)."""
    dense = float(out * inp)
    return INT8_OVERHEAD + INT8_FIXED_MACS / dense + INT8_SLOPE * executed_macs / dense + (
        INT8_ROW_MAP if row_map else 0.0)


def decide_by_model(layer: str, out: int, inp: int, executed_macs: int, row_map: bool, packed_op: str
                    ) -> Int8Decision:
    t = predicted_int8_ratio(out, inp, executed_macs, row_map)
    if t < MIN_GAIN:
        return Int8Decision(layer, packed_op, 1.0 / t, False,
                            f"cost model: packed int8 predicted {1.0 / t:.2f}x the dense int8 MatMul")
    return Int8Decision(layer, DENSE_INT8, 1.0 / t, True,
                        f"cost model: packed int8 predicted {1.0 / t:.2f}x the dense int8 MatMul (< {1 / MIN_GAIN:.2f}x)"
                        "; standard int8 MatMul used")


def decide_by_times(layer: str, packed_op: str, est_speedup: float, packed_ms: float, dense_ms: float
                    ) -> Int8Decision:
    """The faster of the two measured candidates (ties and <5% gains go to the standard MatMul)."""
    times = {packed_op: packed_ms, DENSE_INT8: dense_ms}
    if packed_ms < dense_ms * MIN_GAIN:
        return Int8Decision(layer, packed_op, est_speedup, False,
                            f"measured: packed int8 {dense_ms / packed_ms:.2f}x the dense int8 MatMul", times)
    return Int8Decision(layer, DENSE_INT8, est_speedup, True,
                        f"measured: packed int8 {dense_ms / packed_ms:.2f}x the dense int8 MatMul (< "
                        f"{1 / MIN_GAIN:.2f}x); standard int8 MatMul used", times)


# --- measurement ------------------------------------------------------------------------------------

def _median_ms(sess, feeds: dict[str, np.ndarray], reps: int) -> float:
    for _ in range(3):
        sess.run(None, feeds)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        sess.run(None, feeds)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def dense_int8_layer_bytes(w_t: np.ndarray, bias: np.ndarray, rows: int) -> bytes:
    """A one-layer ``X @ w_t + bias`` model, dynamically quantized by onnxruntime (the fallback candidate)."""
    import os
    import tempfile

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    inp, out = w_t.shape
    g = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "b"], ["Y"])],
                          "dense_int8_layer", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [rows, inp])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [rows, out])],
                          [numpy_helper.from_array(np.ascontiguousarray(w_t, np.float32), "W"),
                           numpy_helper.from_array(np.asarray(bias, np.float32), "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    with tempfile.TemporaryDirectory() as td:
        src, dst = os.path.join(td, "f.onnx"), os.path.join(td, "q.onnx")
        onnx.save(m, src)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"MatMulConstBOnly": True})
        with open(dst, "rb") as f:
            return f.read()


def packed_int8_layer_bytes(op: str, values_q, scale, col_idx, bias, row_map, rows: int, inp: int) -> bytes:
    """A one-node model running a packed int8 layer (the other candidate)."""
    from onnx import TensorProto, helper, numpy_helper

    from . import onnx_ops as ops

    names = ["X", "q", "s", "c", "b"] + (["r"] if row_map is not None else [])
    arrays = [values_q, scale, col_idx, np.asarray(bias, np.float32)] + ([row_map] if row_map is not None else [])
    inits = [numpy_helper.from_array(a, n) for n, a in zip(names[1:], arrays)]
    node = helper.make_node(op, names, ["Y"], domain=ops.DOMAIN)
    g = helper.make_graph([node], "packed_int8_layer", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                                      [rows, inp])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [rows, len(bias)])], inits)
    return ops.finalize_model(g, {op}).SerializeToString()


def measure_layer(packed_bytes: bytes, dense_bytes: bytes, rows: int, inp: int, threads: int, reps: int = 30,
                  rounds: int = 3) -> tuple[float, float]:
    """(packed ms, dense ms): medians, interleaved rounds, best round of each (same process, same input)."""
    from .onnx_verify import ort_session

    x = {"X": np.random.default_rng(0).standard_normal((rows, inp)).astype(np.float32)}
    sp, sd = ort_session(packed_bytes, threads=threads), ort_session(dense_bytes, threads=threads)
    best_p = best_d = float("inf")
    for _ in range(rounds):
        best_p = min(best_p, _median_ms(sp, x, reps))
        best_d = min(best_d, _median_ms(sd, x, reps))
    return best_p, best_d


__all__ = ["CHOICES", "DENSE_INT8", "Int8Decision", "decide_by_model", "decide_by_times", "measure_layer",
           "predicted_int8_ratio"]
