"""Structural shrink of a masked model: attention heads and FFN units pruned whole are removed exactly.

Shared by the exporters that change layer shapes (ONNX structured mode, the Hugging Face checkpoint).
"""
from __future__ import annotations

from typing import Any

from edgeprune.errors import ExportError


def set_module(model, name: str, module) -> None:
    """Replace the submodule called ``name`` (a dotted path) by ``module``."""
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def roles_by_layer(model) -> tuple[dict[str, Any], dict[int, dict[str, str]]]:
    """(module name -> prunable linear, layer index -> role -> module name): what the shrinks walk over."""
    from edgeprune.arch import get_arch, prunable_linears

    arch = get_arch(model.config.model_type)
    lin = prunable_linears(model)
    by_layer: dict[int, dict[str, str]] = {}
    for name in lin:
        by_layer.setdefault(arch.layer_of(name), {})[arch.role_of(name)] = name
    return lin, by_layer


def full_mask(mask, lin):
    """The bool mask of ``lin`` (all kept when the layer has none)."""
    import torch

    return mask.bool() if mask is not None else torch.ones_like(lin.weight, dtype=torch.bool)


def dead_heads(m_v, m_out, head_size: int):
    """(v_dead, out_dead) bool ``[heads]``: heads whose value rows / attention-output columns are all pruned.

    Either makes the head removable; pruned Q/K rows only change the attention pattern, never remove a head.
    """
    heads = m_v.shape[0] // head_size
    return ~m_v.reshape(heads, -1).any(dim=1), ~m_out.t().reshape(heads, -1).any(dim=1)


def dead_units(m_in, m_out):
    """(in_dead, out_dead) bool ``[units]``: FFN units whose ffn_in row / ffn_out column is pruned whole.

    Either makes the unit removable: an in-dead unit outputs the constant act(b_in), which folds into ffn_out's bias.
    """
    return ~m_in.any(dim=1), ~m_out.any(dim=0)


def _set_head_count(attn, heads: int) -> None:
    """The attention module's head attributes (BERT/RoBERTa ``num_attention_heads``/``all_head_size``,
    DistilBERT ``n_heads``); the forward reshapes with ``-1`` heads, these keep the module self-consistent."""
    for attr in ("num_attention_heads", "n_heads"):
        if hasattr(attn, attr):
            setattr(attn, attr, heads)
    if hasattr(attn, "all_head_size"):
        attn.all_head_size = heads * attn.attention_head_size


def shrink_heads(model, masks: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Structured mode: drop attention heads that are dead (see :func:`dead_heads`); exact.

    A head whose value rows are all pruned outputs its value bias at every position (softmax weights sum to
    1), so ``W_out[:, head] @ b_v[head]`` is folded into the attention-output bias. A layer whose heads all
    die keeps head 0 with zero Q/K/V/output weights (and masks): the reshapes need one head, it adds nothing.
    Returns the masks of the shrunk layers (others unchanged) and one record per layer that lost heads.
    """
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    lin, by_layer = roles_by_layer(model)
    masks = dict(masks)
    records = []
    for layer, roles in sorted(by_layer.items()):
        names = [roles.get(r) for r in ("q", "k", "v", "attn_out")]
        if None in names or all(masks.get(f"{n}.weight") is None for n in names):
            continue
        attn = model.get_submodule(names[0].rpartition(".")[0])
        d = int(attn.attention_head_size)
        m = [full_mask(masks.get(f"{n}.weight"), lin[n]) for n in names]
        v_dead, o_dead = dead_heads(m[2], m[3], d)
        dead, fold = v_dead | o_dead, v_dead & ~o_dead  # fold: the value bias still reaches the output
        if not bool(dead.any()):
            continue
        heads = int(dead.numel())
        keep = ~dead
        placeholder = not bool(keep.any())
        if placeholder:
            keep[0] = True
        dims = torch.arange(heads * d).reshape(heads, d)[keep].flatten()
        fold_dims = torch.arange(heads * d).reshape(heads, d)[fold].flatten()
        v, o = lin[names[2]], lin[names[3]]
        with torch.no_grad():
            new = [prune_linear_layer(lin[n], dims, dim=0) for n in names[:3]]
            new.append(prune_linear_layer(o, dims, dim=1))
            if v.bias is not None and fold_dims.numel():
                new[3].bias += (o.weight[:, fold_dims] * m[3][:, fold_dims]) @ v.bias[fold_dims]
            if placeholder:
                for n_lin in new[:3]:
                    n_lin.weight.zero_()
                    if n_lin.bias is not None:
                        n_lin.bias.zero_()
                new[3].weight.zero_()
        m = [mi[dims] for mi in m[:3]] + [m[3][:, dims]]
        if placeholder:
            m = [torch.zeros_like(mi) for mi in m]
        for n, n_lin, mi in zip(names, new, m):
            set_module(model, n, n_lin)
            masks[f"{n}.weight"] = mi.to(torch.uint8)
        kept = int(keep.sum())
        _set_head_count(attn, kept)
        records.append({"layer": layer, "heads": heads, "heads_kept": 0 if placeholder else kept,
                        "exported_heads": kept, "dead_heads": dead.nonzero().flatten().tolist(),
                        "dead_by_value": int(v_dead.sum()),
                        "dead_by_output": int(o_dead.sum()), "v_bias_folded": int(fold.sum()),
                        "placeholder_head": placeholder})
    return masks, records


def shrink_ffn(model, masks: dict[str, Any]) -> dict[str, Any]:
    """Structured mode: drop FFN intermediate units pruned whole; fold constant units into the next bias.

    Unit i is dead when row i of ffn_in or column i of ffn_out is pruned whole. When only ffn_in's row is
    pruned, the unit outputs act(b_in[i]) for every token, which is exactly folded into ffn_out's bias.
    Returns the masks of the shrunk layers (others unchanged).
    """
    import torch

    lin, by_layer = roles_by_layer(model)
    masks = dict(masks)
    for roles in by_layer.values():
        fi, fo = roles.get("ffn_in"), roles.get("ffn_out")
        mi, mo = masks.get(f"{fi}.weight"), masks.get(f"{fo}.weight")
        if fi is None or fo is None or (mi is None and mo is None):
            continue
        l_in, l_out = lin[fi], lin[fo]
        mi, mo = full_mask(mi, l_in), full_mask(mo, l_out)
        dead_in, dead_out = dead_units(mi, mo)
        keep = ~(dead_in | dead_out)
        if bool(keep.all()):
            continue
        act = _ffn_activation(model, fi)
        with torch.no_grad():
            fold = dead_in & ~dead_out
            new_bias = l_out.bias.detach().clone()
            if bool(fold.any()):
                const = act(l_in.bias.detach()[fold])
                new_bias += (l_out.weight.detach()[:, fold] * mo[:, fold]) @ const
            placeholder = not bool(keep.any())  # every unit dead: keep one whose output weight is zero
            if placeholder:
                keep[0] = True
            k = int(keep.sum())
            n_in = torch.nn.Linear(l_in.in_features, k)
            n_in.weight.copy_(l_in.weight[keep])
            n_in.bias.copy_(l_in.bias[keep])
            n_out = torch.nn.Linear(k, l_out.out_features)
            n_out.weight.copy_(l_out.weight[:, keep] * (0 if placeholder else 1))
            n_out.bias.copy_(new_bias)
            if placeholder:
                mo = mo.clone()
                mo[:, 0] = False
        set_module(model, fi, n_in)
        set_module(model, fo, n_out)
        masks[f"{fi}.weight"] = mi[keep].to(torch.uint8)
        masks[f"{fo}.weight"] = mo[:, keep].to(torch.uint8)
    return masks


def head_counts(model, orig_shapes: dict[str, tuple[int, int]], records: list[dict[str, Any]]
                ) -> dict[str, tuple[int, int]]:
    """(heads, live heads) for every Q/K/V/attention-output linear, so each layer plan says what was removed."""
    _, by_layer = roles_by_layer(model)
    live = {r["layer"]: r["heads_kept"] for r in records}
    out = {}
    for layer, roles in by_layer.items():
        if "q" not in roles:
            continue
        names = [roles[r] for r in ("q", "k", "v", "attn_out") if r in roles]
        d = int(model.get_submodule(roles["q"].rpartition(".")[0]).attention_head_size)
        heads = orig_shapes[roles["q"]][0] // d
        out.update({n: (heads, live.get(layer, heads)) for n in names})
    return out


def _ffn_activation(model, ffn_in_name: str):
    """The activation applied to ffn_in's output (BERT/RoBERTa intermediate, DistilBERT ffn)."""
    parent = model.get_submodule(ffn_in_name.rpartition(".")[0])
    for attr in ("intermediate_act_fn", "activation"):
        if hasattr(parent, attr):
            return getattr(parent, attr)
    raise ExportError(f"cannot find the FFN activation next to {ffn_in_name}; structured mode does not know this "
                      "architecture")
