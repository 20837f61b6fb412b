"""PyTorch module -> TFLite flatbuffer: litert-torch converts, ai-edge-quantizer sets the dtype.

One model definition serves both runtimes: the exporters build PyTorch modules, and litert-torch
(``torch.export`` -> StableHLO -> TFLite builtins) writes the flatbuffer with a ``serving_default``
signature named after the module's keyword inputs and output keys. TensorFlow is not involved.

dtypes, all through ai-edge-quantizer on the float flatbuffer:

* ``fp32``: as converted.
* ``fp16``: weights of FULLY_CONNECTED and EMBEDDING_LOOKUP cast to float16 (dequantized at load).
  ai-edge-quantizer cannot cast BATCH_MATMUL constants, so fp16 packed exports use only the formulations
  that lower to FULLY_CONNECTED (``tflite_graph.plan_model(segments=False)``).
* ``int8-dynamic``: int8 channelwise weights with float activations, on FULLY_CONNECTED and
  EMBEDDING_LOOKUP. The segment formulations' BATCH_MATMUL constants are stored int8 weight-only
  (dequantized at load): litert-torch's stock recipe quantizes them dynamically, and in ``segments_t``
  the constant is the left operand, for which LiteRT 2.3 has no int8-LHS / float-RHS kernel (the model
  is refused at invoke; docs/litert-torch.md).
* ``int8``: static int8 on every FULLY_CONNECTED (int8 channelwise weights, int8 activations calibrated on
  real examples, int32 accumulation), int8 EMBEDDING_LOOKUP tables and weight-only int8 segment weights;
  layer norm, softmax, GELU, the attention matmuls and the op that writes the logits stay float, so apps read float scores. Measured on
  MiniLM-L6 / SST-2 (docs/litert-torch.md): the stock ``static_wi8_ai8`` recipe (every op int8) was 58 MB,
  61 ms and 3.4 points off, because int8 BATCH_MATMUL, MEAN and RSQRT fall back from XNNPACK to slow and
  coarse reference kernels and the embedding tables stayed float; this recipe is 23.8 MB, 10.2 ms and 0.8 points off
  (int8-dynamic: 7.9 ms; bench/results/tflite_int8_recipes.md). It is not integer-only: accelerators that
  need every op in int8 refuse it.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edgeprune.errors import ConfigError, ExportError
from edgeprune.quiet import native_stdout_off

INSTALL_HINT = "pip install 'edgeprune[tflite]'"
DTYPES = ("fp32", "fp16", "int8-dynamic", "int8")


def require() -> None:
    """Fail early, with the install line, when the converter is missing (checked without importing it)."""
    import importlib.util

    for mod in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"):
        if importlib.util.find_spec(mod) is None:
            raise ConfigError(f"--format tflite needs litert-torch, ai-edge-quantizer and ai-edge-litert "
                              f"({mod} is missing); {INSTALL_HINT}")


@contextlib.contextmanager
def _cia_ops_cached() -> Iterator[None]:
    """Compute torch.export's set of CompositeImplicitAutograd ops once per conversion instead of per call.

    litert-torch runs ``run_decompositions`` about four times per signature, and each run walks every
    registered operator namespace again (``torch._export.utils._collect_all_valid_cia_ops``; torch caches
    only the aten part, since other namespaces may gain ops). No op is registered while one conversion
    runs, so one walk serves it: the 106 one-linear timing signatures of a 5x MiniLM-L6 convert about 30%
    faster (20 signatures: 10.9 -> 7.6 s). Without those torch internals nothing is patched.
    """
    import functools

    try:
        import torch._export.utils as eu
        import torch.export.decomp_utils as du
        import torch.export.exported_program as ep
    except ImportError:
        yield
        return
    mods = [m for m in (du, ep) if hasattr(m, "_collect_all_valid_cia_ops")]
    if not hasattr(eu, "_collect_all_valid_cia_ops") or not mods:
        yield
        return
    saved = [m._collect_all_valid_cia_ops for m in mods]
    once = functools.lru_cache(maxsize=1)(eu._collect_all_valid_cia_ops)
    for m in mods:
        m._collect_all_valid_cia_ops = once
    try:
        yield
    finally:
        for m, f in zip(mods, saved):
            m._collect_all_valid_cia_ops = f


def _convert_float(signatures: list[tuple[str, Any, dict[str, Any]]]) -> bytes:
    """litert-torch on one or more (signature name, module, sample kwargs) -> float flatbuffer bytes."""
    import litert_torch

    conv: Any = litert_torch
    for name, module, sample in signatures:
        conv = conv.signature(name, module, sample_kwargs=sample)
    with _cia_ops_cached():
        edge = conv.convert()
    with tempfile.TemporaryDirectory(prefix="edgeprune-litert-") as d:
        path = Path(d) / "model.tflite"
        edge.export(str(path))
        return path.read_bytes()


def _ops():
    from ai_edge_quantizer import qtyping

    op = qtyping.TFLOperationName
    return qtyping, (op.FULLY_CONNECTED, op.EMBEDDING_LOOKUP)


def _static_int8(qtyping):
    """int8 channelwise symmetric weights, int8 per-tensor asymmetric activations, integer compute."""
    return qtyping.OpQuantizationConfig(
        activation_tensor_config=qtyping.TensorQuantizationConfig(
            num_bits=8, symmetric=False, granularity=qtyping.QuantGranularity.TENSORWISE),
        weight_tensor_config=qtyping.TensorQuantizationConfig(
            num_bits=8, symmetric=True, granularity=qtyping.QuantGranularity.CHANNELWISE),
        compute_precision=qtyping.ComputePrecision.INTEGER, explicit_dequantize=False)


def _segment_weights_int8(qt, qtyping) -> None:
    """Weight-only int8 on BATCH_MATMUL: a segment formulation's constant weight is stored int8 and dequantized
    at load, so it runs as the float batched matmul it was timed as (a [1536, 384] 5x linear at 128 tokens:
    0.41 vs 0.39 ms, 2.7 -> 0.73 MB). The attention matmuls have no constant operand and are left alone."""
    qt.add_weight_only_config(".*", qtyping.TFLOperationName.BATCH_MATMUL, 8)


def quantize(buf: bytes, dtype: str, calibration: dict[str, Iterable[dict[str, np.ndarray]]] | None = None,
             float_outputs: Iterable[str] = ()) -> bytes:
    """``buf`` (a float flatbuffer) in ``dtype``; ``calibration`` maps signature -> feeds (full int8 only);
    ``float_outputs`` names output tensors whose producing op stays in float (full int8 only)."""
    if dtype == "fp32":
        return buf
    from ai_edge_quantizer import quantizer

    qtyping, ops = _ops()
    qt = quantizer.Quantizer(buf)
    if dtype == "fp16":
        cfg = qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
            compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True)
        for op in ops:
            qt.update_quantization_recipe(".*", op, cfg, algorithm_key="float_casting")
    elif dtype == "int8-dynamic":
        for op in ops:
            qt.add_dynamic_config(".*", op, 8)
        _segment_weights_int8(qt, qtyping)
    elif dtype == "int8":
        if calibration is None:
            raise ConfigError("full int8 needs calibration examples")
        qt.update_quantization_recipe(".*", qtyping.TFLOperationName.FULLY_CONNECTED, _static_int8(qtyping))
        qt.add_dynamic_config(".*", qtyping.TFLOperationName.EMBEDDING_LOOKUP, 8)  # int8 table, float output
        _segment_weights_int8(qt, qtyping)
        for name in float_outputs:
            qt.update_quantization_recipe(re.escape(name), qtyping.TFLOperationName.ALL_SUPPORTED,
                                          algorithm_key="no_quantize")
    else:
        raise ConfigError(f"unknown TFLite dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    calibrated = qt.calibrate({k: list(v) for k, v in calibration.items()}) if dtype == "int8" else None
    return bytes(qt.quantize(calibrated).quantized_model)


def output_names(buf: bytes) -> list[str]:
    """The tensor names of every signature's outputs (what ``float_outputs`` matches)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=buf)
    return [d["name"] for d in it.get_output_details()]


@contextlib.contextmanager
def _python_output_off() -> Iterator[None]:
    """Discard Python-level prints and progress bars of litert-torch and ai-edge-quantizer (unless verbose)."""
    from edgeprune.quiet import verbose

    if verbose():
        yield
        return
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def inline_buffers(buf: bytes) -> bytes:
    """``buf`` with every constant stored inside the flatbuffer.

    ai-edge-quantizer writes some buffers after the flatbuffer (``offset``/``size``, the > 2 GB layout);
    a tool that re-serializes the model through the object API (MediaPipe's metadata writer) drops that
    tail, and the interpreter then refuses it ("Constant buffer N specified an out of range offset").
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    outside = [b for b in model.buffers or [] if (b.offset or 0) > 1]
    if not outside:
        return buf
    for b in outside:
        b.data = np.frombuffer(buf, np.uint8, count=int(b.size), offset=int(b.offset)).copy()
        b.offset, b.size = 0, 0
    builder = flatbuffers.Builder(len(buf) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def convert(signatures: list[tuple[str, Any, dict[str, Any]]], dtype: str,
            calibration: dict[str, Iterable[dict[str, np.ndarray]]] | None = None) -> bytes:
    """Convert (signature, module, sample kwargs) triples to one flatbuffer in ``dtype``.

    Errors from the converter or the quantizer (they raise many types) become one ``ExportError`` line.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with native_stdout_off(), _python_output_off():  # converter and quantizer print progress and sizes
            buf = _convert_float(signatures)
            floats = output_names(buf) if dtype == "int8" else []
            return inline_buffers(quantize(buf, dtype, calibration, floats))
    except (ConfigError, ExportError):
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise ExportError(f"TFLite conversion ({dtype}) failed: {type(e).__name__}: {first}") from None
