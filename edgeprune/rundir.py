"""The layout of a ``compress`` run directory: the contract between ``compress`` and the exporters.

    RUN_DIR/
      compression.json     written last: its presence marks a finished run
      model/               the pruned checkpoint, save_pretrained form, with tokenizer
      model/masks.safetensors
                           {"<param name>": uint8 tensor shaped like the weight, 1 = kept}
      ...                  checkpoints, reports and plots of the phases

``compression.json`` holds at least: ``task`` (GLUE key), ``block`` ([rows, cols] in PyTorch
``[out, in]`` weight coordinates, or null for unstructured), ``method``, ``layers`` (param name ->
{"kept_ratio", "shape"}), ``compression`` (dict of named definitions) and ``metrics``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError
from .io import read_json

COMPRESSION_JSON = "compression.json"
MODEL_DIR = "model"
MASKS_FILE = "masks.safetensors"


@dataclass
class PrunedRun:
    root: Path
    model_dir: Path
    info: dict[str, Any]  # compression.json, or {} for a plain dense checkpoint
    masks: dict[str, Any]  # param name -> torch uint8/bool tensor; {} when dense

    @property
    def task(self) -> str | None:
        return self.info.get("task")


def is_compress_run(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / COMPRESSION_JSON).is_file()


def open_run(path: str | os.PathLike[str], allow_dense: bool = True) -> PrunedRun:
    """Open a compress run directory, or (``allow_dense``) a plain save_pretrained folder."""
    root = Path(path)
    if not root.exists():
        raise ConfigError(f"{root} does not exist; pass a compress run directory or a model folder")
    if is_compress_run(root):
        try:
            info = read_json(root / COMPRESSION_JSON)
        except Exception as e:
            raise ConfigError(f"{root / COMPRESSION_JSON} is not valid JSON ({e})") from None
        model_dir = root / MODEL_DIR
        if not (model_dir / "config.json").is_file():
            raise ConfigError(f"{root} has compression.json but no {MODEL_DIR}/config.json; the run is incomplete")
        masks = load_masks(model_dir / MASKS_FILE) if (model_dir / MASKS_FILE).exists() else {}
        return PrunedRun(root, model_dir, info, masks)
    if allow_dense and (root / "config.json").is_file():
        masks = load_masks(root / MASKS_FILE) if (root / MASKS_FILE).exists() else {}
        return PrunedRun(root, root, {}, masks)
    if (root / "compress_state").exists() or any(root.glob("*.partial")):
        raise ConfigError(f"{root} is an unfinished compress run (no {COMPRESSION_JSON}); finish it with --resume")
    raise ConfigError(f"{root} is not a compress run directory (no {COMPRESSION_JSON}) nor a model folder "
                      "(no config.json)")


def load_masks(path: str | os.PathLike[str]) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:
        raise ConfigError(f"cannot read masks from {path} ({type(e).__name__}); the file is corrupt") from None


def save_masks(masks: dict[str, Any], path: str | os.PathLike[str]) -> None:
    import torch
    from safetensors.torch import save_file

    from .io import atomic_file

    with atomic_file(path) as tmp:
        save_file({k: v.detach().to(torch.uint8).contiguous().cpu() for k, v in masks.items()}, str(tmp))


def check_masks_match(masks: dict[str, Any], model) -> None:
    """Every mask names a parameter of the model and has its shape."""
    params = dict(model.named_parameters())
    for name, m in masks.items():
        if name not in params:
            raise ConfigError(f"mask {name!r} matches no parameter of the model; masks and weights do not belong together")
        if tuple(m.shape) != tuple(params[name].shape):
            raise ConfigError(f"mask {name!r} has shape {tuple(m.shape)} but the weight is {tuple(params[name].shape)}")


def settings_diff(old: dict[str, Any], new: dict[str, Any], keys: Iterable[str]) -> list[str]:
    """``'key: old -> new'`` for every one of ``keys`` whose saved value differs from the current one
    (the one-line reason a ``--resume`` or a reused stage is refused)."""
    return [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in keys if old.get(k) != new[k]]
