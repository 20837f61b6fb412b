"""Hub ids from the local cache, fine-tuned classifiers reused as teachers, GLUE label names, output file modes."""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from edgeprune.compress import finetuned_for_task
from edgeprune.data import get_task
from edgeprune.data.files import infer_task
from edgeprune.errors import ModelError
from edgeprune.io import atomic_dir, read_json, write_json
from edgeprune.models import resolve_model_path

REPO = "acme/tiny-sst2"


def _cache_with(model_dir: Path, cache: Path, repo: str, id2label: dict[str, str] | None) -> Path:
    """A Hugging Face hub cache holding ``model_dir`` as ``repo`` (the layout huggingface_hub writes)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(model_dir, snap)
    if id2label is not None:
        cfg = json.loads((snap / "config.json").read_text())
        cfg["id2label"] = id2label
        cfg["label2id"] = {v: int(k) for k, v in id2label.items()}
        (snap / "config.json").write_text(json.dumps(cfg))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(snap.name)
    return snap


@pytest.fixture()
def hub_cache(tiny_bert: Path, tmp_path: Path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return _cache_with(tiny_bert, cache, REPO, {"0": "POSITIVE", "1": "NEGATIVE"})


def test_hub_id_resolves_from_the_local_cache(hub_cache: Path):
    assert resolve_model_path(REPO) == hub_cache
    with pytest.raises(ModelError, match="not a folder, an alias .* or a model id in the local Hugging Face cache"):
        resolve_model_path("acme/not-cached")


def test_a_fine_tuned_hub_classifier_is_the_teacher(hub_cache: Path, tiny_bert: Path, tmp_path: Path):
    from tests.support.checkpoints import build_tiny_checkpoint  # noqa: F401 - the fixture builds it

    csv = tmp_path / "d.csv"
    csv.write_text("text,label\ngreat,positive\nawful,negative\nfine,positive\n")
    spec = infer_task(csv, label_order=["POSITIVE", "NEGATIVE"])
    assert spec.labels == ("positive", "negative")  # the model's order, not alphabetical
    assert finetuned_for_task(REPO, spec.to_dict()) == (hub_cache, True)
    assert finetuned_for_task(REPO, infer_task(csv).to_dict())[1] is False  # other order: fine-tune again
    assert finetuned_for_task(str(tiny_bert), "sst2")[1] is False  # LABEL_0/LABEL_1: an untrained head


def test_glue_label_names_reach_the_checkpoint(tiny_bert: Path):
    from edgeprune.training import load_for_task

    m, _ = load_for_task(str(tiny_bert), get_task("mrpc"), new_head=True)
    assert m.config.id2label == {0: "not_equivalent", 1: "equivalent"}
    assert get_task("sst2").label_names == ("negative", "positive")
    assert get_task("rte").label_names == ("entailment", "not_entailment")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_respect_the_umask(tmp_path: Path, umask: int):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "a" / "x.json", {"a": 1})
        with atomic_dir(tmp_path / "bundle") as tmp:
            (tmp / "f.txt").write_text("x")
            write_json(tmp / "m.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a" / "x.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "bundle").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "bundle" / "m.json").stat().st_mode) == 0o666 & ~umask
    assert read_json(tmp_path / "a" / "x.json") == {"a": 1}


def test_model_card_base_model_and_licence(hub_cache: Path):
    from edgeprune.modelcard import base_model_of

    assert base_model_of("minilm-l6") == ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0")
    (hub_cache / "README.md").write_text("---\nlicense: mit\ntags: [x]\n---\n# card\n")
    assert base_model_of(REPO) == (REPO, "mit")
    (hub_cache / "README.md").unlink()
    assert base_model_of(str(hub_cache)) == (REPO, None)  # the snapshot folder itself names its repo


def test_compress_a_hub_classifier_on_a_csv_without_fine_tuning(hub_cache: Path, glue: Path, tmp_path: Path):
    from click.testing import CliRunner

    from edgeprune.cli import cli

    with open(glue / "SST-2" / "train.tsv", encoding="utf-8") as f:
        next(f)
        rows = [line.rstrip("\n").split("\t") for _, line in zip(range(80), f)]
    csv = tmp_path / "mine.csv"
    csv.write_text("sentence,label\n" + "".join(
        f"\"{s.replace(chr(34), '')}\",{'positive' if lab == '1' else 'negative'}\n" for s, lab in rows))
    res = CliRunner().invoke(cli, ["compress", "--model", REPO, "--data", str(csv), "--target", "2x", "--block",
                                   "16x1", "--epochs-reg", "1", "--epochs-retrain", "0", "--batch-size", "16",
                                   "--max-seq-len", "32", "--out", str(tmp_path / "run")], standalone_mode=False)
    assert res.exception is None, res.exception
    rec = read_json(tmp_path / "run" / "compression.json")
    assert "dense_eval" in rec["phases"] and "finetune" not in rec["phases"]  # used as the dense teacher as it is
    assert rec["task"]["labels"] == ["positive", "negative"]  # the Hub model's label order
    assert read_json(tmp_path / "run" / "model" / "config.json")["id2label"] == {"0": "POSITIVE", "1": "NEGATIVE"}
    from edgeprune.modelcard import read_front_matter

    assert read_front_matter(tmp_path / "run" / "model")["base_model"] == REPO
