"""Tiny real BERT / RoBERTa / DistilBERT checkpoints built from configs, with tokenizers trained on the fly.

Test support (not part of the installed package); nothing here touches the network. The GLUE data
the tests read is the benchmarks' folder, ``bench.common.glue_dir()`` ($EDGEPRUNE_GLUE, else
``shared/data/glue`` beside the checkout).
"""
from __future__ import annotations

import os
from pathlib import Path

from bench.common import glue_dir

_CORPUS_FALLBACK = [
    "the quick brown fox jumps over the lazy dog",
    "a small model runs fast on the edge device",
    "pruning removes blocks of weights that matter little",
]


def _corpus(max_lines: int = 2000) -> list[str]:
    lines: list[str] = []
    for task, cols in (("MRPC", (3, 4)), ("SST-2", (0,)), ("RTE", (1, 2))):
        path = glue_dir() / task / "train.tsv"
        if not path.exists():
            continue
        with open(path, encoding="utf-8-sig") as f:
            next(f, None)
            for i, line in enumerate(f):
                if i >= max_lines // 3:
                    break
                parts = line.rstrip("\n").split("\t")
                lines.extend(parts[c] for c in cols if c < len(parts))
    return lines or _CORPUS_FALLBACK


def build_tiny_checkpoint(arch: str, out_dir: str | os.PathLike[str], num_labels: int = 2, hidden: int = 64,
                          layers: int = 2, heads: int = 4, intermediate: int = 128, vocab_size: int = 1000,
                          seed: int = 0) -> Path:
    """Write a randomly initialised ``arch`` sequence classifier plus a trained tokenizer to ``out_dir``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import (AutoModelForSequenceClassification, BertConfig, BertTokenizerFast, DistilBertConfig,
                              DistilBertTokenizerFast, RobertaConfig, RobertaTokenizerFast)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = _corpus()
    if arch == "roberta":
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(corpus, vocab_size=vocab_size, min_frequency=1,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
        bpe.save_model(str(out))
        # transformers 5 ignores vocab_file/merges_file here: pass the files as vocab/merges
        tok = RobertaTokenizerFast(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"),
                                   model_max_length=512)
        cfg = RobertaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=intermediate,
                            max_position_embeddings=520, type_vocab_size=1, pad_token_id=tok.pad_token_id,
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, num_labels=num_labels)
    else:
        wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        wp.normalizer = normalizers.BertNormalizer(lowercase=True)
        wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        wp.train_from_iterator(corpus, trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
        vocab = sorted(wp.get_vocab().items(), key=lambda kv: kv[1])
        (out / "vocab.txt").write_text("".join(t + "\n" for t, _ in vocab))
        tok_cls = DistilBertTokenizerFast if arch == "distilbert" else BertTokenizerFast
        tok = tok_cls(vocab=str(out / "vocab.txt"), do_lower_case=True, model_max_length=512)
        if arch == "distilbert":
            cfg = DistilBertConfig(vocab_size=len(tok), dim=hidden, n_layers=layers, n_heads=heads,
                                   hidden_dim=intermediate, max_position_embeddings=512, num_labels=num_labels,
                                   pad_token_id=tok.pad_token_id)
        elif arch == "bert":
            cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                             num_attention_heads=heads, intermediate_size=intermediate,
                             max_position_embeddings=512, num_labels=num_labels, pad_token_id=tok.pad_token_id)
        else:
            raise ValueError(f"unknown arch {arch!r}")
    if num_labels == 1:
        cfg.problem_type = "regression"
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
