"""Teacher-labelled augmentation text for distillation on small tasks.

A pruned student retrained on a few thousand sentences sees each one many times; distilling on
perturbed copies shows it the teacher's function around the data instead (TinyBERT, Jiao et al. 2020,
found augmentation mattered most on the small GLUE tasks, CoLA above all). The perturbations are
EDA's word-level operations (Wei & Zou 2019) without a thesaurus: delete, swap, insert or replace a
word with one drawn from the training text itself. The copies carry no gold label: the dense teacher
labels them (:func:`teacher_label`), so they are only ever used where a teacher is distilled from.

Pure and seeded: the same examples, copies and seed give the same text.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .glue import GlueExample

OPS = ("delete", "swap", "insert", "replace")


def vocabulary(examples: Sequence[GlueExample]) -> list[str]:
    """The distinct whitespace words of the examples' texts, in first-seen order (deterministic)."""
    seen: dict[str, None] = {}
    for e in examples:
        for t in (e.text_a, e.text_b):
            if t:
                for w in t.split():
                    seen.setdefault(w, None)
    return list(seen)


def perturb(text: str, rng: random.Random, vocab: Sequence[str], rate: float = 0.15) -> str:
    """``text`` with about ``rate`` of its words (at least one) changed by one of :data:`OPS` each.

    A one-word text is only ever replaced or extended, never emptied."""
    words = text.split()
    if not words:
        return text
    for _ in range(max(1, round(rate * len(words)))):
        op = rng.choice(OPS if len(words) > 1 else ("insert", "replace"))
        i = rng.randrange(len(words))
        if op == "delete":
            del words[i]
        elif op == "swap":
            j = rng.randrange(len(words) - 1)
            j += j >= i  # a different position
            words[i], words[j] = words[j], words[i]
        elif op == "insert":
            words.insert(i, rng.choice(vocab))
        else:
            words[i] = rng.choice(vocab)
    return " ".join(words)


def augment(examples: Sequence[GlueExample], copies: int, seed: int, rate: float = 0.15) -> list[GlueExample]:
    """``copies`` perturbed versions of every example (pairs: one or both texts changed), label unset (-1)
    until :func:`teacher_label` fills it in."""
    if copies < 0:
        raise ValueError("copies must be >= 0")
    rng = random.Random(seed)
    vocab = vocabulary(examples)
    out: list[GlueExample] = []
    for e in examples:
        for _ in range(copies):
            which = rng.randrange(3) if e.text_b else 0  # 0: a, 1: b, 2: both
            a = perturb(e.text_a, rng, vocab, rate) if which in (0, 2) else e.text_a
            b = perturb(e.text_b, rng, vocab, rate) if e.text_b and which in (1, 2) else e.text_b
            out.append(GlueExample(a, b, -1))
    return out


def teacher_label(teacher: Any, tokenizer: Any, examples: Sequence[GlueExample], regression: bool,
                  max_seq_len: int = 128) -> list[GlueExample]:
    """The examples with the teacher's prediction as their label (argmax class, or the regression score)."""
    from edgeprune.training import predict

    if not examples:
        return []
    logits = predict(teacher, tokenizer, list(examples), max_seq_len=max_seq_len)
    labels = [float(v[0]) for v in logits] if regression else [int(v.argmax()) for v in logits]
    return [GlueExample(e.text_a, e.text_b, y) for e, y in zip(examples, labels)]
