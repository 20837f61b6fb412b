"""BERT / RoBERTa / DistilBERT sequence classifiers as one static-shape PyTorch module for litert-torch.

The module (:func:`build_module`) takes the (pruned) weights as NumPy constants and uses only ops that
litert-torch lowers to TFLite builtins (``aten.gelu`` becomes one GELU; GELU written out with ``erf``
would become ~20 elementwise ops). The pruning structure is taken from the masks:

1. :func:`structured.shrink_layer` removes whole pruned units exactly: attention heads / head dimensions
   (q/k rows, v rows, attention-output columns) and FFN intermediate units (rows of the first
   FFN matrix / columns of the second). Pruned units whose output is a constant (bias only) are
   folded into the next bias, so the shrunk graph computes exactly what the masked model does.
2. What remains inside each linear (column-segment block rows, whole input columns, whole
   output rows) is expressed by a :mod:`tflite_linear` formulation chosen per layer by ``choose``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edgeprune.errors import ModelError
from . import tflite_linear as tl
from .structured import shrink_layer, unshrunk_layer

MASK_NEG = -1e4  # additive attention mask: exp(-1e4) == 0 in fp32 (HF adds finfo.min); fits in fp16


@dataclass
class Lin:
    name: str  # PyTorch module name
    w: np.ndarray  # [out, in], mask applied
    b: np.ndarray
    mask: np.ndarray | None  # [out, in] bool, None = not pruned


@dataclass
class LayerWeights:
    q: Lin
    k: Lin
    v: Lin
    o: Lin
    ffn_in: Lin
    ffn_out: Lin
    ln1: tuple[np.ndarray, np.ndarray, float]
    ln2: tuple[np.ndarray, np.ndarray, float]


@dataclass
class EncoderWeights:
    arch: str
    heads: int
    head_dim: int
    act: str
    word: np.ndarray
    pos: np.ndarray
    token_type: np.ndarray | None  # None for DistilBERT
    emb_ln: tuple[np.ndarray, np.ndarray, float]
    layers: list[LayerWeights]
    head: list[tuple[np.ndarray, np.ndarray, str]]  # classifier steps (w [out,in], b, activation)
    pad_id: int
    has_token_types: bool  # part of the signature
    num_labels: int
    padding_positions: bool = False  # RoBERTa: positions count non-pad tokens from pad_id + 1


def _np(t) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


def _lin(mod, name: str, masks: dict[str, Any]) -> Lin:
    w, b = _np(mod.weight), _np(mod.bias)
    m = masks.get(f"{name}.weight")
    if m is not None:
        m = m.detach().cpu().numpy() > 0
        if m.shape != w.shape:
            raise ModelError(f"mask {name}.weight has shape {m.shape} but the weight is {w.shape}")
        w = w * m
    return Lin(name, w, b, m)


def _ln(mod) -> tuple[np.ndarray, np.ndarray, float]:
    return _np(mod.weight), _np(mod.bias), float(mod.eps)


def extract(model, masks: dict[str, Any] | None = None, tokenizer=None) -> EncoderWeights:
    """Pull every weight the classifier needs out of a HF ``*ForSequenceClassification`` model.

    Where each weight lives is looked up in the model's :class:`edgeprune.arch.ArchSpec`.
    """
    from edgeprune.arch import get_arch

    masks = masks or {}
    cfg = model.config
    arch = get_arch(cfg.model_type)
    layers = []
    for i, lay in enumerate(arch.encoder_layers(model)):
        lins = {role: _lin(lay.get_submodule(path), arch.module_name(i, role), masks)
                for role, path in arch.linears.items()}
        layers.append(LayerWeights(lins["q"], lins["k"], lins["v"], lins["attn_out"], lins["ffn_in"],
                                   lins["ffn_out"], *(_ln(lay.get_submodule(p)) for p in arch.layer_norms)))
    head = []
    for path, step_act in arch.classifier:
        try:
            step = model.get_submodule(path)
        except AttributeError:
            raise ModelError(f"a {arch.model_type} classifier without {path} is not supported") from None
        head.append((_np(step.weight), _np(step.bias), step_act))
    emb = model.get_submodule(f"{arch.base}.{arch.embeddings}")
    word, pos = _np(getattr(emb, arch.word).weight), _np(getattr(emb, arch.position).weight)
    tt = _np(getattr(emb, arch.token_type).weight) if arch.token_types else None
    eln = _ln(getattr(emb, arch.embedding_norm))
    act, heads = arch.activation(cfg), arch.num_heads(cfg)
    if act not in ACTIVATIONS:
        raise ModelError(f"activation {act!r} is not supported; supported: {', '.join(ACTIVATIONS)}")
    hidden = word.shape[1]
    names = list(getattr(tokenizer, "model_input_names", ["input_ids", "attention_mask", "token_type_ids"]))
    return EncoderWeights(arch.model_type, heads, hidden // heads, act, word, pos, tt, eln, layers, head,
                          int(cfg.pad_token_id if cfg.pad_token_id is not None else 0),
                          arch.token_types and "token_type_ids" in names, int(cfg.num_labels),
                          arch.positions == "padding_offset")


def _gelu_np(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.vectorize(math.erf, otypes=[np.float64])(x / math.sqrt(2.0)))


def _gelu_tanh_np(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


ACTIVATIONS_NP: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu": _gelu_np, "relu": lambda x: np.maximum(x, 0), "gelu_new": _gelu_tanh_np, "gelu_pytorch_tanh": _gelu_tanh_np}
ACTIVATIONS = tuple(ACTIVATIONS_NP)


# ---------------------------------------------------------------- plan: a formulation per linear

Chooser = Callable[[str, list[tl.Formulation]], tl.Formulation]
ROLES = ("q", "k", "v", "o", "ffn_in", "ffn_out")


@dataclass
class EncoderLayerPlan:
    """One encoder layer as :func:`build_module` builds it: a formulation per linear, after the shrink."""

    lins: dict[str, tl.Formulation]
    heads: int
    dqk: int
    dv: int
    ln1: tuple[np.ndarray, np.ndarray, float]
    ln2: tuple[np.ndarray, np.ndarray, float]
    report: dict[str, Any]


def choose_fewest_macs(name: str, cands: list[tl.Formulation]) -> tl.Formulation:
    """Fallback chooser (no timing): the formulation with the fewest multiply-adds."""
    return min(cands, key=lambda f: f.macs_per_token)


def plan_model(weights: EncoderWeights, mode: str, choose: Chooser = choose_fewest_macs,
               progress: Callable[[], None] | None = None, segments: bool = True) -> list[EncoderLayerPlan]:
    """One :class:`EncoderLayerPlan` per encoder layer.

    ``dense``: dense graph with the zeros kept; ``structured``: whole heads / units / rows / columns
    removed; ``packed``: structured plus block-row formulations, each linear's chosen by ``choose``.
    ``segments=False`` keeps packed mode to the formulations that lower to FULLY_CONNECTED (fp16: its
    recipe cannot cast a segment formulation's BATCH_MATMUL constant, which would stay float32 inside an
    "fp16" file). ``progress`` is called after each linear (``len(weights.layers) * len(ROLES)`` calls; timing
    every candidate is the slow part of a TFLite export).
    """
    plans = []
    for lay in weights.layers:
        if mode == "dense":
            s = unshrunk_layer(lay, weights.heads, weights.head_dim)
        else:
            s = shrink_layer(lay, weights.heads, ACTIVATIONS_NP[weights.act])
        lins, rep = {}, dict(s.report)
        for role in ROLES:
            lin: Lin = getattr(s, role)
            mask = None if mode == "dense" else lin.mask
            cands = tl.candidates(lin.w, lin.b, mask, allow_rows=role in ("o", "ffn_out"),
                                  allow_segments=mode == "packed" and segments)
            f = cands[0] if len(cands) == 1 else choose(lin.name, cands)
            lins[role] = f
            rep[role] = {"name": lin.name, **f.describe(), "dense_macs_per_token": int(lay_dense_macs(lay, role))}
            if progress is not None:
                progress()
        plans.append(EncoderLayerPlan(lins, s.heads, s.dqk, s.dv, lay.ln1, lay.ln2, rep))
    return plans


def lay_dense_macs(lay: LayerWeights, role: str) -> int:
    return int(getattr(lay, role).w.size)


# ---------------------------------------------------------------- the module litert-torch converts

def _layer_norm(x, g, b, eps: float):
    import torch

    mean = x.mean(dim=-1, keepdim=True)
    xc = x - mean
    var = (xc * xc).mean(dim=-1, keepdim=True)
    return xc * torch.rsqrt(var + eps) * g + b


def _act(x, name: str):
    import torch

    if name == "gelu":  # aten.gelu lowers to one GELU op
        return torch.nn.functional.gelu(x)
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return torch.nn.functional.gelu(x, approximate="tanh")
    if name == "relu":
        return torch.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "none":
        return x
    raise ModelError(f"activation {name!r} is not supported")


def input_names(weights: EncoderWeights) -> list[str]:
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if weights.has_token_types else [])


def build_module(weights: EncoderWeights, plans: list[EncoderLayerPlan], seq_len: int, batch: int = 1):
    """A ``torch.nn.Module`` taking int32 [batch, seq_len] inputs (:func:`input_names`) -> {"logits": ...}.

    Padded keys get :data:`MASK_NEG` added to their attention scores (float in every dtype, int8 included).
    """
    import torch

    w = weights
    hidden = w.word.shape[1]
    scale = 1.0 / math.sqrt(w.head_dim)

    def const(a: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a, np.float32))

    class PackedEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("word", const(w.word))
            self.register_buffer("pos", const(w.pos if w.padding_positions else w.pos[:seq_len]))
            if w.token_type is not None:
                self.register_buffer("token_type", const(w.token_type))
            self.layers = torch.nn.ModuleList(
                torch.nn.ModuleDict({r: p.lins[r].module() for r in ROLES}) for p in plans)
            self.shapes = [(p.heads, p.dqk, p.dv) for p in plans]
            self.lns = [self._ln("emb", w.emb_ln)] + [self._ln(f"l{i}_{j}", ln) for i, p in enumerate(plans)
                                                       for j, ln in enumerate((p.ln1, p.ln2))]
            self.head_acts = [act for _, _, act in w.head]
            for i, (hw, hb, _) in enumerate(w.head):
                self.register_buffer(f"head_w{i}", const(hw.T))
                self.register_buffer(f"head_b{i}", const(hb))

        def _ln(self, name: str, ln) -> tuple[str, str, float]:
            self.register_buffer(name + "_g", const(ln[0]))
            self.register_buffer(name + "_b", const(ln[1]))
            return name + "_g", name + "_b", float(ln[2])

        def norm(self, x, i: int):
            g, b, eps = self.lns[i]
            return _layer_norm(x, getattr(self, g), getattr(self, b), eps)

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            ids = input_ids.long()
            x = torch.nn.functional.embedding(ids, self.word)
            if w.padding_positions:  # HF create_position_ids_from_input_ids
                nonpad = (ids != w.pad_id).long()
                x = x + torch.nn.functional.embedding(torch.cumsum(nonpad, dim=1) * nonpad + w.pad_id, self.pos)
            else:
                x = x + self.pos
            if w.token_type is not None:
                x = x + (torch.nn.functional.embedding(token_type_ids.long(), self.token_type)
                         if token_type_ids is not None else self.token_type[0])
            elif token_type_ids is not None:  # a signature-only segment input (TfliteOptions.segment_input): kept live
                x = x + 0.0 * token_type_ids.to(torch.float32).unsqueeze(-1)
            x = self.norm(x, 0).reshape(batch * seq_len, hidden)
            neg = (1.0 - attention_mask.to(torch.float32).reshape(batch, 1, 1, seq_len)) * MASK_NEG
            for i, (lay, (h, dqk, dv)) in enumerate(zip(self.layers, self.shapes)):
                def heads_first(t, d, h=h):
                    return t.reshape(batch, seq_len, h, d).permute(0, 2, 1, 3)

                q = heads_first(lay["q"](x) * scale, dqk)
                k = heads_first(lay["k"](x), dqk)
                v = heads_first(lay["v"](x), dv)
                probs = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) + neg, dim=-1)
                ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(batch * seq_len, h * dv)
                x = self.norm(lay["o"](ctx) + x, 1 + 2 * i)
                x = self.norm(lay["ffn_out"](_act(lay["ffn_in"](x), w.act)) + x, 2 + 2 * i)
            y = x.reshape(batch, seq_len, hidden)[:, 0, :]
            for i, act in enumerate(self.head_acts):
                y = _act(y @ getattr(self, f"head_w{i}") + getattr(self, f"head_b{i}"), act)
            return {"logits": y}  # litert-torch keeps dict keys as the signature's output names

    return PackedEncoder().eval()


def plan_summary(plans: list[EncoderLayerPlan]) -> dict[str, Any]:
    """MACs per token of the encoder linears, chosen vs dense, and which formulation each used."""
    chosen = sum(p.lins[r].macs_per_token for p in plans for r in ROLES)
    dense_ = sum(p.report[r]["dense_macs_per_token"] for p in plans for r in ROLES)
    kinds: dict[str, int] = {}
    for p in plans:
        for r in ROLES:
            kinds[p.lins[r].kind] = kinds.get(p.lins[r].kind, 0) + 1
    return {"linear_macs_per_token": int(chosen), "dense_linear_macs_per_token": int(dense_),
            "linear_mac_reduction": dense_ / max(chosen, 1), "formulations": kinds,
            "layers": [p.report for p in plans]}
