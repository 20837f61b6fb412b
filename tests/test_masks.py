"""Hard pruning hits the target exactly (to one slot), uniform and global, balanced or not."""
from __future__ import annotations

import pytest
import torch

from edgeprune.errors import ConfigError
from edgeprune.prune.blocks import group_mask_of, group_sizes, parse_block, tiling_for
from edgeprune.prune.masks import group_scores, magnitude_scores, parse_target, prune_groups


def _weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(8, 12, generator=g), "b": torch.randn(16, 8, generator=g) * 3}


def test_by_hand_uniform_unbalanced():
    w = torch.tensor([[3.0, 0.0, 1.0, 2.0],
                      [4.0, 0.0, 1.0, 2.0]])
    t = tiling_for(w.shape, parse_block("2x1"))
    res = prune_groups({"w": group_scores(w, t)}, {"w": t}, keep_ratio=0.5)
    assert res.group_masks["w"].tolist() == [[True, False, False, True]]
    assert res.masks["w"].tolist() == [[1, 0, 0, 1], [1, 0, 0, 1]]
    assert res.kept_total == 4 and res.compression == 2.0


def test_by_hand_balanced_keeps_same_count_per_block_row():
    w = torch.tensor([[7.0, 1.0, 2.0, 3.0],
                      [7.0, 1.0, 2.0, 3.0],
                      [1.0, 9.0, 8.0, 0.0],
                      [1.0, 9.0, 8.0, 0.0]])
    t = tiling_for(w.shape, parse_block("2x1"))
    sc = {"w": group_scores(w, t)}
    bal = prune_groups(sc, {"w": t}, keep_ratio=0.5, balanced=True)
    assert bal.group_masks["w"].tolist() == [[True, False, False, True], [False, True, True, False]]
    unbal = prune_groups(sc, {"w": t}, keep_ratio=0.5, balanced=False)
    # the 4 largest RMS overall: 9 and 8 in row-block1, 7 then 3 in row-block0
    assert unbal.group_masks["w"].tolist() == [[True, False, False, True], [False, True, True, False]]
    unbal = prune_groups(sc, {"w": t}, keep_ratio=0.25, balanced=False)
    assert unbal.group_masks["w"].sum(dim=1).tolist() == [0, 2]
    bal = prune_groups(sc, {"w": t}, keep_ratio=0.25, balanced=True)
    assert bal.group_masks["w"].sum(dim=1).tolist() == [1, 1]


@pytest.mark.parametrize("block,balanced", [("4x1", True), ("4x1", False), ("2x2", False), ("1x1", False),
                                            ("allx1", True), ("1xall", False), ("3x5", False)])
@pytest.mark.parametrize("scope", ["uniform", "global"])
@pytest.mark.parametrize("compression", [2.0, 3.0, 5.0])
def test_hits_target_to_one_slot(block, balanced, scope, compression):
    ws = _weights()
    spec = parse_block(block)
    tilings = {n: tiling_for(w.shape, spec) for n, w in ws.items()}
    res = prune_groups(magnitude_scores(ws, tilings), tilings, 1 / compression, scope=scope, balanced=balanced)
    total = sum(w.numel() for w in ws.values())
    assert res.total == total
    for n, m in res.masks.items():
        assert m.shape == ws[n].shape and m.dtype == torch.bool
        t = tilings[n]
        gm = group_mask_of(m, t)
        assert torch.equal(gm, res.group_masks[n])
        assert res.kept[n] == int(m.sum()) == int((group_sizes(t) * gm).sum())
        if balanced:
            assert len(set(gm.sum(dim=1).tolist())) == 1
    # exact to one slot: the largest selection unit of any layer
    slot = max((t.nbr if balanced else 1) * t.R * t.C for t in tilings.values())
    assert abs(res.kept_total - total / compression) <= slot / 2 + 1e-9 if scope == "global" else True
    if scope == "uniform":
        for n, t in tilings.items():
            unit = (t.nbr if balanced else 1) * t.R * t.C
            assert abs(res.kept[n] - t.numel / compression) <= unit / 2 + 1e-9


def test_global_prefers_larger_layer():
    ws = _weights()
    ws["b"] = ws["b"] * 100  # layer b dominates: global pruning keeps more of it
    spec = parse_block("1x1")
    tilings = {n: tiling_for(w.shape, spec) for n, w in ws.items()}
    res = prune_groups(magnitude_scores(ws, tilings), tilings, 0.5, scope="global")
    # 224 weights, keep 112: a keeps only its forced best one, b the other 111
    assert res.kept["a"] == 1 and res.kept["b"] == 111 and res.kept_total == 112


def test_keeps_largest_groups():
    ws = _weights(1)
    spec = parse_block("2x2")
    tilings = {n: tiling_for(w.shape, spec) for n, w in ws.items()}
    scores = magnitude_scores(ws, tilings)
    res = prune_groups(scores, tilings, 0.3)
    for n in ws:
        kept, dropped = scores[n][res.group_masks[n]], scores[n][~res.group_masks[n]]
        assert kept.min() >= dropped.max()


def test_unreachable_target():
    ws = _weights()
    spec = parse_block("4x1")
    tilings = {n: tiling_for(w.shape, spec) for n, w in ws.items()}
    with pytest.raises(ConfigError, match="would prune every group"):
        prune_groups(magnitude_scores(ws, tilings), tilings, 1 / 1000, balanced=True)
    with pytest.raises(ConfigError, match="every group"):
        prune_groups(magnitude_scores(ws, tilings), tilings, 1 / 1000, scope="global")


@pytest.mark.parametrize("text,want", [("5x", 5.0), ("2.5X", 2.5), ("0.8", 5.0), ("0", 1.0), ("0.5", 2.0)])
def test_parse_target(text, want):
    assert parse_target(text) == pytest.approx(want)


@pytest.mark.parametrize("bad", ["0.5x", "1.0", "-3", "fivex", "inf"])
def test_parse_target_rejects(bad):
    with pytest.raises(ConfigError):
        parse_target(bad)


def test_activation_aware_scores_by_hand():
    w = torch.tensor([[1.0, 0.1],
                      [1.0, 0.1]])
    t = tiling_for(w.shape, parse_block("2x1"))
    plain = magnitude_scores({"w": w}, {"w": t})["w"]
    assert plain[0, 0] > plain[0, 1]
    # input feature 1 is 100x larger: its small weights now matter more (0.1 * 100 = 10 > 1 * 1)
    act = magnitude_scores({"w": w}, {"w": t}, {"w": torch.tensor([1.0, 100.0])})["w"]
    torch.testing.assert_close(act, torch.tensor([[1.0, 10.0]]))
    res = prune_groups({"w": act}, {"w": t}, 0.5)
    assert res.group_masks["w"].tolist() == [[False, True]]
