"""TFLite export embeds the metadata MediaPipe's TextClassifier reads; without mediapipe it says so and goes on."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("mediapipe")

from edgeprune.exporters import tflite_metadata as tm  # noqa: E402
from edgeprune.exporters.api import export  # noqa: E402
from edgeprune.exporters.base import ExportConfig  # noqa: E402

SEQ = 16
LABELS = ["no", "yes"]


def _cfg(glue, **kw) -> ExportConfig:
    base = dict(format="tflite", seq_len=SEQ, data_dir=str(glue), task="mrpc", verify_examples=8)
    base.update(kw)
    return ExportConfig(**base)


@pytest.fixture(scope="module")
def bert_run(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT with named labels, so that label order is checked against a real id2label."""
    dst = tmp_path_factory.mktemp("meta_run") / "bert"
    shutil.copytree(tiny_bert, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["id2label"] = {str(i): n for i, n in enumerate(LABELS)}
    cfg["label2id"] = {n: i for i, n in enumerate(LABELS)}
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.fixture(scope="module")
def with_meta(bert_run, glue, tmp_path_factory):
    return export(bert_run, _cfg(glue), tmp_path_factory.mktemp("meta_bundles") / "with")


@pytest.fixture(scope="module")
def without_meta(bert_run, glue, tmp_path_factory):
    """The same export with mediapipe unimportable, here and in the converter's child process."""
    mp = pytest.MonkeyPatch()
    for name in ("mediapipe", "mediapipe.tasks"):
        mp.setitem(sys.modules, name, None)  # `import mediapipe.tasks` now raises ImportError
    hide = tmp_path_factory.mktemp("no_mediapipe")
    (hide / "mediapipe").mkdir()
    (hide / "mediapipe" / "__init__.py").write_text("raise ImportError('mediapipe hidden by the test')\n")
    mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")])))
    try:
        return export(bert_run, _cfg(glue), tmp_path_factory.mktemp("meta_bundles") / "without")
    finally:
        mp.undo()


def _displayer(path: Path):
    tm._writers()  # mediapipe's metadata module needs the version stand-in where the compiled one is missing
    from mediapipe.tasks.python.metadata import metadata

    return metadata.MetadataDisplayer.with_model_file(str(path))


def test_associated_files_labels_and_vocab(with_meta, bert_run):
    from transformers import AutoTokenizer

    d = _displayer(with_meta.artifact)
    assert sorted(d.get_packed_associated_file_list()) == ["labels.txt", "vocab.txt"]
    assert d.get_associated_file_buffer("labels.txt").decode().splitlines() == LABELS
    vocab = d.get_associated_file_buffer("vocab.txt").decode("utf-8").splitlines()
    tok_vocab = AutoTokenizer.from_pretrained(bert_run).get_vocab()
    assert vocab == [t for t, _ in sorted(tok_vocab.items(), key=lambda kv: kv[1])]
    assert vocab == (with_meta.bundle_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()


def test_tensor_metadata_tokenizer_and_version(with_meta):
    d = _displayer(with_meta.artifact)
    md = json.loads(d.get_metadata_json())
    sub = md["subgraph_metadata"][0]
    assert sorted(t["name"] for t in sub["input_tensor_metadata"]) == ["ids", "mask", "segment_ids"]
    assert [u["options_type"] for u in sub["input_process_units"]] == ["BertTokenizerOptions"]
    assert sub["output_tensor_metadata"][0]["associated_files"][0]["name"] == "labels.txt"
    # BertTokenizerOptions and input_process_units were added in schema 1.1.0, the VOCABULARY file type in 1.0.1
    assert md["min_parser_version"] == "1.1.0" == tm.min_parser_version(d.get_metadata_buffer())
    report = json.loads((with_meta.bundle_dir / "export_report.json").read_text())
    assert report["metadata"]["embedded"] is True
    assert report["metadata"]["min_parser_version"] == "1.1.0"
    assert report["metadata"]["associated_files"] == ["labels.txt", "vocab.txt"]
    assert report["file_bytes"] == with_meta.artifact.stat().st_size  # the report describes the final file
    assert with_meta.verification["passed"] is True and with_meta.verification["num_examples"] == 8


def test_outputs_identical_with_and_without_metadata(with_meta, without_meta):
    from ai_edge_litert.interpreter import Interpreter

    assert with_meta.artifact.read_bytes() != without_meta.artifact.read_bytes()
    rng = np.random.default_rng(0)
    feed = {"input_ids": rng.integers(0, 50, (1, SEQ)).astype(np.int32),
            "attention_mask": np.ones((1, SEQ), np.int32), "token_type_ids": np.zeros((1, SEQ), np.int32)}
    outs = [Interpreter(model_path=str(r.artifact)).get_signature_runner("serving_default")(**feed)["logits"]
            for r in (with_meta, without_meta)]
    np.testing.assert_array_equal(outs[0], outs[1])


def test_without_mediapipe_the_export_says_how_to_get_metadata(without_meta):
    report = json.loads((without_meta.bundle_dir / "export_report.json").read_text())
    meta = report["metadata"]
    assert meta["embedded"] is False and meta["associated_files"] == [] and meta["min_parser_version"] is None
    assert "pip install 'edgeprune[android]'" in meta["reason"]
    assert without_meta.verification["passed"] is True
    with pytest.raises(ValueError):
        _displayer(without_meta.artifact)  # no metadata in the file
    assert (without_meta.bundle_dir / "vocab.txt").is_file() and (without_meta.bundle_dir / "labels.txt").is_file()


def test_two_input_model_is_skipped_with_a_reason(tiny_distilbert, glue, tmp_path):
    res = export(tiny_distilbert, _cfg(glue, verify=False), tmp_path / "d")
    meta = res.report["metadata"]
    assert meta["embedded"] is False and "token_type_ids" in meta["reason"]
    assert "--tflite-segment-input" in meta["reason"]


def test_segment_input_lets_distilbert_carry_the_metadata(tiny_distilbert, glue, tmp_path):
    """DistilBERT has no segment ids; with the option the artifact takes an unused third input, MediaPipe's
    BERT writer describes it, and the logits match PyTorch (verified) and do not depend on that input."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeprune.exporters.tflite import TfliteOptions

    res = export(tiny_distilbert, _cfg(glue, options=TfliteOptions(segment_input=True)), tmp_path / "d")
    assert res.report["metadata"]["embedded"] is True
    assert res.verification["passed"] is True and res.verification["num_examples"] == 8
    runner = Interpreter(model_path=str(res.artifact)).get_signature_runner("serving_default")
    assert sorted(runner.get_input_details()) == ["attention_mask", "input_ids", "token_type_ids"]
    rng = np.random.default_rng(0)
    feed = {"input_ids": rng.integers(0, 50, (1, SEQ)).astype(np.int32), "attention_mask": np.ones((1, SEQ), np.int32)}
    zeros = runner(**feed, token_type_ids=np.zeros((1, SEQ), np.int32))["logits"]
    ones = runner(**feed, token_type_ids=np.ones((1, SEQ), np.int32))["logits"]
    np.testing.assert_array_equal(zeros, ones)
    manifest = json.loads((res.bundle_dir / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]


def test_min_parser_version_walks_the_features():
    import flatbuffers
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    def version(sub) -> str:
        m = fb.ModelMetadataT()
        m.subgraphMetadata = [sub]
        b = flatbuffers.Builder(0)
        b.Finish(m.Pack(b), b"M001")
        return tm.min_parser_version(bytes(b.Output()))

    assert version(fb.SubGraphMetadataT()) == "1.0.0"
    sub = fb.SubGraphMetadataT()
    f = fb.AssociatedFileT()
    f.type = fb.AssociatedFileType.VOCABULARY
    sub.associatedFiles = [f]
    assert version(sub) == "1.0.1"
    sub.inputTensorGroups = [fb.TensorGroupT()]
    assert version(sub) == "1.2.0"
    f.version = "3"
    assert version(sub) == "1.4.1"
    sub.customMetadata = [fb.CustomMetadataT()]
    assert version(sub) == "1.5.0"
