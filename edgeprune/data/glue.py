"""GLUE tasks from the official TSV layout (``--data DIR``) or, when online, the ``datasets`` hub.

Column positions follow the official GLUE files; where a file has a header the columns are found
by name, so re-saved files with extra columns still load. A malformed line raises
:class:`~edgeprune.errors.DataError` naming the file and line.
"""
from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import DataError

csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True)
class TaskSpec:
    name: str  # canonical GLUE name, e.g. "SST-2"
    folder: str  # folder under the GLUE root
    labels: tuple[str, ...]  # label strings as they appear in the files; () for regression
    metric: str  # main metric name, one of compute_metrics' keys
    text_a: str | int  # header name, or column index for header-less files
    text_b: str | int | None
    label_col: str | int
    header: bool = True
    dev_file: str = "dev.tsv"
    hub: tuple[str, str] = ("glue", "")
    hub_split_dev: str = "validation"
    names: tuple[str, ...] = ()  # human-readable label names (id2label), when the file labels are codes

    @property
    def label_names(self) -> tuple[str, ...]:
        """The names a model's ``id2label`` gets: ``names``, else the labels as written in the files."""
        return self.names or self.labels

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.labels)


@dataclass(frozen=True)
class GlueExample:
    text_a: str
    text_b: str | None
    label: float | int  # class index, or a float score for STS-B


TASKS: dict[str, TaskSpec] = {
    "cola": TaskSpec("CoLA", "CoLA", ("0", "1"), "matthews_corr", 3, None, 1, header=False, hub=("glue", "cola"),
                     names=("unacceptable", "acceptable")),
    "sst2": TaskSpec("SST-2", "SST-2", ("0", "1"), "accuracy", "sentence", None, "label", hub=("glue", "sst2"),
                     names=("negative", "positive")),
    "mrpc": TaskSpec("MRPC", "MRPC", ("0", "1"), "f1", "#1 String", "#2 String", "Quality", hub=("glue", "mrpc"),
                     names=("not_equivalent", "equivalent")),
    "stsb": TaskSpec("STS-B", "STS-B", (), "pearson", "sentence1", "sentence2", "score", hub=("glue", "stsb")),
    "qqp": TaskSpec("QQP", "QQP", ("0", "1"), "f1", "question1", "question2", "is_duplicate", hub=("glue", "qqp"),
                    names=("not_duplicate", "duplicate")),
    "mnli": TaskSpec(
        "MNLI", "MNLI", ("contradiction", "entailment", "neutral"), "accuracy", "sentence1", "sentence2",
        "gold_label", dev_file="dev_matched.tsv", hub=("glue", "mnli"), hub_split_dev="validation_matched",
    ),
    "mnli-mm": TaskSpec(
        "MNLI-MM", "MNLI", ("contradiction", "entailment", "neutral"), "accuracy", "sentence1", "sentence2",
        "gold_label", dev_file="dev_mismatched.tsv", hub=("glue", "mnli"), hub_split_dev="validation_mismatched",
    ),
    "qnli": TaskSpec("QNLI", "QNLI", ("entailment", "not_entailment"), "accuracy", "question", "sentence", "label",
                     hub=("glue", "qnli")),
    "rte": TaskSpec("RTE", "RTE", ("entailment", "not_entailment"), "accuracy", "sentence1", "sentence2", "label",
                    hub=("glue", "rte")),
    "wnli": TaskSpec("WNLI", "WNLI", ("0", "1"), "accuracy", "sentence1", "sentence2", "label", hub=("glue", "wnli"),
                     names=("not_entailment", "entailment")),
}

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli_matched": "mnli", "mnli_mismatched": "mnli-mm",
            "mnli-mismatched": "mnli-mm", "mnli-matched": "mnli"}


def get_task(name: "str | TaskSpec | Mapping[str, Any]") -> TaskSpec:
    """A GLUE task by name, a spec itself, or a file task from its recorded dict (``FileTask.to_dict``)."""
    if isinstance(name, TaskSpec):
        return name
    if isinstance(name, Mapping):
        from .files import FileTask

        return FileTask.from_dict(name)
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise DataError(f"unknown GLUE task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[key]


def task_key(spec: TaskSpec) -> "str | dict[str, Any]":
    """What run records keep under ``"task"``: the GLUE key, or a file task's dict."""
    if hasattr(spec, "to_dict"):
        return spec.to_dict()  # type: ignore[attr-defined]
    return next(k for k, v in TASKS.items() if v is spec)


def task_name(task: "str | TaskSpec | Mapping[str, Any] | None") -> str:
    """A task for messages: the GLUE key or spec name, or a file task's name."""
    if task is None:
        return "?"
    if isinstance(task, TaskSpec):
        return task.name
    if isinstance(task, Mapping):
        return str(task.get("name", "data"))
    return str(task)


def split_path(spec: TaskSpec, data_dir: str | os.PathLike[str], split: str) -> Path:
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"GLUE folder {root} does not exist; point --data at a folder holding <TASK>/train.tsv")
    folder = root / spec.folder
    if not folder.is_dir():
        # accept --data pointing directly at the task folder
        if (root / "train.tsv").exists() or (root / spec.dev_file).exists():
            folder = root
        else:
            raise DataError(f"no {spec.folder}/ folder in {root}; expected {root / spec.folder / 'train.tsv'}")
    fname = {"train": "train.tsv", "dev": spec.dev_file, "validation": spec.dev_file}.get(split)
    if fname is None:
        raise DataError(f"unknown split {split!r}; use train or dev")
    path = folder / fname
    if not path.is_file():
        raise DataError(f"missing data file {path}")
    return path


def read_tsv(spec: TaskSpec, path: str | os.PathLike[str]) -> list[GlueExample]:
    """Parse one GLUE TSV file; every error names the file and the 1-based line number."""
    path = Path(path)
    examples: list[GlueExample] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        cols: dict[str, int] = {}
        for lineno, row in enumerate(reader, start=1):
            if spec.header and lineno == 1:
                cols = {name.strip(): i for i, name in enumerate(row)}
                for need in (spec.text_a, spec.text_b, spec.label_col):
                    if need is not None and need not in cols:
                        raise DataError(f"{path}:1: header lacks column {need!r} (has {', '.join(cols)})")
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue

            def col(key: str | int, _row: list[str] = row, _lineno: int = lineno) -> str:
                idx = cols[key] if isinstance(key, str) else key
                if idx >= len(_row):
                    raise DataError(f"{path}:{_lineno}: expected at least {idx + 1} tab-separated fields, "
                                    f"found {len(_row)}")
                return _row[idx]

            raw = col(spec.label_col).strip()
            a = col(spec.text_a)
            b = col(spec.text_b) if spec.text_b is not None else None
            examples.append(GlueExample(a, b, _parse_label(spec, raw, path, lineno)))
    if not examples:
        raise DataError(f"{path}: no examples found")
    return examples


def _parse_label(spec: TaskSpec, raw: str, path: Path, lineno: int) -> float | int:
    if spec.is_regression:
        try:
            return float(raw)
        except ValueError:
            raise DataError(f"{path}:{lineno}: label {raw!r} is not a number") from None
    if raw not in spec.labels:
        raise DataError(f"{path}:{lineno}: label {raw!r} is not one of {', '.join(spec.labels)}")
    return spec.labels.index(raw)


def load_split(task: "str | TaskSpec | Mapping[str, Any]", split: str, data_dir: str | os.PathLike[str] | None = None,
               limit: int | None = None, seed: int | None = None) -> list[GlueExample]:
    """Examples of one split, from ``data_dir`` (GLUE TSV layout, or a CSV/TSV/JSONL file task) or the hub.

    ``limit`` with a ``seed``: a seeded random subset (files are often sorted by source or label, so
    the first N rows are a biased sample: STS-B's first 1000 are all video captions); without a
    seed, the first ``limit`` rows.
    """
    spec = get_task(task)
    if getattr(spec, "kind", "") == "file":
        from .files import load_file_split

        examples = load_file_split(spec, split, data_dir)  # type: ignore[arg-type]
    elif data_dir is not None:
        examples = read_tsv(spec, split_path(spec, data_dir, split))
    else:
        examples = _load_hub(spec, split)
    if not limit:
        return examples
    return seeded_subset(examples, limit, seed) if seed is not None else examples[:limit]


def seeded_subset(examples: list, n: int, seed: int) -> list:
    """``n`` examples drawn without replacement by ``seed``, in file order (reproducible)."""
    import random

    if n >= len(examples):
        return list(examples)
    idx = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in idx]


def holdout_split(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """(rest, held-out) with a seeded ``fraction`` held out: model selection never looks at dev."""
    import random

    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction {fraction} must be in (0, 1)")
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    k = max(1, int(round(fraction * len(examples))))
    held = set(idx[:k])
    return ([e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held])


def _load_hub(spec: TaskSpec, split: str) -> list[GlueExample]:
    """Load from the Hugging Face hub; needs network and the ``hub`` extra."""
    try:
        import datasets
    except ImportError:
        raise DataError("no --data folder given and the 'datasets' package is missing; "
                        "pass --data GLUE_DIR or pip install 'edgeprune[hub]'") from None
    hub_split = spec.hub_split_dev if split in ("dev", "validation") else split
    try:
        ds = datasets.load_dataset(spec.hub[0], spec.hub[1], split=hub_split)
    except Exception as e:  # network or hub errors: one line, not a traceback
        raise DataError(f"could not load {spec.name} from the hub ({type(e).__name__}); "
                        f"pass --data GLUE_DIR to use local files") from None
    text_cols = [c for c in ds.column_names if c not in ("label", "idx")]
    names = getattr(ds.features["label"], "names", None)
    remap = names and all(n in spec.labels for n in names)
    out = []
    for row in ds:
        lab = row["label"]
        label = float(lab) if spec.is_regression else (spec.labels.index(names[lab]) if remap else int(lab))
        out.append(GlueExample(row[text_cols[0]], row[text_cols[1]] if len(text_cols) > 1 else None, label))
    return out
