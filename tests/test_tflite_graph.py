"""The TFLite exporter's module (BERT / RoBERTa / DistilBERT, shrunk and packed) against the masked HF model.

litert-torch converts exactly this module, so every pruning structure and formulation is checked here in
plain PyTorch; tests/test_export_tflite.py checks the converted artifacts in the LiteRT interpreter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeprune.exporters import tflite_graph as tg
from edgeprune.exporters import tflite_linear as tl

SEQ = 32


def block_masks(model, seed: int = 0, r: int = 16, keep: float = 0.25) -> dict[str, torch.Tensor]:
    """Balanced column segments (r rows keep the same columns) plus whole pruned rows, columns and a head.

    Covers every exact-shrink path: a pruned head (v rows), a pruned k row, pruned v rows whose bias
    is folded, FFN units pruned on either side.
    """
    from edgeprune.arch import prunable_linears

    rng = np.random.default_rng(seed)
    cfg = model.config
    heads = getattr(cfg, "num_attention_heads", None) or cfg.n_heads
    hidden = getattr(cfg, "hidden_size", None) or cfg.dim
    dh = hidden // heads
    masks = {}
    for name, lin in prunable_linears(model).items():
        n, k = lin.weight.shape
        m = np.zeros((n, k), np.uint8)
        for g in range(n // r):
            m[g * r:(g + 1) * r, rng.choice(k, max(1, int(k * keep)), replace=False)] = 1
        role = name.rsplit(".", 1)[-1]
        if role in ("value", "v_lin"):
            m[dh:2 * dh] = 0  # head 1 pruned entirely
            m[0] = 0  # one v row of head 0: its bias is folded into the output bias
        if role in ("key", "k_lin"):
            m[3] = 0
        if name.endswith(("intermediate.dense", "ffn.lin1")):
            m[:8] = 0  # units 0-7 output act(bias): folded
        if name.endswith(("output.dense", "ffn.lin2")) and "attention" not in name:
            m[:, 8:16] = 0  # units 8-15 unused
            m[10:12] = 0  # whole output rows: rows_cols
        if name.endswith(("attention.output.dense", "attention.out_lin")):
            m[7] = 0
        masks[f"{name}.weight"] = torch.from_numpy(m)
    return masks


def masked_model(path, seed: int = 0):
    from edgeprune.prune.masks import apply_masks
    from edgeprune.models import load_model

    model, tok = load_model(path)
    model.eval()
    with torch.no_grad():  # larger weights so the logits depend on the input and a wrong graph shows
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embeddings" not in name:
                p.mul_(5.0 if p.shape[0] > 2 else 20.0)
    masks = block_masks(model, seed)
    apply_masks(model, masks)
    return model, tok, masks


def encode(model, names, n: int = 4, seed: int = 0):
    """Random token ids with different padded lengths and two segments (tokenizer-independent)."""
    rng = np.random.default_rng(seed)
    pad = model.config.pad_token_id or 0
    ids = np.full((n, SEQ), pad, np.int32)
    types = np.zeros((n, SEQ), np.int32)
    vocab = np.array([t for t in range(model.config.vocab_size) if t != pad])
    for i in range(n):
        length = int(rng.integers(6, SEQ + 1))
        ids[i, :length] = rng.choice(vocab, length)
        types[i, length // 2:length] = 1
    out = {"input_ids": ids, "attention_mask": (ids != pad).astype(np.int32),
           "token_type_ids": types}
    return {k: out[k] for k in names}


def torch_out(model, inputs):
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v.astype(np.int64)) for k, v in inputs.items()}).logits.numpy()


def pick(kind: str):
    def choose(name, cands):
        hit = [c for c in cands if c.kind == kind]
        return hit[0] if hit else cands[-1]
    return choose


@pytest.fixture(scope="module", params=["bert", "roberta", "distilbert"])
def arch_case(request):
    path = request.getfixturevalue(f"tiny_{request.param}")
    model, tok, masks = masked_model(path)
    weights = tg.extract(model, masks, tok)
    inputs = encode(model, tg.input_names(weights))
    return request.param, model, weights, inputs, torch_out(model, inputs)


def module_out(weights, plans, inputs, batch: int, **kw) -> np.ndarray:
    module = tg.build_module(weights, plans, SEQ, batch=batch, **kw)
    with torch.inference_mode():
        return module(*[torch.from_numpy(inputs[n]) for n in tg.input_names(weights)])["logits"].numpy()


# every (export mode, linear formulation) a TFLite graph can hold
FORMULATIONS = [("dense", "dense"), ("structured", "cols"), ("structured", "rows_cols"), ("packed", "segments_t"),
                ("packed", "segments")]


@pytest.mark.parametrize("mode,kind", FORMULATIONS)
def test_module_matches_masked_model(arch_case, mode, kind):
    arch, model, weights, inputs, ref = arch_case
    assert ref.std(axis=0).min() > 0.01  # logits vary with the input: the check below can fail
    plans = tg.plan_model(weights, mode, pick(kind))
    got = module_out(weights, plans, inputs, 4)
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=0)
    kinds = tg.plan_summary(plans)["formulations"]
    if mode == "dense":
        assert kinds == {"dense": 12}
    else:
        assert kind in kinds or (kind == "segments" and "segments_t" in kinds)


def test_shrink_removes_pruned_heads_and_units(arch_case):
    arch, model, weights, _, _ = arch_case
    rep = tg.plan_summary(tg.plan_model(weights, "structured"))
    lay = rep["layers"][0]
    # head 1 has no v rows left; FFN units 0-15 are pruned on one side or the other (folded or dropped)
    assert lay["heads_kept"] == lay["heads"] - 1 == 3
    assert lay["ffn_units_kept"] <= lay["ffn_units"] - 16
    assert lay["qk_dim"] < lay["head_dim"] or lay["v_dim"] < lay["head_dim"]
    assert rep["linear_mac_reduction"] > 1.5


def test_inputs_follow_architecture(arch_case):
    arch, _, weights, _, _ = arch_case
    expect = ["input_ids", "attention_mask"] + (["token_type_ids"] if arch == "bert" else [])
    assert tg.input_names(weights) == expect


def test_roberta_positions_depend_on_padding(tiny_roberta):
    """Same text, different left context lengths: positions come from input_ids as in HF."""
    model, tok, masks = masked_model(tiny_roberta, seed=1)
    weights = tg.extract(model, masks, tok)
    pad = model.config.pad_token_id
    ids = np.full((2, SEQ), pad, np.int32)
    ids[0, :5] = [pad + 1, pad + 2, pad + 3, pad + 2, pad + 1]
    ids[1, :3] = [pad + 1, pad + 2, pad + 1]
    mask = (ids != pad).astype(np.int32)
    got = module_out(weights, tg.plan_model(weights, "dense"), {"input_ids": ids, "attention_mask": mask}, 2)
    np.testing.assert_allclose(got, torch_out(model, {"input_ids": ids, "attention_mask": mask}), atol=2e-5, rtol=0)


@pytest.mark.parametrize("shape", [(48, 64), (128, 64), (64, 128)])
def test_linear_formulations_equal_masked_matmul(shape):
    rng = np.random.default_rng(3)
    n, k = shape
    w = rng.standard_normal((n, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    m = np.zeros((n, k), bool)
    for g in range(n // 16):
        m[g * 16:(g + 1) * 16, rng.choice(k, k // 5, replace=False)] = True
    m[:, :3] = False
    m[5] = False
    x = rng.standard_normal((7, k)).astype(np.float32)
    ref = x @ (w * m).T + b
    cands = tl.candidates(w, b, m, allow_rows=True, allow_segments=True, max_segments=3, layouts=(False, True))
    assert {c.kind for c in cands} >= {"dense", "cols", "segments", "segments_t"}
    for f in cands:
        with torch.inference_mode():
            got = f.module()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-5, err_msg=f.kind)
        assert f.macs_per_token <= n * k


def test_dense_weights_list_only_dense():
    w = np.ones((8, 8), np.float32)
    assert [c.kind for c in tl.candidates(w, np.zeros(8, np.float32), None, allow_rows=True,
                                          allow_segments=True)] == ["dense"]
