"""Strict unit parsing for budgets: a value either means exactly one thing or is a ConfigError.

Why strict: ``30M`` could be bytes or parameters, ``0.5`` could be a fraction or points, and a
gate that guesses lets a model through that the author meant to stop. Every parser takes the raw
TOML / command-line value and the key it came from (for the message) and returns plain SI numbers:
bytes, seconds, fractions, ratios, counts, percentage points.
"""
from __future__ import annotations

import math
import re

from edgeprune.errors import ConfigError

_NUMBER = r"(?P<num>(?:\d+(?:_\d+)*)(?:\.\d+)?|\.\d+)"
_VALUE_RE = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>[A-Za-zµ%]*)\s*$")

SIZE_UNITS = {
    "B": 1,
    "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}
TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
COUNT_UNITS = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "B": 10**9}
POINT_UNITS = ("pt", "pp")

SIZE_FORMS = "a number with a unit: 30MB, 512kB, 1.5GB (powers of 1000) or 30MiB, 512KiB (powers of 1024), or bytes as 1200B"
TIME_FORMS = "a number with a unit: 25ms, 1.5s, 800us, 900ns"
COUNT_FORMS = "a whole number, or with a suffix: 300k, 22.7M, 1.2B"
FRACTION_FORMS = "a fraction between 0 and 1 (0.8) or a percentage (80%)"
RATIO_FORMS = "a ratio of at least 1, optionally with x: 5x, 2.5x, 5"
POINTS_FORMS = "percentage points with a unit: 0.5pt (also 0.5pp)"


def _split(key: str, value: object, forms: str) -> tuple[float, str]:
    """(number, unit) from a string or a TOML number; anything else names the accepted forms."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{key} = {value!r} is not a valid value; expected {forms}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{key} = {value!r} must be a finite non-negative number; expected {forms}")
        return float(value), ""
    if not isinstance(value, str):
        raise ConfigError(f"{key} = {value!r} is not a valid value; expected {forms}")
    m = _VALUE_RE.match(value)
    if not m:
        raise ConfigError(f"{key} = {value!r} is not a valid value; expected {forms}")
    return float(m.group("num").replace("_", "")), m.group("unit")


def parse_size(value: object, key: str = "size") -> int:
    """Bytes from ``30MB`` (10^6), ``30MiB`` (2^20), ``512kB``/``512KB``, ``1200B``."""
    num, unit = _split(key, value, SIZE_FORMS)
    if unit == "":
        raise ConfigError(f"{key} = {value!r} has no unit; expected {SIZE_FORMS}")
    if unit not in SIZE_UNITS:
        hint = " (lower-case b means bits; edgeprune budgets are in bytes: B)" if unit.endswith("b") else ""
        raise ConfigError(f"{key} = {value!r} has an unknown size unit {unit!r}{hint}; expected {SIZE_FORMS}")
    return int(round(num * SIZE_UNITS[unit]))


def parse_time(value: object, key: str = "time") -> float:
    """Seconds from ``25ms``, ``1.5s``, ``800us``/``800µs``, ``900ns``; a bare number is refused."""
    num, unit = _split(key, value, TIME_FORMS)
    if unit == "":
        raise ConfigError(f"{key} = {value!r} has no unit; expected {TIME_FORMS}")
    if unit not in TIME_UNITS:
        raise ConfigError(f"{key} = {value!r} has an unknown time unit {unit!r}; expected {TIME_FORMS}")
    if num == 0:
        raise ConfigError(f"{key} = {value!r} must be greater than zero; expected {TIME_FORMS}")
    return num * TIME_UNITS[unit]


def parse_count(value: object, key: str = "count") -> int:
    """A parameter count from ``22700000``, ``300k``, ``22.7M``, ``1.2B`` (billions)."""
    num, unit = _split(key, value, COUNT_FORMS)
    if unit not in COUNT_UNITS:
        raise ConfigError(f"{key} = {value!r} has an unknown count suffix {unit!r}; expected {COUNT_FORMS}")
    total = num * COUNT_UNITS[unit]
    if abs(total - round(total)) > 1e-6:
        raise ConfigError(f"{key} = {value!r} is not a whole number of parameters; expected {COUNT_FORMS}")
    return int(round(total))


def parse_fraction(value: object, key: str = "fraction") -> float:
    """A fraction in [0, 1] from ``0.8`` or ``80%``; ``80`` without % is refused as ambiguous."""
    num, unit = _split(key, value, FRACTION_FORMS)
    if unit == "%":
        num /= 100.0
    elif unit != "":
        raise ConfigError(f"{key} = {value!r} has an unknown unit {unit!r}; expected {FRACTION_FORMS}")
    elif num > 1:
        raise ConfigError(f"{key} = {value!r} is above 1: write a percentage ({num:g}%) or a fraction (0.8); "
                          f"expected {FRACTION_FORMS}")
    if not 0.0 <= num <= 1.0:
        raise ConfigError(f"{key} = {value!r} is outside 0..100%; expected {FRACTION_FORMS}")
    return num


def parse_ratio(value: object, key: str = "ratio") -> float:
    """A compression ratio (dense / kept) from ``5x`` or ``5``; must be at least 1."""
    num, unit = _split(key, value, RATIO_FORMS)
    if unit not in ("", "x", "X"):
        raise ConfigError(f"{key} = {value!r} has an unknown unit {unit!r}; expected {RATIO_FORMS}")
    if num < 1:
        raise ConfigError(f"{key} = {value!r} is below 1x (a compression ratio is dense size / kept size); "
                          f"expected {RATIO_FORMS}")
    return num


def parse_points(value: object, key: str = "points") -> float:
    """Percentage points from ``0.5pt``; ``0.5`` and ``0.5%`` are refused (fraction? relative?)."""
    num, unit = _split(key, value, POINTS_FORMS)
    if unit not in POINT_UNITS:
        why = (" (% is ambiguous: relative or absolute?)" if unit == "%" else
               " (a bare number is ambiguous: fraction or points?)" if unit == "" else "")
        raise ConfigError(f"{key} = {value!r} needs the unit pt{why}; expected {POINTS_FORMS}")
    if num > 100:
        raise ConfigError(f"{key} = {value!r} is more than 100 points; expected {POINTS_FORMS}")
    return num


# ----------------------------------------------------------------------------------------------
# Formatting: how limits and measurements are shown back to people, in the unit they wrote.

def format_size(n: float, binary: bool = False) -> str:
    """``31.2 MB`` (or ``29.8 MiB`` when ``binary``), exact bytes below 1 kB."""
    base, names = (1024.0, ("B", "KiB", "MiB", "GiB", "TiB")) if binary else (1000.0, ("B", "kB", "MB", "GB", "TB"))
    if n < base:
        return f"{int(n)} B"
    v = float(n)
    for name in names[1:]:
        v /= base
        if v < base or name == names[-1]:
            return f"{v:.4g} {name}"
    return f"{n} B"  # pragma: no cover


def format_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.4g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.4g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.4g} us"
    return f"{seconds * 1e9:.4g} ns"


def format_count(n: float) -> str:
    """``22.7M`` style, exact below 10k."""
    if n < 10_000:
        return f"{int(n)}"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.4g}{suffix}"
    return f"{int(n)}"  # pragma: no cover


def format_fraction(x: float) -> str:
    return f"{x * 100:.4g}%"


def format_ratio(x: float) -> str:
    return f"{x:.4g}x"


def format_points(x: float) -> str:
    return f"{x:.3g} pt"
