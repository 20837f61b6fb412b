"""Regularizer value, gradient and the reweighting rule against hand-computed cases."""
from __future__ import annotations

import math

import torch

from edgeprune.prune.blocks import parse_block, tiling_for
from edgeprune.prune.group_lasso import (GroupLassoRegularizer, group_lasso_penalty, milestone_steps,
                                         reweight_coefficients)

W = torch.tensor([[3.0, 0.0, 1.0, 1.0],
                  [4.0, 0.0, 1.0, 1.0]])
T = tiling_for(W.shape, parse_block("2x1"))  # column norms 5, 0, sqrt2, sqrt2


def test_plain_penalty_value_and_gradient():
    w = W.clone().requires_grad_(True)
    r = group_lasso_penalty(w, T)
    assert math.isclose(r.item(), 5 + 2 * math.sqrt(2), rel_tol=1e-6)
    r.backward()
    # d||w_g||/dw = w / ||w_g||; zero column has subgradient 0
    want = torch.tensor([[3 / 5, 0, 1 / math.sqrt(2), 1 / math.sqrt(2)],
                         [4 / 5, 0, 1 / math.sqrt(2), 1 / math.sqrt(2)]])
    torch.testing.assert_close(w.grad, want, atol=1e-6, rtol=0)


def test_reweight_rule():
    a = reweight_coefficients(W, T, eps=1e-3)
    want = torch.tensor([[1 / 5.001, 1 / 1e-3, 1 / (math.sqrt(2) + 1e-3), 1 / (math.sqrt(2) + 1e-3)]])
    torch.testing.assert_close(a, want, rtol=1e-6, atol=0)
    assert not a.requires_grad


def test_reweighted_value_and_gradient():
    w = W.clone().requires_grad_(True)
    a = torch.tensor([[2.0, 7.0, 0.5, 1.0]])
    r = group_lasso_penalty(w, T, a)
    assert math.isclose(r.item(), 2 * 5 + 0 + 0.5 * math.sqrt(2) + math.sqrt(2), rel_tol=1e-6)
    r.backward()
    s = 1 / math.sqrt(2)
    want = torch.tensor([[2 * 3 / 5, 0, 0.5 * s, s], [2 * 4 / 5, 0, 0.5 * s, s]])
    torch.testing.assert_close(w.grad, want, atol=1e-6, rtol=0)


def test_regularizer_module_lambda_reweight_and_state():
    p1 = torch.nn.Parameter(W.clone())
    p2 = torch.nn.Parameter(torch.tensor([[0.0, 2.0], [0.0, 0.0]]))
    tilings = {"a": T, "b": tiling_for(p2.shape, parse_block("1x1"))}
    reg = GroupLassoRegularizer({"a": p1, "b": p2}, tilings, penalty={"a": 1e-4, "b": 1e-2}, eps=1e-3)
    # right after reweighting every nonzero group contributes ||w||/(||w||+eps)
    want = 1e-4 * (5 / 5.001 + 2 * math.sqrt(2) / (math.sqrt(2) + 1e-3)) + 1e-2 * (2 / 2.001)
    assert math.isclose(reg().item(), want, rel_tol=1e-6)
    with torch.no_grad():
        p1.mul_(2)
    # coefficients are stale until reweight()
    assert math.isclose(reg().item(), 1e-4 * (10 / 5.001 + 4 * math.sqrt(2) / (math.sqrt(2) + 1e-3)) + 1e-2 * 2 / 2.001,
                        rel_tol=1e-6)
    state = reg.state_dict()
    reg.reweight()
    assert reg.num_reweights == 2
    assert math.isclose(reg().item(), 1e-4 * (10 / 10.001 + 2 * 2 * math.sqrt(2) / (2 * math.sqrt(2) + 1e-3))
                        + 1e-2 * 2 / 2.001, rel_tol=1e-6)
    reg.load_state_dict(state)  # back to the stale coefficients, as a resumed run would
    assert reg.num_reweights == 1
    assert math.isclose(reg().item(), 1e-4 * (10 / 5.001 + 4 * math.sqrt(2) / (math.sqrt(2) + 1e-3)) + 1e-2 * 2 / 2.001,
                        rel_tol=1e-6)


def test_plain_group_lasso_never_reweights():
    p = torch.nn.Parameter(W.clone())
    reg = GroupLassoRegularizer({"a": p}, {"a": T}, penalty=0.5, reweighted=False)
    reg.reweight()
    assert reg.num_reweights == 0
    assert math.isclose(reg().item(), 0.5 * (5 + 2 * math.sqrt(2)), rel_tol=1e-6)


def test_milestones():
    assert milestone_steps((4, 8), 10) == {40, 80}
    assert milestone_steps((0, 1), 7) == {7}
