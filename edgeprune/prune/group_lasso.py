"""Reweighted group Lasso (Li et al. 2020): ``R = sum_W lambda_W * sum_g alpha_g * ||W_g||_2``.

``alpha_g = 1 / (||W_g||_2 + eps)`` (eps = 1e-3) is recomputed from the current weights at the
start of the regularized stage and at the paper's milestones; plain group Lasso keeps
``alpha_g = 1``. Everything is vectorized over the groups of a layer (one reshape per matrix).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from .blocks import Tiling, group_norms

if TYPE_CHECKING:  # pragma: no cover
    import torch

PAPER_EPS = 1e-3
PAPER_PENALTY = 1e-4
PAPER_MILESTONES = (4, 8, 12, 16)  # epochs at whose first step alpha is recomputed


def group_lasso_penalty(w: torch.Tensor, t: Tiling, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_g alpha_g ||W_g||_2`` for one matrix (``alpha`` None: plain group Lasso)."""
    norms = group_norms(w, t)
    return norms.sum() if alpha is None else (alpha * norms).sum()


def reweight_coefficients(w: torch.Tensor, t: Tiling, eps: float = PAPER_EPS) -> torch.Tensor:
    """``alpha_g = 1 / (||W_g||_2 + eps)``, detached: the paper's reweighting rule."""
    import torch

    with torch.no_grad():
        return 1.0 / (group_norms(w.detach(), t, floor=0.0) + eps)


@dataclass
class _Term:
    name: str
    param: Any  # torch.nn.Parameter
    tiling: Tiling
    lam: float
    alpha: Any  # tensor [nbr, nbc] or None


class GroupLassoRegularizer:
    """The regularizer over a set of named weights; callable, returns a scalar tensor with grad.

    ``reweighted=False`` is plain group Lasso. ``state_dict``/``load_state_dict`` carry the
    coefficients so that a resumed run continues with the same ones.
    """

    def __init__(self, params: dict[str, Any], tilings: dict[str, Tiling], penalty: float | dict[str, float],
                 reweighted: bool = True, eps: float = PAPER_EPS):
        self.reweighted = reweighted
        self.eps = eps
        self.terms: list[_Term] = []
        for name, p in params.items():
            lam = penalty[name] if isinstance(penalty, dict) else float(penalty)
            self.terms.append(_Term(name, p, tilings[name], lam, None))
        self.num_reweights = 0
        if reweighted:
            self.reweight()

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    def reweight(self) -> None:
        """Recompute every ``alpha_g`` from the current weights."""
        if not self.reweighted:
            return
        for term in self.terms:
            term.alpha = reweight_coefficients(term.param, term.tiling, self.eps)
        self.num_reweights += 1

    def __call__(self) -> torch.Tensor:
        total = None
        for term in self.terms:
            alpha = term.alpha.to(term.param.device) if term.alpha is not None else None
            r = term.lam * group_lasso_penalty(term.param, term.tiling, alpha)
            total = r if total is None else total + r
        if total is None:
            import torch

            return torch.zeros(())
        return total

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": {t.name: t.alpha for t in self.terms if t.alpha is not None},
                "num_reweights": self.num_reweights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        alphas = state.get("alpha", {})
        for term in self.terms:
            if term.name in alphas:
                term.alpha = alphas[term.name]
        self.num_reweights = int(state.get("num_reweights", self.num_reweights))


def milestone_steps(milestones: Iterable[int], steps_per_epoch: int) -> set[int]:
    """Global steps at which epoch milestones begin (epoch ``e`` starts at step ``e * steps_per_epoch``)."""
    return {int(e) * steps_per_epoch for e in milestones if int(e) > 0}


def group_soft_threshold(w: torch.Tensor, tiling: Tiling, tau: float | torch.Tensor) -> torch.Tensor:
    """Proximal step of ``tau_g ||W_g||_2``: ``W_g <- W_g * max(0, 1 - tau_g / ||W_g||_2)``.

    ``argmin_X 1/2 ||X - W||^2 + sum_g tau_g ||X_g||`` separates over groups and shrinks each group's
    norm by ``tau_g`` (exactly 0 once ``||W_g|| <= tau_g``): the group analogue of decoupled weight
    decay, applied after an optimizer step with ``tau = lr_t * lambda * alpha_g`` instead of the
    penalty's subgradient, so that groups reach exact zero. ``tau`` is a scalar or ``[nbr, nbc]``.
    Norms of padded tiles cover their real elements; all-zero groups stay zero. Returns a new,
    detached tensor of ``w``'s dtype; ``w`` is not modified.
    """
    import torch

    from ..errors import ConfigError
    from .blocks import expand_group_mask

    t = tiling
    with torch.no_grad():
        wd = w.detach()
        work = wd.double() if wd.dtype == torch.float64 else wd.float()
        norms = group_norms(work, t, floor=0.0)
        tau_t = torch.as_tensor(tau, dtype=work.dtype, device=work.device)
        if tau_t.dim() and tuple(tau_t.shape) != (t.nbr, t.nbc):
            raise ValueError(f"tau shape {tuple(tau_t.shape)} != group grid {(t.nbr, t.nbc)}")
        if not bool(torch.isfinite(tau_t).all()) or bool((tau_t < 0).any()):
            raise ConfigError("proximal threshold tau must be finite and >= 0 (tau = lr * lambda * alpha)")
        safe = torch.where(norms > 0, norms, torch.ones_like(norms))
        factor = torch.where(norms > 0, (1.0 - tau_t / safe).clamp_min(0.0), torch.zeros_like(norms))
        return (work * expand_group_mask(factor, t)).to(wd.dtype)


def kept_energy(w: torch.Tensor, tiling: Tiling, keep_ratio: float, balanced: bool = False) -> float:
    """Fraction of ``||W||_F^2`` in the groups a hard prune of this one matrix at ``keep_ratio`` keeps.

    The groups are chosen as ``masks.prune_groups`` does (RMS scores, to one slot, ``balanced`` =
    the same count per block row); 1.0 means the regularizer has already pushed all the energy into
    the surviving groups and the cut will cost nothing. An all-zero matrix returns 1.0.
    """
    import torch

    from .blocks import group_sq_norms
    from .masks import group_scores, prune_groups

    t = tiling
    with torch.no_grad():
        res = prune_groups({"w": group_scores(w, t)}, {"w": t}, keep_ratio, scope="uniform", balanced=balanced)
        sq = group_sq_norms(w.detach().double(), t)
        total = float(sq.sum())
        if total == 0:
            return 1.0
        return float(sq[res.group_masks["w"].to(sq.device)].sum()) / total
