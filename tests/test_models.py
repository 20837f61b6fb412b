"""Model loading: tiny BERT / RoBERTa / DistilBERT, the real packaged MiniLM-L6, broken folders."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeprune.data import GlueExample, load_split
from edgeprune.errors import ModelError
from edgeprune.models import load_model, resolve_model_path, save_model
from edgeprune.training import predict, task_metrics


@pytest.mark.parametrize("arch,cls", [("bert", "BertForSequenceClassification"),
                                      ("roberta", "RobertaForSequenceClassification"),
                                      ("distilbert", "DistilBertForSequenceClassification")])
def test_tiny_checkpoints_load_for_classification_and_regression(arch: str, cls: str,
                                                                 request: pytest.FixtureRequest):
    path = request.getfixturevalue(f"tiny_{arch}")
    model, tok = load_model(path)
    assert type(model).__name__ == cls and model.config.model_type == arch
    ex = [GlueExample("a small model", "runs fast", 0), GlueExample("edge devices", "need small models", 1)]
    assert predict(model, tok, ex, max_seq_len=16).shape == (2, 2)
    reg, _ = load_model(path, num_labels=1)
    assert reg.config.problem_type == "regression"
    assert predict(reg, tok, ex, max_seq_len=16).shape == (2, 1)
    three, _ = load_model(path, num_labels=3, label_names=["contradiction", "entailment", "neutral"])
    assert three.config.id2label[1] == "entailment"


def test_save_and_reload_gives_the_same_logits(tiny_roberta: Path, tmp_path: Path):
    model, tok = load_model(tiny_roberta, num_labels=3)
    out = save_model(model, tok, tmp_path / "saved")
    again, tok2 = load_model(out)
    ex = [GlueExample("pruning blocks", None, 0), GlueExample("a much longer sentence about small edge devices", None, 1)]
    np.testing.assert_allclose(predict(again, tok2, ex), predict(model, tok, ex), atol=1e-6)


def test_predict_keeps_example_order(tiny_bert: Path):
    model, tok = load_model(tiny_bert)
    ex = [GlueExample("x " * n, None, 0) for n in (9, 1, 5, 3)]
    batched = predict(model, tok, ex, batch_size=2)  # sorted by length internally
    one_by_one = np.concatenate([predict(model, tok, [e], batch_size=1) for e in ex])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_real_minilm_l6_loads_and_evaluates(glue: Path):
    path = resolve_model_path("minilm-l6")
    assert (path / "config.json").is_file()
    model, tok = load_model("minilm-l6", num_labels=2)
    cfg = model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == ("bert", 6, 384, 1536)
    assert sum(p.numel() for n, p in model.named_parameters() if n.startswith("bert.encoder")) > 10_000_000
    rep = task_metrics((model, tok), "sst2", glue, limit=8, max_seq_len=64)
    assert rep["num_examples"] == 8 and 0.0 <= rep["accuracy"] <= 1.0
    ex = load_split("mrpc", "dev", glue, limit=3)
    logits = predict(model, tok, ex)
    assert logits.shape == (3, 2) and np.isfinite(logits).all()


def test_missing_and_broken_folders(tmp_path: Path, tiny_bert: Path):
    with pytest.raises(ModelError, match="is not a folder, an alias"):
        load_model(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        load_model(tmp_path / "empty")
    bad_json = tmp_path / "badjson"
    bad_json.mkdir()
    (bad_json / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(bad_json)
    no_weights = tmp_path / "noweights"
    shutil.copytree(tiny_bert, no_weights)
    for f in no_weights.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelError, match="cannot load model"):
        load_model(no_weights)


def test_unsupported_architecture(tmp_path: Path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    with pytest.raises(ModelError, match="unsupported architecture 'gpt2'.*bert, distilbert, roberta"):
        load_model(tmp_path)
