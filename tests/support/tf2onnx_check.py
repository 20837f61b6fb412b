"""Test helper: a cross-check of the TF graph independent of the TFLite converter, tf2onnx -> onnxruntime.

Only the tests use it (tf2onnx is in the ``dev`` extra), so it lives beside them, not in the package.

``tf2onnx.convert.from_function`` is used (``from_keras`` fails on Keras 3). tf2onnx may print
"Unsupported ops" yet exit cleanly with an invalid model (docs/speed-notes.md, section 6), so the result
is always loaded and run in onnxruntime before it counts.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import ExportError, NumericMismatchError

OPSET = 17


def to_onnx(fn, path: str | os.PathLike[str] | None = None, opset: int = OPSET):
    """ONNX ModelProto of a ``tf.function`` with an input signature (written to ``path`` if given)."""
    import tf2onnx

    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset,
                                                 output_path=str(path) if path else None)
    except Exception as e:
        raise ExportError(f"tf2onnx could not convert the TF graph: {type(e).__name__}: {str(e)[:300]}") from None
    return proto


def ort_session(proto):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:  # tf2onnx can write an invalid graph with exit 0
        raise ExportError(f"onnxruntime rejects the tf2onnx model: {str(e).splitlines()[0][:300]}") from None


def cross_check(fn, inputs: dict[str, np.ndarray], atol: float = 1e-4, path: str | os.PathLike[str] | None = None,
                strict: bool = True) -> dict[str, Any]:
    """Run ``fn`` in TF and its tf2onnx conversion in onnxruntime on ``inputs``; compare the logits.

    ``inputs`` maps input names to int arrays of the signature's shape (a multiple of its batch).
    """
    proto = to_onnx(fn, path)
    sess = ort_session(proto)
    names = [s.name for s in fn.input_signature]
    batch = fn.input_signature[0].shape[0]
    n = inputs[names[0]].shape[0]
    tf_out, ort_out = [], []
    ort_names = [i.name for i in sess.get_inputs()]
    for s in range(0, n - batch + 1, batch):
        feed = [inputs[k][s:s + batch].astype(np.int32) for k in names]
        tf_out.append(fn(*feed)["logits"].numpy())
        by_name = dict(zip(names, feed))
        ort_out.append(sess.run(None, {o: by_name[o.split(":")[0]] for o in ort_names})[0])
    a, b = np.concatenate(tf_out), np.concatenate(ort_out)
    diff = float(np.max(np.abs(a - b)))
    rec = {"passed": bool(diff <= atol), "max_abs_diff": diff, "atol": atol, "num_examples": int(a.shape[0]),
           "opset": OPSET, "nodes": len(proto.graph.node),
           "ops": sorted({nd.op_type for nd in proto.graph.node})}
    if strict and not rec["passed"]:
        raise NumericMismatchError(f"tf2onnx/onnxruntime logits differ from TensorFlow by {diff:.3g} (atol {atol:g})")
    if path is not None:
        rec["file"] = Path(path).name
    return rec
