"""Whole heads and FFN units (edgeprune.prune.units): partner rows follow exactly, totals are exact."""
import pytest
import torch

from edgeprune.prune.units import exact_keep, kept_units, layout, partner_masks, unit_tiling

ROLES = {"l0.q": "q", "l0.k": "k", "l0.v": "v", "l0.o": "attn_out", "l0.i": "ffn_in", "l0.f": "ffn_out"}
LAYERS = {n: 0 for n in ROLES}
SHAPES = {"l0.q": (8, 8), "l0.k": (8, 8), "l0.v": (8, 8), "l0.o": (8, 8), "l0.i": (16, 8), "l0.f": (8, 16)}


def test_layout_pairs_partners_with_the_matrix_that_reads_them():
    lay = layout(ROLES, LAYERS)
    assert lay.cut == ("l0.o", "l0.f")
    assert lay.follows == {"l0.q": "l0.o", "l0.k": "l0.o", "l0.v": "l0.o", "l0.i": "l0.f"}
    assert lay.size_factor(SHAPES) == {"l0.o": 4.0, "l0.f": 2.0}


def test_partner_rows_are_the_kept_columns():
    o = torch.zeros(8, 8, dtype=torch.bool)
    o[:, 4:] = True  # head 1 of two 4-wide heads
    f = torch.zeros(8, 16, dtype=torch.bool)
    f[:, [0, 3, 5]] = True
    got = partner_masks({"l0.o": o, "l0.f": f}, layout(ROLES, LAYERS), SHAPES)
    assert set(got) == {"l0.q", "l0.k", "l0.v", "l0.i"}
    assert torch.equal(got["l0.q"][:, 0], torch.tensor([False] * 4 + [True] * 4)) and got["l0.q"].shape == (8, 8)
    assert got["l0.i"].shape == (16, 8) and got["l0.i"].all(dim=1).nonzero().flatten().tolist() == [0, 3, 5]
    assert kept_units(o, 4) == 1 and kept_units(f, 1) == 3


def test_unit_tilings():
    assert (unit_tiling("attn_out", (8, 8), 4).R, unit_tiling("attn_out", (8, 8), 4).C) == (8, 4)
    assert (unit_tiling("ffn_out", (8, 16), 4).R, unit_tiling("ffn_out", (8, 16), 4).C) == (8, 1)
    assert (unit_tiling("q", (8, 8), 4).R, unit_tiling("q", (8, 8), 4).C) == (1, 8)


def test_exact_keep_rounds_heads_and_fills_the_budget_with_units():
    # 12 heads at 0.2 -> 2 heads (1/6); the FFN makes up the difference: hand-computed
    size = {"o": 4 * 384 * 384.0, "f": 2 * 384 * 1536.0}
    budget = 0.2 * sum(size.values())
    got = exact_keep({"o": 0.2, "f": 0.2}, {"o": 12}, size, budget, {})
    assert got["o"] == pytest.approx(2 / 12)
    assert got["f"] == pytest.approx((budget - size["o"] / 6) / size["f"])
    assert sum(got[n] * size[n] for n in size) == pytest.approx(budget)


def test_exact_keep_never_revives_and_keeps_one_head():
    size = {"o": 100.0, "f": 100.0}
    got = exact_keep({"o": 0.01, "f": 0.5}, {"o": 4}, size, 80.0, {"o": 0.5, "f": 0.6})
    assert got["o"] == 0.25  # at least one head
    assert got["f"] == pytest.approx(0.55)  # 80 - 25 = 55 of 100, under the cap 0.6
    got = exact_keep({"o": 0.9, "f": 0.5}, {"o": 4}, size, 120.0, {"o": 0.5, "f": 0.6})
    assert got["o"] == 0.5 and got["f"] == 0.6  # caps bind: a later stage never keeps more than before


def test_default_recipe_prunes_units_unless_a_structure_is_given():
    from edgeprune.compress import CompressConfig

    mk = lambda **kw: CompressConfig.for_recipe("edgeprune", model="x", task="mrpc", data_dir="d", out="o",  # noqa
                                                 **kw)
    assert mk().units is True
    assert mk(block="128x1").units is False and mk(block_preset="tflite").units is False
    assert mk(layers="ffn").units is False and mk(method="magnitude-unstructured").units is False
    assert mk(units=False).units is False
    assert CompressConfig.for_recipe("paper", model="x", task="mrpc", data_dir="d", out="o").units is False
