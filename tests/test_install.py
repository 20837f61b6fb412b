"""The installed layout: import paths, the console script, package data, and a torch-free ``--help``."""
from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_paths_map_to_the_top_level_folders():
    import edgeprune
    import edgeprune.exporters
    import edgeprune.targets

    assert Path(edgeprune.__file__).parent.name == "edgeprune"
    assert Path(edgeprune.exporters.__file__).parent.name == "exporters"
    assert Path(edgeprune.targets.__file__).parent.name == "targets"
    for mod in ("edgeprune.data", "edgeprune.commands", "edgeprune.training", "edgeprune.exporters.api"):
        importlib.import_module(mod)
    assert edgeprune.__version__ == md.version("edgeprune")


def test_console_script_is_declared_and_installed():
    eps = [ep for ep in md.entry_points(group="console_scripts") if ep.name == "edgeprune"]
    assert len(eps) == 1 and eps[0].value == "edgeprune.cli:main"
    assert (Path(sys.executable).parent / "edgeprune").is_file()


def test_demo_data_ships_with_the_package():
    from importlib.resources import files

    demo = files("edgeprune").joinpath("demo")
    assert demo.joinpath("train.tsv").is_file() and demo.joinpath("dev.tsv").is_file()


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd="/")  # outside the checkout: only the installed package can be imported


def test_help_does_not_import_torch_or_tensorflow():
    proc = _run(
        "import sys\n"
        "from edgeprune.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'transformers', 'onnxruntime') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('LIGHT')\n")
    assert proc.returncode == 0, proc.stderr
    assert "finetune" in proc.stdout and "LIGHT" in proc.stdout


def test_console_script_help_runs():
    exe = Path(sys.executable).parent / "edgeprune"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr
    for name in ("demo", "finetune", "eval", "compress", "export", "profile", "check"):
        assert name in proc.stdout


def test_wheel_holds_the_installed_layout(tmp_path: Path):
    """``pip install .`` installs what the wheel holds: core, exporters and targets under ``edgeprune/``."""
    import shutil

    src = tmp_path / "src"  # build from a copy: an in-tree build would leave build/ in the checkout
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache")
    for item in ("edgeprune", "exporters", "targets", "pyproject.toml", "README.md", "LICENSE"):
        if (REPO / item).is_dir():
            shutil.copytree(REPO / item, src / item, ignore=junk)
        elif (REPO / item).is_file():
            shutil.copy2(REPO / item, src / item)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    if proc.returncode != 0:
        pytest.fail(f"pip wheel failed: {proc.stderr[-2000:]}")
    (wheel,) = tmp_path.glob("edgeprune-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in ("edgeprune/__init__.py", "edgeprune/cli.py", "edgeprune/training.py", "edgeprune/data/glue.py",
                 "edgeprune/commands/finetune.py", "edgeprune/exporters/__init__.py", "edgeprune/exporters/api.py",
                 "edgeprune/targets/__init__.py", "edgeprune/demo/train.tsv", "edgeprune/demo/dev.tsv"):
        assert need in names, need
    # every module of the three source trees ships (a new subpackage missing from pyproject's list fails here)
    root = Path(__file__).resolve().parents[1]
    for top, pkg in (("edgeprune", "edgeprune"), ("exporters", "edgeprune/exporters"), ("targets", "edgeprune/targets")):
        for py in (root / top).rglob("*.py"):
            rel = py.relative_to(root / top).as_posix()
            assert f"{pkg}/{rel}" in names, f"{top}/{rel} is not in the wheel: add its package to pyproject.toml"
    assert not any(n.startswith(("tests/", "bench/", "exporters/", "targets/")) for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "edgeprune = edgeprune.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_tflite_needs_no_tensorflow():
    """One model definition (PyTorch) serves both runtimes: TFLite goes through litert-torch, so TensorFlow and
    tf2onnx are in no extra and nothing in the package imports them."""
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    every = project["dependencies"] + [d for ds in extras.values() for d in ds]
    assert not any(d.startswith(("tensorflow", "tf2onnx", "tf-keras")) for d in every), every
    assert any(d.startswith("litert-torch") for d in extras["tflite"])
    for folder in ("edgeprune", "exporters", "targets"):
        for path in (REPO / folder).rglob("*.py"):
            assert not re.search(r"^\s*(import|from) (tensorflow|tf2onnx)\b", path.read_text(), re.M), path


def test_ci_examples_install_edgeprune_from_the_repository_or_a_wheel():
    """edgeprune is not on PyPI: every documented `pip install` of it names a local checkout or a wheel."""
    import re

    for doc in (REPO / "README.md", REPO / "docs" / "ci-gate.md"):
        installs = [ln for ln in doc.read_text().splitlines() if re.search(r"pip install .*edgeprune", ln)]
        assert installs, doc
        for line in installs:
            targets = re.findall(r"""["']?(\S*edgeprune\S*?)["']?(?:\s|$)""", line.split("#")[0])
            assert targets and all(t.startswith(("./", "dist/")) for t in targets), (doc.name, line)
