"""The data flags shared by ``finetune``, ``eval``, ``compress`` and ``export``, and the one place they become a task."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import click

TASK_HELP = ("GLUE task (cola sst2 mrpc stsb qqp mnli mnli-mm qnli rte wnli), or with your own --data file: "
             "classification or regression (default: inferred from the labels).")
DATA_HELP = ("A CSV, TSV or JSON Lines file, a folder with train.* and dev.*/validation.*, or a GLUE folder "
             "(<DIR>/<TASK>/train.tsv) with a GLUE --task.")


def data_options(f: Callable) -> Callable:
    """Add --text-column, --text-pair-column, --label-column and --dev-fraction."""
    for opt in reversed([
        click.option("--text-column", default=None, help="Text column of your data [text, sentence or sentence1]."),
        click.option("--text-pair-column", default=None,
                     help="Second text of a pair [text_pair or sentence2 when present]."),
        click.option("--label-column", default=None, help="Label column of your data [label]."),
        click.option("--dev-fraction", type=float, default=None,
                     help="Without a dev file: the seeded fraction of train held out as dev [0.1]."),
    ]):
        f = opt(f)
    return f


def pop_data_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Remove the data flags from a command's ``**flags`` (so they do not reach its config)."""
    return {k: flags.pop(k, None) for k in ("text_column", "text_pair_column", "label_column", "dev_fraction")}


def resolve_task(task: str | None, data: str | os.PathLike[str] | None, *, text_column: str | None = None,
                 text_pair_column: str | None = None, label_column: str | None = None,
                 dev_fraction: float | None = None, model: str | os.PathLike[str] | None = None,
                 recorded: str | Mapping[str, Any] | None = None, need_data: bool = True):
    """The TaskSpec of ``--task``/``--data``; ``recorded`` is the task a run was made with (eval, export).

    Checks the data before any work starts; errors are one-line :class:`DataError`/:class:`ConfigError`.
    """
    from ..data.files import PROBLEMS, Columns, FileTask, infer_task, is_file_data, split_files
    from ..data.glue import get_task
    from ..errors import ConfigError, DataError

    columns = Columns(text_column, text_pair_column, label_column)
    overrides = any(v is not None for v in (text_column, text_pair_column, label_column, dev_fraction))
    if data is not None and not Path(data).exists():
        raise DataError(f"--data {data} does not exist")
    if task is not None and task.strip().lower() not in PROBLEMS:
        spec = get_task(task)
        if data is not None and Path(data).is_file():
            raise DataError(f"--task {task} reads the GLUE folder layout, but --data {data} is a file; "
                            f"drop --task (or use --task classification) for your own file")
        if overrides:
            raise ConfigError(f"--text-column/--label-column/--dev-fraction apply to your own data files, "
                              f"not to GLUE --task {task}")
        return spec
    if task is None and isinstance(recorded, str) and not is_file_data(data):
        return get_task(recorded)
    if data is None:
        if not need_data:
            if isinstance(recorded, Mapping):
                return FileTask.from_dict(recorded)
            return None
        raise ConfigError("--data is required: a CSV/TSV/JSONL file or a folder with train.* (or a GLUE folder "
                          "with a GLUE --task)")
    if not is_file_data(data):
        raise DataError(f"{data} holds no train.csv, train.tsv or train.jsonl; for a GLUE folder pass --task NAME (e.g. --task mrpc)")
    problem = task.strip().lower() if task else None
    if isinstance(recorded, Mapping):
        spec = FileTask.from_dict(recorded)
        if problem is not None and problem != ("regression" if spec.is_regression else "classification"):
            raise ConfigError(f"the run was trained for {'regression' if spec.is_regression else 'classification'}; "
                              f"drop --task {task}")
        changes = {k: v for k, v in (("text_a", text_column), ("text_b", text_pair_column),
                                     ("label_col", label_column), ("dev_fraction", dev_fraction)) if v is not None}
        spec = dataclasses.replace(spec, **changes) if changes else spec
        split_files(data)
        return spec
    from ..models import label_names_of, resolve_model_path

    order = None
    if model is not None:
        try:
            mdir = Path(model)
            mdir = mdir / "model" if (mdir / "model" / "config.json").is_file() else resolve_model_path(model)
            order = label_names_of(mdir)
        except Exception:  # the model is checked (with its own message) when it is loaded
            order = None
    return infer_task(data, problem, columns, dev_fraction if dev_fraction is not None else 0.1, 42, order)
