"""Your own labelled data: CSV, TSV or JSON Lines files, or a folder with ``train.*`` and ``dev.*``/``validation.*``.

A :class:`FileTask` is a :class:`~edgeprune.data.glue.TaskSpec` whose columns, label set and problem
type come from the data. It serialises to a small dict (:meth:`FileTask.to_dict`) that run records
keep under ``"task"``; ``get_task(that_dict)`` rebuilds it, and ``load_split(task, split, path)``
reads the examples. The data location is not part of the task (like a GLUE folder it is passed as
``--data``), so a run can be evaluated or exported on a copy of the data elsewhere.

Without a dev file, the dev split is a seeded fraction of the training rows (``dev_fraction``,
``seed``); train is the rest, so the two never overlap. Every malformed row raises
:class:`~edgeprune.errors.DataError` naming the file and its 1-based line.
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..errors import DataError
from .glue import GlueExample, TaskSpec

csv.field_size_limit(sys.maxsize)

SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
DEV_NAMES = ("dev", "validation", "valid", "val")
PROBLEMS = ("classification", "regression")
# default (text, pair) columns, tried in order; the first whose text column exists wins
DEFAULT_TEXT_COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("text", "text_pair"), ("sentence", None), ("sentence1", "sentence2"))
DEFAULT_LABEL_COLUMN = "label"


@dataclass(frozen=True)
class Columns:
    """Which columns hold the text(s) and the label; None means the defaults above."""

    text: str | None = None
    text_pair: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class FileTask(TaskSpec):
    """A task defined by the user's files (see the module docstring)."""

    folder: str = ""
    labels: tuple[str, ...] = ()
    metric: str = "accuracy"
    text_a: str = "text"
    text_b: str | None = None
    label_col: str = DEFAULT_LABEL_COLUMN
    dev_fraction: float = 0.1
    seed: int = 42
    kind: str = field(default="file")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "file", "name": self.name, "problem": "regression" if self.is_regression else "classification",
                "labels": list(self.labels), "text_column": self.text_a, "text_pair_column": self.text_b,
                "label_column": self.label_col, "dev_fraction": self.dev_fraction, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FileTask":
        try:
            regression = d.get("problem") == "regression"
            return cls(name=str(d["name"]), labels=() if regression else tuple(str(x) for x in d["labels"]),
                       metric="pearson" if regression else "accuracy", text_a=str(d["text_column"]),
                       text_b=d.get("text_pair_column"), label_col=str(d["label_column"]),
                       dev_fraction=float(d.get("dev_fraction", 0.1)), seed=int(d.get("seed", 42)))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"a recorded data task is incomplete ({type(e).__name__}: {e}); "
                            f"pass --task and --data again") from None


def is_file_data(path: str | os.PathLike[str] | None) -> bool:
    """A data file, or a folder holding a ``train.*`` file (the GLUE root layout is not)."""
    if path is None:
        return False
    p = Path(path)
    if p.is_file():
        return True
    return p.is_dir() and _find(p, ("train",)) is not None


def _find(folder: Path, stems: Sequence[str]) -> Path | None:
    for stem in stems:
        for suf in SUFFIXES:
            if (folder / f"{stem}{suf}").is_file():
                return folder / f"{stem}{suf}"
    return None


def split_files(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """(train file, dev file or None) of ``--data``."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() not in SUFFIXES:
            raise DataError(f"{p}: unsupported data file type {p.suffix or '(none)'}; use .csv, .tsv or .jsonl")
        return p, None
    if not p.is_dir():
        raise DataError(f"data path {p} does not exist; pass a .csv/.tsv/.jsonl file or a folder with train.*")
    train = _find(p, ("train",))
    if train is None:
        raise DataError(f"no train.csv, train.tsv or train.jsonl in {p}")
    return train, _find(p, DEV_NAMES)


# ------------------------------------------------------------------------------------------- reading


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line, row dict) of a CSV/TSV (with a header) or JSON Lines file."""
    suffix = path.suffix.lower()
    try:
        f = open(path, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror})") from None
    with f:
        if suffix in (".jsonl", ".json"):
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object per line, got {type(row).__name__}")
                yield lineno, row
            return
        delim = "\t" if suffix == ".tsv" else ","
        quoting = csv.QUOTE_NONE if suffix == ".tsv" else csv.QUOTE_MINIMAL
        reader = csv.reader(f, delimiter=delim, quoting=quoting, strict=True)
        header: list[str] | None = None
        try:
            for row in reader:
                lineno = reader.line_num
                if header is None:
                    header = [h.strip() for h in row]
                    if not any(header):
                        raise DataError(f"{path}:{lineno}: empty header line; the first line must name the columns")
                    continue
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}:{lineno}: {len(row)} fields, but the header has {len(header)}")
                yield lineno, dict(zip(header, row))
        except csv.Error as e:
            raise DataError(f"{path}:{reader.line_num}: malformed {'TSV' if delim == chr(9) else 'CSV'} ({e})") from None
        if header is None:
            raise DataError(f"{path}: empty file")


def _header(path: Path) -> list[str]:
    for _, row in read_rows(path):
        return list(row)
    raise DataError(f"{path}: no examples found")


def choose_columns(path: Path, columns: Columns) -> tuple[str, str | None, str]:
    """(text, pair or None, label) columns of ``path``: the given names, else the defaults."""
    have = _header(path)
    listing = ", ".join(have)

    def need(name: str, flag: str) -> str:
        if name not in have:
            raise DataError(f"{path}: no column {name!r} (has {listing}); pass {flag}")
        return name

    if columns.text is not None:
        text = need(columns.text, "--text-column")
        pair = need(columns.text_pair, "--text-pair-column") if columns.text_pair else None
    else:
        found = next(((t, p) for t, p in DEFAULT_TEXT_COLUMNS if t in have), None)
        if found is None:
            raise DataError(f"{path}: no text column among {', '.join(t for t, _ in DEFAULT_TEXT_COLUMNS)} "
                            f"(has {listing}); pass --text-column")
        text = found[0]
        pair = need(columns.text_pair, "--text-pair-column") if columns.text_pair else (
            found[1] if found[1] in have else None)
    label = need(columns.label or DEFAULT_LABEL_COLUMN, "--label-column")
    return text, pair, label


def _raw_labels(path: Path, label_col: str) -> Iterator[tuple[int, str]]:
    for lineno, row in read_rows(path):
        raw = row.get(label_col)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise DataError(f"{path}:{lineno}: no value in label column {label_col!r}")
        yield lineno, _label_str(raw)


def _label_str(raw: Any) -> str:
    if isinstance(raw, bool):
        return str(raw).lower()
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw).strip()


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False


def _is_float(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


def infer_task(path: str | os.PathLike[str], problem: str | None = None, columns: Columns = Columns(),
               dev_fraction: float = 0.1, seed: int = 42,
               label_order: Sequence[str] | None = None) -> FileTask:
    """Scan ``--data`` once: its columns, label set and problem type.

    ``problem`` (classification/regression) is inferred when None: labels that are all numbers with
    at least one non-integer mean regression. Class labels are ordered as ``label_order`` when it
    names the same labels (a fine-tuned model's ``id2label``, case-insensitive), else numerically
    (integer labels) or alphabetically.
    """
    if problem is not None and problem not in PROBLEMS:
        raise DataError(f"unknown problem type {problem!r}; use classification or regression")
    if not 0 < dev_fraction < 1:
        raise DataError(f"--dev-fraction {dev_fraction} must be between 0 and 1")
    train, dev = split_files(path)
    text, pair, label = choose_columns(train, columns)
    if dev is not None:
        choose_columns(dev, Columns(text, pair, label))
    seen: dict[str, tuple[Path, int]] = {}
    for f in (train, dev):
        if f is None:
            continue
        for lineno, raw in _raw_labels(f, label):
            seen.setdefault(raw, (f, lineno))
    if not seen:
        raise DataError(f"{train}: no examples found")
    numeric = all(_is_float(s) for s in seen)
    if problem is None:
        problem = "regression" if numeric and not all(_is_int(s) for s in seen) else "classification"
    name = Path(path).stem if Path(path).is_file() else Path(path).resolve().name
    if problem == "regression":
        bad = next((s for s in seen if not _is_float(s)), None)
        if bad is not None:
            f, lineno = seen[bad]
            raise DataError(f"{f}:{lineno}: label {bad!r} is not a number (regression needs float labels)")
        labels: tuple[str, ...] = ()
    else:
        if len(seen) < 2:
            raise DataError(f"{train}: only one label ({next(iter(seen))!r}); classification needs at least two")
        if all(_is_int(s) for s in seen):
            labels = tuple(sorted(seen, key=int))
        else:
            labels = tuple(sorted(seen))
        if label_order and len(label_order) == len(labels):
            by_lower = {s.lower(): s for s in labels}
            if sorted(by_lower) == sorted(o.lower() for o in label_order):
                labels = tuple(by_lower[o.lower()] for o in label_order)
    return FileTask(name=name, labels=labels, metric="pearson" if problem == "regression" else "accuracy",
                    text_a=text, text_b=pair, label_col=label, dev_fraction=dev_fraction, seed=seed)


def read_examples(spec: FileTask, path: Path) -> list[GlueExample]:
    out = []
    for lineno, row in read_rows(path):
        for col in (spec.text_a, spec.text_b, spec.label_col):
            if col is not None and col not in row:
                raise DataError(f"{path}:{lineno}: no {col!r} field")
        a, b = row[spec.text_a], row[spec.text_b] if spec.text_b else None
        if not isinstance(a, str) or (b is not None and not isinstance(b, str)):
            raise DataError(f"{path}:{lineno}: text fields must be strings")
        raw = row[spec.label_col]
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise DataError(f"{path}:{lineno}: no value in label column {spec.label_col!r}")
        lab = _label_str(raw)
        if spec.is_regression:
            if not _is_float(lab):
                raise DataError(f"{path}:{lineno}: label {lab!r} is not a number")
            label: float | int = float(lab)
        else:
            if lab not in spec.labels:
                raise DataError(f"{path}:{lineno}: label {lab!r} is not one of {', '.join(spec.labels)}")
            label = spec.labels.index(lab)
        out.append(GlueExample(a, b, label))
    if not out:
        raise DataError(f"{path}: no examples found")
    return out


def dev_indices(n: int, fraction: float, seed: int) -> set[int]:
    """The seeded rows of an ``n``-row train file that form the carved dev split (at least one)."""
    import numpy as np

    k = min(max(1, round(n * fraction)), n - 1)
    return set(np.random.default_rng(seed).permutation(n)[:k].tolist())


def load_file_split(spec: FileTask, split: str, path: str | os.PathLike[str] | None) -> list[GlueExample]:
    if path is None:
        raise DataError(f"task {spec.name} comes from your data files; pass --data FILE_OR_FOLDER")
    if split not in ("train", "dev", "validation"):
        raise DataError(f"unknown split {split!r}; use train or dev")
    train, dev = split_files(path)
    if dev is not None:
        return read_examples(spec, train if split == "train" else dev)
    rows = read_examples(spec, train)
    if len(rows) < 2:
        raise DataError(f"{train}: {len(rows)} example(s); need at least 2 to carve a dev split")
    held = dev_indices(len(rows), spec.dev_fraction, spec.seed)
    return [r for i, r in enumerate(rows) if (i in held) == (split != "train")]
