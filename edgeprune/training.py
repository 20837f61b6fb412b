"""Dense fine-tuning and evaluation of BERT-family classifiers on GLUE, built on ``transformers.Trainer``.

The Trainer (with accelerate underneath) owns the loop, AdamW, the linear warmup/decay schedule,
checkpointing, exact resume and data-parallel training under ``torchrun``; this module only wires
GLUE data, the official metrics and the run-directory contract into it:

    OUT_DIR/
      config.json       what was run (model, task, data, TrainConfig, versions)
      checkpoints/      Trainer checkpoints (resume from the last one)
      model/            the fine-tuned model, save_pretrained form, with tokenizer
      metrics.json      dev metrics incl. "main"; written last, so its presence marks a finished run
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

import numpy as np

from .data import GlueExample, TaskSpec, compute_metrics, get_task, load_split
from .data.glue import seeded_subset, task_key
from .distributed import backend as ddp_backend, barrier, init as init_distributed, is_main
from .errors import ConfigError, DataError, ModelError
from .io import read_json, write_json
from .rundir import MODEL_DIR, save_model, settings_diff

if TYPE_CHECKING:  # pragma: no cover
    import transformers

CONFIG_JSON = "config.json"
METRICS_JSON = "metrics.json"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one dense fine-tuning run (the defaults follow BERT's GLUE recipe)."""

    epochs: float = 3.0
    lr: float = 2e-5
    batch_size: int = 32
    eval_batch_size: int = 64
    max_seq_len: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    max_steps: int = -1  # > 0 overrides epochs
    train_limit: int | None = None  # a seeded random subset of N train examples (seed = ``seed``)
    eval_limit: int | None = None
    save_steps: int | None = None  # checkpoint every N steps; None: every epoch
    save_total_limit: int = 2
    logging_steps: int = 10
    group_by_length: bool = True  # batches of similar lengths (less padding: 3x fewer tokens on SST-2)
    freeze_word_embeddings: bool = False  # no gradient/AdamW for the 30k x H token table: 1.7x faster steps

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"invalid {name}={getattr(self, name)!r}: {why}")

        if not (isinstance(self.epochs, (int, float)) and self.epochs > 0 and math.isfinite(self.epochs)):
            raise bad("epochs", "must be a positive number")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise bad("lr", "must be in (0, 1), e.g. 2e-5")
        for name in ("batch_size", "eval_batch_size", "max_seq_len", "save_total_limit", "logging_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise bad(name, "must be a positive integer")
        if self.max_seq_len > 512:
            raise bad("max_seq_len", "BERT-family models take at most 512 tokens")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "must be in [0, 1)")
        if not 0 <= self.weight_decay < 1:
            raise bad("weight_decay", "must be in [0, 1)")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "must be a non-negative integer")
        if not isinstance(self.max_steps, int) or (self.max_steps < 1 and self.max_steps != -1):
            raise bad("max_steps", "must be a positive integer, or -1 to train for `epochs`")
        for name in ("train_limit", "eval_limit", "save_steps"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise bad(name, "must be a positive integer or None")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        return cls(**d)


# ----------------------------------------------------------------------------------------------- data


class EncodedDataset:
    """Tokenised examples (no padding: the collator pads each batch to its longest sequence)."""

    def __init__(self, features: list[dict[str, Any]]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]


def encode(tokenizer, examples: Sequence[GlueExample], max_seq_len: int,
           is_regression: bool | None = None) -> EncodedDataset:
    """Tokenise ``examples`` (truncated to ``max_seq_len``) into a map-style torch dataset with ``labels``."""
    if not examples:
        raise DataError("no examples to encode")
    a = [e.text_a for e in examples]
    pairs = examples[0].text_b is not None
    b = [e.text_b or "" for e in examples] if pairs else None
    enc = tokenizer(a, b, truncation=True, max_length=max_seq_len, padding=False)
    if is_regression is None:
        is_regression = isinstance(examples[0].label, float)
    labels = [float(e.label) if is_regression else int(e.label) for e in examples]
    keys = list(enc.keys())
    return EncodedDataset([{**{k: enc[k][i] for k in keys}, "labels": labels[i]} for i in range(len(examples))])


# -------------------------------------------------------------------------------------------- trainer


def _metrics_fn(spec: TaskSpec):
    def fn(p) -> dict[str, float]:
        preds = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        return compute_metrics(spec, preds, p.label_ids)

    return fn


def training_arguments(cfg: TrainConfig, output_dir: str | os.PathLike[str], **overrides: Any):
    """``TrainingArguments`` for ``cfg``: AdamW, linear warmup+decay, no external loggers, tqdm bars."""
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=float(cfg.epochs),
        max_steps=cfg.max_steps,
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        optim="adamw_torch",
        lr_scheduler_type="linear",
        seed=cfg.seed,
        data_seed=cfg.seed,
        save_strategy="steps" if cfg.save_steps else "epoch",
        save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=False,
        use_cpu=not cuda,
        ddp_backend=ddp_backend(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        label_names=["labels"],
        skip_memory_metrics=True,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def make_trainer(model, tokenizer, task_spec: TaskSpec | str, train_examples: Sequence[GlueExample] | None,
                 eval_examples: Sequence[GlueExample] | None, cfg: TrainConfig, output_dir: str | os.PathLike[str],
                 *, trainer_cls=None, callbacks: Iterable = (), args_overrides: dict[str, Any] | None = None,
                 **trainer_cls_kwargs: Any) -> transformers.Trainer:
    """A ``Trainer`` (or ``trainer_cls``) set up for one GLUE task; checkpoints go to ``output_dir/checkpoints``.

    ``train_limit``/``eval_limit`` of ``cfg`` cut the example lists; extra keyword arguments go to
    ``trainer_cls`` (e.g. a pruning trainer's own settings).
    """
    from transformers import DataCollatorWithPadding, Trainer

    spec = get_task(task_spec) if isinstance(task_spec, str) else task_spec
    train_ds = eval_ds = None
    if train_examples is not None:
        train_list = list(train_examples)
        if cfg.train_limit:
            train_list = seeded_subset(train_list, cfg.train_limit, cfg.seed)
        train_ds = encode(tokenizer, train_list, cfg.max_seq_len, spec.is_regression)
    if eval_examples is not None:
        eval_ds = encode(tokenizer, list(eval_examples)[: cfg.eval_limit], cfg.max_seq_len, spec.is_regression)
    args = training_arguments(cfg, Path(output_dir) / CHECKPOINTS, **(args_overrides or {}))
    if cfg.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    cls = trainer_cls or Trainer
    return cls(
        model=model,
        args=args,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        compute_metrics=_metrics_fn(spec),
        callbacks=list(callbacks),
        **trainer_cls_kwargs,
    )


# ------------------------------------------------------------------------------------- model helpers


def model_dir_of(path: str | os.PathLike[str]) -> Path:
    """Accept a model folder, or a finetune/compress run folder holding ``model/``."""
    p = Path(path)
    if (p / MODEL_DIR / "config.json").is_file():
        return p / MODEL_DIR
    return p


def _source_name(model: Any) -> str:
    if isinstance(model, tuple):
        return getattr(model[0].config, "_name_or_path", "") or type(model[0]).__name__
    return str(model)


def load_for_task(model: Any, spec: TaskSpec, *, new_head: bool):
    """(model, tokenizer) from a path/alias/run dir or an already loaded pair.

    ``new_head``: fine-tuning, so give the encoder a head shaped for the task. Otherwise (evaluation)
    the saved head is kept and must match the task.
    """
    from .models import load_model

    if isinstance(model, tuple):
        m, tok = model
    elif new_head:
        m, tok = load_model(model_dir_of(model), num_labels=spec.num_labels, label_names=list(spec.label_names) or None)
    else:
        m, tok = load_model(model_dir_of(model))
    if m.config.num_labels != spec.num_labels:
        raise ModelError(f"model has {m.config.num_labels} output(s) but {spec.name} needs {spec.num_labels}; "
                         f"fine-tune it on {spec.name} first (edgeprune finetune)")
    return m, tok


def predict(model, tokenizer, examples: Sequence[GlueExample], max_seq_len: int = 128,
            batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Logits ``[N, num_labels]`` in example order; eval mode, no grad, batches sorted by length."""
    import torch
    from tqdm.auto import tqdm

    if not examples:
        raise DataError("no examples to predict")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ds = encode(tokenizer, examples, max_seq_len)
    order = np.argsort([len(f["input_ids"]) for f in ds.features], kind="stable")
    out: list[np.ndarray] = [None] * len(order)  # type: ignore[list-item]
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc="predict", disable=not progress, leave=False):
                idx = order[start:start + batch_size]
                feats = [{k: v for k, v in ds.features[i].items() if k != "labels"} for i in idx]
                batch = tokenizer.pad(feats, return_tensors="pt")
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
                for j, i in enumerate(idx):
                    out[i] = logits[j]
    finally:
        model.train(was_training)
    return np.stack(out)


def task_metrics(model, task: str | TaskSpec, data_dir: str | os.PathLike[str] | None, split: str = "dev",
                 batch_size: int = 64, max_seq_len: int = 128, limit: int | None = None,
                 progress: bool = False) -> dict[str, Any]:
    """Official GLUE metrics of ``model`` (path, alias, run dir or (model, tokenizer)) on one split."""
    spec = get_task(task) if isinstance(task, str) else task
    examples = load_split(spec, split, data_dir, limit=limit)
    m, tok = load_for_task(model, spec, new_head=False)
    logits = predict(m, tok, examples, max_seq_len=max_seq_len, batch_size=batch_size, progress=progress)
    labels = np.asarray([e.label for e in examples])
    metrics = compute_metrics(spec, logits, labels)
    return {"task": spec.name, "split": split, "metric": spec.metric, "num_examples": len(examples), **metrics}


# ------------------------------------------------------------------------------------------ finetune


def run_state(out_dir: str | os.PathLike[str]) -> str:
    """'empty', 'partial' (config.json but no metrics.json) or 'finished'."""
    out = Path(out_dir)
    if (out / METRICS_JSON).is_file():
        return "finished"
    if (out / CONFIG_JSON).is_file() or (out / CHECKPOINTS).is_dir():
        return "partial"
    return "empty"


def saved_config(out_dir: str | os.PathLike[str]) -> TrainConfig | None:
    path = Path(out_dir) / CONFIG_JSON
    if not path.is_file():
        return None
    try:
        return TrainConfig.from_dict(read_json(path)["train"])
    except (KeyError, ValueError, TypeError) as e:
        raise ConfigError(f"{path} is not an edgeprune finetune config ({e}); use another --out") from None


def run_kind(out: Path) -> Literal["finished", "partial"] | None:
    """For the overwrite rule (:mod:`edgeprune.outputs`): a finished or unfinished finetune run, or neither."""
    try:
        ours = read_json(out / CONFIG_JSON).get("kind") == "edgeprune.finetune"
    except (OSError, ValueError, AttributeError):
        ours = (out / CHECKPOINTS).is_dir()
    if not ours:
        return None
    return "finished" if (out / METRICS_JSON).is_file() else "partial"


def _check_out(out: Path, cfg: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber a run unless asked; has no side effects (so bad data cannot cost a finished run)."""
    from .outputs import output_dir

    state = output_dir(out, "run", run_kind, overwrite=overwrite, resume=resume)
    if resume and not overwrite and state == "partial":
        old = saved_config(out)
        if old is not None and old != cfg:
            saved = old.to_dict()
            diff = settings_diff(saved, cfg.to_dict(), saved)
            raise ConfigError(f"--resume needs the settings of the interrupted run ({'; '.join(diff)})")


def _clear_out(out: Path) -> None:
    for name in (METRICS_JSON, CONFIG_JSON):
        (out / name).unlink(missing_ok=True)
    for name in (CHECKPOINTS, MODEL_DIR):
        shutil.rmtree(out / name, ignore_errors=True)


def finetune(model: Any, task: str | TaskSpec, data_dir: str | os.PathLike[str] | None,
             out_dir: str | os.PathLike[str], cfg: TrainConfig = TrainConfig(), resume: bool = False,
             overwrite: bool = False, callbacks: Iterable = (),
             examples: tuple[Sequence[GlueExample], Sequence[GlueExample]] | None = None) -> dict[str, Any]:
    """Fine-tune ``model`` (path, alias or (model, tokenizer)) on ``task``; return the dev metrics.

    ``resume`` continues from the last checkpoint in ``out_dir/checkpoints`` and ends with the same
    metrics as an uninterrupted run with the same settings; on a finished run it returns its metrics.
    """
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from . import __version__

    spec = get_task(task) if isinstance(task, str) else task
    out = Path(out_dir)
    init_distributed()
    if resume and run_state(out) == "finished" and not overwrite:
        return read_json(out / METRICS_JSON)
    _check_out(out, cfg, resume, overwrite)
    barrier()  # every rank has checked --out before rank 0 writes into it
    if examples is not None:  # e.g. a held-out part of train as "dev" for model selection
        train, dev = list(examples[0]), list(examples[1])
    else:
        train = load_split(spec, "train", data_dir, limit=cfg.train_limit, seed=cfg.seed)
        dev = load_split(spec, "dev", data_dir, limit=cfg.eval_limit)
    set_seed(cfg.seed)  # the new classifier head is drawn from this seed
    m, tok = load_for_task(model, spec, new_head=True)
    if is_main():
        if overwrite:
            _clear_out(out)
        import torch
        import transformers

        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_JSON, {
            "kind": "edgeprune.finetune", "model": _source_name(model), "task": task_key(spec),
            "data_dir": str(data_dir) if data_dir is not None else None, "train": cfg.to_dict(),
            "num_train_examples": len(train), "num_eval_examples": len(dev),
            "versions": {"edgeprune": __version__, "torch": torch.__version__,
                         "transformers": transformers.__version__},
        })
    barrier()
    trainer = make_trainer(m, tok, spec, train, dev, cfg, out, callbacks=callbacks)
    last = get_last_checkpoint(str(out / CHECKPOINTS)) if resume and (out / CHECKPOINTS).is_dir() else None
    result = trainer.train(resume_from_checkpoint=last)
    dev_metrics = trainer.evaluate()
    metrics = {k.removeprefix("eval_"): v for k, v in dev_metrics.items()
               if k.removeprefix("eval_") not in ("runtime", "samples_per_second", "steps_per_second", "loss",
                                                   "epoch")}
    report = {
        "task": spec.name, "split": "dev", "metric": spec.metric, "num_examples": len(dev), **metrics,
        "eval_loss": dev_metrics.get("eval_loss"),
        "train": {"global_step": result.global_step, "epochs": trainer.state.epoch,
                  "train_loss": result.training_loss, "num_examples": len(train),
                  "resumed_from": Path(last).name if last else None,
                  "runtime_s": result.metrics.get("train_runtime"),
                  "samples_per_s": result.metrics.get("train_samples_per_second")},
    }
    if trainer.is_world_process_zero():
        save_model(out / MODEL_DIR, trainer.model, tok)
        write_json(out / METRICS_JSON, report)  # last: marks the run finished
    return report
