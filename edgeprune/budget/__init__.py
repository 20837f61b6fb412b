"""The CI budget gate: ``check(path) -> CheckResult``, the library behind ``edgeprune check``.

    result = edgeprune.check("bundle/", budgets={"max_size": "30MB", "max_latency": {"rpi4": "80ms"}})
    result.passed, result.exit_code, [r.reason for r in result.failures]

Budgets and overrides take the shapes of the TOML table, and errors name its keys.

Modules: ``units`` (strict unit parsing), ``config`` (budget files, overrides), ``evidence``
(artifact, manifest, reports), ``params`` (counting from the artifact), ``gate`` (one result per
budget), ``reports`` (table, JUnit, GitHub annotations, Markdown).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edgeprune.errors import ConfigError
from edgeprune.formats import FORMATS

from .config import BUDGETS_ARG, Budgets, load_budgets
from .evidence import Evidence, gather
from .gate import FAIL, MISSING, PASS, BudgetResult, evaluate_budgets
from .latency import GPU_SUFFIX


@dataclass(frozen=True)
class CheckResult:
    artifact: Path  # the model file
    given: Path  # what was passed (bundle folder or file)
    bundle_dir: Path | None
    budgets: Budgets
    config_path: Path | None
    results: tuple[BudgetResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[BudgetResult]:
        return [r for r in self.results if not r.passed]

    @property
    def exit_code(self) -> int:
        """0 when every check holds, 1 otherwise (a missing measurement fails too)."""
        return 0 if self.passed else 1

    @property
    def artifact_display(self) -> str:
        return _rel(self.given)

    @property
    def config_display(self) -> str | None:
        return _rel(self.config_path) if self.config_path is not None else None

    @property
    def suite_name(self) -> str:
        """A JUnit-friendly name: the bundle or artifact name with dots replaced."""
        name = (self.bundle_dir or self.artifact).resolve().name or "artifact"
        return re.sub(r"[^A-Za-z0-9_\-]", "_", name)

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": str(self.artifact), "bundle": str(self.bundle_dir) if self.bundle_dir else None,
                "config": str(self.config_path) if self.config_path else None, "passed": self.passed,
                "results": [r.to_dict() for r in self.results]}


def _rel(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def check(path: str | os.PathLike[str], budgets: Budgets | Mapping[str, Any] | None = None,
          config: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None,
          profile: str | os.PathLike[str] | None = None, search: bool = True, cli: bool = False) -> CheckResult:
    """Evaluate budgets against a bundle folder or a bare .onnx/.tflite artifact.

    Args:
        path: a bundle folder written by ``edgeprune export``, its artifact, or a bare artifact.
        budgets: use these budgets as they are (no file is read): a :class:`Budgets`, or a mapping
            shaped like the TOML table, e.g. ``{"max_size": "30MB", "max_latency": {"rpi4": "80ms"}}``;
            otherwise they come from ``config`` or the nearest ``edgeprune.toml`` / ``pyproject.toml``
            (``search``).
        overrides: values on top, in the same shapes (``"off"`` removes a budget).
        profile: a profile.json to use instead of the one found beside the artifact.
        cli: the overrides are ``edgeprune check`` flags: errors and sources name the flags.

    Returns:
        a CheckResult; ``exit_code`` 1 when a budget is exceeded or its measurement is missing.

    Raises:
        ConfigError / ModelError (exit 2): no budgets at all, malformed budgets, unreadable input.
    """
    evidence: Evidence = gather(path, profile)
    cfg_path: Path | None = None
    if budgets is None:
        budgets, cfg_path = load_budgets(path, config=config, overrides=overrides, search=search, cli=cli)
    else:
        if not isinstance(budgets, Budgets):
            budgets = Budgets.from_table(budgets, where=BUDGETS_ARG, source=BUDGETS_ARG)
        if overrides:
            budgets = budgets.override(overrides, cli=cli)
    if budgets.empty:
        where = f"{cfg_path} declares none after overrides" if cfg_path else \
            "no edgeprune.toml or pyproject.toml [tool.edgeprune.budgets] found above the artifact or the working directory"
        given = "--max-size 30MB" if cli else 'budgets={"max_size": "30MB"}'
        raise ConfigError(f"no budgets to check ({where}); add e.g. max_size = \"30MB\" under "
                          f"[tool.edgeprune.budgets] in pyproject.toml, or pass {given}")
    for t in budgets.max_latency:
        if t.endswith(GPU_SUFFIX) and evidence.format in FORMATS and not FORMATS[evidence.format].gpu_delegate:
            raise ConfigError(f"max_latency[{t}]: {evidence.artifact.name} is ONNX and no supported runner puts an "
                              f"ONNX model on a GPU (the GPU delegate runs .tflite); drop the {t} budget or gate a "
                              f"TFLite export")
    results = tuple(evaluate_budgets(budgets, evidence))
    return CheckResult(evidence.artifact, evidence.given, evidence.bundle_dir, budgets, cfg_path, results)


__all__ = ["check", "CheckResult", "Budgets", "BudgetResult", "load_budgets", "PASS", "FAIL", "MISSING"]
