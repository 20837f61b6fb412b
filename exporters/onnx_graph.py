"""Torch -> ONNX with placeholder nodes for pruned linears, then graph surgery to the packed ``ai.edgeprune`` ops."""
from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from edgeprune.errors import ExportError
from . import onnx_ops as ops
from .packing import index_dtype

MARKER_DOMAIN = "edgeprune_marker"


def marker_linear_cls():
    """``MarkedLinear``: an ``nn.Linear`` stand-in whose TorchScript symbolic is a ``MARKER_DOMAIN`` placeholder."""
    import torch

    class _Marker(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, idx):  # noqa: ARG004
            return torch.nn.functional.linear(x, weight, bias)

        @staticmethod
        def symbolic(g, x, weight, bias, idx):  # noqa: ARG004
            y = g.op(f"{MARKER_DOMAIN}::Linear", x, layer_i=idx)
            try:  # give the placeholder its output type so the exporter's own shape inference stays exact
                sizes = x.type().varyingSizes()
                y.setType(x.type().with_sizes(list(sizes[:-1]) + [int(weight.type().sizes()[0])]))
            except Exception:  # pragma: no cover - types unknown: the surgery re-infers shapes anyway
                pass
            return y

    class MarkedLinear(torch.nn.Module):
        def __init__(self, linear, idx: int) -> None:
            super().__init__()
            self.weight, self.bias, self.idx = linear.weight, linear.bias, idx
            self.in_features, self.out_features = linear.in_features, linear.out_features

        def forward(self, x):
            b = self.bias if self.bias is not None else torch.zeros(self.out_features, dtype=x.dtype)
            return _Marker.apply(x, self.weight, b, self.idx)

    return MarkedLinear


def logits_wrapper(model, input_names: list[str]):
    """``model`` as a module taking positional inputs and returning only the logits (what the exporter traces)."""
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model(**dict(zip(input_names, args))).logits

    return Wrapper().eval()  # the exporter restores the wrapper's mode afterwards: it must be eval


def model_input_names(model, tokenizer) -> list[str]:
    import inspect

    sig = inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in sig and "token_type_ids" in tokenizer.model_input_names:
        names.append("token_type_ids")
    return names


def export_graph(model, tokenizer, plans: dict[str, Any], seq_len: int | None, batch: int | None,
                 opset: int) -> tuple[Any, list[str]]:
    """Export ``model`` (logits only) with every packed layer as an ``ai.edgeprune`` node."""
    import onnx
    import torch

    from .structured import set_module

    MarkedLinear = marker_linear_cls()
    marked: dict[int, Any] = {}
    # Eager attention traces to MatMul/Softmax/MatMul; SDPA adds IsNaN/Where mask handling that cost ~1 ms per
    # MiniLM forward in onnxruntime (measured, every mode alike) and is not part of the model's math.
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
        except Exception:  # noqa: BLE001  (an architecture without an eager path keeps its own)
            pass
    for i, (name, plan) in enumerate(plans.items()):
        if plan.packed is not None:
            lin = model.get_submodule(name)
            set_module(model, name, MarkedLinear(lin, i))
            marked[i] = plan
    try:
        names = model_input_names(model, tokenizer)
        s = seq_len or 16
        dummy = []
        for n in names:  # a padded second row keeps the attention-mask path in the traced graph
            t = torch.ones((batch or 2, s), dtype=torch.long) * (0 if n == "token_type_ids" else 1)
            if n == "attention_mask" and s > 1:
                t[-1, s // 2:] = 0
            dummy.append(t)
        dummy = tuple(dummy)
        dyn: dict[str, dict[int, str]] = {}
        for n in names:
            axes = {}
            if batch is None:
                axes[0] = "batch"
            if seq_len is None:
                axes[1] = "seq"
            if axes:
                dyn[n] = axes
        if batch is None:
            dyn["logits"] = {0: "batch"}
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(logits_wrapper(model, names), dummy, buf, dynamo=False, opset_version=opset,
                              input_names=names, output_names=["logits"], dynamic_axes=dyn or None,
                              custom_opsets={MARKER_DOMAIN: 1}, do_constant_folding=True)
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed ({type(e).__name__}: {str(e)[:300]})") from None
    finally:
        for name, plan in plans.items():  # restore the original linears
            mod = model.get_submodule(name)
            if type(mod).__name__ == "MarkedLinear":
                lin = torch.nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
                lin.weight, lin.bias = mod.weight, mod.bias
                set_module(model, name, lin)
    m = onnx.load_model_from_string(buf.getvalue())
    m = replace_markers(m, marked, opset)
    return m, names


def replace_markers(m, marked: dict[int, Any], opset: int):
    """Swap each placeholder node for its packed op + initializers; add the model-local functions."""
    import onnx
    from onnx import helper, numpy_helper

    g = m.graph
    used: set[str] = set()
    new_nodes = []
    seen = set()
    for node in g.node:
        if node.domain != MARKER_DOMAIN:
            new_nodes.append(node)
            continue
        idx = next(a.i for a in node.attribute if a.name == "layer")
        plan = marked[idx]
        p = plan.packed
        base = plan.name
        out, inp = p.shape
        inits = {f"{base}.values": p.values.astype(np.float32), f"{base}.col_idx": p.col_idx,
                 f"{base}.bias": np.asarray(p.bias, np.float32)}
        rm = None
        if plan.op != ops.BSMM:
            rmap = p.row_map if p.row_map is not None else np.arange(out).astype(index_dtype(out))
            inits[f"{base}.row_map"] = rmap
            rm = f"{base}.row_map"
        for k, v in inits.items():
            if k not in seen:
                g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(v), k))
                seen.add(k)
        new_nodes.append(ops.make_node(plan.op, node.input[0], f"{base}.values", f"{base}.col_idx", f"{base}.bias",
                                       rm, node.output[0], name=base, in_features=inp))
        used.add(plan.op)
    if len(used) == 0 and marked:
        raise ExportError("no placeholder found in the exported graph; the marker symbolic was not used")
    del g.node[:]
    g.node.extend(new_nodes)
    used |= fuse_transposed_chains(g)
    del g.value_info[:]
    keep = [o for o in m.opset_import if o.domain not in (MARKER_DOMAIN, ops.DOMAIN)]
    del m.opset_import[:]
    m.opset_import.extend(keep + [helper.make_opsetid(ops.DOMAIN, ops.DOMAIN_VERSION)])
    m.functions.extend(ops.functions(used))
    m.ir_version = max(m.ir_version, 10)
    m.producer_name = "edgeprune"
    onnx.checker.check_model(m, full_check=True)
    m = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True, data_prop=True)
    return m


ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Erf", "Tanh", "Sigmoid", "Relu", "Pow", "Sqrt", "Neg", "Identity"}


def _scalar_names(g) -> set[str]:
    out = {t.name for t in g.initializer if int(np.prod(t.dims)) == 1}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and int(np.prod(a.t.dims)) == 1 or a.name in ("value_float", "value_int"):
                    out.add(n.output[0])
    return out


def fuse_transposed_chains(g) -> set[str]:
    """``A -> elementwise chain (e.g. GELU) -> B`` with A, B both BlockSparseMatMul: let A emit ``Y^T`` and B
    read it, so the chain runs on the transposed activation and two transposes of the widest activation
    (the FFN intermediate) disappear. Returns the op types introduced."""
    scal = _scalar_names(g)
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}
    introduced: set[str] = set()
    for b in list(g.node):
        if b.domain != ops.DOMAIN or b.op_type != ops.BSMM:
            continue
        chain, stack, a, ok = set(), [b.input[0]], None, True
        while stack and ok:
            name = stack.pop()
            p = producer.get(name)
            if p is None:
                ok = False
            elif p.domain == ops.DOMAIN and p.op_type in (ops.BSMM, ops.BSMM_SELECT) and (a is None or a is p):
                a = p
            elif p.domain == "" and p.op_type in ELEMENTWISE:
                if id(p) not in chain:
                    chain.add(id(p))
                    dyn = [i for i in p.input if i not in scal]
                    ok = len(dyn) >= 1
                    stack.extend(dyn)
            else:
                ok = False
        if not ok or a is None or not chain:
            continue
        nodes = {id(n): n for n in g.node if id(n) in chain}
        inner = [a.output[0]] + [n.output[0] for n in nodes.values()]
        if any(o in graph_outputs for o in inner) or any(
                c is not b and id(c) not in chain for o in inner for c in consumers.get(o, [])):
            continue
        a.op_type = ops.BSMM_SELECT_OUT_T if a.op_type == ops.BSMM_SELECT else ops.BSMM_OUT_T
        b.op_type = ops.BSMM_IN_T
        b.input.append(a.input[0])  # "like": same leading dims as A's input
        introduced |= {a.op_type, ops.BSMM_IN_T}
    return introduced
