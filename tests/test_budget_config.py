"""Budget files: discovery, strict keys, bad TOML and command-line precedence."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgeprune.budget.config import Budgets, find_config, load_budgets, load_file
from edgeprune.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


PYPROJECT = """
[project]
name = "my-app"

[tool.edgeprune.budgets]
max_size = "30MB"
max_params = "22.7M"
min_compression = "5x"
min_sparsity = "80%"
max_latency = { host = "25ms", rpi4 = "80ms" }
min_accuracy = 0.85
max_accuracy_drop = "0.5pt"
"""


def test_pyproject_every_key(tmp_path):
    b = load_file(write(tmp_path / "pyproject.toml", PYPROJECT))
    assert b.max_size == 30_000_000
    assert b.max_params == 22_700_000
    assert dict(b.min_compression) == {"prunable_encoder": 5.0}
    assert dict(b.min_sparsity) == {"prunable_encoder": pytest.approx(0.8)}
    assert dict(b.max_latency) == {"host": pytest.approx(0.025), "rpi4": pytest.approx(0.08)}
    assert b.min_accuracy == 0.85
    assert b.max_accuracy_drop == 0.5
    assert b.latency_statistic == "p50"
    assert b.names() == ["max_size", "max_params", "min_compression[prunable_encoder]",
                         "min_sparsity[prunable_encoder]", "max_latency[host]", "max_latency[rpi4]",
                         "min_accuracy", "max_accuracy_drop"]
    # Line numbers of each key, for annotations on the pull-request diff (lines counted by hand above).
    assert b.sources["max_size"].endswith("pyproject.toml:5")
    assert b.sources["max_latency[rpi4]"].endswith("pyproject.toml:9")
    assert b.sources["max_accuracy_drop"].endswith("pyproject.toml:11")


def test_budgets_are_frozen(tmp_path):
    b = load_file(write(tmp_path / "pyproject.toml", PYPROJECT))
    with pytest.raises(Exception):
        b.max_size = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        b.max_latency["host"] = 1.0  # type: ignore[index]


def test_edgeprune_toml_subtable_form(tmp_path):
    path = write(tmp_path / "edgeprune.toml", """
        [budgets]
        max_size = "8MiB"
        latency_statistic = "p90"

        [budgets.max_latency]
        rpi4 = "80ms"
        "pixel-8" = "12ms"

        [budgets.min_compression]
        whole_model = "2x"
    """)
    b = load_file(path)
    assert b.max_size == 8 * 2**20
    assert dict(b.max_latency) == {"rpi4": pytest.approx(0.08), "pixel-8": pytest.approx(0.012)}
    assert dict(b.min_compression) == {"whole_model": 2.0}
    assert b.latency_statistic == "p90"
    assert b.sources["max_latency[pixel-8]"].endswith("edgeprune.toml:7")


@pytest.mark.parametrize("body, fragment", [
    ('max_sise = "30MB"', "unknown budget key max_sise"),
    ('max_size = "30"', "has no unit"),
    ('max_size = "30mb"', "bits"),
    ('max_latency = "fast"', "max_latency = 'fast' is not a valid value"),
    ('max_latency = { rpi4 = 80 }', "max_latency.rpi4 = 80 has no unit"),
    ('max_latency = {}', "empty table"),
    ('max_accuracy_drop = 0.5', "needs the unit pt"),
    ('min_sparsity = 80', "above 1"),
    ('latency_statistic = "p75"', "choose one of: p50, mean, p90, p99"),
    ('max_size = [1, 2]', "not a valid value"),
])
def test_bad_values(tmp_path, body, fragment):
    path = write(tmp_path / "edgeprune.toml", f"[budgets]\n{body}\n")
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        load_file(path)


def test_unknown_keys_list_the_valid_ones(tmp_path):
    path = write(tmp_path / "edgeprune.toml", '[budgets]\nmax_sise = "30MB"\nmin_acc = 0.8\n')
    with pytest.raises(ConfigError) as e:
        load_file(path)
    msg = str(e.value)
    assert "max_sise, min_acc" in msg
    for key in ("max_size", "max_params", "min_compression", "min_sparsity", "max_latency", "min_accuracy",
                "max_accuracy_drop"):
        assert key in msg


def test_bad_toml_names_the_file(tmp_path):
    path = write(tmp_path / "pyproject.toml", '[tool.edgeprune.budgets]\nmax_size = "30MB\n')
    with pytest.raises(ConfigError, match="pyproject.toml is not valid TOML"):
        load_file(path)
    # discovery reads it too and fails the same way instead of silently skipping it
    with pytest.raises(ConfigError, match="not valid TOML"):
        find_config([tmp_path])


def test_budgets_misplaced_at_tool_edgeprune(tmp_path):
    path = write(tmp_path / "pyproject.toml", '[tool.edgeprune]\nmax_size = "30MB"\n')
    with pytest.raises(ConfigError, match=r"must go under \[tool.edgeprune.budgets\]"):
        load_file(path)


def test_explicit_file_without_budgets(tmp_path):
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match="declares no budgets"):
        load_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_file(tmp_path / "missing.toml")


def test_discovery_walks_up_from_the_artifact(tmp_path):
    write(tmp_path / "pyproject.toml", PYPROJECT)
    art = tmp_path / "build" / "bundle" / "model.onnx"
    art.parent.mkdir(parents=True)
    art.write_bytes(b"x")
    assert find_config([art.parent]) == (tmp_path / "pyproject.toml").resolve()
    b, path = load_budgets(art)
    assert path == (tmp_path / "pyproject.toml").resolve() and b.max_size == 30_000_000


def test_discovery_skips_pyproject_without_budgets_and_prefers_edgeprune_toml(tmp_path):
    write(tmp_path / "edgeprune.toml", '[budgets]\nmax_size = "1MB"\n')
    write(tmp_path / "sub" / "pyproject.toml", '[project]\nname = "x"\n[tool.edgeprune]\nother = 1\n')
    assert find_config([tmp_path / "sub"]) == (tmp_path / "edgeprune.toml").resolve()
    write(tmp_path / "sub" / "pyproject.toml", PYPROJECT)
    write(tmp_path / "sub" / "edgeprune.toml", '[budgets]\nmax_size = "2MB"\n')
    b, path = load_budgets(tmp_path / "sub")
    assert path.name == "edgeprune.toml" and b.max_size == 2_000_000  # same folder: edgeprune.toml wins


def test_discovery_falls_back_to_cwd(tmp_path, monkeypatch):
    project = tmp_path / "project"
    write(project / "pyproject.toml", PYPROJECT)
    elsewhere = tmp_path / "artifacts"
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    b, path = load_budgets(elsewhere)
    assert path == (project / "pyproject.toml").resolve()
    assert b.sources["max_size"] == "pyproject.toml:5"  # relative to the working directory


def test_no_search_reads_no_file(tmp_path, monkeypatch):
    write(tmp_path / "pyproject.toml", PYPROJECT)
    monkeypatch.chdir(tmp_path)
    b, path = load_budgets(tmp_path, search=False)
    assert path is None and b.empty
    b, path = load_budgets(tmp_path, search=False, overrides={"max_size": "1MB"})
    assert path is None and b.names() == ["max_size"] and not b.empty


def test_cli_overrides_win_key_by_key(tmp_path):
    path = write(tmp_path / "pyproject.toml", PYPROJECT)
    b, _ = load_budgets(tmp_path, config=path, cli=True, overrides={
        "max_size": "10MiB", "max_latency": ["rpi4=60ms", "pixel=15ms"], "min_accuracy": None,
        "max_accuracy_drop": "off", "min_compression": ("whole_model=2x",), "latency_statistic": "p90"})
    assert b.max_size == 10 * 2**20 and b.sources["max_size"] == "--max-size"
    assert dict(b.max_latency) == {"host": pytest.approx(0.025), "rpi4": pytest.approx(0.06),
                                   "pixel": pytest.approx(0.015)}
    assert b.sources["max_latency[host]"].endswith(":9") and b.sources["max_latency[rpi4]"] == "--max-latency"
    assert b.min_accuracy == 0.85  # None = flag not given: the file's value stays
    assert b.max_accuracy_drop is None and "max_accuracy_drop" not in b.sources  # "off" removes it
    assert dict(b.min_compression) == {"prunable_encoder": 5.0, "whole_model": 2.0}
    assert b.latency_statistic == "p90"


def test_override_bare_latency_means_host_and_off_per_target():
    b = Budgets().override({"max_latency": ["25ms"]})
    assert dict(b.max_latency) == {"host": pytest.approx(0.025)}
    b = b.override({"max_latency": ["host=off"]})
    assert b.empty


@pytest.mark.parametrize("overrides, fragment", [
    ({"max_size": "30"}, "--max-size = '30' has no unit"),
    ({"max_latency": ["rpi 4=80ms"]}, "not a valid target"),
    ({"max_latency": ["rpi4=80"]}, "--max-latency rpi4 = '80' has no unit"),
    ({"max_params": "lots"}, "--max-params"),
    ({"latency_statistic": "p75"}, "choose one of"),
])
def test_bad_overrides(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        Budgets().override(overrides, cli=True)


def test_python_overrides_take_the_toml_shapes_and_name_keys():
    """From Python the overrides look like the TOML table, and errors name its keys, never a flag."""
    b = Budgets().override({"max_size": "30MB", "max_params": 1_000_000, "min_accuracy": 0.85,
                            "max_latency": {"rpi4": "80ms", "host": "25ms"}, "min_compression": 5})
    assert b.max_size == 30_000_000 and b.max_params == 1_000_000 and b.min_accuracy == 0.85
    assert dict(b.max_latency) == {"rpi4": pytest.approx(0.08), "host": pytest.approx(0.025)}
    assert dict(b.min_compression) == {"prunable_encoder": 5.0}
    assert b.sources["max_latency[rpi4]"] == "check(overrides=...)"
    assert b.override({"max_latency": {"rpi4": "off"}}).max_latency.keys() == {"host"}
    for overrides, fragment in (({"max_latency": {"rpi4": "80"}}, "max_latency.rpi4 = '80' has no unit"),
                                ({"max_size": "30"}, "max_size = '30' has no unit"),
                                ({"max_latency": {"rpi 4": "80ms"}}, "max_latency: 'rpi 4' is not a valid target"),
                                ({"max_sise": "30MB"}, "unknown budget 'max_sise'")):
        with pytest.raises(ConfigError) as e:
            Budgets().override(overrides)
        assert fragment in str(e.value) and "--" not in str(e.value)
