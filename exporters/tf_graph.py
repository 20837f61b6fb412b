"""BERT / RoBERTa / DistilBERT sequence classifiers rebuilt in TensorFlow from (pruned) PyTorch weights.

transformers no longer ships TF models, so the encoder is written here with explicit ops that
lower to TFLite builtins (exact GELU through ``tf.math.erf``; no Keras ``activation="gelu"``,
which lowers to ``Erfc``). The pruning structure is taken from the masks:

1. :func:`shrink_layer` removes whole pruned units exactly: attention heads / head dimensions
   (q/k rows, v rows, attention-output columns) and FFN intermediate units (rows of the first
   FFN matrix / columns of the second). Pruned units whose output is a constant (bias only) are
   folded into the next bias, so the shrunk graph computes exactly what the masked model does.
2. What remains inside each linear (column-segment block rows, whole input columns, whole
   output rows) is expressed by a :mod:`tf_linear` formulation chosen per layer by ``choose``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edgeprune.errors import ModelError
from . import tf_linear as tl

MASK_NEG = -1e4  # additive attention mask: exp(-1e4) == 0 in fp32 (HF adds finfo.min); fits in fp16
# full int8: the masked scores share one int8 scale with the real ones, so -1e4 would leave ~40 per
# step; -30 keeps the step small and leaks exp(-30) ~ 1e-13 of the mass to padded keys
INT8_MASK_NEG = -30.0


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
    """Pull every weight the classifier needs out of a HF ``*ForSequenceClassification`` model."""
    masks = masks or {}
    cfg = model.config
    mt = cfg.model_type
    if mt in ("bert", "roberta"):
        base = getattr(model, mt)
        emb, prefix = base.embeddings, f"{mt}.encoder.layer"
        layers = []
        for i, lay in enumerate(base.encoder.layer):
            p = f"{prefix}.{i}"
            at = lay.attention
            layers.append(LayerWeights(
                _lin(at.self.query, f"{p}.attention.self.query", masks), _lin(at.self.key, f"{p}.attention.self.key", masks),
                _lin(at.self.value, f"{p}.attention.self.value", masks),
                _lin(at.output.dense, f"{p}.attention.output.dense", masks),
                _lin(lay.intermediate.dense, f"{p}.intermediate.dense", masks),
                _lin(lay.output.dense, f"{p}.output.dense", masks), _ln(at.output.LayerNorm), _ln(lay.output.LayerNorm)))
        if mt == "bert":
            if base.pooler is None:
                raise ModelError("BERT classifier without a pooler is not supported")
            head = [(_np(base.pooler.dense.weight), _np(base.pooler.dense.bias), "tanh"),
                    (_np(model.classifier.weight), _np(model.classifier.bias), "none")]
        else:
            c = model.classifier
            head = [(_np(c.dense.weight), _np(c.dense.bias), "tanh"), (_np(c.out_proj.weight), _np(c.out_proj.bias), "none")]
        act, heads, tt = cfg.hidden_act, cfg.num_attention_heads, _np(emb.token_type_embeddings.weight)
        word, pos, eln = _np(emb.word_embeddings.weight), _np(emb.position_embeddings.weight), _ln(emb.LayerNorm)
    elif mt == "distilbert":
        base, prefix = model.distilbert, "distilbert.transformer.layer"
        layers = []
        for i, lay in enumerate(base.transformer.layer):
            p, at = f"{prefix}.{i}", lay.attention
            layers.append(LayerWeights(
                _lin(at.q_lin, f"{p}.attention.q_lin", masks), _lin(at.k_lin, f"{p}.attention.k_lin", masks),
                _lin(at.v_lin, f"{p}.attention.v_lin", masks), _lin(at.out_lin, f"{p}.attention.out_lin", masks),
                _lin(lay.ffn.lin1, f"{p}.ffn.lin1", masks), _lin(lay.ffn.lin2, f"{p}.ffn.lin2", masks),
                _ln(lay.sa_layer_norm), _ln(lay.output_layer_norm)))
        head = [(_np(model.pre_classifier.weight), _np(model.pre_classifier.bias), "relu"),
                (_np(model.classifier.weight), _np(model.classifier.bias), "none")]
        act, heads, tt = cfg.activation, cfg.n_heads, None
        emb = base.embeddings
        word, pos, eln = _np(emb.word_embeddings.weight), _np(emb.position_embeddings.weight), _ln(emb.LayerNorm)
    else:
        raise ModelError(f"unsupported architecture {mt!r} for TFLite; supported: bert, roberta, distilbert")
    if act not in ACTIVATIONS:
        raise ModelError(f"activation {act!r} is not supported; supported: {', '.join(ACTIVATIONS)}")
    hidden = word.shape[1]
    names = list(getattr(tokenizer, "model_input_names", ["input_ids", "attention_mask", "token_type_ids"]))
    return EncoderWeights(mt, heads, hidden // heads, act, word, pos, tt, eln, layers, head,
                          int(cfg.pad_token_id if cfg.pad_token_id is not None else 0),
                          mt != "distilbert" and "token_type_ids" in names, int(cfg.num_labels))


def _gelu_np(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.vectorize(math.erf, otypes=[np.float64])(x / math.sqrt(2.0)))


def _gelu_tanh_np(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


ACTIVATIONS_NP: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu": _gelu_np, "relu": lambda x: np.maximum(x, 0), "gelu_new": _gelu_tanh_np, "gelu_pytorch_tanh": _gelu_tanh_np}
ACTIVATIONS = tuple(ACTIVATIONS_NP)


# ---------------------------------------------------------------- structural shrink (pure numpy)

@dataclass
class ShrunkLayer:
    q: Lin
    k: Lin
    v: Lin
    o: Lin
    ffn_in: Lin
    ffn_out: Lin
    heads: int
    dqk: int
    dv: int
    report: dict[str, Any] = field(default_factory=dict)


def _alive_rows(lin: Lin) -> np.ndarray:
    return np.ones(lin.w.shape[0], bool) if lin.mask is None else lin.mask.any(axis=1)


def _alive_cols(lin: Lin) -> np.ndarray:
    return np.ones(lin.w.shape[1], bool) if lin.mask is None else lin.mask.any(axis=0)


def _take_rows(lin: Lin, rows: np.ndarray) -> Lin:
    """Rows by index; -1 = a zero padding row (zero weight, zero bias)."""
    pad = rows < 0
    r = np.where(pad, 0, rows)
    w, b = lin.w[r].copy(), lin.b[r].copy()
    w[pad], b[pad] = 0.0, 0.0
    m = None
    if lin.mask is not None:
        m = lin.mask[r].copy()
        m[pad] = False
    return Lin(lin.name, w, b, m)


def _take_cols(lin: Lin, cols: np.ndarray, bias: np.ndarray | None = None) -> Lin:
    pad = cols < 0
    c = np.where(pad, 0, cols)
    w = lin.w[:, c].copy()
    w[:, pad] = 0.0
    m = None
    if lin.mask is not None:
        m = lin.mask[:, c].copy()
        m[:, pad] = False
    return Lin(lin.name, w, lin.b.copy() if bias is None else bias, m)


def _padded(per_head: list[np.ndarray], width: int) -> np.ndarray:
    return np.concatenate([np.concatenate([d, -np.ones(width - d.size, np.int64)]) for d in per_head])


def shrink_layer(lay: LayerWeights, heads: int, head_dim: int, act: str) -> ShrunkLayer:
    """Remove whole pruned heads, head dimensions and FFN units; exact, with constant outputs folded."""
    q, k, v, o = lay.q, lay.k, lay.v, lay.o
    # a q/k dimension matters only if k varies over keys and q is not identically zero
    qk_keep = _alive_rows(k) & (_alive_rows(q) | (q.b != 0))
    v_rows, o_cols = _alive_rows(v), _alive_cols(o)
    v_keep = v_rows & o_cols
    # v dims with pruned rows output their bias at every position; attention rows sum to 1, so the
    # context is that bias too: fold it into the output bias
    fold = (~v_rows) & o_cols
    o_bias = o.b + o.w[:, fold] @ v.b[fold]
    kept_heads = [h for h in range(heads) if v_keep[h * head_dim:(h + 1) * head_dim].any()] or [0]
    qk_dims = [np.flatnonzero(qk_keep[h * head_dim:(h + 1) * head_dim]) + h * head_dim for h in kept_heads]
    v_dims = [np.flatnonzero(v_keep[h * head_dim:(h + 1) * head_dim]) + h * head_dim for h in kept_heads]
    dqk = max(1, max(d.size for d in qk_dims))
    dv = max(1, max(d.size for d in v_dims))
    qk_idx, v_idx = _padded(qk_dims, dqk), _padded(v_dims, dv)
    f_in, f_out = lay.ffn_in, lay.ffn_out
    u_in, u_out = _alive_rows(f_in), _alive_cols(f_out)
    units = np.flatnonzero(u_in & u_out)
    const = (~u_in) & u_out  # unit outputs act(bias): fold into the second FFN bias
    f_bias = f_out.b + f_out.w[:, const] @ ACTIVATIONS_NP[act](f_in.b[const].astype(np.float64)).astype(np.float32)
    if units.size == 0:
        units = np.array([-1])
    report = {"heads_kept": len(kept_heads), "heads": heads, "qk_dim": dqk, "v_dim": dv, "head_dim": head_dim,
              "ffn_units_kept": int((units >= 0).sum()), "ffn_units": int(f_in.w.shape[0])}
    return ShrunkLayer(_take_rows(q, qk_idx), _take_rows(k, qk_idx), _take_rows(v, v_idx),
                       _take_cols(o, v_idx, o_bias.astype(np.float32)), _take_rows(f_in, units),
                       _take_cols(f_out, units, f_bias.astype(np.float32)), len(kept_heads), dqk, dv, report)


def unshrunk_layer(lay: LayerWeights, heads: int, head_dim: int) -> ShrunkLayer:
    return ShrunkLayer(lay.q, lay.k, lay.v, lay.o, lay.ffn_in, lay.ffn_out, heads, head_dim, head_dim,
                       {"heads_kept": heads, "heads": heads, "qk_dim": head_dim, "v_dim": head_dim,
                        "head_dim": head_dim, "ffn_units_kept": int(lay.ffn_in.w.shape[0]),
                        "ffn_units": int(lay.ffn_in.w.shape[0])})


# ---------------------------------------------------------------- plan: a formulation per linear

Chooser = Callable[[str, list[tl.Formulation]], tl.Formulation]
ROLES = ("q", "k", "v", "o", "ffn_in", "ffn_out")


@dataclass
class LayerPlan:
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
               progress: Callable[[], None] | None = None) -> list[LayerPlan]:
    """One :class:`LayerPlan` per encoder layer.

    ``dense``: dense graph with the zeros kept; ``structured``: whole heads / units / rows / columns
    removed; ``packed``: structured plus block-row formulations, each linear's chosen by ``choose``.
    ``progress`` is called after each linear (``len(weights.layers) * len(ROLES)`` calls; timing
    every candidate is the slow part of a TFLite export).
    """
    plans = []
    for lay in weights.layers:
        if mode == "dense":
            s = unshrunk_layer(lay, weights.heads, weights.head_dim)
        else:
            s = shrink_layer(lay, weights.heads, weights.head_dim, weights.act)
        lins, rep = {}, dict(s.report)
        for role in ROLES:
            lin: Lin = getattr(s, role)
            mask = None if mode == "dense" else lin.mask
            cands = tl.candidates(lin.w, lin.b, mask, allow_rows=role in ("o", "ffn_out"),
                                  allow_segments=mode == "packed")
            f = cands[0] if len(cands) == 1 else choose(lin.name, cands)
            lins[role] = f
            rep[role] = {"name": lin.name, **f.describe(), "dense_macs_per_token": int(lay_dense_macs(lay, role))}
            if progress is not None:
                progress()
        plans.append(LayerPlan(lins, s.heads, s.dqk, s.dv, lay.ln1, lay.ln2, rep))
    return plans


def lay_dense_macs(lay: LayerWeights, role: str) -> int:
    return int(getattr(lay, role).w.size)


# ---------------------------------------------------------------- the TF graph

def _layer_norm(tf, x, ln):
    g, b, eps = ln
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    xc = x - mean
    var = tf.reduce_mean(xc * xc, axis=-1, keepdims=True)
    return xc * tf.math.rsqrt(var + eps) * g + b


def _act(tf, x, name: str):
    if name == "gelu":
        return 0.5 * x * (1.0 + tf.math.erf(x * (1.0 / math.sqrt(2.0))))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + tf.math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    if name == "relu":
        return tf.nn.relu(x)
    if name == "tanh":
        return tf.math.tanh(x)
    if name == "none":
        return x
    raise ModelError(f"activation {name!r} is not supported")


def input_names(weights: EncoderWeights) -> list[str]:
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if weights.has_token_types else [])


def build_function(weights: EncoderWeights, plans: list[LayerPlan], seq_len: int, batch: int = 1,
                   mask_neg: float = MASK_NEG):
    """A ``tf.function`` with a static [batch, seq_len] int32 signature returning {"logits": ...}.

    Padded keys get ``mask_neg`` added to their attention scores (:data:`INT8_MASK_NEG` for full int8).
    """
    import tensorflow as tf

    w = weights
    hidden = w.word.shape[1]
    scale = 1.0 / math.sqrt(w.head_dim)
    pos_static = w.pos[:seq_len] if w.arch != "roberta" else None
    spec = [tf.TensorSpec([batch, seq_len], tf.int32, name=n) for n in input_names(w)]

    def forward(input_ids, attention_mask, token_type_ids=None):
        x = tf.gather(w.word, input_ids)
        if w.arch == "roberta":  # HF create_position_ids_from_input_ids
            nonpad = tf.cast(tf.not_equal(input_ids, w.pad_id), tf.int32)
            x = x + tf.gather(w.pos, tf.cumsum(nonpad, axis=1) * nonpad + w.pad_id)
        else:
            x = x + pos_static
        if w.token_type is not None:
            x = x + (tf.gather(w.token_type, token_type_ids) if token_type_ids is not None else w.token_type[0])
        x = tf.reshape(_layer_norm(tf, x, w.emb_ln), [batch * seq_len, hidden])
        maskf = tf.reshape(tf.cast(attention_mask, tf.float32), [batch, 1, 1, seq_len])
        neg = (1.0 - maskf) * mask_neg
        for p in plans:
            def heads_first(t, d, p=p):
                return tf.transpose(tf.reshape(t, [batch, seq_len, p.heads, d]), [0, 2, 1, 3])

            q = heads_first(p.lins["q"](x) * scale, p.dqk)
            k = heads_first(p.lins["k"](x), p.dqk)
            v = heads_first(p.lins["v"](x), p.dv)
            scores = tf.matmul(q, k, transpose_b=True)
            probs = tf.nn.softmax(scores + neg, axis=-1)
            ctx = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [batch * seq_len, p.heads * p.dv])
            x = _layer_norm(tf, p.lins["o"](ctx) + x, p.ln1)
            h = _act(tf, p.lins["ffn_in"](x), w.act)
            x = _layer_norm(tf, p.lins["ffn_out"](h) + x, p.ln2)
        y = tf.reshape(x, [batch, seq_len, hidden])[:, 0, :]
        for hw, hb, act in w.head:
            y = _act(tf, tf.matmul(y, hw.T.copy()) + hb, act)
        return {"logits": y}

    if w.has_token_types:
        fn = tf.function(lambda input_ids, attention_mask, token_type_ids: forward(input_ids, attention_mask,
                                                                                   token_type_ids),
                         input_signature=spec)
    else:
        fn = tf.function(lambda input_ids, attention_mask: forward(input_ids, attention_mask), input_signature=spec)
    return fn


def plan_summary(plans: list[LayerPlan]) -> dict[str, Any]:
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
