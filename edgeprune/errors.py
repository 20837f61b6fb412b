"""One exception hierarchy; the CLI turns each into one line and its exit code."""
from __future__ import annotations


class EdgepruneError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 2


class ConfigError(EdgepruneError):
    """Bad flags, config values or budget files."""


class DataError(EdgepruneError):
    """Missing or malformed data files."""


class ModelError(EdgepruneError):
    """A model directory that cannot be loaded or an unsupported architecture."""


class ExportError(EdgepruneError):
    """An export that could not be produced."""


class NumericMismatchError(ExportError):
    """An artifact whose outputs disagree with the PyTorch reference."""

    exit_code = 1


class TargetUnreachable(EdgepruneError):
    """A device that cannot be reached (SSH, adb) or a missing tool."""


class BudgetExceeded(EdgepruneError):
    """A CI budget that does not hold."""

    exit_code = 1
