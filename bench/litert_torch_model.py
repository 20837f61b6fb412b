"""The TFLite exporter's graph (``exporters/tf_graph.build_function``) written once in PyTorch, for litert-torch.

Same inputs as the TF path: the shrunk NumPy weights (:func:`tf_graph.extract`) and one
:class:`tf_linear.Formulation` per linear (:func:`tf_graph.plan_model`). Every formulation
(``dense``, ``cols``, ``rows_cols``, ``segments``, ``segments_t``) becomes the same gathers,
(batch) matmuls, transposes and reshapes as torch ops, so the A/B against the hand-written TF
graph differs only in the converter. Imports torch and numpy only (no TensorFlow): it runs in
the litert-torch venv.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def _c(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


def torch_linear(f):
    """A ``torch.nn.Module`` computing formulation ``f`` on ``x`` [T, n_in] -> [T, n_out]."""
    import torch

    class PackedLinear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kind, self.meta = f.kind, dict(f.meta)
            for name, a in f.arrays.items():
                t = _c(a.astype(np.float32) if a.dtype.kind == "f" else a.astype(np.int64))
                self.register_buffer(name, t)

        def forward(self, x):
            if self.kind == "dense":
                return x @ self.w + self.b
            if self.kind == "cols":
                return torch.index_select(x, 1, self.idx) @ self.w + self.b
            if self.kind == "rows_cols":
                y = torch.index_select(x, 1, self.idx) @ self.w
                y = torch.nn.functional.pad(y, (0, 1))  # the extra zero column serves the pruned rows
                return torch.index_select(y, 1, self.rows_map) + self.b
            g, r = self.meta["groups"], self.meta["R"]
            if self.kind == "segments":
                k = self.meta["k"]
                xg = torch.index_select(x, 1, self.idx.reshape(-1)).reshape(x.shape[0], g, k).permute(1, 0, 2)
                y = torch.matmul(xg, self.w).permute(1, 0, 2)  # [G, T, R] -> [T, G, R]
                return y.reshape(x.shape[0], g * r) + self.b
            if self.kind == "segments_t":
                k = self.meta["k"]
                xt = x.t()  # [n_in, T]
                xg = torch.index_select(xt, 0, self.idx.reshape(-1)).reshape(g, k, x.shape[0])
                y = torch.matmul(self.w, xg).reshape(g * r, x.shape[0])
                return y.t() + self.b
            raise ValueError(f"unknown formulation {self.kind!r}")

    return PackedLinear()


def _layer_norm(x, ln):
    g, b, eps = ln
    mean = x.mean(dim=-1, keepdim=True)
    xc = x - mean
    var = (xc * xc).mean(dim=-1, keepdim=True)
    import torch

    return xc * torch.rsqrt(var + eps) * g + b


def _act(x, name: str):
    import torch

    if name == "gelu":  # aten.gelu lowers to one GELU op (written out with erf it becomes ~20 elementwise ops)
        return torch.nn.functional.gelu(x)
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return torch.nn.functional.gelu(x, approximate="tanh")
    if name == "relu":
        return torch.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "none":
        return x
    raise ValueError(f"activation {name!r} is not supported")


def build_module(weights: Any, plans: list[Any], seq_len: int, batch: int = 1, mask_neg: float = -1e4):
    """A ``torch.nn.Module`` with int32 [batch, seq_len] inputs (``tf_graph.input_names`` order) -> {"logits": ...}."""
    import torch

    w = weights
    hidden = w.word.shape[1]
    scale = 1.0 / math.sqrt(w.head_dim)

    class PackedEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("word", _c(w.word))
            self.register_buffer("pos", _c(w.pos[:seq_len] if not w.padding_positions else w.pos))
            self.has_tt = w.token_type is not None
            if self.has_tt:
                self.register_buffer("token_type", _c(w.token_type))
            self.emb_ln = self._ln("emb_ln", w.emb_ln)
            self.layers = torch.nn.ModuleList(
                torch.nn.ModuleDict({r: torch_linear(p.lins[r]) for r in ("q", "k", "v", "o", "ffn_in", "ffn_out")})
                for p in plans)
            self.shapes = [(p.heads, p.dqk, p.dv) for p in plans]
            self.lns = [(self._ln(f"ln1_{i}", p.ln1), self._ln(f"ln2_{i}", p.ln2)) for i, p in enumerate(plans)]
            self.head_acts = [act for _, _, act in w.head]
            for i, (hw, hb, _) in enumerate(w.head):
                self.register_buffer(f"head_w{i}", _c(hw.T.copy()))
                self.register_buffer(f"head_b{i}", _c(hb))

        def _ln(self, name: str, ln) -> tuple[str, str, float]:
            """Register a LayerNorm's gain and bias as buffers; returns their names and eps."""
            self.register_buffer(name + "_g", _c(ln[0]))
            self.register_buffer(name + "_b", _c(ln[1]))
            return name + "_g", name + "_b", float(ln[2])

        def norm(self, x, ln):
            g, b, eps = ln
            return _layer_norm(x, (getattr(self, g), getattr(self, b), eps))

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            ids = input_ids.long()
            x = torch.nn.functional.embedding(ids, self.word)
            if w.padding_positions:  # HF create_position_ids_from_input_ids
                nonpad = (ids != w.pad_id).long()
                x = x + torch.nn.functional.embedding(torch.cumsum(nonpad, dim=1) * nonpad + w.pad_id, self.pos)
            else:
                x = x + self.pos
            if self.has_tt:
                x = x + (torch.nn.functional.embedding(token_type_ids.long(), self.token_type)
                         if token_type_ids is not None else self.token_type[0])
            x = self.norm(x, self.emb_ln).reshape(batch * seq_len, hidden)
            maskf = attention_mask.to(torch.float32).reshape(batch, 1, 1, seq_len)
            neg = (1.0 - maskf) * mask_neg
            for lay, (h, dqk, dv), (ln1, ln2) in zip(self.layers, self.shapes, self.lns):
                def heads_first(t, d, h=h):
                    return t.reshape(batch, seq_len, h, d).permute(0, 2, 1, 3)

                q = heads_first(lay["q"](x) * scale, dqk)
                k = heads_first(lay["k"](x), dqk)
                v = heads_first(lay["v"](x), dv)
                probs = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) + neg, dim=-1)
                ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(batch * seq_len, h * dv)
                x = self.norm(lay["o"](ctx) + x, ln1)
                hmid = _act(lay["ffn_in"](x), w.act)
                x = self.norm(lay["ffn_out"](hmid) + x, ln2)
            y = x.reshape(batch, seq_len, hidden)[:, 0, :]
            for i, act in enumerate(self.head_acts):
                y = _act(y @ getattr(self, f"head_w{i}") + getattr(self, f"head_b{i}"), act)
            return {"logits": y}  # the TF path's output name; litert-torch keeps dict keys as output names

    return PackedEncoder().eval()


def replay_chooser(layers: list[dict[str, Any]]):
    """A ``tf_graph.Chooser`` that picks, per linear, the formulation the TF export timed fastest
    (its report's ``structure.layers``), so both artifacts run the same plan."""
    picked = {}
    for lay in layers:
        for role, rec in lay.items():
            if isinstance(rec, dict) and "name" in rec:
                picked[rec["name"]] = (rec["kind"], rec.get("R"))

    def choose(name: str, cands: list[Any]):
        want = picked.get(name)
        for f in cands:
            if want and f.kind == want[0] and f.meta.get("R") == want[1]:
                return f
        raise ValueError(f"{name}: the TF plan's {want} is not among the candidates "
                         f"{[(f.kind, f.meta.get('R')) for f in cands]}")

    return choose
