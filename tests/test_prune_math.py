"""Group proximal step, kept energy and the staged schedule against hand-computed cases."""
from __future__ import annotations

import math

import pytest
import torch

from edgeprune.errors import ConfigError
from edgeprune.prune.blocks import parse_block, tiling_for
from edgeprune.prune.group_lasso import group_soft_threshold, kept_energy
from edgeprune.prune.schedule import StagedSchedule, staged_targets

W = torch.tensor([[3.0, 0.0, 0.3, 1.0],
                  [4.0, 0.0, 0.4, 1.0]])
T = tiling_for(W.shape, parse_block("2x1"))  # column norms 5, 0, 0.5, sqrt2


def test_soft_threshold_hand_computed():
    w = W.clone()
    got = group_soft_threshold(w, T, 1.0)
    s = 1 - 1 / math.sqrt(2)
    want = torch.tensor([[3 * 0.8, 0.0, 0.0, s],
                         [4 * 0.8, 0.0, 0.0, s]])
    assert torch.allclose(got, want, atol=1e-7, rtol=0)
    assert (got[:, 1:3] == 0).all() and not torch.isnan(got).any()  # zero group, group below threshold
    assert torch.equal(w, W) and got.dtype == W.dtype  # pure
    # norm shrinks by exactly tau
    assert math.isclose(float(got[:, 0].norm()), 4.0, rel_tol=1e-6)


def test_soft_threshold_per_group_tau_and_boundary():
    tau = torch.tensor([[0.0, 7.0, 0.5, 2.0]])  # 0 -> unchanged; tau == norm -> exactly 0
    got = group_soft_threshold(W, T, tau)
    assert torch.equal(got[:, 0], W[:, 0])
    assert (got[:, 1:] == 0).all()
    with pytest.raises(ConfigError):
        group_soft_threshold(W, T, -0.1)
    with pytest.raises(ValueError):
        group_soft_threshold(W, T, torch.ones(2, 4))


def test_soft_threshold_padded_tile_uses_real_elements():
    w = torch.tensor([[3.0, 1.0], [4.0, 1.0], [6.0, 0.0]])
    t = tiling_for(w.shape, parse_block("2x1"))  # last block row has one real row
    assert t.padded
    got = group_soft_threshold(w, t, 1.0)
    want = torch.tensor([[2.4, 1 - 1 / math.sqrt(2)], [3.2, 1 - 1 / math.sqrt(2)], [5.0, 0.0]])
    assert got.shape == w.shape and torch.allclose(got, want, atol=1e-6, rtol=0)
    assert not torch.isnan(got).any()


def test_soft_threshold_keeps_float64():
    got = group_soft_threshold(W.double(), T, 1.0)
    assert got.dtype == torch.float64 and math.isclose(float(got[0, 0]), 2.4, rel_tol=1e-12)


def test_kept_energy():
    w = torch.tensor([[3.0, 0.0, 1.0, 1.0], [4.0, 0.0, 1.0, 1.0]])  # squared column norms 25, 0, 2, 2
    assert kept_energy(w, T, 1.0) == 1.0
    assert math.isclose(kept_energy(w, T, 0.25), 25 / 29)
    assert math.isclose(kept_energy(w, T, 0.25, balanced=True), 25 / 29)
    assert math.isclose(kept_energy(w, T, 0.75), 29 / 29)  # the zero column is the one dropped
    assert kept_energy(torch.zeros(2, 4), T, 0.5) == 1.0
    # balanced 1x2 blocks: each row keeps its own best block, unbalanced keeps the two best overall
    v = torch.tensor([[5.0, 5.0, 1.0, 1.0], [4.0, 4.0, 0.0, 2.0]])
    t = tiling_for(v.shape, parse_block("1x2"))  # squared norms [[50, 2], [32, 4]]
    assert math.isclose(kept_energy(v, t, 0.5, balanced=True), 82 / 88)
    assert math.isclose(kept_energy(v, t, 0.5), 82 / 88)
    assert math.isclose(kept_energy(v, t, 0.25), 50 / 88)


@pytest.mark.parametrize("final,want", [(5, [2, 3, 4, 5]), (3, [2, 3]), (2, [2]), (2.5, [2, 2.5]),
                                        (1.5, [1.5]), (4.2, [2, 3, 4, 4.2])])
def test_staged_targets(final, want):
    assert staged_targets(final) == want


def test_staged_targets_step_start_and_validation():
    assert staged_targets(4, step=0.5) == [2, 2.5, 3, 3.5, 4]
    assert staged_targets(6, step=2, start=3) == [3, 5, 6]
    got = staged_targets(3, step=0.1)
    assert len(got) == 11 and got[-1] == 3 and got[-2] < 3
    for bad in (1, 0.5, -2, float("nan"), float("inf"), "5x", True):
        with pytest.raises(ConfigError):
            staged_targets(bad)
    for kw in ({"step": 0}, {"step": -1}, {"start": 1}):
        with pytest.raises(ConfigError):
            staged_targets(5, **kw)


def test_staged_schedule_hits_targets_at_boundaries():
    s = StagedSchedule(5, 10)
    assert s.stages == [2, 3, 4, 5] and s.boundaries == [0, 10, 20, 30] and s.total_steps == 40
    for k, b in enumerate(s.boundaries):
        assert s(b) == (True, 1 / s.stages[k]) and s.compression(b) == s.stages[k] and s.stage_of(b) == k
        if b:
            assert s(b - 1) == (False, 1 / s.stages[k - 1])
    assert s(10 ** 9) == (False, 1 / 5) and s.compression(10 ** 9) == 5 and s.stage_of(10 ** 9) == 3
    assert math.isclose(s.keep_ratio(25), 0.25)
    cfg = s.get_config()
    assert cfg == {"class_name": "StagedSchedule", "config": {"final": 5.0, "steps_per_stage": 10,
                                                             "stages": [2.0, 3.0, 4.0, 5.0]}}
    r = StagedSchedule.from_config(cfg)
    assert r.stages == s.stages and r.boundaries == s.boundaries
    c = StagedSchedule(3, 4, stages=[1.5, 3])
    assert [c.compression(i) for i in range(9)] == [1.5] * 4 + [3] * 5
    assert [i for i in range(9) if c(i)[0]] == [0, 4]


def test_oneshot_and_gradual_schedules_keep_the_contract():
    from edgeprune.prune.schedule import SCHEDULES, GradualSchedule, OneShotSchedule, cubic_keep

    o = OneShotSchedule(0.25)
    assert o(0) == (True, 0.25) and o(7) == (False, 0.25)
    g = GradualSchedule(0.25, 9, every=2)
    assert [s for s in range(12) if g(s)[0]] == [0, 2, 4, 6, 8, 9]
    assert all(g(s)[1] == cubic_keep(s, 9, 0.25) for s in range(12))
    assert GradualSchedule(0.2, 25).every == 3  # about 10 updates per ramp
    for sch in (o, g, StagedSchedule(5, 10)):
        cfg = sch.get_config()
        back = type(sch).from_config(cfg)
        assert back.get_config() == cfg and cfg["class_name"] == type(sch).__name__
        assert [back(s) for s in range(40)] == [sch(s) for s in range(40)]
    assert set(SCHEDULES) == {"oneshot", "gradual"}
    for bad in (lambda: OneShotSchedule(0), lambda: GradualSchedule(1.5, 3), lambda: g(-1), lambda: o(1.5)):
        with pytest.raises(ConfigError):
            bad()


@pytest.mark.parametrize("args", [(1, 10), (5, 0), (5, -3), (5, 2.5), (5, True), (5, 10, []),
                                  (5, 10, [3, 2, 5]), (5, 10, [2, 2, 5]), (5, 10, [2, 4]), (5, 10, [0.5, 5]),
                                  (5, 10, 3)])
def test_staged_schedule_validation(args):
    with pytest.raises(ConfigError):
        StagedSchedule(*args)


def test_staged_schedule_rejects_bad_steps():
    s = StagedSchedule(5, 10)
    for bad in (-1, 1.5):
        with pytest.raises(ConfigError):
            s(bad)


def _two_matrices():
    """Matrix a reads rank-3 inputs (a refit of a few kept columns reproduces it), b isotropic ones."""
    import torch

    from edgeprune.calibrate import sensitivity_allocation
    from edgeprune.prune.blocks import parse_block, tiling_for
    from edgeprune.prune.masks import group_scores, prune_groups

    g = torch.Generator().manual_seed(0)
    w = {"a": torch.randn(8, 16, generator=g), "b": torch.randn(8, 16, generator=g)}
    xa = (torch.randn(200, 3, generator=g) @ torch.randn(3, 16, generator=g)).double()
    xa += 1e-3 * torch.randn(200, 16, generator=g).double()
    xb = torch.randn(200, 16, generator=g).double()
    grams = {"a": (xa.T @ xa, 200), "b": (xb.T @ xb, 200)}
    t = tiling_for((8, 16), parse_block("8x1"))

    def mask_at(n, W, H, cnt, r):
        rms = (torch.diagonal(H) / cnt).sqrt().float()
        return prune_groups({n: group_scores(W * rms[None], t)}, {n: t}, r, balanced=True).masks[n]

    return w, grams, mask_at


def test_sensitivity_allocation_gives_more_to_the_sensitive_matrix():
    """Matrix a reads rank-3 inputs (a refit of a few kept columns reproduces it), b reads isotropic inputs
    (every cut column is lost): b must keep more, a less, and the total stays the target."""
    from edgeprune.calibrate import sensitivity_allocation

    w, grams, mask_at = _two_matrices()

    keep, table = sensitivity_allocation(w, grams, mask_at, 0.5, damp=1e-6)
    assert keep["b"] > keep["a"]
    assert (keep["a"] + keep["b"]) / 2 == pytest.approx(0.5, abs=0.02)
    assert set(table) == {"a", "b"}


def test_sensitivity_allocation_never_exceeds_the_cap_and_keeps_the_total():
    """A staged cut caps each matrix at what it keeps now: the sensitive matrix b would take more than its
    cap, so it stops at the cap and a takes the rest of the budget; the total stays the target."""
    from edgeprune.calibrate import sensitivity_allocation

    w, grams, mask_at = _two_matrices()

    free, _ = sensitivity_allocation(w, grams, mask_at, 0.5, damp=1e-6)
    cap = {"a": 0.75, "b": 0.5}
    assert free["b"] > cap["b"]  # without the cap b would take more than it has left
    keep, _ = sensitivity_allocation(w, grams, mask_at, 0.5, damp=1e-6, cap=cap)
    assert keep["b"] <= cap["b"] + 1e-9 and keep["a"] <= cap["a"] + 1e-9
    assert (keep["a"] + keep["b"]) / 2 == pytest.approx(0.5, abs=1e-6)


def test_fill_budget_scales_clips_and_hits_the_budget():
    from edgeprune.calibrate import fill_budget

    size = {"a": 10, "b": 30}
    got = fill_budget({"a": 0.2, "b": 0.6}, {"a": 1.0, "b": 0.5}, size, budget=20.0)
    assert got["b"] == pytest.approx(0.5)  # clipped at its cap
    assert got["a"] * 10 + got["b"] * 30 == pytest.approx(20.0)
    # caps below the budget: the caps themselves
    assert fill_budget({"a": 0.2, "b": 0.6}, {"a": 0.1, "b": 0.1}, size, budget=20.0) == {"a": 0.1, "b": 0.1}
