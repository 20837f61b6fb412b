"""Dense fine-tuning on real GLUE subsets with tiny BERT / RoBERTa / DistilBERT checkpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeprune.data import load_split
from edgeprune.errors import ConfigError, ModelError
from edgeprune.io import read_json
from edgeprune.models import load_model
from edgeprune.training import TrainConfig, encode, finetune, make_trainer, predict, run_state, task_metrics

FAST = TrainConfig(epochs=2, lr=1e-3, batch_size=16, eval_batch_size=32, max_seq_len=64, train_limit=96,
                   eval_limit=48, save_steps=4, logging_steps=2, warmup_ratio=0.0)


# --------------------------------------------------------------------------------------------- config


def test_train_config_round_trips():
    cfg = TrainConfig(epochs=1.5, lr=3e-5, train_limit=10)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("kwargs,match", [
    ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"batch_size": 0}, "batch_size"),
    ({"max_seq_len": 1024}, "at most 512"), ({"warmup_ratio": 1.5}, "warmup_ratio"), ({"max_steps": 0}, "max_steps"),
    ({"train_limit": -3}, "train_limit"), ({"seed": -1}, "seed"),
])
def test_train_config_rejects_bad_values(kwargs: dict, match: str):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_train_config_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown training setting.*learning_rate.*valid:"):
        TrainConfig.from_dict({"learning_rate": 1e-5})


# ----------------------------------------------------------------------------------------------- data


def test_encode_truncates_and_keeps_labels(tiny_bert: Path, glue: Path):
    _, tok = load_model(tiny_bert)
    pairs = load_split("rte", "train", glue, limit=8)
    ds = encode(tok, pairs, max_seq_len=32)
    assert len(ds) == 8
    assert all(len(f["input_ids"]) <= 32 for f in ds.features)
    assert max(len(f["input_ids"]) for f in ds.features) == 32  # RTE premises are long
    assert [f["labels"] for f in ds.features] == [e.label for e in pairs]
    assert "token_type_ids" in ds[0] and 1 in ds[0]["token_type_ids"]  # second segment present
    scores = encode(tok, load_split("stsb", "dev", glue, limit=4), max_seq_len=32)
    assert all(isinstance(f["labels"], float) for f in scores.features)


# ------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert"])
def test_training_lowers_loss_and_checkpoint_reloads(arch: str, request: pytest.FixtureRequest, glue: Path,
                                                      tmp_path: Path):
    ckpt = request.getfixturevalue(f"tiny_{arch}")
    torch.manual_seed(0)
    model, tok = load_model(ckpt, num_labels=2)
    train = load_split("sst2", "train", glue, limit=64)
    cfg = TrainConfig(epochs=4, lr=2e-3, batch_size=16, max_seq_len=48, warmup_ratio=0.0, save_steps=8,
                      logging_steps=4, save_total_limit=1)
    trainer = make_trainer(model, tok, "sst2", train, train, cfg, tmp_path)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_loss"] < before  # the loss on the examples it trained on goes down
    assert 0.0 <= after["eval_main"] <= 1.0
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(logged) >= 3
    # the last checkpoint holds the trained weights: reloading it gives the same logits
    ckpts = sorted((tmp_path / "checkpoints").glob("checkpoint-*"))
    assert [c.name for c in ckpts] == ["checkpoint-16"]
    reloaded, rtok = load_model(ckpts[-1])
    dev = load_split("sst2", "dev", glue, limit=16)
    np.testing.assert_allclose(predict(reloaded, rtok, dev, max_seq_len=48),
                               predict(trainer.model, tok, dev, max_seq_len=48), atol=1e-5)


def test_finetune_writes_run_dir_and_eval_agrees(tiny_bert: Path, glue: Path, tmp_path: Path):
    out = tmp_path / "run"
    rep = finetune(str(tiny_bert), "mrpc", glue, out, FAST)
    assert run_state(out) == "finished"
    saved = read_json(out / "metrics.json")
    assert saved["main"] == rep["main"] == rep["f1"] and saved["metric"] == "f1"
    assert saved["num_examples"] == 48 and saved["train"]["global_step"] == 12
    conf = read_json(out / "config.json")
    assert conf["task"] == "mrpc" and TrainConfig.from_dict(conf["train"]) == FAST
    assert (out / "model" / "config.json").is_file() and (out / "model" / "tokenizer_config.json").is_file()
    # task_metrics() on the run folder (own batching, sorted by length) agrees with the Trainer's evaluation
    ev = task_metrics(out, "mrpc", glue, limit=48, max_seq_len=64)
    assert ev["main"] == pytest.approx(rep["main"], abs=1e-9)
    assert ev["accuracy"] == pytest.approx(rep["accuracy"], abs=1e-9)


def test_finetune_regression_head_on_stsb(tiny_bert: Path, glue: Path, tmp_path: Path):
    rep = finetune(str(tiny_bert), "stsb", glue, tmp_path / "r", FAST)  # 2-label checkpoint -> 1 output
    assert rep["metric"] == "pearson" and -1.0 <= rep["main"] <= 1.0 and "spearman" in rep
    model, _ = load_model(tmp_path / "r" / "model")
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"


def test_evaluate_refuses_a_head_of_the_wrong_size(tiny_bert: Path, glue: Path):
    with pytest.raises(ModelError, match="2 output.*STS-B needs 1"):
        task_metrics(tiny_bert, "stsb", glue, limit=4)


def test_run_dir_guards(tiny_bert: Path, glue: Path, tmp_path: Path):
    out = tmp_path / "run"
    cfg = TrainConfig(max_steps=2, batch_size=8, train_limit=16, eval_limit=8, max_seq_len=32)
    first = finetune(str(tiny_bert), "sst2", glue, out, cfg)
    with pytest.raises(ConfigError, match="already holds a finished run"):
        finetune(str(tiny_bert), "sst2", glue, out, cfg)
    assert finetune(str(tiny_bert), "sst2", glue, out, cfg, resume=True) == first  # finished: just its metrics
    # missing data must not cost the finished run, even with overwrite
    with pytest.raises(Exception, match="does not exist"):
        finetune(str(tiny_bert), "sst2", tmp_path / "no-data", out, cfg, overwrite=True)
    assert run_state(out) == "finished"
    again = finetune(str(tiny_bert), "sst2", glue, out, cfg, overwrite=True)
    assert again["main"] == pytest.approx(first["main"])  # same seed, same result
    (out / "metrics.json").unlink()
    with pytest.raises(ConfigError, match="unfinished run; pass --resume"):
        finetune(str(tiny_bert), "sst2", glue, out, cfg)
    with pytest.raises(ConfigError, match=r"settings of the interrupted run \(lr"):
        finetune(str(tiny_bert), "sst2", glue, out, TrainConfig(**{**cfg.to_dict(), "lr": 1e-4}), resume=True)


def test_resume_after_interrupt_matches_uninterrupted_run(tiny_bert: Path, glue: Path, tmp_path: Path):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                raise KeyboardInterrupt

    full = finetune(str(tiny_bert), "mrpc", glue, tmp_path / "full", FAST)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        finetune(str(tiny_bert), "mrpc", glue, part, FAST, callbacks=[Interrupt()])
    assert run_state(part) == "partial" and not (part / "model").exists()
    assert sorted(p.name for p in (part / "checkpoints").iterdir()) == ["checkpoint-4"]
    resumed = finetune(str(tiny_bert), "mrpc", glue, part, FAST, resume=True)
    assert resumed["train"]["resumed_from"] == "checkpoint-4" and resumed["train"]["global_step"] == 12
    for key in ("main", "f1", "accuracy", "eval_loss"):
        assert resumed[key] == pytest.approx(full[key], rel=1e-6, abs=1e-7), key
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "full" / "model" / "model.safetensors"), load_file(part / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
