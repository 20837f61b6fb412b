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
