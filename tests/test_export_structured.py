"""One shrink for every exporter: ONNX structured, TFLite and the HF checkpoint keep the same heads and units.

The masks include a head whose live value rows and live output columns are disjoint: no value dimension
reaches the output, so :func:`structured.attention_shrink` removes it (exactly, its value biases folded)
for every exporter alike.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from edgeprune.exporters.api import export
from edgeprune.exporters.base import ExportConfig, check_task_labels, model_labels
from edgeprune.exporters.structured import attention_shrink, ffn_shrink
from tests.support.exports import D, attn_names, head_run

HEADS = 4
KEPT_HEADS = {0: [0], 1: [1, 2, 3]}
UNITS_KEPT = 42  # of 128: units 0, 3, 6, ... lose their ffn_in row, units 1, 4, 7, ... their ffn_out column


def _masks(model) -> dict[str, torch.Tensor]:
    from edgeprune.arch import get_arch, prunable_linears

    arch = get_arch(model.config.model_type)
    masks = {f"{n}.weight": torch.ones_like(lin.weight, dtype=torch.uint8) for n, lin in prunable_linears(model).items()}
    a0, a1 = attn_names(model, 0), attn_names(model, 1)
    masks[f"{a0['v']}.weight"][1 * D:2 * D] = 0  # head 1: value rows
    masks[f"{a0['v']}.weight"][2 * D + D // 2:3 * D] = 0  # head 2: value rows of its second half ...
    masks[f"{a0['attn_out']}.weight"][:, 2 * D:2 * D + D // 2] = 0  # ... output columns of its first half
    masks[f"{a0['attn_out']}.weight"][:, 3 * D:4 * D] = 0  # head 3: output columns
    masks[f"{a1['v']}.weight"][:D] = 0  # layer 1, head 0: both
    masks[f"{a1['attn_out']}.weight"][:, :D] = 0
    for layer in (0, 1):
        masks[f"{arch.module_name(layer, 'ffn_in')}.weight"][::3] = 0
        masks[f"{arch.module_name(layer, 'ffn_out')}.weight"][:, 1::3] = 0
    return masks


def _run(model_dir: Path, root: Path) -> Path:
    return head_run(model_dir, root, masks_of=_masks)


def test_the_decision_is_per_value_dimension():
    m_v, m_o = np.ones((HEADS * D, 8), bool), np.ones((8, HEADS * D), bool)
    m_v[2 * D + D // 2:3 * D] = False
    m_o[:, 2 * D:2 * D + D // 2] = False
    s = attention_shrink(None, None, m_v, m_o, None, HEADS)
    assert s.kept_heads == (0, 1, 3) and s.dead.tolist() == [False, False, True, False]
    assert not s.v_dead.any() and not s.out_dead.any()  # neither side alone kills head 2
    assert s.v_fold.sum() == D // 2 and not s.placeholder
    m_in, m_out = np.ones((6, 4), bool), np.ones((4, 6), bool)
    m_in[0], m_out[:, 1] = False, False
    f = ffn_shrink(m_in, m_out, 6)
    assert f.keep.tolist() == [False, False, True, True, True, True] and f.fold.tolist() == [True] + [False] * 5


def test_onnx_structured_tflite_and_hf_keep_the_same_heads_and_units(tiny_bert, tmp_path, glue):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    run = _run(tiny_bert, tmp_path / "run")
    common = dict(task="mrpc", data_dir=str(glue), verify_examples=8, seq_len=16)
    onnx_rep = export(run, ExportConfig(format="onnx", mode="structured", **common), tmp_path / "onnx").report
    hf_rep = export(run, ExportConfig(format="hf", **common), tmp_path / "hf").report
    tfl_rep = export(run, ExportConfig(format="tflite", mode="structured", **common), tmp_path / "tflite").report

    onnx_heads = {r["layer"]: sorted(set(range(HEADS)) - set(r["dead_heads"])) for r in onnx_rep["attention_heads"]}
    hf_heads = {a["layer"]: sorted(set(range(HEADS)) - set(a["heads_removed"])) for a in hf_rep["attention_heads"]}
    tfl_heads = {i: lay["kept_heads"] for i, lay in enumerate(tfl_rep["structure"]["layers"])}
    assert onnx_heads == hf_heads == tfl_heads == KEPT_HEADS

    ffn_in = {r["layer"]: r for r in onnx_rep["layers"] if r["layer"].endswith("intermediate.dense")}
    onnx_units = [r["exported_shape"][0] for _, r in sorted(ffn_in.items())]
    hf_units = [f["units_kept"] for f in hf_rep["ffn_units"]]
    tfl_units = [lay["ffn_units_kept"] for lay in tfl_rep["structure"]["layers"]]
    assert onnx_units == hf_units == tfl_units == [UNITS_KEPT, UNITS_KEPT]
    for rep in (onnx_rep, hf_rep, tfl_rep):
        assert rep["verification"]["passed"], rep["verification"]


def test_one_label_function_for_classification_and_regression():
    from edgeprune.data.glue import get_task

    def fake(id2label):
        return SimpleNamespace(config=SimpleNamespace(id2label=dict(id2label), num_labels=len(id2label)))

    default = fake({0: "LABEL_0", 1: "LABEL_1"})
    check_task_labels(default, "mrpc")
    assert model_labels(default, get_task("mrpc")) == ["not_equivalent", "equivalent"]
    custom = fake({0: "no", 1: "yes"})
    check_task_labels(custom, "mrpc")
    assert model_labels(custom, get_task("mrpc")) == ["no", "yes"]  # a checkpoint's own names are kept
    score = fake({0: "LABEL_0"})
    check_task_labels(score, "stsb")
    assert model_labels(score, get_task("stsb")) == []  # regression: one score, no label names
    assert model_labels(score) == ["LABEL_0"]  # without a task: whatever the config says
