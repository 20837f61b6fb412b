"""Budgets: where they are declared, how they are parsed and how the command line overrides them.

Declared in ``[tool.edgeprune.budgets]`` of ``pyproject.toml`` or ``[budgets]`` of ``edgeprune.toml``
(the same table; ``edgeprune.toml`` is the ``[tool.edgeprune]`` part of a pyproject on its own)::

    [tool.edgeprune.budgets]
    max_size = "30MB"
    max_latency = { host = "25ms", rpi4 = "80ms" }
    max_accuracy_drop = "1pt"

The file is found by walking up from the artifact's directory, then from the working directory
(in each directory ``edgeprune.toml`` wins over ``pyproject.toml``; a pyproject counts only if it
has ``[tool.edgeprune.budgets]``); ``--config FILE`` skips the search. Command-line values override
the file key by key (per target for latency, per definition for compression/sparsity); ``off``
removes a budget that the file sets. From Python, :func:`edgeprune.check` takes budgets and
overrides in the shapes of the TOML table (``{"max_latency": {"rpi4": "80ms"}}``) and its errors
name those keys; from the command line they name the flags (``--max-latency``).
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from edgeprune.errors import ConfigError
from .units import parse_count, parse_fraction, parse_points, parse_ratio, parse_size, parse_time

PYPROJECT = "pyproject.toml"
EDGEPRUNE_TOML = "edgeprune.toml"
DEFAULT_DEFINITION = "prunable_encoder"  # compression/sparsity definition used by a bare value
LATENCY_STATISTICS = ("p50", "mean", "p90", "p99")
DEFAULT_LATENCY_TARGET = "host"  # a bare --max-latency 25ms
OFF = "off"
BUDGETS_ARG = "check(budgets=...)"  # where budgets passed in Python were set (never a file: no annotation line)
OVERRIDES_ARG = "check(overrides=...)"

BUDGET_KEYS = ("max_size", "max_params", "min_compression", "min_sparsity", "max_latency", "min_accuracy",
               "max_accuracy_drop")
SETTING_KEYS = ("latency_statistic",)
VALID_KEYS = BUDGET_KEYS + SETTING_KEYS

_TABLE_KEYS = {"max_latency": parse_time, "min_compression": parse_ratio, "min_sparsity": parse_fraction}
_SCALAR_KEYS = {"max_size": parse_size, "max_params": parse_count, "min_accuracy": parse_fraction,
                "max_accuracy_drop": parse_points}
_TARGET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Budgets:
    """Parsed budgets in SI units: bytes, counts, ratios, fractions, seconds, percentage points.

    ``None`` / empty means "not gated". ``sources`` maps each budget's display name (``max_size``,
    ``max_latency[rpi4]``) to where it was set (``pyproject.toml:12`` or ``--max-size``).
    """

    max_size: int | None = None
    max_params: int | None = None
    min_compression: Mapping[str, float] = field(default_factory=dict)  # definition -> ratio
    min_sparsity: Mapping[str, float] = field(default_factory=dict)  # definition -> fraction
    max_latency: Mapping[str, float] = field(default_factory=dict)  # target -> seconds
    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None
    latency_statistic: str = "p50"
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.latency_statistic not in LATENCY_STATISTICS:
            raise ConfigError(f"latency_statistic = {self.latency_statistic!r} is not known; "
                              f"choose one of: {', '.join(LATENCY_STATISTICS)}")
        for name in ("min_compression", "min_sparsity", "max_latency", "sources"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def empty(self) -> bool:
        return not any((self.max_size is not None, self.max_params is not None, self.min_compression,
                        self.min_sparsity, self.max_latency, self.min_accuracy is not None,
                        self.max_accuracy_drop is not None))

    def names(self) -> list[str]:
        """Display names of every budget that is set, in evaluation order."""
        out: list[str] = []
        for key in BUDGET_KEYS:
            value = getattr(self, key)
            if key in _TABLE_KEYS:
                out += [f"{key}[{k}]" for k in value]
            elif value is not None:
                out.append(key)
        return out

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "budgets", text: str | None = None,
                   source: str | None = None, header: str = "budgets") -> Budgets:
        """Parse a TOML budgets table; unknown keys and malformed values are ConfigErrors."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} must be a table of budgets such as max_size = \"30MB\"")
        unknown = sorted(set(table) - set(VALID_KEYS))
        if unknown:
            raise ConfigError(f"unknown budget key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {where}; "
                              f"valid keys: {', '.join(VALID_KEYS)}")
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}

        def locate(key: str, sub: str | None = None) -> str:
            line = _find_line(text, header, key, sub) if text is not None else None
            base = source or where
            return f"{base}:{line}" if line else base

        for key, raw in table.items():
            if key == "latency_statistic":
                values[key] = raw if isinstance(raw, str) else repr(raw)
            elif key in _SCALAR_KEYS:
                values[key] = _SCALAR_KEYS[key](raw, key)
                sources[key] = locate(key)
            else:
                parsed = _parse_table_value(key, raw)
                values[key] = parsed
                for sub in parsed:
                    sources[f"{key}[{sub}]"] = locate(key, sub if isinstance(raw, Mapping) else None)
        return cls(**values, sources=sources)

    def override(self, overrides: Mapping[str, Any], cli: bool = False) -> Budgets:
        """Values on top of these budgets, key by key; ``off`` removes a budget.

        ``overrides`` has the shapes of the TOML table (``{"max_size": "30MB", "max_latency": {"rpi4":
        "80ms"}}``); a table key also takes ``NAME=VALUE`` (or bare ``VALUE``) strings, alone or in a
        list, as click collects repeated flags. ``cli``: the values are flags, so errors and sources
        name ``--max-latency``; otherwise they name the keys (``max_latency.rpi4``).
        """
        changes: dict[str, Any] = {}
        sources = dict(self.sources)
        for key, raw in overrides.items():
            if raw is None or raw == () or raw == []:
                continue
            if key not in VALID_KEYS:
                raise ConfigError(f"unknown budget {key!r}; valid keys: {', '.join(VALID_KEYS)}")
            name = "--" + key.replace("_", "-") if cli else key
            source = name if cli else OVERRIDES_ARG
            if key == "latency_statistic":
                changes[key] = raw
            elif key in _SCALAR_KEYS:
                if _is_off(raw):
                    changes[key] = None
                    sources.pop(key, None)
                else:
                    changes[key] = _SCALAR_KEYS[key](raw, name)
                    sources[key] = source
            else:
                merged = dict(getattr(self, key))
                for sub, value in _entries(key, raw, name):
                    if _is_off(value):
                        merged.pop(sub, None)
                        sources.pop(f"{key}[{sub}]", None)
                    else:
                        merged[sub] = _TABLE_KEYS[key](value, f"{name} {sub}" if cli else f"{key}.{sub}")
                        sources[f"{key}[{sub}]"] = source
                changes[key] = merged
        return replace(self, **changes, sources=sources)


def _is_off(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == OFF


def _entries(key: str, raw: Any, name: str) -> list[tuple[str, Any]]:
    """(target or definition, value) pairs of a table key's override: a table, or NAME=VALUE strings."""
    if isinstance(raw, Mapping):
        for sub in raw:
            _check_name(name, sub)
        return list(raw.items())
    items = [raw] if isinstance(raw, (str, int, float)) else list(raw)
    return [_split_assignment(key, name, item) if isinstance(item, str) else (_default_name(key), item)
            for item in items]


def _default_name(key: str) -> str:
    return DEFAULT_LATENCY_TARGET if key == "max_latency" else DEFAULT_DEFINITION


def _parse_table_value(key: str, raw: Any) -> dict[str, float]:
    """``"5x"`` -> {default: 5.0}; ``{ host = "25ms" }`` -> {"host": 0.025}."""
    parse = _TABLE_KEYS[key]
    if isinstance(raw, Mapping):
        if not raw:
            raise ConfigError(f"{key} is an empty table; give at least one entry such as "
                              f"{key} = {{ {_default_name(key)} = ... }}")
        out = {}
        for name, value in raw.items():
            _check_name(key, name)
            out[name] = parse(value, f"{key}.{name}")
        return out
    return {_default_name(key): parse(raw, key)}


def _split_assignment(key: str, flag: str, item: str) -> tuple[str, str]:
    if "=" in item:
        name, value = (s.strip() for s in item.split("=", 1))
        _check_name(flag, name)
        return name, value
    return _default_name(key), item.strip()


def _check_name(key: str, name: str) -> None:
    if not isinstance(name, str) or not _TARGET_RE.match(name):
        raise ConfigError(f"{key}: {name!r} is not a valid target or definition name "
                          "(letters, digits, '.', '_' and '-'), as in rpi4=80ms")


def _find_line(text: str, header: str, key: str, sub: str | None) -> int | None:
    """1-based line of ``key`` (or ``sub`` inside ``[header.key]``) for annotations; None if not found."""
    lines = text.splitlines()
    h = re.escape(header)
    sections = [(rf"^\s*\[\s*{h}\s*\]", rf"^\s*{re.escape(key)}\s*=")]
    if sub is not None:
        sections.insert(0, (rf"^\s*\[\s*{h}\.{re.escape(key)}\s*\]", rf"^\s*\"?{re.escape(sub)}\"?\s*="))
    for head_re, key_re in sections:
        inside = False
        for i, line in enumerate(lines, 1):
            if re.match(head_re, line):
                inside = True
                continue
            if inside and re.match(r"^\s*\[", line):
                inside = False
            if inside and re.match(key_re, line):
                return i
    return None


# ----------------------------------------------------------------------------------------------
# Files

def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read budget file {path} ({e.strerror or e})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML ({e}); fix the file or name another budget file") from None


def _budget_table(path: Path, doc: dict[str, Any]) -> tuple[Any, str] | None:
    """The budgets table of a parsed file and its header, None if the file declares none."""
    if path.name == PYPROJECT:
        root = doc.get("tool", {}).get("edgeprune")
        header, where = "tool.edgeprune.budgets", "[tool.edgeprune]"
    else:
        root, header, where = doc, "budgets", "the top level"
    if root is None:
        return None
    if not isinstance(root, Mapping):
        raise ConfigError(f"{path}: {where} must be a table")
    misplaced = sorted(set(root) & set(VALID_KEYS))
    if misplaced:
        raise ConfigError(f"{path}: {', '.join(misplaced)} must go under [{header}], not at {where}")
    if "budgets" not in root:
        return None
    return root["budgets"], header


def find_config(start_dirs: Iterable[str | os.PathLike[str]]) -> Path | None:
    """The nearest ``edgeprune.toml``, or ``pyproject.toml`` with ``[tool.edgeprune.budgets]``."""
    seen: set[Path] = set()
    for start in start_dirs:
        d = Path(start).resolve()
        for folder in (d, *d.parents):
            if folder in seen:
                break
            seen.add(folder)
            if (folder / EDGEPRUNE_TOML).is_file():
                return folder / EDGEPRUNE_TOML
            py = folder / PYPROJECT
            if py.is_file():
                doc, _ = _read_toml(py)
                if _budget_table(py, doc) is not None:
                    return py
    return None


def _display(path: Path) -> str:
    """Path relative to the working directory when inside it (what CI annotations want)."""
    try:
        return Path(os.path.relpath(path)).as_posix() if path.resolve().is_relative_to(Path.cwd().resolve()) \
            else str(path)
    except ValueError:  # pragma: no cover - different drive on Windows
        return str(path)


def load_file(path: str | os.PathLike[str]) -> Budgets:
    """Budgets from one file; a file that declares none is an error (it was named on purpose)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"budget file {path} does not exist; name an edgeprune.toml or pyproject.toml")
    doc, text = _read_toml(path)
    found = _budget_table(path, doc)
    if found is None:
        where = "[tool.edgeprune.budgets]" if path.name == PYPROJECT else "[budgets]"
        raise ConfigError(f"{path} declares no budgets; add a {where} table such as max_size = \"30MB\"")
    table, header = found
    return Budgets.from_table(table, where=f"{path} [{header}]", text=text, source=_display(path), header=header)


def load_budgets(artifact: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None,
                 overrides: Mapping[str, Any] | None = None, search: bool = True,
                 cli: bool = False) -> tuple[Budgets, Path | None]:
    """Budgets for ``artifact``: ``config`` or the discovered file, then ``overrides`` on top
    (``cli``: they are command-line flags; see :meth:`Budgets.override`).

    Returns the budgets and the file they came from (None when only the overrides set them).
    """
    path: Path | None = None
    if config is not None:
        path = Path(config)
    elif search:
        starts = []
        if artifact is not None:
            a = Path(artifact)
            starts.append(a if a.is_dir() else a.parent)
        starts.append(Path.cwd())
        path = find_config(starts)
    budgets = load_file(path) if path is not None else Budgets()
    if overrides:
        budgets = budgets.override(overrides, cli=cli)
    return budgets, path
