"""Shared session fixtures: tiny real checkpoints (built once per session) and the shared GLUE folder."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
# TFLite formulation timings are cached per machine (exporters/timing_cache.py): tests time afresh, in a
# cache of their own, never reading or filling the user's
os.environ["EDGEPRUNE_CACHE_DIR"] = tempfile.mkdtemp(prefix="edgeprune-test-cache-")


def _tiny(tmp_path_factory: pytest.TempPathFactory, arch: str) -> Path:
    from tests.support.checkpoints import build_tiny_checkpoint

    return build_tiny_checkpoint(arch, tmp_path_factory.mktemp(f"tiny_{arch}"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BERT sequence classifier (2 labels) with its own tokenizer."""
    return _tiny(tmp_path_factory, "bert")


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(tmp_path_factory, "roberta")


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(tmp_path_factory, "distilbert")


@pytest.fixture(scope="session")
def glue() -> Path:
    """The real GLUE folder the benchmarks read too (read-only; never copy it into the repo)."""
    from bench.common import glue_dir

    path = glue_dir()
    if not (path / "MRPC" / "train.tsv").is_file():
        pytest.fail(f"shared GLUE data not found at {path}; set EDGEPRUNE_GLUE")
    return path
