"""Tiny real artifacts for the profiling tests and smoke runs: a tiny BERT as ONNX, a small TFLite graph.

Plain ``torch.onnx.export`` / ``tf.lite.TFLiteConverter`` so these tests do not depend on the exporters.
"""
from __future__ import annotations

import os
from pathlib import Path

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_tiny_bert_onnx(out: str | os.PathLike[str], work: str | os.PathLike[str], seq_len: int = 16,
                          hidden: int = 64, layers: int = 2) -> Path:
    """A tiny randomly initialised BERT classifier exported to ONNX (dynamic batch and sequence)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from tests.support.checkpoints import build_tiny_checkpoint

    ckpt = build_tiny_checkpoint("bert", work, hidden=hidden, layers=layers)
    cfg = AutoConfig.from_pretrained(ckpt)
    # the vocabulary file is the source of truth for the embedding size
    cfg.vocab_size = max(cfg.vocab_size, sum(1 for _ in open(Path(ckpt) / "vocab.txt", encoding="utf-8")))
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(cfg).eval()

    return export_logits_onnx(model, out, seq_len)


def export_logits_onnx(model, out: str | os.PathLike[str], seq_len: int) -> Path:
    """A BERT-style classifier (three int64 inputs) to ONNX with dynamic batch and sequence, logits only.

    Written to a temporary name and renamed, so an interrupted export leaves nothing behind.
    """
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, m: torch.nn.Module):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    ids = torch.ones(1, seq_len, dtype=torch.long)
    out = Path(out)
    tmp = out.with_suffix(".tmp.onnx")
    torch.onnx.export(Logits(model), (ids, ids, torch.zeros_like(ids)), str(tmp), input_names=list(INPUTS),
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={k: {0: "batch", 1: "seq"} for k in INPUTS})
    tmp.replace(out)
    return out


def make_tiny_tflite(out: str | os.PathLike[str], seq_len: int = 16, hidden: int = 32, vocab: int = 100) -> Path:
    """A small BERT-like TFLite graph: embedding gather, two dense layers with GELU, masked mean pooling."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    emb = tf.constant(rng.standard_normal((vocab, hidden)).astype("float32") * 0.1)
    w1 = tf.constant(rng.standard_normal((hidden, 4 * hidden)).astype("float32") * 0.1)
    w2 = tf.constant(rng.standard_normal((4 * hidden, hidden)).astype("float32") * 0.1)
    w3 = tf.constant(rng.standard_normal((hidden, 2)).astype("float32") * 0.1)

    @tf.function(input_signature=[tf.TensorSpec([1, seq_len], tf.int32, name="input_ids"),
                                  tf.TensorSpec([1, seq_len], tf.int32, name="attention_mask")])
    def model(input_ids, attention_mask):  # type: ignore[no-untyped-def]
        x = tf.gather(emb, input_ids)
        h = tf.nn.gelu(tf.matmul(x, w1))
        x = x + tf.matmul(h, w2)
        m = tf.cast(attention_mask, tf.float32)[..., None]
        pooled = tf.reduce_sum(x * m, axis=1) / tf.reduce_sum(m, axis=1)
        return {"logits": tf.matmul(pooled, w3)}

    conv = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    out = Path(out)
    out.write_bytes(conv.convert())
    return out
