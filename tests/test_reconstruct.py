"""Least-squares refit, OBS group scores and damage against numpy lstsq, brute force and hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgeprune.errors import ConfigError
from edgeprune.prune.blocks import expand_group_mask, parse_block, tiling_for
from edgeprune.prune.reconstruct import (LayerStats, ReconstructionError, accumulate_stats, damage,
                                         obs_group_scores, refit_masked)

OUT, IN, N = 6, 8, 48


def _close(a, b, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """Tensor comparison via numpy (the first torch.testing call costs a second of imports)."""
    assert tuple(a.shape) == tuple(b.shape)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, IN, generator=g, dtype=torch.float64)
    W = torch.randn(OUT, IN, generator=g, dtype=torch.float64)
    return X, W, g


def _block_mask(spec: str, g: torch.Generator, keep: float = 0.5) -> torch.Tensor:
    t = tiling_for((OUT, IN), parse_block(spec))
    gm = torch.rand(t.nbr, t.nbc, generator=g) < keep
    gm[0, 0] = True
    gm[-1, -1] = False
    return expand_group_mask(gm, t)


def _lstsq_rows(Xp: torch.Tensor, Y: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Reference: per row, numpy lstsq of target column ``Y[:, r]`` on the kept columns of ``Xp``."""
    out = np.zeros((mask.shape[0], mask.shape[1]))
    for r in range(mask.shape[0]):
        S = mask[r].nonzero().flatten().numpy()
        if len(S):
            out[r, S] = np.linalg.lstsq(Xp[:, S].numpy(), Y[:, r].numpy(), rcond=None)[0]
    return out


@pytest.mark.parametrize("kind", ["3x1", "allx1", "2x2", "4x3", "unstructured", "1xall"])  # 4x3 pads 6x8
def test_refit_matches_lstsq_per_row(kind):
    X, W, g = _data(1)
    if kind == "unstructured":
        mask = torch.rand(OUT, IN, generator=g) < 0.5
        mask[:, 0] = True
    elif kind == "1xall":
        mask = torch.zeros(OUT, IN, dtype=torch.bool)
        mask[[0, 2, 3]] = True  # rows 1, 4, 5 pruned whole
    else:
        mask = _block_mask(kind, g)
    H, _ = accumulate_stats(None, None, X, X)
    got = refit_masked(W, mask, H, damp=1e-12)
    want = _lstsq_rows(X, X @ W.T, mask)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-8, rtol=0)
    assert (got[~mask] == 0).all()
    if kind == "1xall":
        assert (got[[1, 4, 5]] == 0).all()
    assert got.dtype == W.dtype and not torch.equal(got, W)


def test_refit_exact_when_inputs_span_kept_columns():
    X, W, g = _data(2)
    keep = torch.tensor([0, 2, 3, 6])
    drop = torch.tensor([1, 4, 5, 7])
    X[:, drop] = X[:, keep] @ torch.randn(4, 4, generator=g, dtype=torch.float64)  # H singular, H_SS not
    mask = torch.zeros(OUT, IN, dtype=torch.bool)
    mask[:, keep] = True
    H = X.T @ X
    got = refit_masked(W.float(), mask, H, damp=1e-12)
    assert got.dtype == torch.float32
    got64 = refit_masked(W, mask, H, damp=1e-12)
    dense = X @ W.T
    assert (got64 @ X.T - dense.T).abs().max() / dense.abs().max() < 1e-8


def test_refit_with_cross_gram_matches_lstsq_of_dense_targets():
    X, W, g = _data(3)
    Xp = X + 0.3 * torch.randn(N, IN, generator=g, dtype=torch.float64)  # pruned model's drifted inputs
    mask = _block_mask("3x1", g)
    st = LayerStats()
    for a, b in ((0, 20), (20, N)):
        st.add(Xp[a:b].float(), X[a:b].float())
    assert st.n == N
    _close(st.C, Xp.float().double().T @ X.float().double())
    got = refit_masked(W, mask, st.H, st.C, damp=1e-12)
    want = _lstsq_rows(Xp.float().double(), X.float().double() @ W.T, mask)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-8, rtol=0)


def test_layer_stats_without_dense_inputs_tracks_h():
    X, _, _ = _data(4)
    st = LayerStats().add(X[:10].reshape(2, 5, IN)).add(X[10:])
    _close(st.H, X.T @ X)
    _close(st.C, st.H)
    assert st.n == N and st.C is not st.H


def test_refit_hand_computed_2x2():
    W = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    H = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
    mask = torch.tensor([[True, False], [False, True]])
    # row 0: (1*2 + 2*1) / 2 = 2; row 1: (3*1 + 4*2) / 2 = 5.5
    got = refit_masked(W, mask, H, damp=0.0)
    _close(got, torch.tensor([[2.0, 0.0], [0.0, 5.5]]))
    assert torch.equal(W, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # input untouched


def test_singular_gram_with_zero_damping_is_retried():
    # rank-1 H: the Cholesky of H itself fails (pivot exactly 0); the retry damps it to a ridge solve
    H = torch.ones(2, 2, dtype=torch.float64)
    W = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    got = refit_masked(W, torch.ones(1, 2, dtype=torch.bool), H, damp=0.0)
    _close(got, W, atol=1e-8, rtol=0)
    # realistic: duplicated input features, nothing pruned -> same outputs
    X, W, _ = _data(5)
    X[:, 3] = X[:, 0] + X[:, 1]
    got = refit_masked(W, torch.ones(OUT, IN, dtype=torch.bool), X.T @ X, damp=0.0)
    assert torch.isfinite(got).all()
    assert (X @ got.T - X @ W.T).abs().max() < 1e-6


def test_hopeless_gram_raises_one_line_reconstruction_error():
    with pytest.raises(ReconstructionError) as e:
        refit_masked(torch.ones(3, 2), torch.ones(3, 2, dtype=torch.bool), -torch.eye(2), damp=0.01)
    assert isinstance(e.value, ConfigError) and e.value.exit_code == 2
    msg = str(e.value)
    assert "\n" not in msg and "3x2" in msg and "damping" in msg and "calibration" in msg
    with pytest.raises(ReconstructionError):
        obs_group_scores(torch.ones(3, 2), torch.full((2, 2), float("nan")), tiling_for((3, 2), parse_block("1x1")))
    for bad in (-0.1, float("nan")):
        with pytest.raises(ConfigError):
            refit_masked(torch.ones(3, 2), torch.ones(3, 2, dtype=torch.bool), torch.eye(2), damp=bad)


def test_obs_hand_computed():
    H = torch.tensor([[2.0, 1.0], [1.0, 2.0]])  # Hinv = [[2, -1], [-1, 2]] / 3
    W = torch.tensor([[1.0, 2.0]])
    s = obs_group_scores(W, H, tiling_for(W.shape, parse_block("1x1")), damp=0.0)
    _close(s, torch.tensor([[1.5, 6.0]], dtype=torch.float64))  # w^2 / (2/3)
    # whole row: ([Hinv]_QQ)^-1 = H, so w H w^T = 2 + 4 + 8
    s = obs_group_scores(W, H, tiling_for(W.shape, parse_block("1xall")), damp=0.0)
    _close(s, torch.tensor([[14.0]], dtype=torch.float64))


def _brute_force(X: torch.Tensor, W: torch.Tensor, t) -> torch.Tensor:
    """Exact output-error increase of zeroing each group and re-solving the rest of its rows."""
    want = torch.zeros(t.nbr, t.nbc, dtype=torch.float64)
    for i in range(t.nbr):
        for j in range(t.nbc):
            Q = set(range(j * t.C, min((j + 1) * t.C, IN)))
            rest = [c for c in range(IN) if c not in Q]
            for r in range(i * t.R, min((i + 1) * t.R, OUT)):
                y = (X @ W[r]).numpy()
                v = np.linalg.lstsq(X[:, rest].numpy(), y, rcond=None)[0]
                want[i, j] += float(((X[:, rest].numpy() @ v - y) ** 2).sum())
    return want


@pytest.mark.parametrize("spec", ["allx1", "4x1", "2x4", "1x3", "4x3", "1xall"])  # 4x1, 1x3, 4x3 pad a 6x8 weight
def test_obs_equals_brute_force_compensated_error(spec):
    X, W, _ = _data(6)
    t = tiling_for(W.shape, parse_block(spec))
    got = obs_group_scores(W, X.T @ X, t, damp=1e-12)
    want = _brute_force(X, W, t)
    _close(got, want, rtol=1e-7, atol=1e-8)
    if t.C == 1:  # the column formula w^2 / Hinv_cc
        hinv = torch.linalg.inv(X.T @ X).diagonal()
        _close(got.sum(dim=0), (W.square() / hinv).sum(dim=0), rtol=1e-7, atol=1e-8)


def test_damage():
    X, W, g = _data(7)
    H = X.T @ X
    assert damage(W, W.clone(), H) == 0.0
    assert math.isclose(damage(W, torch.zeros_like(W), H), 1.0)
    assert math.isclose(damage(W, 0.5 * W, H), 0.25)
    D = 0.1 * torch.randn(OUT, IN, generator=g, dtype=torch.float64)
    want = float((X @ D.T).square().sum() / (X @ W.T).square().sum())
    assert math.isclose(damage(W, W - D, H), want, rel_tol=1e-10)
