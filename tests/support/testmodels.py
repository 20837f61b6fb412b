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
    """A small BERT-like TFLite model (litert-torch): embedding lookup, two dense layers with GELU, masked mean pooling."""
    import numpy as np
    import torch

    from edgeprune.exporters.tflite_convert import convert

    rng = np.random.default_rng(0)

    def const(*shape):
        return torch.from_numpy(rng.standard_normal(shape).astype("float32") * 0.1)

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name, t in (("emb", const(vocab, hidden)), ("w1", const(hidden, 4 * hidden)),
                            ("w2", const(4 * hidden, hidden)), ("w3", const(hidden, 2))):
                self.register_buffer(name, t)

        def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
            x = torch.nn.functional.embedding(input_ids.long(), self.emb)
            x = x + torch.nn.functional.gelu(x @ self.w1) @ self.w2
            m = attention_mask.to(torch.float32)[..., None]
            return {"logits": ((x * m).sum(dim=1) / m.sum(dim=1)) @ self.w3}

    sample = {k: torch.ones(1, seq_len, dtype=torch.int32) for k in ("input_ids", "attention_mask")}
    out = Path(out)
    out.write_bytes(convert([("serving_default", Tiny().eval(), sample)], "fp32"))
    return out
