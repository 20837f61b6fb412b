"""Layer-wise reconstruction after a hard prune: least-squares refit and second-order saliency.

Pure tensor math on one linear layer ``y = x W^T`` (``W`` is ``[out, in]``). Calibration tokens give
the pruned model's inputs ``X_p`` and the dense model's inputs ``X_d`` of the same tokens (``[n, in]``);
only two ``[in, in]`` Gram matrices are kept, ``H = X_p^T X_p`` and ``C = X_p^T X_d``, so that memory
does not grow with the sample.

* ``refit_masked`` re-solves the kept weights of every output row so that the pruned layer, fed
  the pruned model's inputs, reproduces the dense layer's outputs (SparseGPT / OBC style, exact
  instead of greedy since the mask is already chosen).
* ``obs_group_scores`` is the Optimal Brain Surgeon cost of removing a group when the rest of its
  rows is compensated optimally: a better pruning score than magnitude when inputs are correlated.
* ``damage`` is the relative output error of a weight change, for sensitivity reports.

Solves run in float64 with a Tikhonov damping ``lam = damp * mean(diag H)`` (scale-free); a
Cholesky that fails is retried with ten times the damping before giving up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .blocks import Tiling

if TYPE_CHECKING:  # pragma: no cover
    import torch

DAMP_RETRIES = 6  # each retry multiplies the damping by 10
_REL_PIVOT = 1e-13  # min L_ii^2 / max A_ii below this: numerically singular (cond(A) >= 1e13)
_FLOOR_DAMP = 1e-10  # relative damping tried first when ``damp`` is 0 and the matrix is singular


class ReconstructionError(ConfigError):
    """A refit whose normal equations stay singular even after damping (exit code 2)."""


def _as_2d(x: torch.Tensor) -> torch.Tensor:
    return x.detach().reshape(-1, x.shape[-1]).double()


def accumulate_stats(H: torch.Tensor | None, C: torch.Tensor | None, xp: torch.Tensor,
                     xd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``H += X_p^T X_p``, ``C += X_p^T X_d`` (float64) for one batch of tokens; returns ``(H, C)``.

    ``xp``/``xd`` are ``[..., in]`` (leading dims are flattened into tokens); ``H``/``C`` may be
    None for the first batch. The inputs are not modified; new tensors are returned.
    """
    same = xd is xp
    p = _as_2d(xp)
    d = p if same else _as_2d(xd)
    if p.shape != d.shape:
        raise ValueError(f"pruned inputs {tuple(p.shape)} and dense inputs {tuple(d.shape)} must be the same tokens")
    h = p.T @ p
    c = h.clone() if same else p.T @ d
    H = h if H is None else H + h.to(H.device)
    C = c if C is None else C + c.to(C.device)
    return H, C


@dataclass
class LayerStats:
    """Running ``H = X_p^T X_p``, ``C = X_p^T X_d`` and token count ``n`` of one layer."""

    H: torch.Tensor | None = None
    C: torch.Tensor | None = None
    n: int = 0

    def add(self, xp: torch.Tensor, xd: torch.Tensor | None = None) -> LayerStats:
        """Add a batch; ``xd`` None means the dense inputs are the pruned ones (``C`` tracks ``H``)."""
        self.H, self.C = accumulate_stats(self.H, self.C, xp, xp if xd is None else xd)
        self.n += int(xp.numel() // xp.shape[-1])
        return self


def _check_damp(damp: float) -> None:
    if not (isinstance(damp, (int, float)) and math.isfinite(damp) and damp >= 0):
        raise ConfigError(f"damping {damp!r} must be a finite number >= 0 (relative to mean(diag H), e.g. 0.01)")


def _mean_diag(H: torch.Tensor) -> float:
    md = float(H.diagonal().mean()) if H.numel() else 0.0
    return md if math.isfinite(md) and md > 0 else 0.0


def _damped_cholesky(A: torch.Tensor, lam: float, md: float, shape: tuple[int, int], what: str):
    """Lower Cholesky factor of ``A + lam I`` (float64), retrying with ``lam *= 10`` when ``A + lam I``
    is not (numerically) positive definite; returns ``(L, lam)`` or raises ReconstructionError."""
    import torch

    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    for attempt in range(DAMP_RETRIES + 1):
        M = A + lam * eye
        L, info = torch.linalg.cholesky_ex(M)
        if int(info.max()) == 0 and bool(torch.isfinite(L).all()):
            piv = L.diagonal(dim1=-2, dim2=-1).square()
            top = M.diagonal(dim1=-2, dim2=-1).amax(dim=-1).clamp_min(1e-300)
            if bool((piv.amin(dim=-1) >= _REL_PIVOT * top).all()):
                return L, lam
        if attempt < DAMP_RETRIES:
            lam = lam * 10 if lam > 0 else _FLOOR_DAMP * (md if md > 0 else 1.0)
    raise ReconstructionError(
        f"{what} of a {shape[0]}x{shape[1]} layer failed: the calibration Gram matrix ({A.shape[-1]} inputs) is "
        f"not positive definite even with damping {lam:.3g}; use a larger damping or a larger calibration sample")


def refit_masked(W: torch.Tensor, mask: torch.Tensor, H: torch.Tensor, C: torch.Tensor | None = None,
                 damp: float = 0.01) -> torch.Tensor:
    """Least-squares refit of the kept weights of one linear layer; pruned entries stay exactly 0.

    Row ``r`` with kept inputs ``S`` solves ``min_w ||X_d W_r^T - X_p[:, S] w||^2``, whose normal
    equations give ``w_S = (H_SS + lam I)^-1 C[S, :] W_r^T``, i.e. ``W_r C^T[:, S] (H_SS + lam I)^-1``
    (``C`` None: ``C = H``, the pruned and dense inputs coincide). Rows sharing a kept pattern share
    ``H_SS``, so a structured mask costs one Cholesky per distinct pattern (``torch.unique`` over
    mask rows) with all its rows as right-hand sides; an unstructured mask is one per row. Rows with
    nothing kept stay zero. Returns a new tensor of ``W``'s dtype and device.
    """
    import torch

    out_f, in_f = W.shape
    if tuple(mask.shape) != (out_f, in_f):
        raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {(out_f, in_f)}")
    if tuple(H.shape) != (in_f, in_f) or (C is not None and tuple(C.shape) != (in_f, in_f)):
        raise ValueError(f"Gram matrices must be {in_f}x{in_f} for a weight of shape {(out_f, in_f)}")
    _check_damp(damp)
    dev = W.device
    Hd = H.to(dev, torch.float64)
    Cd = Hd if C is None else C.to(dev, torch.float64)
    Wd = W.detach().to(torch.float64)
    G = Cd @ Wd.T  # [in, out]: column r is C W_r^T, the right-hand side of row r before restricting to S
    md = _mean_diag(Hd)
    lam0 = damp * md
    m = mask.to(dev).bool()
    patterns, inverse = torch.unique(m, dim=0, return_inverse=True)
    new = torch.zeros_like(Wd)
    for p in range(patterns.shape[0]):
        cols = patterns[p].nonzero().flatten()
        if cols.numel() == 0:
            continue
        rows = (inverse == p).nonzero().flatten()
        L, _ = _damped_cholesky(Hd[cols][:, cols], lam0, md, (out_f, in_f), "reconstruction")
        rhs = G[cols][:, rows]  # [|S|, rows]
        sol = torch.cholesky_solve(rhs, L)
        new[rows[:, None], cols[None, :]] = sol.T
    return new.to(W.dtype)


def _damped_inverse(H: torch.Tensor, damp: float, shape: tuple[int, int]) -> torch.Tensor:
    import torch

    _check_damp(damp)
    md = _mean_diag(H)
    L, _ = _damped_cholesky(H, damp * md, md, shape, "second-order scoring")
    return torch.cholesky_inverse(L)


def obs_group_scores(W: torch.Tensor, H: torch.Tensor, tiling: Tiling, damp: float = 0.01) -> torch.Tensor:
    """Optimal Brain Surgeon saliency of every group, ``[nbr, nbc]`` (float64).

    Removing columns ``Q`` of row ``r`` and re-solving the rest of the row optimally raises the output
    error ``||X (w_r - w_r')||^2`` by ``w_{r,Q}^T ([Hinv]_{QQ})^-1 w_{r,Q}`` with ``Hinv = (H + lam I)^-1``;
    a group sums this over its rows (single columns: ``w_rc^2 / Hinv_cc``). Each group is scored
    alone, everything else present. Padded tiles count their real elements only: the padded weights
    are 0 and the padded part of ``Hinv`` is the identity, so they add nothing. All column blocks
    are solved at once (one batched Cholesky of the ``[nbc, C, C]`` diagonal blocks).
    """
    import torch
    import torch.nn.functional as F

    t = tiling
    if tuple(W.shape) != (t.out_features, t.in_features) or tuple(H.shape) != (t.in_features, t.in_features):
        raise ValueError(f"weight {tuple(W.shape)} / Gram {tuple(H.shape)} do not match tiling "
                         f"{t.out_features}x{t.in_features}")
    dev = W.device
    Wd = W.detach().to(torch.float64)
    Hinv = _damped_inverse(H.to(dev, torch.float64), damp, (t.out_features, t.in_features))
    if t.C == 1:
        per = Wd.square() / Hinv.diagonal()[None, :]  # [out, in]
    else:
        n = t.nbc * t.C
        Hp = torch.eye(n, dtype=torch.float64, device=dev)
        Hp[: t.in_features, : t.in_features] = Hinv
        blocks = Hp.reshape(t.nbc, t.C, t.nbc, t.C).diagonal(dim1=0, dim2=2).permute(2, 0, 1)  # [nbc, C, C]
        L = torch.linalg.cholesky(blocks)
        Wp = F.pad(Wd, (0, t.pad_cols)).reshape(t.out_features, t.nbc, t.C).permute(1, 2, 0)  # [nbc, C, out]
        per = (Wp * torch.cholesky_solve(Wp, L)).sum(dim=1).T  # [out, nbc]
    # sum the rows of each block row (padded rows are zero)
    return F.pad(per, (0, 0, 0, t.pad_rows)).reshape(t.nbr, t.R, t.nbc).sum(dim=1)


def damage(W_old: torch.Tensor, W_new: torch.Tensor, H: torch.Tensor) -> float:
    """Relative output error ``tr(D H D^T) / tr(W_old H W_old^T)`` with ``D = W_old - W_new``.

    With ``H = X^T X`` this is ``||X D^T||_F^2 / ||X W_old^T||_F^2``: the fraction of the layer's output
    energy on the calibration sample that the change destroys (0 for identical weights).
    """
    import torch

    Wo = W_old.detach().to(torch.float64)
    D = Wo - W_new.detach().to(Wo.device, torch.float64)
    Hd = H.to(Wo.device, torch.float64)
    num = float(((D @ Hd) * D).sum())
    den = float(((Wo @ Hd) * Wo).sum())
    if den <= 0:
        return 0.0 if num == 0 else math.inf
    return max(num, 0.0) / den
