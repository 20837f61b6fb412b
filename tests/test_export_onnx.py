"""End to end: tiny real BERT / RoBERTa / DistilBERT with random block masks -> packed ONNX, verified in ORT."""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import torch

from edgeprune.errors import ConfigError, NumericMismatchError
from edgeprune.exporters import onnx_ops as ops
from edgeprune.exporters.api import export
from edgeprune.io import write_json
from edgeprune.rundir import save_masks
from tests.support.exports import block_mask, cfg, edgeprune_nodes, force_packed_int8, make_run

@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_roberta", "tiny_distilbert"])
def test_packed_export_verified_in_ort(fixture, request, tmp_path, glue):
    run = make_run(request.getfixturevalue(fixture), tmp_path / "run")
    res = export(run, cfg(glue), tmp_path / "bundle")
    v = res.verification
    assert v["passed"] and v["max_abs_diff"] <= 1e-4 and v["metric_torch"] == v["metric_artifact"]
    assert v["num_examples"] == 32
    model = onnx.load(str(res.artifact))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True, check_type=True)
    layers = res.report["layers"]
    packed = [l_ for l_ in layers if l_["op"] in ops.OP_TYPES]
    assert len(edgeprune_nodes(res.artifact)) == len(packed) == len(layers) - 1  # the full layer stays dense
    assert {l_["op"] for l_ in packed} >= {ops.BSMM, ops.PACKED_DENSE}
    s = res.report["sizes"]
    assert s["file_bytes"] < s["dense_file_bytes"] and s["file_bytes"] == res.artifact.stat().st_size
    for f in ("manifest.json", "verification.json", "export_report.json"):
        assert (res.bundle_dir / f).is_file()


def test_reference_evaluator_runs_whole_model_like_ort(tiny_bert, tmp_path, glue):
    from edgeprune.exporters.onnx_verify import encode_examples, load_examples, ort_session
    from edgeprune.models import load_tokenizer

    run = make_run(tiny_bert, tmp_path / "run", seed=1)
    res = export(run, cfg(glue, seq_len=24), tmp_path / "bundle")
    model = onnx.load(str(res.artifact))
    feeds = encode_examples(load_tokenizer(tiny_bert), load_examples("mrpc", glue, "dev", 2), 24,
                            [i.name for i in model.graph.input])
    y_ort = ort_session(res.artifact).run(None, feeds)[0]
    y_ref = ops.reference_session(model).run(None, feeds)[0]
    np.testing.assert_allclose(y_ref, y_ort, rtol=1e-4, atol=1e-5)


def test_balanced_masks_file_is_close_to_ideal(tiny_bert, tmp_path, glue):
    from edgeprune.arch import prunable_linears
    from edgeprune.models import load_model

    model, _ = load_model(tiny_bert)
    rng = np.random.default_rng(3)
    masks = {f"{n}.weight": torch.from_numpy(block_mask(rng, *lin.weight.shape, 32, 1, 0.25).astype(np.uint8))
             for n, lin in prunable_linears(model).items()}
    root = tmp_path / "run"
    shutil.copytree(tiny_bert, root / "model")
    save_masks(masks, root / "model" / "masks.safetensors")
    write_json(root / "compression.json", {"task": "mrpc", "block": [32, 1]})
    res = export(root, cfg(glue), tmp_path / "bundle")
    s = res.report["sizes"]
    assert s["prunable_stored_bytes"] == s["prunable_ideal_bytes"]  # balanced 32x1: no padding at all
    assert res.report["fallback_layers"] == []
    # both FFN linears packed: the GELU between them runs on the transposed activation
    assert edgeprune_nodes(res.artifact).count(ops.BSMM_OUT_T) == 2 and res.verification["passed"]


def test_structured_mode_shrinks_ffn_units(tiny_bert, tmp_path, glue):
    run = make_run(tiny_bert, tmp_path / "run", whole_units=True)
    res = export(run, cfg(glue, mode="structured"), tmp_path / "bundle")
    assert res.verification["passed"]
    ffn = [l_ for l_ in res.report["layers"] if l_["layer"].endswith("intermediate.dense")]
    assert all(l_["exported_shape"][0] < l_["shape"][0] for l_ in ffn)


def test_dense_mode_on_plain_checkpoint(tiny_distilbert, tmp_path, glue):
    res = export(tiny_distilbert, cfg(glue, mode="dense", seq_len=None), tmp_path / "bundle")
    assert res.verification["passed"] and edgeprune_nodes(res.artifact) == []


@pytest.mark.parametrize("dtype", ["fp16", "int8-dynamic"])
def test_reduced_precision_exports(dtype, tiny_bert, tmp_path, glue, monkeypatch):
    force_packed_int8(monkeypatch)
    run = make_run(tiny_bert, tmp_path / "run", seed=2)
    res = export(run, cfg(glue, dtype=dtype), tmp_path / "bundle")
    assert res.verification["passed"] and res.verification["metric_diff_points"] <= 0.5
    onnx.checker.check_model(onnx.load(str(res.artifact)), full_check=True)
    if dtype == "int8-dynamic":
        assert {ops.BSMM_INT8, ops.BSMM_INT8_DIRECT} <= set(edgeprune_nodes(res.artifact))
        m = onnx.load(str(res.artifact))
        inits = {t.name: t for t in m.graph.initializer}
        word = [inits[n.input[0]] for n in m.graph.node if n.op_type == "Gather" and "word_embeddings" in n.input[0]]
        # the embedding table is stored as int8 too, with one float scale per row beside it
        assert sorted(t.data_type for t in word) == sorted([onnx.TensorProto.INT8, onnx.TensorProto.FLOAT])
        table, scale = sorted(word, key=lambda t: t.data_type != onnx.TensorProto.INT8)
        assert list(scale.dims) == [table.dims[0], 1]
    fp32 = export(run, cfg(glue), tmp_path / "fp32")
    assert res.artifact.stat().st_size < fp32.artifact.stat().st_size


@pytest.mark.parametrize("mode", ["packed", "structured"])
def test_static_int8_export_calibrated_on_glue(mode, tiny_bert, tmp_path, glue, monkeypatch):
    """--dtype int8: packed layers as BlockSparseMatMulInt8, the other MatMuls/Gemms as calibrated QDQ."""
    import json

    force_packed_int8(monkeypatch)
    from edgeprune.exporters.onnx_verify import encode_examples, load_examples, ort_session
    from edgeprune.models import load_tokenizer

    run = make_run(tiny_bert, tmp_path / "run", seed=2, whole_units=True)
    res = export(run, cfg(glue, dtype="int8", mode=mode, seq_len=16, calib_examples=16), tmp_path / "bundle")
    model = onnx.load(str(res.artifact))
    onnx.checker.check_model(model, full_check=True)
    ops_used = [(n.domain, n.op_type) for n in model.graph.node]
    assert ("", "QuantizeLinear") in ops_used and ("", "DequantizeLinear") in ops_used
    assert {ops.BSMM_INT8, ops.BSMM_INT8_DIRECT} & set(edgeprune_nodes(res.artifact))
    assert any(t.data_type == onnx.TensorProto.INT8 for t in model.graph.initializer)  # QDQ weights
    assert any(n.endswith(".values_q") for n in (t.name for t in model.graph.initializer))  # packed uint8 values
    assert any("int8 static" in n and "calibrated on 16 mrpc train examples" in n for n in res.report["notes"])
    feeds = encode_examples(load_tokenizer(tiny_bert), load_examples("mrpc", glue, "dev", 3), 16,
                            [i.name for i in model.graph.input])
    logits = ort_session(res.artifact).run(["logits"], feeds)[0]
    assert logits.shape == (3, 2) and np.isfinite(logits).all()
    ver = json.loads((res.bundle_dir / "verification.json").read_text())
    assert ver["passed"] and ver["dtype"] == "int8" and ver["num_examples"] == 32 and ver["seq_len"] == 16
    assert ver["metric"] == "f1" and {"metric_torch", "metric_artifact", "metric_diff_points"} <= ver.keys()
    assert ver["metric_diff_points"] <= 0.5 and np.isfinite(ver["max_abs_diff"])


def test_failed_verification_leaves_nothing(tiny_bert, tmp_path, glue, monkeypatch):
    from edgeprune.exporters.onnx import OnnxExporter

    run = make_run(tiny_bert, tmp_path / "run")
    monkeypatch.setattr(OnnxExporter, "ATOL", -1.0)
    with pytest.raises(NumericMismatchError):
        export(run, cfg(glue), tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
    assert not any(p.name.startswith(".bundle") for p in tmp_path.iterdir())


def test_bad_inputs_fail_early_with_nothing_written(tiny_bert, tmp_path, glue):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="not a compress run"):
        export(empty, cfg(glue), tmp_path / "b1")
    with pytest.raises(ConfigError, match="no masks"):
        export(tiny_bert, cfg(glue, mode="packed"), tmp_path / "b2")
    run = make_run(tiny_bert, tmp_path / "run")
    with pytest.raises(ConfigError, match="int8"):
        export(run, cfg(glue, dtype="int8", seq_len=None), tmp_path / "b3")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        export(run, cfg(glue), blocker)
    from edgeprune.rundir import load_masks

    masks = load_masks(run / "model" / "masks.safetensors")
    name = next(iter(masks))
    masks[name] = masks[name][:, :-1]
    save_masks(masks, run / "model" / "masks.safetensors")
    with pytest.raises(ConfigError, match="shape"):
        export(run, cfg(glue), tmp_path / "b4")
    assert not any((tmp_path / f"b{i}").exists() for i in range(1, 5))


@pytest.mark.parametrize("dtype", ["fp32", "int8-dynamic"])
def test_structured_ffn_with_padded_blocks_keeps_transposed_chain(dtype, tiny_bert, tmp_path, glue, monkeypatch):
    """Units 0-9 pruned whole: after the shrink ffn_in has runs of 22 and 32 rows, packed into padded 32-row
    blocks whose row map only selects computed rows. The FFN then runs as SelectOutT -> GELU -> InT (no zero
    row, no transposes of the intermediate); int8 undoes the chain to Select and quantizes it exactly as well."""
    from edgeprune.arch import prunable_linears
    from edgeprune.models import load_model

    force_packed_int8(monkeypatch)
    model, _ = load_model(tiny_bert)
    rng = np.random.default_rng(9)
    masks = {}
    for n, lin in prunable_linears(model).items():
        m = block_mask(rng, *lin.weight.shape, 32, 1, 0.5)
        if n.endswith("intermediate.dense"):
            m[:10] = False
        elif n.endswith("output.dense") and "attention" not in n:  # every column alive in one block row
            cols = rng.permutation(m.shape[1])
            m[:] = False
            m[:32, cols[: m.shape[1] // 2]] = True
            m[32:, cols[m.shape[1] // 2:]] = True
        masks[f"{n}.weight"] = torch.from_numpy(m.astype(np.uint8))
    root = tmp_path / "run"
    shutil.copytree(tiny_bert, root / "model")
    save_masks(masks, root / "model" / "masks.safetensors")
    write_json(root / "compression.json", {"task": "mrpc", "block": [32, 1]})
    res = export(root, cfg(glue, mode="structured", dtype=dtype, seq_len=16), tmp_path / "bundle")
    assert res.verification["passed"]
    nodes = edgeprune_nodes(res.artifact)
    ffn = {l_["layer"]: l_ for l_ in res.report["layers"] if l_["layer"].endswith("intermediate.dense")}
    assert all(l_["exported_shape"][0] == 118 for l_ in ffn.values())
    if dtype == "fp32":
        assert res.verification["max_abs_diff"] <= 1e-4
        assert nodes.count(ops.BSMM_SELECT_OUT_T) == 2 and nodes.count(ops.BSMM_IN_T) == 2
        assert ops.BSMM_ROWMAP not in nodes
    else:
        assert {l_["int8_op"] for l_ in ffn.values()} == {ops.BSMM_INT8_SELECT}
        assert ops.BSMM_SELECT_OUT_T not in nodes and nodes.count(ops.BSMM_INT8_SELECT) >= 2
