"""The ONNX bundle in the layout optimum's ORTModelForSequenceClassification reads, and its ONNX metadata."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeprune import __version__
from edgeprune.exporters.api import export
from edgeprune.exporters.base import ExportConfig
from edgeprune.exporters.onnx import OnnxOptions


@pytest.fixture(scope="module")
def bundle(tiny_bert: Path, glue: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b") / "bundle"
    export(tiny_bert, ExportConfig(format="onnx", mode="dense", seq_len=None, task="mrpc", data_dir=str(glue),
                                   verify_examples=8, options=OnnxOptions(opset=18)), out)
    return out


def test_model_config_and_tokenizer_side_by_side_match_torch(bundle: Path, tiny_bert: Path, glue: Path):
    import onnxruntime as ort
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from edgeprune.data import load_split

    assert {"model.onnx", "config.json", "tokenizer_config.json"} <= {p.name for p in bundle.iterdir()}
    cfg = AutoConfig.from_pretrained(bundle, local_files_only=True)  # what optimum reads next to model.onnx
    assert cfg.model_type == "bert" and cfg.id2label == {0: "not_equivalent", 1: "equivalent"}
    tok = AutoTokenizer.from_pretrained(bundle, local_files_only=True)
    ex = load_split("mrpc", "dev", glue, limit=4)
    enc = tok([e.text_a for e in ex], [e.text_b for e in ex], padding=True, truncation=True, max_length=64,
              return_tensors="np")
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {i.name: enc[i.name].astype(np.int64) for i in sess.get_inputs()}
    got = sess.run(None, feeds)[0]
    ref = AutoModelForSequenceClassification.from_pretrained(tiny_bert, local_files_only=True).eval()
    with torch.no_grad():
        want = ref(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_onnx_metadata_and_producer(bundle: Path):
    import onnx

    m = onnx.load(str(bundle / "model.onnx"))
    props = {p.key: p.value for p in m.metadata_props}
    assert m.producer_name == "edgeprune" and m.producer_version == __version__
    assert props["edgeprune_version"] == __version__ and props["task"] == "mrpc"
    assert json.loads(props["labels"]) == ["not_equivalent", "equivalent"] and props["seq_len"] == "null"
    assert {o.version for o in m.opset_import if o.domain in ("", "ai.onnx")} == {18}
    man = json.loads((bundle / "manifest.json").read_text())
    assert man["labels"] == ["not_equivalent", "equivalent"] and "config.json" in man["files"]


def test_opset_out_of_range_is_a_config_error():
    from edgeprune.errors import ConfigError

    with pytest.raises(ConfigError, match="opset must be between 17 and 21"):
        OnnxOptions(opset=12)
