"""The prepared model every exporter consumes: what tfmot's ``strip_pruning`` and torch.ao's ``squash_mask`` give.

An export opens its run once (:func:`prepare`): the checkpoint is loaded, its masks are checked against it and
applied once (:func:`edgeprune.prune.masks.apply_masks`), its head is checked against the task and given the
task's label names. The masked model is the reference every artifact is verified against; its dev feeds and
logits are computed once (:meth:`PreparedModel.reference`), whatever the format. Exporters shrink or rebuild
a copy; the ONNX tracer may switch its attention to the (numerically equal) eager implementation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprune.errors import DataError
from edgeprune.rundir import PrunedRun
from .base import check_task_labels, model_labels

REFERENCE_BATCH = 32


@dataclass(frozen=True)
class Reference:
    """Dev examples as model inputs and what the masked PyTorch model answers on them."""

    feeds: dict[str, np.ndarray]  # input name -> int64 [examples, seq]
    logits: np.ndarray  # float32 [examples, labels]
    labels: np.ndarray  # the examples' gold labels


@dataclass
class PreparedModel:
    run: PrunedRun
    model: Any  # the masked ``*ForSequenceClassification``, eval mode: the reference
    tokenizer: Any
    task: str | dict[str, Any] | None  # GLUE key or a file task's dict; None when no task is known
    _references: dict[tuple, Reference] = field(default_factory=dict, repr=False)

    @property
    def masks(self) -> dict[str, Any]:
        return self.run.masks

    @property
    def spec(self):
        """The task's :class:`TaskSpec` (None without a task)."""
        from edgeprune.data.glue import get_task

        return get_task(self.task) if self.task else None

    @property
    def labels(self) -> list[str]:
        """Label names in output order (none for regression): :func:`base.model_labels`."""
        return model_labels(self.model, self.spec)

    def examples(self, split: str, limit: int, data_dir: str | os.PathLike[str] | None) -> list:
        """Up to ``limit`` examples of ``split``; refuses an empty split (nothing to verify or calibrate on)."""
        return load_examples(self.task, data_dir, split, limit)

    def feeds(self, examples: list, seq_len: int | None, names: list[str]) -> dict[str, np.ndarray]:
        """Examples tokenized to int64 arrays named like the artifact's inputs (pad to ``seq_len``, or longest)."""
        return encode_examples(self.tokenizer, examples, seq_len, names)

    def reference(self, data_dir: str | os.PathLike[str] | None, limit: int, seq_len: int | None, names: list[str],
                  batch: int = REFERENCE_BATCH, progress: str | None = None) -> Reference:
        """Dev feeds and the masked model's logits on them, computed once per (data, size, inputs, batch)."""
        key = (str(data_dir), limit, seq_len, tuple(names), batch)
        if key not in self._references:
            from edgeprune.quiet import Progress

            examples = self.examples("dev", limit, data_dir)
            feeds = self.feeds(examples, seq_len, names)
            with Progress(progress or "[export] PyTorch reference on dev examples", len(examples)) as bar:
                logits = reference_logits(self.model, feeds, batch, bar.advance)
            self._references[key] = Reference(feeds, logits, np.asarray([e.label for e in examples]))
        return self._references[key]


def prepare(run: PrunedRun | str | os.PathLike[str], task: str | dict[str, Any] | None) -> PreparedModel:
    """Load ``run``'s checkpoint (an opened run, or its folder) with its masks applied and its labels checked
    against ``task``."""
    from edgeprune.models import load_model
    from edgeprune.prune.masks import apply_masks
    from edgeprune.rundir import open_run

    if not isinstance(run, PrunedRun):
        run = open_run(run)
    model, tokenizer = load_model(run.model_dir)
    model.eval()
    if run.masks:
        apply_masks(model, run.masks)
    check_task_labels(model, task)
    return PreparedModel(run, model, tokenizer, task)


def load_examples(task, data_dir: str | os.PathLike[str] | None, split: str, limit: int) -> list:
    """Up to ``limit`` examples of ``task``'s ``split``; an empty split is an error."""
    from edgeprune.data.glue import load_split

    ex = load_split(task, split, data_dir, limit=limit)
    if not ex:
        raise DataError(f"no {split} examples for {task} under {data_dir}")
    return ex


def encode_examples(tokenizer, examples: list, seq_len: int | None, input_names: list[str]) -> dict[str, np.ndarray]:
    """Tokenize examples to int64 arrays named ``input_names`` (pad to ``seq_len``, or to the longest)."""
    a = [e.text_a for e in examples]
    b = [e.text_b for e in examples] if examples and examples[0].text_b is not None else None
    enc = tokenizer(a, b, padding="max_length" if seq_len else "longest", truncation=True,
                    max_length=seq_len or 128, return_tensors="np")
    return named_inputs(enc, input_names)


def named_inputs(arrays, input_names: list[str]) -> dict[str, np.ndarray]:
    """``arrays`` (tokenizer output or feeds) as int64 arrays named ``input_names``; a ``token_type_ids`` the
    model never had is zeros (one segment), any other missing name a tokenizer/model mismatch."""
    out = {}
    for name in input_names:
        if name in arrays:
            out[name] = np.asarray(arrays[name]).astype(np.int64)
        elif name == "token_type_ids":
            out[name] = np.zeros_like(arrays["input_ids"], dtype=np.int64)
        else:
            raise DataError(f"tokenizer gives no {name!r}; the checkpoint's tokenizer does not match the model")
    return out


def reference_logits(model, feeds: dict[str, np.ndarray], batch: int, done=None) -> np.ndarray:
    """The model's logits on every row of ``feeds``, in order, computed on length-sorted batches with the
    padding columns that no row of a batch uses cut off.

    With the attention mask those columns change no real token's output (only float rounding, ~1e-7), so
    the reference is the same answer at a fraction of the cost: dev sentences are mostly far shorter than
    the artifact's static length (CoLA at seq 128: 15.5 -> about 3 s of a 31 s ONNX export). The artifact
    is still fed the full padded rows, so its own handling of padding is what verification checks.
    """
    mask = feeds.get("attention_mask")
    n = next(iter(feeds.values())).shape[0]
    if mask is None:
        order, lengths = np.arange(n), None
    else:
        used = mask != 0
        lengths = np.where(used.any(axis=1), used.shape[1] - np.argmax(used[:, ::-1], axis=1), 1)  # last used + 1
        order = np.argsort(lengths, kind="stable")
    out = None
    for i in range(0, n, batch):
        rows = order[i:i + batch]
        width = int(lengths[rows].max()) if lengths is not None else None
        got = torch_logits(model, {k: v[rows, :width] for k, v in feeds.items()})
        if out is None:
            out = np.empty((n,) + got.shape[1:], np.float32)
        out[rows] = got
        if done is not None:
            done(len(rows))
    return out if out is not None else np.zeros((0, 0), np.float32)


def torch_logits(model, batch: dict[str, np.ndarray]) -> np.ndarray:
    """The model's float32 logits on one batch of named integer inputs."""
    import torch

    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v.astype(np.int64, copy=False)) for k, v in batch.items()})
    return out.logits.float().numpy()
