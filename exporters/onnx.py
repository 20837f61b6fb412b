"""ONNX exporter: pruned linears become ``ai.edgeprune`` ops over packed initializers, verified in onnxruntime.

Path: take the prepared (masked) model (:mod:`prepared`), (structured) physically shrink a copy where whole
attention heads and FFN units are pruned (:mod:`structured`), replace each pruned ``nn.Linear`` by a marker whose TorchScript symbolic is a
placeholder node, export with the legacy exporter, then swap every placeholder for the packed op chosen for that
layer (see :func:`choose_op`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import ConfigError
from edgeprune.rundir import PrunedRun
from . import register_exporter
from .base import Exporter
from .packing import PackedLinear, analyze_mask, pack_linear
from .prepared import PreparedModel
from .structured import head_counts, shrink_ffn, shrink_heads

ARTIFACT = "model.onnx"
OPSET = 17

# Cost model for the gather body, relative to the dense MatMul of the same layer, fitted on the layer study
# in bench/results/export_onnx.md (384/1536-wide layers, 128 rows): t/t_dense ~ 0.07 + 1.07 * work * pen(R),
# work = executed multiply-adds (padding included) / dense ones; short block rows make the batched MatMul
# less efficient (R=32 ran ~1.35x slower per FLOP than R=128; R=16 ~2x: it only pays at high sparsity).
GATHER_OVERHEAD = 0.07
GATHER_SLOPE = 1.07
ROW_PENALTY = ((128, 1.0), (64, 1.1), (32, 1.35), (16, 2.0))
MIN_BLOCK_ROWS = 16


@dataclass
class LinearPlan:
    """How one prunable linear is exported: its shapes before and after the shrink and the op that runs it."""

    name: str  # module name
    shape: tuple[int, int]  # [out, in] as exported (after structural shrink)
    orig_shape: tuple[int, int]
    kept: int
    kind: str
    op: str  # "dense", "shrunk" or an ai.edgeprune op type
    packed: PackedLinear | None = None
    est_speedup: float = 1.0
    heads: tuple[int, int] | None = None  # attention linears: (heads, live heads after the structural shrink)
    int8: Any = None  # int8 exports: the layer's onnx_int8.Int8Decision (packed int8 op or standard int8 MatMul)

    def record(self) -> dict[str, Any]:
        r = {"layer": self.name, "shape": list(self.orig_shape), "exported_shape": list(self.shape),
             "kept_ratio": round(self.kept / float(np.prod(self.orig_shape)), 4), "structure": self.kind,
             "op": self.op, "est_speedup": round(self.est_speedup, 2)}
        if self.heads is not None:
            r.update({"heads": self.heads[0], "heads_kept": self.heads[1],
                      "heads_removed": self.heads[0] - self.heads[1]})
        if self.packed is not None:
            r.update({"blocks": self.packed.nb, "block_rows": self.packed.block_rows, "k": self.packed.k,
                      "row_map": self.packed.row_map is not None,
                      "padding_ratio": round(self.packed.values.size / max(self.kept, 1), 3)})
        if self.int8 is not None:
            r.update({k: v for k, v in self.int8.record().items() if k != "layer"})
        return r


@dataclass(frozen=True)
class OnnxOptions:
    """ONNX-only export settings, validated here."""

    opset: int | None = None  # the default ONNX opset (OPSET) when None
    int8_embeddings: bool = True  # int8: store the (unpruned) embedding tables as int8 too
    int8_choice: str = "model"  # int8: per-layer packed-vs-standard choice by cost "model" or "measure" (timed)
    int8_threads: int = 1  # int8 with int8_choice="measure": intra-op threads the layers are timed at

    def __post_init__(self) -> None:
        if self.opset is not None and not (isinstance(self.opset, int) and 17 <= self.opset <= 21):
            raise ConfigError(f"opset must be between 17 and 21, got {self.opset!r}")
        if self.int8_choice not in ("model", "measure"):
            raise ConfigError(f"unknown --int8-layer-choice {self.int8_choice!r}; choose one of: model, measure")
        if not 1 <= self.int8_threads <= 256:
            raise ConfigError(f"--int8-threads must be between 1 and 256, got {self.int8_threads}")


def choose_op(p: PackedLinear) -> tuple[str, float]:
    """The fastest formulation for a packed layer (cost model) and its estimated speedup over dense."""
    from . import onnx_ops as ops

    out, inp = p.shape
    work = p.values.size / float(out * inp)
    pen = next((f for r, f in ROW_PENALTY if p.block_rows >= r), 2.0)
    t = GATHER_OVERHEAD + GATHER_SLOPE * work * pen + (0.02 if p.row_map is not None else 0.0)
    if p.block_rows >= MIN_BLOCK_ROWS and t < 0.95:
        if p.row_map is None:
            return ops.BSMM, 1.0 / t
        selects_only = int(p.row_map.max()) < p.nb * p.block_rows  # no output row pruned whole: no zero row
        return (ops.BSMM_SELECT if selects_only else ops.BSMM_ROWMAP), 1.0 / t
    return ops.PACKED_DENSE, 1.0


@register_exporter("onnx")
class OnnxExporter(Exporter):
    """Packed / structured / dense ONNX with ``ai.edgeprune`` model-local functions."""

    options_type = OnnxOptions

    def check_config(self, run: PrunedRun) -> None:
        c = self.config
        if c.mode in ("packed", "structured") and not run.masks:
            raise ConfigError(f"{run.root} has no masks (model/masks.safetensors); --mode {c.mode} needs a compress "
                              "run; use --mode dense for a dense checkpoint")
        if c.verify or c.dtype == "int8":
            if not (c.task or run.task):
                raise ConfigError("no GLUE task known for this checkpoint; pass --task (needed for verification "
                                  "and int8 calibration)")
        if c.options.int8_choice == "measure" and not c.dtype.startswith("int8"):
            raise ConfigError(f"--int8-layer-choice measure only applies to --dtype int8 / int8-dynamic, not {c.dtype}")
        if c.dtype == "int8" and c.seq_len is None:
            raise ConfigError("--dtype int8 (static, calibrated) needs a fixed --seq-len; use --dtype int8-dynamic "
                              "for dynamic shapes")

    # -- planning ------------------------------------------------------------------------------------
    def plan(self, model, masks: dict[str, Any], orig_shapes: dict[str, tuple[int, int]]) -> dict[str, LinearPlan]:
        from edgeprune.arch import prunable_linears
        from edgeprune.quiet import Progress

        plans: dict[str, LinearPlan] = {}
        modules = dict(model.named_modules())
        progress = Progress("[export] pack layers", len(masks)) if self.config.mode != "dense" else None
        for pname, m in progress.track(masks.items()) if progress else masks.items():
            name = pname.rsplit(".", 1)[0]
            mod = modules.get(name)
            if mod is None or not pname.endswith(".weight") or not hasattr(mod, "in_features"):
                continue
            mnp = m.cpu().numpy().astype(bool)
            st = analyze_mask(mnp)
            oshape = orig_shapes.get(name, st.shape)
            okept = st.kept
            if st.is_full and self.config.mode != "dense":
                op = "shrunk" if oshape != st.shape else "dense"
                plans[name] = LinearPlan(name, st.shape, oshape, okept, st.kind(), op)
                continue
            if self.config.mode == "dense":
                plans[name] = LinearPlan(name, st.shape, oshape, okept, st.kind(), "dense")
                continue
            w = mod.weight.detach().cpu().numpy()
            b = mod.bias.detach().cpu().numpy() if mod.bias is not None else np.zeros(st.shape[0], w.dtype)
            p = pack_linear(w, mnp, b)
            op, sp = choose_op(p)
            plans[name] = LinearPlan(name, st.shape, oshape, okept, st.kind(), op, p, sp)
        for name in prunable_linears(model):
            if name not in plans:
                lin = modules[name]
                shp = (lin.out_features, lin.in_features)
                plans[name] = LinearPlan(name, shp, orig_shapes.get(name, shp), int(np.prod(orig_shapes.get(name, shp))),
                                        "full", "dense")
        return plans

    # -- build ---------------------------------------------------------------------------------------
    def build(self, prepared: PreparedModel, out_dir: Path) -> dict[str, Any]:
        import copy

        from edgeprune.arch import prunable_linears
        from edgeprune.data.glue import task_name
        from edgeprune.quiet import stage
        from .onnx_graph import export_graph
        from .onnx_quant import convert_dtype
        from .onnx_verify import verify_onnx

        c, o = self.config, self.config.options
        run, model, tok, task = prepared.run, prepared.model, prepared.tokenizer, prepared.task
        data_dir = c.data_dir  # checked by export() when verification or calibration needs it
        masks = dict(prepared.masks)
        orig_shapes = {n: (m.out_features, m.in_features) for n, m in prunable_linears(model).items()}
        export_model = copy.deepcopy(model) if c.mode != "dense" else model
        head_records: list[dict[str, Any]] = []
        if c.mode == "structured":
            masks, head_records = shrink_heads(export_model, masks)
            masks, _ = shrink_ffn(export_model, masks)
        plans = self.plan(export_model, masks, orig_shapes)
        for name, h in head_counts(export_model, orig_shapes, head_records).items():
            plans[name].heads = h
        stage(f"[export] trace the {c.mode} ONNX graph (opset {o.opset or OPSET})")
        onnx_model, input_names = export_graph(export_model, tok, plans, c.seq_len, c.batch, o.opset or OPSET)
        for node in onnx_model.graph.node:  # record the final op (the transposed-chain fusion renames some)
            if node.name in plans and plans[node.name].packed is not None:
                plans[node.name].op = node.op_type
        stage("[export] simplify (onnxsim)")
        onnx_model, sim_note = _simplify(onnx_model)
        fp32_path = out_dir / ARTIFACT
        import onnx

        onnx.save(onnx_model, str(fp32_path))
        notes = [sim_note]
        if c.dtype != "fp32":
            stage(f"[export] quantize to {c.dtype}" if c.dtype.startswith("int8") else f"[export] convert to {c.dtype}")
            note, decisions = convert_dtype(fp32_path, fp32_path, c.dtype, tok, task, data_dir, c.seq_len,
                                            c.calib_examples, input_names, quantize_embeddings=o.int8_embeddings,
                                            int8_choice=o.int8_choice, threads=o.int8_threads,
                                            rows=(c.seq_len or 128) * (c.batch or 1),
                                            in_features={n: p.shape[1] for n, p in plans.items()})
            notes.append(note)
            for d in decisions:
                if d.layer in plans:
                    plans[d.layer].int8 = d
                    plans[d.layer].op = d.op
        model.eval()  # the reference (dense mode traced it in place)
        if c.verify:
            ver = verify_onnx(prepared, fp32_path, data_dir, c.verify_examples, c.seq_len, c.dtype, self.ATOL,
                              self.MAX_POINTS, c.batch)
        else:
            ver = {"passed": True, "reason": "verification skipped (--no-verify)", "skipped": True}
        # optimum's ORTModelForSequenceClassification layout: model.onnx, config.json and tokenizer side by side
        tok.save_pretrained(out_dir)
        model.config.save_pretrained(out_dir)
        from .onnx_meta import stamp_metadata

        stamp_metadata(fp32_path, {"task": task_name(task), "labels": prepared.labels, "seq_len": c.seq_len,
                                   "problem_type": "regression" if model.config.num_labels == 1 else
                                   "single_label_classification", "dtype": c.dtype, "mode": c.mode})
        sizes = size_accounting(fp32_path, plans, c.dtype)
        layers = [p.record() for p in plans.values()]
        fallback = [p.name for p in plans.values() if p.op == "PackedDenseMatMul"]
        int8_fallback = [p.name for p in plans.values() if p.int8 is not None and p.int8.fallback]
        return {
            "artifact": ARTIFACT,
            "verification": ver,
            "sizes": sizes,
            "layers": layers,
            "attention_heads": head_records,  # structured mode: encoder layers that lost heads
            "fallback_layers": fallback,
            # int8: packed layers that run as the standard (structured / dense) int8 MatMul, and why (layers[])
            "int8_fallback_layers": int8_fallback,
            "inputs": input_names,
            "notes": [n for n in notes if n],
            "config": c.to_dict(),
            "manifest": {"model": str(run.model_dir), "inputs": input_names, "labels": prepared.labels,
                         "file_bytes": sizes["file_bytes"], "ideal_bytes": sizes["ideal_bytes"],
                         "dense_file_bytes": sizes["dense_file_bytes"]},
        }


def _simplify(model):
    """onnxsim, kept only when it does not grow the initializers (it must never densify packed weights)."""
    import onnx

    try:
        import onnxsim

        before = sum(len(t.raw_data) or t.ByteSize() for t in model.graph.initializer)
        sim, ok = onnxsim.simplify(model, check_n=0)
        after = sum(len(t.raw_data) or t.ByteSize() for t in sim.graph.initializer)
        if not ok or after > before * 1.001 or len(sim.functions) != len(model.functions):
            return model, f"onnxsim result discarded (ok={ok}, initializer bytes {before}->{after})"
        onnx.checker.check_model(sim, full_check=True)
        return sim, f"onnxsim: {len(model.graph.node)} -> {len(sim.graph.node)} nodes, initializers unchanged"
    except Exception as e:  # onnxsim is an optimisation; the unsimplified graph is still valid
        return model, f"onnxsim skipped ({type(e).__name__}: {str(e)[:120]})"


def size_accounting(path: Path, plans: dict[str, LinearPlan], dtype: str) -> dict[str, Any]:
    """file bytes, ideal bytes (surviving values + indices + unpruned rest) and dense-equivalent bytes.

    Packed layers are measured from the file's own initializers (``<layer>.values``/``.col_idx``/``.row_map``
    /``.scale``, bias excluded); dense or shrunk layers count ``numel * value bytes`` (int8: 1 byte + scales).
    """
    import onnx

    vb = {"fp32": 4, "fp16": 2}.get(dtype, 1)
    file_bytes = os.path.getsize(path)
    m = onnx.load(str(path), load_external_data=False)
    init_bytes = {t.name: len(t.raw_data) or t.ByteSize() for t in m.graph.initializer}
    stored = ideal = dense = 0
    for p in plans.values():
        out, inp = p.orig_shape
        dense += out * inp * vb + (out * 4 if vb == 1 else 0)
        if p.packed is not None:
            mine = {k: v for k, v in init_bytes.items() if k.startswith(p.name + ".") and not k.endswith(".bias")}
            stored += sum(mine.values())
            scales = mine.get(f"{p.name}.scale", 0)
            ideal += p.packed.ideal_bytes(vb) + scales
        else:
            o, i = p.shape
            stored += o * i * vb + (o * 4 if vb == 1 else 0)
            ideal += p.kept * vb + (o * 4 if vb == 1 else 0)
    rest = file_bytes - stored
    return {
        "file_bytes": file_bytes,
        "ideal_bytes": rest + ideal,
        "dense_file_bytes": rest + dense,
        "file_over_ideal": round(file_bytes / float(rest + ideal), 4),
        "dense_over_file": round((rest + dense) / float(file_bytes), 3),
        "prunable_stored_bytes": stored,
        "prunable_ideal_bytes": ideal,
        "prunable_dense_bytes": dense,
        "value_bytes": vb,
        "note": "dense_file_bytes and ideal_bytes replace the pruned layers' stored bytes in this file by their dense "
                "/ ideal size",
    }


__all__ = ["OnnxExporter", "OnnxOptions", "LinearPlan", "choose_op", "size_accounting"]
