"""The exact structural shrink every exporter consumes: attention heads and FFN units pruned whole are removed.

One decision, two applications. :func:`attention_shrink` and :func:`ffn_shrink` decide from the masks alone
(pure NumPy) which heads, head dimensions and FFN units survive and which pruned ones still emit a constant
that must be folded into the next bias. :func:`shrink_heads` / :func:`shrink_ffn` apply that decision to a
PyTorch model (ONNX structured mode, the Hugging Face checkpoint: whole heads, uniform head size);
:func:`shrink_layer` applies it to NumPy weights (the TFLite graph, which also drops single head dimensions).

Why folding is exact: a value dimension whose rows are all pruned outputs its bias at every position, and
attention weights sum to 1, so its context is that bias: ``W_out[:, d] * b_v[d]`` joins the output bias. An FFN
unit whose input row is pruned outputs ``act(b_in)`` for every token: ``W_out[:, u] * act(b_in[u])`` likewise.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


# ---------------------------------------------------------------- the decision (pure NumPy)

def _np_bool(m) -> np.ndarray:
    return (m.detach().cpu().numpy() if hasattr(m, "detach") else np.asarray(m)).astype(bool)


@dataclass(frozen=True)
class AttentionShrink:
    """Which heads and head dimensions of one attention layer survive (indices into the unshrunk layer)."""

    heads: int
    head_dim: int
    kept_heads: tuple[int, ...]  # surviving heads; ``(0,)`` as a placeholder when every head is dead
    placeholder: bool  # every head is dead: head 0 is kept with nothing in it (the reshapes need one)
    v_dead: np.ndarray  # bool [heads]: every value row pruned
    out_dead: np.ndarray  # bool [heads]: every attention-output column pruned
    v_live: np.ndarray  # bool [heads * head_dim]: value row and output column both kept
    v_fold: np.ndarray  # bool [heads * head_dim]: value row pruned, output column kept (its bias is folded)
    qk_live: np.ndarray  # bool [heads * head_dim]: the q/k dimension changes the scores

    @property
    def dead(self) -> np.ndarray:
        """bool [heads]: no value dimension reaches the output (the head only adds its folded biases)."""
        return ~self.v_live.reshape(self.heads, self.head_dim).any(axis=1)

    def dims(self, head: int, live: np.ndarray) -> np.ndarray:
        """Absolute indices of ``head``'s dimensions where ``live`` is set."""
        lo = head * self.head_dim
        return np.flatnonzero(live[lo:lo + self.head_dim]) + lo


def attention_shrink(m_q, m_k, m_v, m_out, b_q, heads: int) -> AttentionShrink:
    """Decide the attention shrink from the Q/K/V/output masks (``None`` = not pruned) and the query bias.

    A head is dead when none of its value dimensions has both its value row and its output column kept.
    A q/k dimension matters only if its key row is kept and its query is not identically zero.
    """
    dims = None
    for m in (m_v, m_q, m_k):
        if m is not None:
            dims = m.shape[0]
    width = dims if dims is not None else (m_out.shape[1] if m_out is not None else len(b_q))
    rows = (lambda m: np.ones(width, bool) if m is None else _np_bool(m).any(axis=1))
    v_rows, k_rows, q_rows = rows(m_v), rows(m_k), rows(m_q)
    o_cols = np.ones(width, bool) if m_out is None else _np_bool(m_out).any(axis=0)
    head_dim = width // heads
    v_live = v_rows & o_cols
    per_head = (lambda a: a.reshape(heads, head_dim))
    dead = ~per_head(v_live).any(axis=1)
    kept = tuple(int(h) for h in np.flatnonzero(~dead))
    q_bias = np.zeros(width) if b_q is None else (b_q.detach().cpu().numpy() if hasattr(b_q, "detach") else b_q)
    return AttentionShrink(heads, head_dim, kept or (0,), not kept, ~per_head(v_rows).any(axis=1),
                           ~per_head(o_cols).any(axis=1), v_live, (~v_rows) & o_cols,
                           k_rows & (q_rows | (q_bias != 0)))


@dataclass(frozen=True)
class FfnShrink:
    """Which FFN units of one layer survive, and which pruned ones are folded."""

    units: int
    keep: np.ndarray  # bool [units]: input row and output column both kept
    fold: np.ndarray  # bool [units]: input row pruned, output column kept: act(b_in) joins the next bias

    @property
    def kept(self) -> int:
        return int(self.keep.sum())


def ffn_shrink(m_in, m_out, units: int) -> FfnShrink:
    """Decide the FFN shrink from the two FFN masks (``None`` = not pruned)."""
    u_in = np.ones(units, bool) if m_in is None else _np_bool(m_in).any(axis=1)
    u_out = np.ones(units, bool) if m_out is None else _np_bool(m_out).any(axis=0)
    return FfnShrink(units, u_in & u_out, (~u_in) & u_out)


# ---------------------------------------------------------------- applied to a PyTorch model

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


def shrink_heads(model, masks: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Drop the dead attention heads of a masked PyTorch model (:func:`attention_shrink`); exact.

    The value biases of pruned value dimensions in removed heads are folded into the attention-output bias
    (those in kept heads still flow through the head). A layer whose heads all die keeps head 0 with zero
    Q/K/V/output weights (and masks). Returns the masks of the shrunk layers (others unchanged) and one
    record per layer that lost heads.
    """
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    from edgeprune.arch import get_arch

    arch = get_arch(model.config.model_type)
    lin, by_layer = roles_by_layer(model)
    masks = dict(masks)
    records = []
    for layer, roles in sorted(by_layer.items()):
        names = [roles.get(r) for r in ("q", "k", "v", "attn_out")]
        if None in names or all(masks.get(f"{n}.weight") is None for n in names):
            continue
        attn = model.get_submodule(names[0].rpartition(".")[0])
        d = int(attn.attention_head_size)
        heads = lin[names[0]].out_features // d
        s = attention_shrink(*(masks.get(f"{n}.weight") for n in names), lin[names[0]].bias, heads)
        dead = torch.from_numpy(s.dead)
        if not bool(dead.any()):
            continue
        m = [full_mask(masks.get(f"{n}.weight"), lin[n]) for n in names]
        keep = torch.zeros(heads, dtype=torch.bool)
        keep[list(s.kept_heads)] = True
        dims = torch.arange(heads * d).reshape(heads, d)[keep].flatten()
        fold = s.v_fold & np.repeat(s.dead, d)  # folded dims of removed heads
        fold_dims = torch.from_numpy(np.flatnonzero(fold))
        v, o = lin[names[2]], lin[names[3]]
        with torch.no_grad():
            new = [prune_linear_layer(lin[n], dims, dim=0) for n in names[:3]]
            new.append(prune_linear_layer(o, dims, dim=1))
            if v.bias is not None and fold_dims.numel():
                new[3].bias += (o.weight[:, fold_dims] * m[3][:, fold_dims]) @ v.bias[fold_dims]
            if s.placeholder:
                for n_lin in new[:3]:
                    n_lin.weight.zero_()
                    if n_lin.bias is not None:
                        n_lin.bias.zero_()
                new[3].weight.zero_()
        m = [mi[dims] for mi in m[:3]] + [m[3][:, dims]]
        if s.placeholder:
            m = [torch.zeros_like(mi) for mi in m]
        for n, n_lin, mi in zip(names, new, m):
            set_module(model, n, n_lin)
            masks[f"{n}.weight"] = mi.to(torch.uint8)
        kept = len(s.kept_heads)
        arch.set_head_count(attn, kept)
        folded = fold.reshape(heads, d).any(axis=1)
        records.append({"layer": layer, "heads": heads, "heads_kept": 0 if s.placeholder else kept,
                        "exported_heads": kept, "dead_heads": np.flatnonzero(s.dead).tolist(),
                        "dead_by_value": int(s.v_dead.sum()),
                        "dead_by_output": int(s.out_dead.sum()), "v_bias_folded": int(folded.sum()),
                        "placeholder_head": s.placeholder})
    return masks, records


def shrink_ffn(model, masks: dict[str, Any]) -> tuple[dict[str, Any], dict[int, int]]:
    """Drop the FFN units of a masked PyTorch model that :func:`ffn_shrink` removes; fold the constant ones.

    A layer whose units all die keeps unit 0 with a zero output column. Returns the masks of the shrunk layers
    (others unchanged) and layer -> FFN units that survive (every layer, shrunk or not).
    """
    import torch

    from edgeprune.arch import get_arch

    arch = get_arch(model.config.model_type)
    lin, by_layer = roles_by_layer(model)
    masks = dict(masks)
    live: dict[int, int] = {}
    for layer, roles in sorted(by_layer.items()):
        fi, fo = roles.get("ffn_in"), roles.get("ffn_out")
        if fi is None or fo is None:
            continue
        mi, mo = masks.get(f"{fi}.weight"), masks.get(f"{fo}.weight")
        l_in, l_out = lin[fi], lin[fo]
        s = ffn_shrink(mi, mo, l_in.out_features)
        live[layer] = s.kept
        if (mi is None and mo is None) or bool(s.keep.all()):
            continue
        mi, mo = full_mask(mi, l_in), full_mask(mo, l_out)
        keep, fold = torch.from_numpy(s.keep.copy()), torch.from_numpy(s.fold)
        act = arch.ffn_activation(model, fi)
        with torch.no_grad():
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
    return masks, live


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


# ---------------------------------------------------------------- applied to NumPy weights (the TFLite graph)

@dataclass
class ShrunkLayer:
    """One encoder layer's linears after the shrink (objects with ``w``, ``b``, ``mask``, ``name``)."""

    q: Any
    k: Any
    v: Any
    o: Any
    ffn_in: Any
    ffn_out: Any
    heads: int
    dqk: int
    dv: int
    report: dict[str, Any] = field(default_factory=dict)


def _take_rows(lin, rows: np.ndarray):
    """Rows by index; -1 = a zero padding row (zero weight, zero bias)."""
    pad = rows < 0
    r = np.where(pad, 0, rows)
    w, b = lin.w[r].copy(), lin.b[r].copy()
    w[pad], b[pad] = 0.0, 0.0
    m = None
    if lin.mask is not None:
        m = lin.mask[r].copy()
        m[pad] = False
    return dataclasses.replace(lin, w=w, b=b, mask=m)


def _take_cols(lin, cols: np.ndarray, bias: np.ndarray | None = None):
    pad = cols < 0
    c = np.where(pad, 0, cols)
    w = lin.w[:, c].copy()
    w[:, pad] = 0.0
    m = None
    if lin.mask is not None:
        m = lin.mask[:, c].copy()
        m[:, pad] = False
    return dataclasses.replace(lin, w=w, b=lin.b.copy() if bias is None else bias, mask=m)


def _padded(per_head: list[np.ndarray], width: int) -> np.ndarray:
    return np.concatenate([np.concatenate([d, -np.ones(width - d.size, np.int64)]) for d in per_head])


def shrink_layer(lay, heads: int, act: Callable[[np.ndarray], np.ndarray]) -> ShrunkLayer:
    """NumPy weights of one layer (``q k v o ffn_in ffn_out`` with masked ``w``) with the shrink applied.

    Besides whole heads, drops the head dimensions that do not matter (:class:`AttentionShrink` ``qk_live``,
    ``v_live``; each kept head is padded with zero rows to the widest one) and folds every pruned value
    dimension's bias. ``act`` is the FFN activation on float64 arrays.
    """
    q, k, v, o = lay.q, lay.k, lay.v, lay.o
    a = attention_shrink(q.mask, k.mask, v.mask, o.mask, q.b, heads)
    o_bias = o.b + o.w[:, a.v_fold] @ v.b[a.v_fold]
    qk_dims = [a.dims(h, a.qk_live) for h in a.kept_heads]
    v_dims = [a.dims(h, a.v_live) for h in a.kept_heads]
    dqk = max(1, max(d.size for d in qk_dims))
    dv = max(1, max(d.size for d in v_dims))
    qk_idx, v_idx = _padded(qk_dims, dqk), _padded(v_dims, dv)
    f_in, f_out = lay.ffn_in, lay.ffn_out
    f = ffn_shrink(f_in.mask, f_out.mask, f_in.w.shape[0])
    f_bias = f_out.b + f_out.w[:, f.fold] @ act(f_in.b[f.fold].astype(np.float64)).astype(np.float32)
    units = np.flatnonzero(f.keep)
    if units.size == 0:
        units = np.array([-1])
    report = {"heads_kept": len(a.kept_heads), "heads": heads, "kept_heads": list(a.kept_heads), "qk_dim": dqk,
              "v_dim": dv, "head_dim": a.head_dim, "ffn_units_kept": int((units >= 0).sum()),
              "ffn_units": int(f_in.w.shape[0])}
    return ShrunkLayer(_take_rows(q, qk_idx), _take_rows(k, qk_idx), _take_rows(v, v_idx),
                       _take_cols(o, v_idx, o_bias.astype(np.float32)), _take_rows(f_in, units),
                       _take_cols(f_out, units, f_bias.astype(np.float32)), len(a.kept_heads), dqk, dv, report)


def unshrunk_layer(lay, heads: int, head_dim: int) -> ShrunkLayer:
    """The layer as it is (dense mode): every head, dimension and unit kept."""
    return ShrunkLayer(lay.q, lay.k, lay.v, lay.o, lay.ffn_in, lay.ffn_out, heads, head_dim, head_dim,
                       {"heads_kept": heads, "heads": heads, "kept_heads": list(range(heads)), "qk_dim": head_dim,
                        "v_dim": head_dim, "head_dim": head_dim, "ffn_units_kept": int(lay.ffn_in.w.shape[0]),
                        "ffn_units": int(lay.ffn_in.w.shape[0])})
