"""Run an ONNX artifact and its PyTorch model on the same real GLUE batches and compare them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import DataError


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


def encode_examples(tokenizer, examples: list, seq_len: int | None, input_names: list[str]) -> dict[str, np.ndarray]:
    """Tokenize GLUE examples to int64 arrays named like the ONNX inputs (pad to ``seq_len``, or longest)."""
    a = [e.text_a for e in examples]
    b = [e.text_b for e in examples] if examples and examples[0].text_b is not None else None
    enc = tokenizer(a, b, padding="max_length" if seq_len else "longest", truncation=True,
                    max_length=seq_len or 128, return_tensors="np")
    out = {}
    for name in input_names:
        if name in enc:
            out[name] = enc[name].astype(np.int64)
        elif name == "token_type_ids":
            out[name] = np.zeros_like(enc["input_ids"], dtype=np.int64)
        else:
            raise DataError(f"tokenizer gives no {name!r}; the checkpoint's tokenizer does not match the model")
    return out


def load_examples(task: str, data_dir: str | os.PathLike[str], split: str, limit: int) -> list:
    from edgeprune.data.glue import load_split

    ex = load_split(task, split, data_dir, limit=limit)
    if not ex:
        raise DataError(f"no {split} examples for {task} under {data_dir}")
    return ex


def torch_logits(model, batch: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
    return out.logits.float().numpy()


def run_batches(fn, feeds: dict[str, np.ndarray], batch_size: int = 32) -> np.ndarray:
    from .base import batches

    return np.concatenate([fn(b) for b in batches(feeds, batch_size)])


def verify_artifact(model, tokenizer, onnx_path: Path, task: str, data_dir: str | os.PathLike[str], limit: int,
                    seq_len: int | None, dtype: str, atol: float, max_points: float, static_batch: int | None = None
                    ) -> dict[str, Any]:
    """verification.json record: artifact in onnxruntime vs the (masked) PyTorch model on GLUE dev."""
    from edgeprune.data.glue import get_task
    from edgeprune.quiet import Progress
    from .base import batches, verification_record

    spec = get_task(task)
    sess = ort_session(onnx_path, threads=os.cpu_count() or 1)
    names = [i.name for i in sess.get_inputs()]
    examples = load_examples(task, data_dir, "dev", limit)
    feeds = encode_examples(tokenizer, examples, seq_len, names)
    labels = np.asarray([e.label for e in examples])
    ref, art = [], []
    with Progress("[export] verify against PyTorch on dev examples", len(examples)) as progress:
        for b in batches(feeds, static_batch or 32):
            ref.append(torch_logits(model, b))
            art.append(sess.run(["logits"], b)[0].astype(np.float32))
            progress.advance(len(ref[-1]))
    rec = verification_record(np.concatenate(ref), np.concatenate(art), labels, spec, dtype, atol, max_points)
    rec.update({"task": task, "split": "dev", "seq_len": seq_len})
    return rec
