"""Compression figures (three named definitions), per-layer records and the kept-ratio plot."""
from __future__ import annotations

import os
import re
from typing import Any

from .blocks import Tiling


def compression_figures(model, masks: dict[str, Any], layer_regex: str) -> dict[str, Any]:
    """Dense / kept counts under three definitions.

    ``prunable_encoder``: over the pruned matrices only (the paper's figure);
    ``whole_encoder``: over every encoder-layer parameter (incl. biases, LayerNorm, unpruned linears);
    ``whole_model``: over every parameter (embeddings, pooler, classifier included).
    """
    params = dict(model.named_parameters())
    pruned = {n: int(m.numel() - int(m.bool().sum())) for n, m in masks.items()}
    prunable = sum(int(params[n].numel()) for n in masks)
    encoder = sum(int(p.numel()) for n, p in params.items() if re.search(layer_regex, n))
    whole = sum(int(p.numel()) for p in params.values())
    removed = sum(pruned.values())

    def fig(total: int) -> dict[str, Any]:
        kept = total - removed
        return {"dense": total, "kept": kept, "compression": total / max(kept, 1), "sparsity": removed / max(total, 1)}

    return {"prunable_encoder": fig(prunable), "whole_encoder": fig(encoder), "whole_model": fig(whole)}


def layer_records(masks: dict[str, Any], tilings: dict[str, Tiling], roles: dict[str, str | None],
                  layers: dict[str, int | None], group_masks: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for n, m in masks.items():
        t = tilings[n]
        gm = group_masks[n]
        out[n] = {"kept_ratio": float(m.bool().sum()) / m.numel(), "shape": list(m.shape), "role": roles.get(n),
                  "layer": layers.get(n), "block": [t.R, t.C], "padded": t.padded,
                  "groups": t.num_groups, "kept_groups": int(gm.sum()),
                  "kept_groups_per_block_row": sorted(set(gm.sum(dim=1).tolist()))}
    return out


def plot_kept_ratios(layers: dict[str, Any], path: str | os.PathLike[str], title: str) -> None:
    """Bar chart of kept ratio per matrix, grouped by encoder layer, coloured by role."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_file

    names = list(layers)
    roles = [layers[n].get("role") or "?" for n in names]
    palette = {"q": "#4c72b0", "k": "#55a868", "v": "#c44e52", "attn_out": "#8172b2", "ffn_in": "#ccb974",
               "ffn_out": "#64b5cd"}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(names) + 2), 3.6))
    ax.bar(range(len(names)), [layers[n]["kept_ratio"] for n in names],
           color=[palette.get(r, "#999999") for r in roles])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"L{layers[n].get('layer')}.{r}" for n, r in zip(names, roles)], rotation=90, fontsize=7)
    ax.set_ylabel("kept ratio")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
