"""What every exporter shares: the base class, its config, its result and how artifacts are verified."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from edgeprune.errors import ConfigError

if TYPE_CHECKING:
    from edgeprune.rundir import PrunedRun

    from .prepared import PreparedModel

DTYPES = ("fp32", "fp16", "int8", "int8-dynamic")
MODES = ("packed", "structured", "dense")


@dataclass(frozen=True)
class ExportConfig:
    """What every export shares; ``options`` holds the format's own settings (typed per backend).

    ``options`` defaults to the format's options type with its defaults (:attr:`Exporter.options_type`:
    ``OnnxOptions``, ``TfliteOptions``, ``HfOptions``); options of another format's type are refused.
    """

    format: str
    dtype: str = "fp32"
    mode: str = "packed"
    seq_len: int | None = 128  # None = dynamic
    batch: int | None = None  # None = dynamic
    data_dir: str | None = None  # data for verification / calibration (GLUE folder or your own file); no default
    task: str | dict[str, Any] | None = None  # GLUE key or a file task's dict; defaults to the run's task
    verify_examples: int = 256
    calib_examples: int = 64
    verify: bool = True
    options: Any = None  # the format's typed options

    def __post_init__(self) -> None:
        from . import get_exporter

        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown --dtype {self.dtype!r}; choose one of: {', '.join(DTYPES)}")
        if self.mode not in MODES:
            raise ConfigError(f"unknown --mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.seq_len is not None and not 1 <= self.seq_len <= 4096:
            raise ConfigError(f"--seq-len must be between 1 and 4096 or 'dynamic', got {self.seq_len}")
        wanted = get_exporter(self.format).options_type
        if self.options is None:
            object.__setattr__(self, "options", wanted())
        elif not isinstance(self.options, wanted):
            raise ConfigError(f"{type(self.options).__name__} does not apply to --format {self.format} "
                              f"(it takes {wanted.__name__})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Exporter:
    """Base class. Subclasses register with ``@register_exporter(name)`` and implement ``build``."""

    format_name = ""
    options_type: type  # the typed options dataclass this exporter takes (ExportConfig.options)
    ATOL = 1e-4  # fp32 logits vs PyTorch
    MAX_POINTS = 0.5  # quantized: task metric within this many percentage points

    def __init__(self, config: ExportConfig) -> None:
        self.config = config

    def check_config(self, run: PrunedRun) -> None:
        """Raise ConfigError for combinations this format cannot produce (before any work is done)."""

    def build(self, prepared: PreparedModel, out_dir: Path) -> dict[str, Any]:
        """Write the artifact of ``prepared`` (:mod:`prepared`) into ``out_dir``; return a report with at least ``artifact`` (file name),
        ``verification`` (see :func:`verification_record`) and ``manifest`` (extra manifest fields), and
        optionally ``card`` (model-card ``library``, ``tags``, ``notes``)."""
        raise NotImplementedError


@dataclass
class ExportResult:
    bundle_dir: Path
    artifact: Path
    verification: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def batches(feeds: dict[str, np.ndarray], size: int) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive ``size``-row slices of named input arrays (the last one may be shorter)."""
    n = next(iter(feeds.values())).shape[0]
    for i in range(0, n, size):
        yield {k: v[i:i + size] for k, v in feeds.items()}


def metric_points_diff(a: float, b: float) -> float:
    """Difference of two fractions in percentage points."""
    return abs(a - b) * 100.0


def verification_record(torch_logits: np.ndarray, artifact_logits: np.ndarray, labels: np.ndarray, task_spec,
                        dtype: str, atol: float, max_points: float) -> dict[str, Any]:
    """The verification.json record shared by all exporters.

    fp32 must agree within ``atol`` on logits and give the same metric; quantized artifacts must keep
    the task metric within ``max_points`` percentage points.
    """
    from edgeprune.data.metrics import compute_metrics

    diff = float(np.max(np.abs(torch_logits.astype(np.float64) - artifact_logits.astype(np.float64))))
    m_torch = compute_metrics(task_spec, torch_logits, labels)["main"]
    m_art = compute_metrics(task_spec, artifact_logits, labels)["main"]
    points = metric_points_diff(m_torch, m_art)
    if dtype == "fp32":
        passed = diff <= atol and points == 0.0
        reason = None if passed else f"fp32 logits differ by {diff:.3g} (atol {atol:g}) / metric by {points:.2f} points"
    else:
        passed = bool(np.isfinite(artifact_logits).all()) and points <= max_points
        reason = None if passed else (f"{dtype} metric differs by {points:.2f} points (allowed {max_points})"
                                      if np.isfinite(artifact_logits).all() else f"{dtype} artifact produced NaN/Inf")
    return {
        "passed": bool(passed),
        "reason": reason,
        "dtype": dtype,
        "num_examples": int(len(labels)),
        "max_abs_diff": diff,
        "atol": atol if dtype == "fp32" else None,
        "metric": task_spec.metric,
        "metric_torch": float(m_torch),
        "metric_artifact": float(m_art),
        "metric_diff_points": float(points),
        "max_points": 0.0 if dtype == "fp32" else max_points,
    }


def name_labels(model, spec) -> None:
    """Give a checkpoint with the default LABEL_i names the task's label names (config.json, manifest, metadata)."""
    import re

    id2 = getattr(model.config, "id2label", None) or {}
    if spec.label_names and len(id2) == len(spec.label_names) and all(
            re.fullmatch(r"LABEL_\d+", str(v)) for v in id2.values()):
        model.config.id2label = dict(enumerate(spec.label_names))
        model.config.label2id = {n: i for i, n in enumerate(spec.label_names)}


def check_task_labels(model, task: str | None) -> None:
    """Refuse a checkpoint whose head does not fit ``task``, and give it the task's label names."""
    if not task:
        return
    from edgeprune.data.glue import get_task
    from edgeprune.errors import ConfigError

    spec = get_task(task)
    if model.config.num_labels != spec.num_labels:
        raise ConfigError(f"the checkpoint has {model.config.num_labels} labels but task {task} has "
                          f"{spec.num_labels}; pass the right --task")
    name_labels(model, spec)


def model_labels(model, spec=None) -> list[str]:
    """The model's label names in output order: what the manifest, the ONNX metadata and ``labels.txt`` carry.

    A regression task has none (its one output is a score, not a class); a checkpoint without ``id2label``
    has none either. Call :func:`check_task_labels` first so default ``LABEL_i`` names become the task's.
    """
    if spec is not None and spec.is_regression:
        return []
    id2 = getattr(model.config, "id2label", None) or {}
    return [str(id2[i]) for i in sorted(id2)] if id2 else []
