"""Layer-by-layer cut and least-squares reconstruction on a calibration sample (the OBC / SparseGPT scheme).

A one-shot structured cut of MiniLM removes 40-70% of the weight energy; refitting the kept weights
of each matrix so that it reproduces the dense layer's output on real inputs recovers most of it
before any training (SST-2 2x: 0.53 -> 0.74 in the review, STS-B 0.08 -> 0.74). Layers are processed
in forward order: the *student* runs on hidden states that already passed the pruned layers below
(so each layer compensates the error it receives), the *teacher* (the dense model) supplies the
targets on its own hidden states. For a linear with student inputs X_p and teacher inputs X_d the
refit solves ``min ||X_d W^T - X_p W'^T||`` over the kept entries of ``W'`` (``prune.reconstruct``).

Modules that read the same tensor (query, key and value) are cut together; the others follow in the
order the layer calls them. Works for any architecture in ``arch`` whose encoder layers are called
with the hidden states first (BERT, RoBERTa, DistilBERT).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .prune.reconstruct import LayerStats, refit_masked


def output_error(w_dense, w_new, Hpp, C, Hdd) -> float:
    """``||X_d W^T - X_p W'^T||^2 / ||X_d W^T||^2`` from Gram matrices (``C = X_p^T X_d``): how far the
    cut layer, fed the pruned model's inputs, is from the dense layer on the dense model's inputs."""
    a = float(torch.einsum("oi,ij,oj->", w_dense, Hdd, w_dense))
    b = float(torch.einsum("oi,ij,oj->", w_new, C, w_dense))
    c = float(torch.einsum("oi,ij,oj->", w_new, Hpp, w_new))
    return max(a - 2 * b + c, 0.0) / a if a > 0 else 0.0


class _Stop(Exception):
    pass


def encoder_layers(model) -> list:
    base = model.base_model
    enc = getattr(base, "encoder", None) or getattr(base, "transformer", None)
    if enc is None or not hasattr(enc, "layer"):
        raise ValueError(f"cannot find the encoder layers of {type(model).__name__}")
    return list(enc.layer)


def _first_layer_calls(model, batches) -> list[tuple[tuple, dict]]:
    """(args, kwargs) that encoder layer 0 receives for every batch (hidden states + masks)."""
    calls: list[tuple[tuple, dict]] = []

    def pre(_mod, args, kwargs):
        calls.append((args, kwargs))
        raise _Stop

    h = encoder_layers(model)[0].register_forward_pre_hook(pre, with_kwargs=True)
    try:
        for b in batches:
            try:
                model(**b)
            except _Stop:
                pass
    finally:
        h.remove()
    return calls


def _hidden(call) -> torch.Tensor:
    args, kwargs = call
    if args:
        return args[0]
    for k in ("hidden_states", "x", "hidden_state"):
        if k in kwargs:
            return kwargs[k]
    raise ValueError("encoder layer called without hidden states")


def _with_hidden(call, h):
    args, kwargs = call
    if args:
        return (h, *args[1:]), kwargs
    kwargs = dict(kwargs)
    for k in ("hidden_states", "x", "hidden_state"):
        if k in kwargs:
            kwargs[k] = h
            return args, kwargs
    raise ValueError("encoder layer called without hidden states")


def _run_layer(layer, call, h):
    args, kwargs = _with_hidden(call, h)
    out = layer(*args, **kwargs)
    return out[0] if isinstance(out, (tuple, list)) else out


@dataclass
class MatrixCut:
    """What happened to one matrix: kept fraction, relative output error before and after the refit."""

    name: str
    kept: float
    damage_cut: float
    damage_refit: float | None


ChooseMask = Callable[[str, torch.Tensor, torch.Tensor, int], torch.Tensor]


@torch.no_grad()
def cut_and_reconstruct(student, teacher, batches: list[dict[str, torch.Tensor]], names: list[str],
                        layer_of: Callable[[str], int], choose_mask: ChooseMask, reconstruct: bool = True,
                        damp: float = 0.01, progress: Callable[[str], None] | None = None
                        ) -> tuple[dict[str, torch.Tensor], list[MatrixCut]]:
    """Cut every matrix in ``names`` (``choose_mask(name, W, H, n_tokens) -> bool mask``) and refit it.

    Modifies ``student`` in place (pruned weights exactly zero); returns (masks, per-matrix records).
    ``batches`` are tokenized calibration batches (with ``attention_mask``); padding tokens are left
    out of every statistic.
    """
    was_s, was_t = student.training, teacher.training
    student.eval()
    teacher.eval()
    s_mods, t_mods = dict(student.named_modules()), dict(teacher.named_modules())
    try:
        s_calls = _first_layer_calls(student, batches)
        t_calls = _first_layer_calls(teacher, batches)
        tok = [b["attention_mask"].bool() for b in batches]
        s_h = [_hidden(c) for c in s_calls]
        t_h = [_hidden(c) for c in t_calls]
        masks: dict[str, torch.Tensor] = {}
        records: list[MatrixCut] = []
        s_layers, t_layers = encoder_layers(student), encoder_layers(teacher)
        for li, (sl, tl) in enumerate(zip(s_layers, t_layers)):
            todo = [n for n in names if layer_of(n) == li]
            if not todo:
                s_h = [_run_layer(sl, c, h) for c, h in zip(s_calls, s_h)]
                t_h = [_run_layer(tl, c, h) for c, h in zip(t_calls, t_h)]
                continue
            # teacher inputs of every target module, one pass (real tokens only)
            t_x: dict[str, list[torch.Tensor]] = {n: [] for n in todo}
            cur = {"i": 0}
            hooks = [t_mods[n.removesuffix(".weight")].register_forward_hook(
                lambda _m, inp, _o, n=n: t_x[n].append(inp[0][tok[cur["i"]]].double())) for n in todo]
            nxt = []
            try:
                for i, (c, h) in enumerate(zip(t_calls, t_h)):
                    cur["i"] = i
                    nxt.append(_run_layer(tl, c, h))
            finally:
                for hk in hooks:
                    hk.remove()
            t_h = nxt
            while todo:
                stats = {n: LayerStats() for n in todo}
                order: list[str] = []
                first_in: dict[str, torch.Tensor] = {}  # held, so a freed input's memory cannot be reused

                def hook(_m, inp, _o, n):
                    i = cur["i"]
                    if i == 0 and n not in first_in:
                        order.append(n)
                        first_in[n] = inp[0]
                    stats[n].add(inp[0][tok[i]].double(), t_x[n][i])

                hooks = [s_mods[n.removesuffix(".weight")].register_forward_hook(
                    lambda m, inp, o, n=n: hook(m, inp, o, n)) for n in todo]
                try:
                    for i, (c, h) in enumerate(zip(s_calls, s_h)):
                        cur["i"] = i
                        _run_layer(sl, c, h)
                finally:
                    for hk in hooks:
                        hk.remove()
                if not order:
                    raise ValueError(f"layer {li}: none of {todo} was called")
                # modules reading the same tensor form a group (compared while all are alive: a data_ptr
                # of a freed tensor may be handed to the next one, which would group unrelated modules)
                lead = first_in[order[0]].data_ptr()
                group = [n for n in order if first_in[n].data_ptr() == lead]
                first_in.clear()
                for n in group:
                    st = stats[n]
                    p = s_mods[n.removesuffix(".weight")].weight
                    # the target is the dense layer on dense inputs: X_d W_dense^T (later stages start from
                    # an already pruned student, whose own weights would make the refit chase the last stage)
                    w0 = t_mods[n.removesuffix(".weight")].weight.detach().double()
                    m = choose_mask(n, p.detach(), st.H, st.n).to(p.device)
                    cut = p.detach().double() * m
                    hdd = sum(x.T @ x for x in t_x[n])
                    rec = MatrixCut(n, float(m.float().mean()), output_error(w0, cut, st.H, st.C, hdd), None)
                    if reconstruct:
                        new = refit_masked(w0, m, st.H, st.C, damp=damp)
                        rec.damage_refit = output_error(w0, new, st.H, st.C, hdd)
                        cut = new
                    p.copy_((cut * m).to(p.dtype))
                    masks[n] = m.bool().cpu()
                    records.append(rec)
                    if progress is not None:
                        progress(f"{n}: kept {rec.kept:.3f}, output error {rec.damage_cut:.3f}"
                                 + (f" -> {rec.damage_refit:.3f} refitted" if rec.damage_refit is not None else ""))
                todo = [n for n in todo if n not in group]
            s_h = [_run_layer(sl, c, h) for c, h in zip(s_calls, s_h)]
        return masks, records
    finally:
        student.train(was_s)
        teacher.train(was_t)


def input_rms(model, tok, params: dict[str, Any], examples, max_seq_len: int, batch_size: int = 16):
    """RMS of every input feature of each pruned linear over ``examples`` (forward hooks, eval mode)."""
    import torch

    mods = dict(model.named_modules())
    acc: dict[str, Any] = {}
    count: dict[str, int] = {}
    hooks = []
    for n in params:
        def hook(_mod, inp, _out, n=n):
            x = inp[0].detach().float().reshape(-1, inp[0].shape[-1])
            acc[n] = acc.get(n, 0) + (x * x).sum(0)
            count[n] = count.get(n, 0) + x.shape[0]
        hooks.append(mods[n.removesuffix(".weight")].register_forward_hook(hook))
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for i in range(0, len(examples), batch_size):
                chunk = examples[i:i + batch_size]
                pairs = chunk[0].text_b is not None
                b = tok([e.text_a for e in chunk], [e.text_b for e in chunk] if pairs else None, truncation=True,
                        max_length=max_seq_len, padding=True, return_tensors="pt")
                model(**{k: v.to(device) for k, v in b.items()})
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return {n: (acc[n] / count[n]).sqrt().cpu() for n in params}


def calibration_batches(tok, examples, max_seq_len: int, batch_size: int = 32) -> list[dict[str, Any]]:
    """Tokenized batches of ``examples`` sorted by length (little padding)."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].text_a) + len(examples[i].text_b or ""))
    out = []
    for s in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[s:s + batch_size]]
        pairs = chunk[0].text_b is not None
        out.append(dict(tok([e.text_a for e in chunk], [e.text_b for e in chunk] if pairs else None,
                            truncation=True, max_length=max_seq_len, padding=True, return_tensors="pt")))
    return out


@torch.no_grad()
def input_grams(model, batches, names: list[str]) -> dict[str, tuple[torch.Tensor, int]]:
    """(H = X^T X over real tokens, token count) of the input of every module in ``names``: one pass."""
    mods = dict(model.named_modules())
    acc: dict[str, Any] = {n: None for n in names}
    cnt = {n: 0 for n in names}
    cur = {"m": None}

    def hook(_m, inp, _o, n):
        x = inp[0][cur["m"]].double()
        acc[n] = x.T @ x if acc[n] is None else acc[n] + x.T @ x
        cnt[n] += x.shape[0]

    hooks = [mods[n.removesuffix(".weight")].register_forward_hook(lambda m, i, o, n=n: hook(m, i, o, n))
             for n in names]
    was = model.training
    model.eval()
    try:
        for b in batches:
            cur["m"] = b["attention_mask"].bool()
            model(**b)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return {n: (acc[n], cnt[n]) for n in names}


LADDER = (0.5, 0.7, 1.0, 1.4, 2.0)


def sensitivity_allocation(weights: dict[str, torch.Tensor], grams: dict[str, tuple[torch.Tensor, int]],
                           mask_at: Callable[[str, torch.Tensor, torch.Tensor, int, float], torch.Tensor],
                           keep: float, damp: float = 0.01, ladder: tuple[float, ...] = LADDER,
                           cap: dict[str, float] | None = None, size_factor: dict[str, float] | None = None
                           ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Per-matrix kept fractions with the same total as ``keep`` everywhere, from measured damage.

    Each matrix is cut alone at ``keep * f`` for f in ``ladder`` and refitted on the dense inputs; its
    damage (relative output error) per kept weight decides: a Lagrangian choice minimises the summed
    damage under the weight budget, then all fractions are scaled so the total is exactly the target.
    ``cap`` bounds each matrix's fraction (a staged cut's current kept fraction: a later stage may only
    cut more, never revive a group an earlier stage removed).
    ``size_factor`` prices a matrix's kept weights when cutting it also cuts others (``--units``: a head's
    output columns free its Q/K/V rows, 4 weights per weight of ``attn_out``).
    Returns (name -> kept fraction, name -> {fraction: damage}) for the report.
    """
    cap = {n: 1.0 for n in weights} if cap is None else {n: min(1.0, cap.get(n, 1.0)) for n in weights}
    table: dict[str, dict[str, float]] = {}
    cand: dict[str, list[tuple[float, float]]] = {}
    for n, w in weights.items():
        H, cnt = grams[n]
        opts = []
        for f in ladder:
            r = min(cap[n], keep * f)
            m = mask_at(n, w, H, cnt, r).to(w.device)
            new = refit_masked(w.double(), m, H, H, damp=damp)
            d = output_error(w.double(), new, H, H, H)
            opts.append((r, d))
        cand[n] = opts
        table[n] = {f"{r:.4f}": round(d, 5) for r, d in opts}
    size = {n: w.numel() * (size_factor or {}).get(n, 1.0) for n, w in weights.items()}
    total = sum(size.values())
    budget = keep * total

    def pick(mu: float) -> dict[str, float]:
        return {n: min(opts, key=lambda o: o[1] + mu * o[0] * size[n] / total * len(size))[0]
                for n, opts in cand.items()}

    lo, hi = 1e-6, 1e6
    for _ in range(80):
        mid = (lo * hi) ** 0.5
        if sum(r * size[n] for n, r in pick(mid).items()) > budget:
            lo = mid
        else:
            hi = mid
    chosen = pick(hi)
    return fill_budget(chosen, cap, size, budget), table


def fill_budget(frac: dict[str, float], cap: dict[str, float], size: dict[str, int], budget: float
                ) -> dict[str, float]:
    """``frac`` scaled by one common factor s, each clipped to its cap, so the kept weights sum to ``budget``
    (s found by bisection: the clipped total grows monotonically with s). If even the caps fall short of the
    budget, the caps."""
    def total(s: float) -> float:
        return sum(min(cap[n], r * s) * size[n] for n, r in frac.items())

    if total(1e9) <= budget:
        return dict(cap)
    lo, hi = 0.0, 1.0
    while total(hi) < budget:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(mid) < budget else (lo, mid)
    return {n: min(cap[n], r * hi) for n, r in frac.items()}
