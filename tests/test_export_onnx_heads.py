"""Structured ONNX export removes dead attention heads exactly (BERT / RoBERTa / DistilBERT, tiny real models).

Layer 0 (4 heads of 16): head 1 dies by its value rows (non-zero value bias: folded), head 2 by its
attention-output columns, head 3 by both; head 0 survives with some whole Q rows pruned (packed after the
shrink). Layer 1: every head dies (two by value rows, two by output columns).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgeprune.exporters.api import export
from edgeprune.exporters.structured import attention_shrink, shrink_heads
from tests.support.exports import D, attn_names, cfg, head_masks, head_run, with_biases

def _masked(model, masks):
    with torch.no_grad():
        params = dict(model.named_parameters())
        for k, m in masks.items():
            params[k].mul_(m.to(params[k].dtype))
    return model


def test_dead_heads_by_value_rows_or_output_columns():
    m_v = torch.ones(4 * D, 8, dtype=torch.bool)
    m_o = torch.ones(8, 4 * D, dtype=torch.bool)
    m_v[D:2 * D] = False
    m_v[3 * D:, :] = False
    m_o[:, 2 * D:] = False
    m_v[0, 0] = False  # a partial head stays alive
    s = attention_shrink(None, None, m_v, m_o, None, 4)
    assert s.v_dead.tolist() == [False, True, False, True] and s.out_dead.tolist() == [False, False, True, True]
    assert s.kept_heads == (0,) and s.dead.tolist() == [False, True, True, True]


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_distilbert"])
def test_shrink_heads_is_exact_in_torch(fixture, request):
    from edgeprune.models import load_model

    model, _ = load_model(request.getfixturevalue(fixture))
    model.eval()
    with_biases(model, seed=1)
    masks = head_masks(model)
    ref = _masked(model, masks)
    shrunk = copy.deepcopy(ref)
    new_masks, records = shrink_heads(shrunk, masks)
    assert [(r["layer"], r["heads_kept"], r["exported_heads"], r["v_bias_folded"], r["placeholder_head"])
            for r in records] == [(0, 1, 1, 1, False), (1, 0, 1, 2, True)]
    for layer, heads in ((0, 1), (1, 1)):
        names = attn_names(shrunk, layer)
        attn = shrunk.get_submodule(names["q"].rpartition(".")[0])
        assert getattr(attn, "num_attention_heads", getattr(attn, "n_heads", None)) == heads
        assert shrunk.get_submodule(names["q"]).weight.shape == (heads * D, 64)
        assert shrunk.get_submodule(names["attn_out"]).weight.shape == (64, heads * D)
        for role, n in names.items():
            assert tuple(new_masks[f"{n}.weight"].shape) == tuple(shrunk.get_submodule(n).weight.shape), role
    q0 = attn_names(shrunk, 0)["q"]
    assert torch.equal(new_masks[f"{q0}.weight"], masks[f"{q0}.weight"][:D])  # survivors keep their masks
    assert not any(new_masks[f"{n}.weight"].any() for n in attn_names(shrunk, 1).values())  # the placeholder
    ids = torch.randint(5, 200, (3, 12))
    am = torch.ones_like(ids)
    am[1, 7:] = 0
    with torch.inference_mode():
        y_ref, y = ref(input_ids=ids, attention_mask=am).logits, shrunk(input_ids=ids, attention_mask=am).logits
    assert torch.allclose(y, y_ref, atol=1e-5, rtol=0)
    # the fold is what keeps it exact: without it the value biases of dead heads would be lost
    o0 = attn_names(shrunk, 0)["attn_out"]
    assert not torch.allclose(shrunk.get_submodule(o0).bias, ref.get_submodule(o0).bias)


def _matmul_weight_shapes(path: Path) -> list[tuple[int, ...]]:
    """``[in, out]`` of every standard MatMul / Gemm weight initializer (onnxsim turns some MatMuls into Gemm)."""
    m = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t).shape for t in m.graph.initializer}
    out = []
    for n in m.graph.node:
        if n.op_type in ("MatMul", "Gemm") and n.input[1] in inits:
            trans = any(a.name == "transB" and a.i for a in n.attribute)
            out.append(tuple(reversed(inits[n.input[1]])) if trans else inits[n.input[1]])
    return out


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_roberta", "tiny_distilbert"])
def test_structured_export_removes_heads(fixture, request, tmp_path, glue):
    run = head_run(request.getfixturevalue(fixture), tmp_path / "run")
    res = export(run, cfg(glue, mode="structured", seq_len=32), tmp_path / "bundle")
    v = res.verification
    assert v["passed"] and v["max_abs_diff"] <= 1e-4 and v["metric_torch"] == v["metric_artifact"]
    onnx.checker.check_model(onnx.load(str(res.artifact)), full_check=True)
    rep = res.report
    heads = [(r["layer"], r["heads_kept"], r["exported_heads"]) for r in rep["attention_heads"]]
    assert heads == [(0, 1, 1), (1, 0, 1)]
    by_name = {l_["layer"]: l_ for l_ in rep["layers"]}
    names0 = _attn_names_from_report(by_name, "0")
    assert all(by_name[n]["heads"] == 4 and by_name[n]["heads_removed"] == 3 for n in names0)
    assert all(by_name[n]["heads_removed"] == 4 for n in _attn_names_from_report(by_name, "1"))
    assert all(by_name[n]["exported_shape"][0] == D for n in names0[:3])
    # the graph: layer 0's surviving K and V are plain [64, 16] MatMuls, its output projection [16, 64];
    # the only full-width [64, 64] weight left is the classifier head's (pooler / pre_classifier / dense)
    shapes = _matmul_weight_shapes(res.artifact)
    assert shapes.count((64, D)) == 2 and shapes.count((D, 64)) == 1 and shapes.count((64, 64)) == 1
    q0 = next(n for n in names0 if by_name[n]["op"] not in ("dense", "shrunk"))  # the partly pruned Q, packed
    assert by_name[q0]["exported_shape"] == [D, 64]


def _attn_names_from_report(by_name: dict, layer: str) -> list[str]:
    """q, k, v, attn_out of one encoder layer, in that order, from the report's layer names."""
    order = ("query", "q_lin", "key", "k_lin", "value", "v_lin", "attention.output.dense", "out_lin")
    names = [n for n in by_name if f"layer.{layer}." in n and n.endswith(order)]
    return sorted(names, key=lambda n: next(i for i, s in enumerate(order) if n.endswith(s)))


def test_all_heads_dead_layer_outputs_its_bias(tiny_distilbert, tmp_path, glue):
    """Layer 1 keeps one zero placeholder head: its attention output is exactly the attention-output bias plus
    the folded value biases of its two value-dead heads, at every position."""
    from edgeprune.exporters.onnx_verify import encode_examples, load_examples, ort_session
    from edgeprune.models import load_model, load_tokenizer

    run = head_run(tiny_distilbert, tmp_path / "run")
    res = export(run, cfg(glue, mode="structured", seq_len=16), tmp_path / "bundle")
    assert res.verification["passed"] and res.verification["max_abs_diff"] <= 1e-4
    assert res.report["attention_heads"][1] == {
        "layer": 1, "heads": 4, "heads_kept": 0, "exported_heads": 1, "dead_heads": [0, 1, 2, 3], "dead_by_value": 2,
        "dead_by_output": 2, "v_bias_folded": 2, "placeholder_head": True}
    model, _ = load_model(run / "model")
    names = attn_names(model, 1)
    v, o = model.get_submodule(names["v"]), model.get_submodule(names["attn_out"])
    with torch.no_grad():
        want = (o.bias + o.weight[:, :2 * D] @ v.bias[:2 * D]).numpy()
    m = onnx.load(str(res.artifact))
    node = next(n for n in m.graph.node if n.name == names["attn_out"])
    m.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None))
    feeds = encode_examples(load_tokenizer(run / "model"), load_examples("mrpc", glue, "dev", 4), 16,
                            [i.name for i in m.graph.input])
    got = ort_session(m.SerializeToString()).run([node.output[0]], feeds)[0]
    np.testing.assert_allclose(got.reshape(-1, 64), np.broadcast_to(want, (got.size // 64, 64)), atol=1e-6, rtol=0)
