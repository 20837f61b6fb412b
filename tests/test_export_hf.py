"""``export --format hf``: a physically shrunk Hugging Face checkpoint (tiny real BERT / RoBERTa / DistilBERT).

Masks (4 heads of 16, 128 FFN units per layer): layer 0 loses head 1 by its value rows (non-zero value bias:
folded) and head 3 by its attention-output columns, head 0 keeps with some Q rows pruned; layer 1 loses head 2
by both. FFN: layer 0 loses units 0-9 by their ffn_in rows (constant outputs: folded) and 20-29 by their ffn_out
columns (108 kept); layer 1 loses units 0-39 (88 kept), so it stores 20 zero units to reach the uniform 108.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeprune.exporters.api import export
from edgeprune.exporters.base import ExportConfig
from edgeprune.io import write_json
from edgeprune.modelcard import read_front_matter
from edgeprune.rundir import save_masks
from tests.support.exports import D, attn_names, head_run, with_biases

HIDDEN, UNITS = 64, 128
PRUNED_HEADS = {0: [1, 3], 1: [2]}
FFN_KEPT = {0: 108, 1: 88}
WIDTH = 108
FFN_SIZE = {"bert": "intermediate_size", "roberta": "intermediate_size", "distilbert": "hidden_dim"}


def cfg(glue, **kw) -> ExportConfig:
    return ExportConfig(format="hf", data_dir=str(glue), task="mrpc", verify_examples=32, seq_len=32, **kw)


def _ffn_names(model, layer: int) -> tuple[str, str]:
    from edgeprune.arch import get_arch, prunable_linears

    arch = get_arch(model.config.model_type)
    roles = {arch.role_of(n): n for n in prunable_linears(model) if arch.layer_of(n) == layer}
    return roles["ffn_in"], roles["ffn_out"]


def _masks(model, heads: bool = True) -> dict[str, torch.Tensor]:
    """The masks described in the module docstring (``heads=False``: FFN units only)."""
    masks = {}
    ones = {n: torch.ones_like(model.get_submodule(n).weight, dtype=torch.uint8)
            for layer in (0, 1) for n in (*attn_names(model, layer).values(), *_ffn_names(model, layer))}
    if heads:
        a0, a1 = attn_names(model, 0), attn_names(model, 1)
        ones[a0["v"]][1 * D:2 * D] = 0
        ones[a0["attn_out"]][:, 3 * D:4 * D] = 0
        ones[a0["q"]][2:6] = 0
        ones[a1["v"]][2 * D:3 * D] = 0
        ones[a1["attn_out"]][:, 2 * D:3 * D] = 0
    (i0, o0), (i1, _) = _ffn_names(model, 0), _ffn_names(model, 1)
    ones[i0][:10] = 0
    ones[o0][:, 20:30] = 0
    ones[o0][::7, 50] = 0  # a partly pruned unit stays, its zeros with it
    ones[i1][:40] = 0
    masks.update({f"{n}.weight": m for n, m in ones.items()})
    return masks


def hf_run(model_dir: Path, root: Path, heads: bool = True) -> Path:
    """A compress-style run of ``model_dir`` with non-zero biases and the masks above."""
    from edgeprune.models import load_model

    shutil.copytree(model_dir, root / "model")
    model, _ = load_model(model_dir)
    with_biases(model)
    model.save_pretrained(root / "model")
    save_masks(_masks(model, heads), root / "model" / "masks.safetensors")
    write_json(root / "compression.json", {"task": "mrpc", "block": [16, 1], "method": "test", "layers": {},
                                           "compression": {}, "metrics": {}})
    return root


def masked_model(run: Path):
    from edgeprune.prune.masks import apply_masks
    from edgeprune.models import load_model
    from edgeprune.rundir import load_masks

    model, tok = load_model(run / "model")
    apply_masks(model, load_masks(run / "model" / "masks.safetensors"))
    return model.eval(), tok


def dev_logits(model, tok, glue: Path, n: int = 24) -> np.ndarray:
    from edgeprune.exporters.onnx_verify import encode_examples, load_examples, torch_logits

    feeds = encode_examples(tok, load_examples("mrpc", glue, "dev", n), None, list(tok.model_input_names))
    return torch_logits(model, feeds)


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """``trust_remote_code`` copies the shipped modeling file into HF_MODULES_CACHE: the test's folder, not ~/.cache."""
    from transformers import dynamic_module_utils

    monkeypatch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_roberta", "tiny_distilbert"])
def test_hf_export_is_shrunk_and_reproduces_the_masked_model(fixture, request, tmp_path, glue, modules_cache):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = hf_run(request.getfixturevalue(fixture), tmp_path / "run")
    res = export(run, cfg(glue), tmp_path / "out")
    v = res.verification
    assert v["passed"] and v["max_abs_diff"] <= 1e-5 and v["num_examples"] == 32
    out = res.bundle_dir
    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True).eval()
    assert type(model).__name__.startswith("Edgeprune")
    ref, _ = masked_model(run)
    tok = AutoTokenizer.from_pretrained(out)
    np.testing.assert_allclose(dev_logits(model, tok, glue), dev_logits(ref, tok, glue), atol=1e-5, rtol=0)

    removed_heads = sum(map(len, PRUNED_HEADS.values()))
    expected = removed_heads * (4 * HIDDEN * D + 3 * D) + sum(UNITS - WIDTH for _ in FFN_KEPT) * (2 * HIDDEN + 1)
    before, after = (sum(p.numel() for p in m.parameters()) for m in (ref, model))
    assert before - after == expected
    assert res.report["parameters"] == {"before": before, "after": after, "removed": expected,
                                        "ratio": round(after / before, 4)}
    assert {int(k): v for k, v in model.config.pruned_heads.items()} == PRUNED_HEADS
    assert getattr(model.config, FFN_SIZE[model.config.model_type]) == WIDTH
    assert model.config.id2label == {0: "not_equivalent", 1: "equivalent"}
    for layer in (0, 1):
        names = attn_names(model, layer)
        kept = 4 - len(PRUNED_HEADS[layer])
        assert model.get_submodule(names["q"]).weight.shape == (kept * D, HIDDEN)
        assert model.get_submodule(names["attn_out"]).weight.shape == (HIDDEN, kept * D)

    rep = json.loads((out / "export_report.json").read_text())
    assert [(a["layer"], a["heads_kept"], a["heads_removed"]) for a in rep["attention_heads"]] == [
        (0, 2, [1, 3]), (1, 3, [2])]
    assert [(f["layer"], f["units_kept"], f["units_stored"], f["zero_padding"]) for f in rep["ffn_units"]] == [
        (0, 108, 108, 0), (1, 88, 108, 20)]
    assert rep["sizes"]["file_bytes"] == (out / "model.safetensors").stat().st_size < rep["sizes"]["source_file_bytes"]
    card = read_front_matter(out)
    assert card["library_name"] == "transformers" and "custom_code" in card["tags"]
    assert card["labels"] == ["not_equivalent", "equivalent"]
    assert card["edgeprune"]["kind"] == "hf fp32 structured bundle"
    assert "trust_remote_code=True" in (out / "README.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "hf" and manifest["trust_remote_code"] and "modeling_edgeprune.py" in manifest["files"]


def test_ffn_only_export_is_a_stock_checkpoint(tiny_bert, tmp_path, glue):
    """No head removed: no shipped code, and the plain ``from_pretrained`` loads it."""
    from transformers import AutoModelForSequenceClassification

    run = hf_run(tiny_bert, tmp_path / "run", heads=False)
    res = export(run, cfg(glue), tmp_path / "out")
    assert res.verification["passed"] and res.verification["max_abs_diff"] <= 1e-5
    assert not (res.bundle_dir / "modeling_edgeprune.py").exists()
    model = AutoModelForSequenceClassification.from_pretrained(res.bundle_dir).eval()
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.intermediate_size == WIDTH
    assert not getattr(model.config, "pruned_heads", None) and not getattr(model.config, "auto_map", None)
    ref, tok = masked_model(run)
    np.testing.assert_allclose(dev_logits(model, tok, glue), dev_logits(ref, tok, glue), atol=1e-5, rtol=0)
    assert res.report["parameters"]["removed"] == 2 * (UNITS - WIDTH) * (2 * HIDDEN + 1)


def test_shipped_modeling_file_needs_only_torch_and_transformers():
    """The copy in the checkpoint runs where edgeprune is not installed."""
    from edgeprune.exporters import hf_modeling

    tree = ast.parse(Path(hf_modeling.__file__).read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert roots == {"__future__", "torch", "transformers"}
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "hf_modules")}
    return subprocess.run([sys.executable, "-m", "edgeprune", "export", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_export_hf_cli(tiny_distilbert, tmp_path, glue):
    run = hf_run(tiny_distilbert, tmp_path / "run")
    out = tmp_path / "out"
    p = _cli([str(run), "--format", "hf", "--data", str(glue), "--seq-len", "32", "--verify-examples", "16",
              "--out", str(out)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "verified on 16" in p.stdout and "parameters" in p.stdout
    assert {"config.json", "model.safetensors", "modeling_edgeprune.py", "tokenizer.json", "README.md",
            "export_report.json", "verification.json", "manifest.json"} <= {f.name for f in out.iterdir()}


def test_export_hf_every_head_of_a_layer_pruned_fails_in_one_line(tiny_bert, tmp_path, glue):
    run = head_run(tiny_bert, tmp_path / "run")  # layer 1: every head dead
    p = _cli([str(run), "--format", "hf", "--data", str(glue), "--out", str(tmp_path / "out")], tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith("error:") and "every attention head of layer(s) 1" in p.stderr
    assert not (tmp_path / "out").exists() and not any(f.name.startswith(".out") for f in tmp_path.iterdir())


@pytest.mark.parametrize("case,msg", [
    ("no-model", "no model/config.json"),
    ("dense", "has no masks"),
    ("fp16", "writes fp32 weights"),
])
def test_export_hf_bad_input_exit_2(case, msg, tiny_bert, tmp_path, glue, capsys):
    from edgeprune.cli import main

    run = tmp_path / "run"
    if case == "no-model":
        run.mkdir()
        write_json(run / "compression.json", {"task": "mrpc"})
    elif case == "dense":
        run = tiny_bert
    else:
        hf_run(tiny_bert, run, heads=False)
    with pytest.raises(SystemExit) as e:
        main(["export", str(run), "--format", "hf", "--dtype", "fp16" if case == "fp16" else "fp32",
              "--data", str(glue), "--task", "mrpc", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and msg in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
