"""Strict unit parsing: every accepted form gives the hand-computed SI value, every other is a ConfigError."""
from __future__ import annotations

import pytest

from edgeprune.budget.units import (format_count, format_fraction, format_points, format_ratio, format_size,
                                    format_time, parse_count, parse_fraction, parse_points, parse_ratio, parse_size,
                                    parse_time)
from edgeprune.errors import ConfigError


@pytest.mark.parametrize("text, expected", [
    ("30MB", 30_000_000), ("30MiB", 30 * 1024 * 1024), ("30 MB", 30_000_000), ("1.5GB", 1_500_000_000),
    ("2GiB", 2 * 1024**3), ("512kB", 512_000), ("512KB", 512_000), ("512KiB", 512 * 1024), ("1200B", 1200),
    ("0.5MiB", 524_288), ("1_000B", 1000), ("1TB", 10**12),
])
def test_size(text, expected):
    assert parse_size(text, "max_size") == expected


@pytest.mark.parametrize("text, fragment", [
    ("30", "no unit"), (30, "no unit"), ("30mb", "bits"), ("30Mb", "bits"), ("30 megabytes", "unknown size unit"),
    ("-5MB", "not a valid value"), ("MB", "not a valid value"), ("", "not a valid value"), ("3.MB", "not a valid"),
    ("1e6B", "not a valid value"), (True, "not a valid value"), ([1], "not a valid value"),
    ("30MiBs", "unknown size unit"), ("30 M B", "not a valid value"),
])
def test_size_rejects(text, fragment):
    with pytest.raises(ConfigError) as e:
        parse_size(text, "max_size")
    msg = str(e.value)
    assert fragment in msg
    assert "max_size" in msg and "30MB" in msg and "30MiB" in msg  # names the key and the accepted forms


@pytest.mark.parametrize("text, expected", [
    ("25ms", 0.025), ("1.5s", 1.5), ("800us", 0.0008), ("800µs", 0.0008), ("900ns", 9e-7), (".5s", 0.5),
])
def test_time(text, expected):
    assert parse_time(text, "max_latency.host") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text, fragment", [
    ("25", "no unit"), (25, "no unit"), ("25 min", "unknown time unit"), ("25msec", "unknown time unit"),
    ("0ms", "greater than zero"), ("fast", "not a valid value"), ("-1ms", "not a valid value"),
])
def test_time_rejects(text, fragment):
    with pytest.raises(ConfigError, match=fragment) as e:
        parse_time(text, "max_latency.rpi4")
    assert "max_latency.rpi4" in str(e.value) and "25ms" in str(e.value)


@pytest.mark.parametrize("text, expected", [
    ("22.7M", 22_700_000), ("1.2B", 1_200_000_000), ("300k", 300_000), ("300K", 300_000), (22_700_000, 22_700_000),
    ("1_000", 1000), ("4096", 4096), (10.0, 10),
])
def test_count(text, expected):
    assert parse_count(text, "max_params") == expected


@pytest.mark.parametrize("text, fragment", [
    ("22.7", "whole number"), (1.5, "whole number"), ("10G", "unknown count suffix"), ("10MB", "unknown count"),
    ("ten", "not a valid"), ("1.23456789k", "whole number"),
])
def test_count_rejects(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_count(text, "max_params")


@pytest.mark.parametrize("text, expected", [
    ("80%", 0.8), ("0.8", 0.8), (0.8, 0.8), ("100%", 1.0), (0, 0.0), ("12.5%", 0.125), (1, 1.0),
])
def test_fraction(text, expected):
    assert parse_fraction(text, "min_sparsity") == pytest.approx(expected)


@pytest.mark.parametrize("text, fragment", [
    ("80", "above 1"), (80, "above 1"), ("120%", "outside"), ("80pt", "unknown unit"), ("0.8x", "unknown unit"),
])
def test_fraction_rejects(text, fragment):
    with pytest.raises(ConfigError, match=fragment) as e:
        parse_fraction(text, "min_sparsity")
    assert "80%" in str(e.value)  # the accepted forms are named


@pytest.mark.parametrize("text, expected", [("5x", 5.0), ("2.5x", 2.5), ("5", 5.0), (5, 5.0), ("1x", 1.0), ("3X", 3.0)])
def test_ratio(text, expected):
    assert parse_ratio(text, "min_compression") == expected


@pytest.mark.parametrize("text, fragment", [("0.5x", "below 1x"), ("5%", "unknown unit"), ("x5", "not a valid")])
def test_ratio_rejects(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_ratio(text, "min_compression")


@pytest.mark.parametrize("text, expected", [("0.5pt", 0.5), ("1pt", 1.0), ("0.25 pp", 0.25), ("0pt", 0.0)])
def test_points(text, expected):
    assert parse_points(text, "max_accuracy_drop") == expected


@pytest.mark.parametrize("text, fragment", [
    ("0.5", "bare number is ambiguous"), (0.5, "bare number is ambiguous"), ("0.5%", "% is ambiguous"),
    ("101pt", "more than 100"), ("0.5points", "needs the unit pt"),
])
def test_points_rejects(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_points(text, "max_accuracy_drop")


def test_formatting_round_numbers():
    assert format_size(999) == "999 B"
    assert format_size(30_000_000) == "30 MB"
    assert format_size(30 * 2**20, binary=True) == "30 MiB"
    assert format_size(31_234_567) == "31.23 MB"
    assert format_time(0.025) == "25 ms"
    assert format_time(1.5) == "1.5 s"
    assert format_time(0.0008) == "800 us"
    assert format_count(22_700_000) == "22.7M"
    assert format_count(4096) == "4096"
    assert format_fraction(0.8) == "80%"
    assert format_ratio(5.0) == "5x"
    assert format_points(0.5) == "0.5 pt"
