"""Shared helpers of the export tests: compress-style runs with known masks, and configs for them.

``make_run`` covers every supported block shape (one per layer); ``head_run`` prunes whole attention heads
(layer 0: head 1 by its value rows, head 2 by its output columns, head 3 by both, head 0 keeps some Q rows
pruned; layer 1: every head dies) with non-zero biases so the value-bias fold is exercised.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edgeprune.exporters import onnx_ops as ops
from edgeprune.exporters.base import ExportConfig
from edgeprune.io import write_json
from edgeprune.rundir import save_masks

SHAPES = [(32, 1, True), (None, 1, True), (1, None, False), (16, 16, False), (32, 1, False)]
D = 16  # head size of the tiny models (hidden 64, 4 heads)


def block_mask(rng, out, inp, R, C, keep, balanced=True):
    """Random block mask; R/C None = whole dimension."""
    R, C = R or out, C or inp
    nbr, nbc = -(-out // R), -(-inp // C)
    m = np.zeros((out, inp), bool)
    for i in range(nbr):
        if balanced:
            cols = rng.choice(nbc, max(1, int(round(nbc * keep))), replace=False)
        else:
            cols = np.flatnonzero(rng.random(nbc) < keep)
        for j in cols:
            m[i * R:(i + 1) * R, j * C:(j + 1) * C] = True
    return m


def make_run(model_dir: Path, root: Path, seed: int = 0, keep: float = 0.4, whole_units: bool = False) -> Path:
    """A compress-style run: the checkpoint + random masks of every supported block shape (one per layer)."""
    from edgeprune.arch import prunable_linears
    from edgeprune.models import load_model

    model, _ = load_model(model_dir)
    rng = np.random.default_rng(seed)
    masks = {}
    for i, (name, lin) in enumerate(sorted(prunable_linears(model).items())):
        out, inp = lin.weight.shape
        R, C, bal = SHAPES[i % len(SHAPES)]
        m = block_mask(rng, out, inp, R, C, keep, bal)
        if i == 3:
            m[:] = True  # a full layer
        if i == 4:
            m[:] = False  # an empty layer
        masks[f"{name}.weight"] = torch.from_numpy(m.astype(np.uint8))
    if whole_units:  # prune whole FFN units: rows of ffn_in and the matching columns of ffn_out
        for name in prunable_linears(model):
            if name.endswith(("intermediate.dense", "ffn.lin1")):
                masks[f"{name}.weight"][::3] = 0
            if name.endswith(("output.dense", "ffn.lin2")) and "attention" not in name:
                masks[f"{name}.weight"][:, 1::3] = 0
    shutil.copytree(model_dir, root / "model")
    save_masks(masks, root / "model" / "masks.safetensors")
    write_json(root / "compression.json", {"task": "mrpc", "block": [32, 1], "method": "test", "layers": {},
                                           "compression": {}, "metrics": {}})
    return root


def force_packed_int8(monkeypatch):
    """The tiny models' layers (<= 64x128) are too small for the packed int8 op to pay, so the cost model sends
    them all to the standard int8 MatMul; tests of the packed int8 path switch its fixed cost off."""
    from edgeprune.exporters import onnx_int8

    monkeypatch.setattr(onnx_int8, "INT8_FIXED_MACS", 0.0)
    monkeypatch.setattr(onnx_int8, "INT8_OVERHEAD", 0.0)


def cfg(glue, **kw):
    return ExportConfig(format="onnx", data_dir=str(glue), task="mrpc", verify_examples=32, **kw)


def edgeprune_nodes(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node if n.domain == ops.DOMAIN]


def attn_names(model, layer: int) -> dict[str, str]:
    """Role (q, k, v, attn_out) -> module name of one encoder layer's attention linears."""
    from edgeprune.arch import get_arch, prunable_linears

    arch = get_arch(model.config.model_type)
    return {arch.role_of(n): n for n in prunable_linears(model) if arch.layer_of(n) == layer
            and arch.role_of(n) in ("q", "k", "v", "attn_out")}


def head_masks(model) -> dict[str, torch.Tensor]:
    """The head masks described in the module docstring."""
    masks = {}
    for layer in (0, 1):
        names = attn_names(model, layer)
        m = {r: torch.ones_like(model.get_submodule(n).weight, dtype=torch.uint8) for r, n in names.items()}
        if layer == 0:
            m["v"][1 * D:2 * D] = 0
            m["attn_out"][:, 2 * D:3 * D] = 0
            m["v"][3 * D:4 * D] = 0
            m["attn_out"][:, 3 * D:4 * D] = 0
            m["q"][2:6] = 0  # whole rows of the surviving head: stays packed after the shrink
        else:
            m["v"][:2 * D] = 0
            m["attn_out"][:, 2 * D:] = 0
        masks.update({f"{names[r]}.weight": t for r, t in m.items()})
    return masks


def with_biases(model, seed: int = 0) -> None:
    """Random init leaves biases at zero; the value-bias fold is only tested when they are not."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear) and mod.bias is not None:
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.5)


def head_run(model_dir: Path, root: Path, masks_of=None) -> Path:
    """A compress-style run of ``model_dir`` with non-zero biases and ``masks_of(model)`` (default: the head
    masks described above)."""
    from edgeprune.models import load_model

    shutil.copytree(model_dir, root / "model")
    model, _ = load_model(model_dir)
    with_biases(model)
    model.save_pretrained(root / "model")
    save_masks((masks_of or head_masks)(model), root / "model" / "masks.safetensors")
    write_json(root / "compression.json", {"task": "mrpc", "block": [16, 1], "method": "test", "layers": {},
                                           "compression": {}, "metrics": {}})
    return root


def run_cli(args, capsys):
    """(exit code, stdout, stderr) of ``edgeprune ARGS`` through the real entry point."""
    from edgeprune.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err
