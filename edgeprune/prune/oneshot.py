"""The one-shot verb: which weights of a model survive a single block-structured cut to a target.

``prune(model, block, target)`` is the paper's hard prune (rank groups by RMS, keep the best so the
whole set hits the target to one slot) as a public function, what tfmot's ``prune_low_magnitude`` +
``strip_pruning`` or torch.ao's ``WeightNormSparsifier`` + ``squash_mask`` give in one call. It
returns masks and leaves the model untouched (apply them with :func:`edgeprune.prune.masks.apply_masks`).
``compress`` selects its matrices with :func:`prunable_matrices` and cuts with :func:`hard_prune`, so a
benchmark calling ``prune`` gets exactly the cut ``compress`` makes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .blocks import BlockSpec, Tiling, parse_block, tiling_for
from .masks import SCOPES, PruneResult, magnitude_scores, parse_target, prune_groups

if TYPE_CHECKING:  # pragma: no cover
    import torch

SCORES = ("weight", "activation")


@dataclass(frozen=True)
class PrunableMatrices:
    """The weight matrices one cut works on, keyed by parameter name (``<module>.weight``)."""

    params: dict[str, Any]  # name -> nn.Parameter (the live weights)
    tilings: dict[str, Tiling]
    roles: dict[str, str | None]  # q, k, v, attn_out, ffn_in, ffn_out
    layers: dict[str, int | None]  # encoder layer index


def prunable_matrices(model, layers: str, block: BlockSpec) -> PrunableMatrices:
    """The linears of ``model`` named by ``layers`` (preset, roles or regexes), tiled by ``block``."""
    from edgeprune.arch import get_arch, prunable_linears

    from .presets import LAYER_PRESETS, layer_patterns

    arch = get_arch(model.config.model_type)
    mods = prunable_linears(model, layer_patterns(model.config.model_type, layers))
    if not mods:
        raise ConfigError(f"--layers {layers!r} matches no linear layer of this {model.config.model_type} model; "
                          f"use a preset ({', '.join(LAYER_PRESETS)}) or regexes over module names")
    params, tilings, roles, idx = {}, {}, {}, {}
    for mname, mod in mods.items():
        pname = f"{mname}.weight"
        params[pname] = mod.weight
        tilings[pname] = tiling_for(tuple(mod.weight.shape), block)
        roles[pname] = arch.role_of(mname)
        idx[pname] = arch.layer_of(mname)
    return PrunableMatrices(params, tilings, roles, idx)


def hard_prune(params: dict[str, Any], tilings: dict[str, Tiling], keep: float, scope: str, balanced: bool,
               input_rms: dict[str, torch.Tensor] | None = None) -> PruneResult:
    """Group masks keeping ``keep`` of the elements, ranked by group RMS of ``W`` (or ``W * input_rms``)."""
    weights = {n: p.detach() for n, p in params.items()}
    return prune_groups(magnitude_scores(weights, tilings, input_rms), tilings, keep, scope=scope, balanced=balanced)


def prune(model, block: str | BlockSpec, target: float | str, *, score: str = "weight", scope: str = "uniform",
          layers: str = "all", balanced: bool | None = None,
          input_rms: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Masks (parameter name -> bool tensor shaped like the weight, True = kept) of one cut to ``target``.

    ``block``: ``RxC`` text or a :class:`BlockSpec`; ``target``: a compression (``5``, ``"5x"``) or a
    sparsity (``"0.8"``); ``score``: ``weight`` (group RMS, the paper's rule) or ``activation`` (group
    RMS of ``W * input_rms``; pass ``input_rms``, per input feature of each matrix); ``balanced``
    (every block row keeps as many groups) defaults to on for column segments, as in ``compress``.
    """
    if score not in SCORES:
        raise ConfigError(f"unknown score {score!r}; choose one of: {', '.join(SCORES)}")
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    if (score == "activation") != (input_rms is not None):
        raise ConfigError("score 'activation' needs input_rms (and only it uses them)")
    spec = block if isinstance(block, BlockSpec) else parse_block(block)
    compression = parse_target(target) if isinstance(target, str) else float(target)
    if not compression > 1:
        raise ConfigError(f"target {target!r} must be a compression > 1x (e.g. 5 or '5x') or a sparsity in (0, 1)")
    mats = prunable_matrices(model, layers, spec)
    bal = spec.is_column_segment if balanced is None else balanced
    return hard_prune(mats.params, mats.tilings, 1.0 / compression, scope, bal, input_rms).masks
