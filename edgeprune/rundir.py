"""The layout of a ``compress`` run directory: the contract between ``compress`` and the exporters,
with its one reader (:func:`open_run`) and its one writer (:class:`RunWriter`).

    RUN_DIR/
      compression.json     written last: its presence marks a finished run
      model/               the pruned checkpoint, save_pretrained form, with tokenizer
      model/masks.safetensors
                           {"<param name>": uint8 tensor shaped like the weight, 1 = kept}
      kept_ratios.png      per-layer kept ratios
      compress_state/      per-phase state; resume continues from the last Trainer checkpoint
        config.json        the CompressConfig (a resume must match it)
        phases.json        wall seconds per phase
        finetune/          dense fine-tune (a ``finetune`` run dir), when the model was not fine-tuned
        dense_metrics.json dev metrics of the dense model
        regularize/        Trainer checkpoints, then model/ + done.json
        stages/<C>x/       staged cuts: Trainer checkpoints, then model/ (+ masks) + done.json
        masks.safetensors, prune.json, schedule.json
        retrain/           Trainer checkpoints, then done.json

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
STATE_DIR = "compress_state"
PLOT_FILE = "kept_ratios.png"
DONE_JSON = "done.json"
CHECKPOINTS = "checkpoints"


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
    if (root / STATE_DIR).exists() or any(root.glob("*.partial")):
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


def save_model(dest: str | os.PathLike[str], model, tokenizer, masks: dict[str, Any] | None = None) -> None:
    """``save_pretrained`` of model and tokenizer (+ masks) into ``dest`` atomically: a folder that exists is whole."""
    from .io import atomic_dir

    with atomic_dir(Path(dest)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if masks is not None:
            save_masks(masks, Path(tmp) / MASKS_FILE)


class RunWriter:
    """Everything ``compress`` writes into a run folder goes through here (rank 0 only; the other
    ranks of a data-parallel run read what it wrote). Paths are named for what they hold, so the
    layout above lives in this module alone."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.state = self.root / STATE_DIR

    # -- where things live
    @property
    def model_dir(self) -> Path:
        """The finished run's pruned checkpoint."""
        return self.root / MODEL_DIR

    @property
    def masks_path(self) -> Path:
        """The masks chosen by the cut (authoritative on resume)."""
        return self.state / MASKS_FILE

    def phase_dir(self, name: str) -> Path:
        """``finetune``, ``regularize`` or ``retrain``."""
        return self.state / name

    def stage_dir(self, compression: float) -> Path:
        return self.state / "stages" / f"{compression:g}x"

    def done(self, phase_dir: Path) -> dict[str, Any] | None:
        """The ``done.json`` record of a finished phase or stage, or None."""
        f = phase_dir / DONE_JSON
        return read_json(f) if f.is_file() else None

    def read(self, name: str) -> dict[str, Any] | None:
        """A JSON record of the state folder (``phases.json``, ``prune.json``, ...), or None."""
        f = self.state / name
        return read_json(f) if f.is_file() else None

    def finished(self) -> bool:
        return (self.root / COMPRESSION_JSON).is_file()

    # -- writing (rank 0 only)
    def write(self, name: str, obj: Any) -> None:
        """A JSON record of the state folder."""
        if _is_main():
            from .io import write_json

            write_json(self.state / name, obj)

    def write_done(self, phase_dir: Path, record: dict[str, Any]) -> None:
        if _is_main():
            from .io import write_json

            write_json(phase_dir / DONE_JSON, record)

    def save_model(self, dest: Path, model, tokenizer, masks: dict[str, Any] | None = None) -> None:
        if _is_main():
            save_model(dest, model, tokenizer, masks)

    def save_masks(self, masks: dict[str, Any]) -> None:
        if _is_main():
            save_masks(masks, self.masks_path)

    def write_plot(self, draw) -> None:
        """``draw(path)`` renders the kept-ratio plot of the run."""
        if _is_main():
            draw(self.root / PLOT_FILE)

    def start(self, config: dict[str, Any], replace: bool) -> None:
        """Create the state folder and save the config; ``replace``: remove the run there first."""
        if _is_main():
            import shutil

            from .io import write_json

            if replace:
                shutil.rmtree(self.root)
            self.state.mkdir(parents=True, exist_ok=True)
            write_json(self.state / "config.json", config)

    def finish(self, record: dict[str, Any], keep_checkpoints: bool, keep_regularized: bool) -> None:
        """Write ``compression.json`` (last: it marks the run finished), then drop the Trainer checkpoints."""
        if not _is_main():
            return
        import shutil

        from .io import write_json

        write_json(self.root / COMPRESSION_JSON, record)
        if not keep_checkpoints:
            reg = self.phase_dir("regularize")
            for d in (self.phase_dir("finetune") / CHECKPOINTS, reg / CHECKPOINTS,
                      self.phase_dir("retrain") / CHECKPOINTS,
                      *sorted((self.state / "stages").glob(f"*/{CHECKPOINTS}")),
                      *(() if keep_regularized else (reg / MODEL_DIR,))):
                shutil.rmtree(d, ignore_errors=True)


def _is_main() -> bool:
    from .distributed import is_main

    return is_main()


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
