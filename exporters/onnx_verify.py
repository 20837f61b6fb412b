"""Run an ONNX artifact and its PyTorch model on the same real GLUE batches and compare them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

# encode_examples, load_examples and torch_logits live with the prepared model; bench/ and onnx_quant import them here
from .prepared import REFERENCE_BATCH, PreparedModel, encode_examples, load_examples, torch_logits  # noqa: F401


def ort_session(path_or_bytes: str | os.PathLike[str] | bytes, threads: int = 1, opt_level: str = "all"):
    """An onnxruntime CPU session with intra-op spinning off (stable timing on shared machines)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    so.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                   "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                   "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[opt_level]
    src = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def run_batches(fn, feeds: dict[str, np.ndarray], batch_size: int = 32) -> np.ndarray:
    from .base import batches

    return np.concatenate([fn(b) for b in batches(feeds, batch_size)])


def verify_onnx(prepared: PreparedModel, onnx_path: Path, data_dir: str | os.PathLike[str], limit: int,
                seq_len: int | None, dtype: str, atol: float, max_points: float, static_batch: int | None = None
                ) -> dict[str, Any]:
    """verification.json record: the artifact in onnxruntime vs the prepared (masked) model's dev logits."""
    from edgeprune.quiet import Progress
    from .base import batches, verification_record

    sess = ort_session(onnx_path, threads=os.cpu_count() or 1)
    names = [i.name for i in sess.get_inputs()]
    ref = prepared.reference(data_dir, limit, seq_len, names, batch=static_batch or REFERENCE_BATCH,
                             progress="[export] verify: PyTorch reference on dev examples")
    art = []
    with Progress("[export] verify against PyTorch on dev examples", len(ref.labels)) as progress:
        for b in batches(ref.feeds, static_batch or REFERENCE_BATCH):
            art.append(sess.run(["logits"], b)[0].astype(np.float32))
            progress.advance(len(art[-1]))
    rec = verification_record(ref.logits, np.concatenate(art), ref.labels, prepared.spec, dtype, atol, max_points)
    rec.update({"task": prepared.task, "split": "dev", "seq_len": seq_len})
    return rec


def verify_artifact(model, tokenizer, onnx_path: Path, task: str, data_dir: str | os.PathLike[str], limit: int,
                    seq_len: int | None, dtype: str, atol: float, max_points: float, static_batch: int | None = None
                    ) -> dict[str, Any]:
    """:func:`verify_onnx` for a model masked by the caller (``bench/export_onnx.py`` re-verifies with it)."""
    return verify_onnx(PreparedModel(None, model, tokenizer, task), onnx_path, data_dir, limit, seq_len, dtype, atol,
                       max_points, static_batch)
