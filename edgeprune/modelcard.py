"""Model cards: a ``README.md`` with Hugging Face YAML front matter in every checkpoint and bundle edgeprune writes.

The front matter carries ``base_model``, ``license``, ``datasets``, ``metrics``, ``tags``, ``pipeline_tag``,
``library_name``, the labels, the compression and the measured metrics. ``base_model`` and ``license``
follow the chain back to the model the user started from: an alias's upstream Hub id and licence, a Hub
snapshot's own card, or the card of an earlier edgeprune run.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

CARD = "README.md"


def read_front_matter(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The YAML front matter of ``folder/README.md``; {} when absent or unreadable."""
    path = Path(folder) / CARD
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        import yaml

        data = yaml.safe_load(text[3:end])
    except Exception:
        return {}
    return data if isinstance(data, dict) else {}


def base_model_of(model: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(base model id or name, licence or None) for the ``--model`` a user gave."""
    from .models import UPSTREAM, resolve_model_path

    s = str(model)
    if s in UPSTREAM:
        return UPSTREAM[s]
    p = Path(s)
    for folder in (p / "model", p):  # an edgeprune run, or a checkpoint folder
        fm = read_front_matter(folder)
        if fm.get("base_model"):
            return str(fm["base_model"]), fm.get("license")
    if not p.is_dir():
        try:
            fm = read_front_matter(resolve_model_path(s))  # a Hub snapshot
        except Exception:
            fm = {}
        return s, fm.get("license")
    parts = p.resolve().parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3].removeprefix("models--").replace("--", "/"), None  # a Hub cache snapshot folder
    return p.resolve().name, None


def labels_of(model_dir: str | os.PathLike[str]) -> list[str]:
    """``id2label`` of a checkpoint folder in index order ([] for regression or a missing config)."""
    import json

    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return []
    id2 = cfg.get("id2label") or {}
    return [] if cfg.get("problem_type") == "regression" else [str(id2[k]) for k in sorted(id2, key=int)]


def _dataset(task: Any) -> str:
    from .data.glue import get_task, task_key

    if task is None:
        return "unknown"
    try:
        spec = get_task(task)
    except Exception:
        return str(task)
    key = task_key(spec)
    return f"nyu-mll/glue ({key})" if isinstance(key, str) else f"own data: {spec.name}"


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def write_model_card(folder: str | os.PathLike[str], *, model: str, task: Any, labels: list[str] | None,
                     metrics: Mapping[str, Any] | None, kind: str, library: str = "transformers",
                     compression: Mapping[str, Any] | None = None, extra_tags: tuple[str, ...] = (),
                     notes: list[str] | None = None) -> Path:
    """Write ``folder/README.md`` atomically. ``kind``: fine-tuned, pruned or bundle (with ``library`` onnx/tflite)."""
    import yaml

    from . import __version__
    from .data.glue import get_task, task_name
    from .io import atomic_file

    base, licence = base_model_of(model)
    try:
        metric = get_task(task).metric
    except Exception:
        metric = (metrics or {}).get("metric", "accuracy")
    measured = {k: float(v) for k, v in (metrics or {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
                and k in ("accuracy", "f1", "matthews_corr", "pearson", "spearman", "main")}
    front: dict[str, Any] = {
        "base_model": base,
        "license": licence or "other",
        "datasets": [_dataset(task)],
        "metrics": [metric],
        "pipeline_tag": "text-classification",
        "library_name": library,
        "tags": ["text-classification", "edgeprune", *extra_tags],
        "labels": list(labels or []),
        "edgeprune": {"version": __version__, "kind": kind, "task": task_name(task), "measured": measured,
                      **({"compression": dict(compression)} if compression else {})},
    }
    lines = [f"# {task_name(task)} classifier ({kind}) from {base}", "",
             f"Made with edgeprune {__version__} from `{base}` (licence: {licence or 'see the base model'}).", ""]
    if labels:
        lines += ["Labels (output index: name): " + ", ".join(f"{i}: {n}" for i, n in enumerate(labels)), ""]
    if measured:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in measured.items()] + [""]
    if compression:
        lines += ["Compression: " + ", ".join(f"{k} {_fmt(v)}" for k, v in compression.items()), ""]
    lines += list(notes or [])
    text = "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(lines) + "\n"
    path = Path(folder) / CARD
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
