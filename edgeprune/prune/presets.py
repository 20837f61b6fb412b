"""Presets: which layers to prune per architecture, and which block shapes each runtime turns into speed.

Block presets come from measurements on this machine (``shared/docs/speed-notes.md``, env.md
Exp 4/5 and ``bench/results/export_onnx.*``):

* ``ort``: column segments a quarter of the output rows tall (``all/4x1``, balanced). The
  gathered block-row formulation in stock onnxruntime gets 1.45-2.15x at 5x with R = out/4,
  while R = 64-128 is at or below dense speed and 32x32 gathers are 1.4-1.6x *slower* than
  dense. Whole input columns (``allx1``) and whole output rows (``1xall``) shrink the dense
  MatMul itself and scale linearly, at a higher accuracy cost.
* ``tflite``: whole output rows (``1xall``). TFLite's EXPERIMENTAL_SPARSITY only shrinks files
  and gives no speedup (XNNPACK drops sparse FCs), so only structurally smaller dense layers
  run faster; removing output rows needs no gather at all.
* ``paper``: 16x16 square blocks, the authors' hard-pruning blocks (not balanced).
* ``column``: ``128x1`` balanced column segments, the paper.md recommendation for 384-wide
  MiniLM (256 for BERT-base-sized models).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..arch import ARCHS
from ..errors import ConfigError

ROLES = ("q", "k", "v", "attn_out", "ffn_in", "ffn_out")

LAYER_PRESETS: dict[str, tuple[str, ...]] = {
    "all": ROLES,  # every encoder linear, as the paper's "-noemb" runs
    "attention": ("q", "k", "v", "attn_out"),
    "ffn": ("ffn_in", "ffn_out"),
    "qkv": ("q", "k", "v"),
}


@dataclass(frozen=True)
class BlockPreset:
    block: str
    balanced: bool
    why: str


BLOCK_PRESETS: dict[str, BlockPreset] = {
    "ort": BlockPreset("all/4x1", True, "onnxruntime: tall balanced column segments (R = out/4) gather fast"),
    "tflite": BlockPreset("1xall", False, "TFLite/XNNPACK: whole output rows give structurally smaller dense FCs"),
    "paper": BlockPreset("16x16", False, "the authors' 16x16 hard-pruning blocks"),
    "column": BlockPreset("128x1", True, "paper.md default: balanced 128-row column segments"),
}


def block_preset(name: str) -> BlockPreset:
    if name not in BLOCK_PRESETS:
        raise ConfigError(f"unknown block preset {name!r}; choose one of: {', '.join(BLOCK_PRESETS)}")
    return BLOCK_PRESETS[name]


def layer_patterns(model_type: str, layers: str) -> list[str]:
    """Regexes over module names for a layer preset (``all``, ``attention``, ``ffn``, ``qkv``),
    a comma list of roles (``q,k,ffn_in``) or, failing that, a comma list of regexes."""
    if model_type not in ARCHS:
        raise ConfigError(f"unsupported architecture {model_type!r}; edgeprune supports: {', '.join(sorted(ARCHS))}")
    roles = ARCHS[model_type].roles
    if layers in LAYER_PRESETS:
        return [roles[r] for r in LAYER_PRESETS[layers]]
    items = [s.strip() for s in layers.split(",") if s.strip()]
    if not items:
        raise ConfigError(f"empty --layers; choose a preset ({', '.join(LAYER_PRESETS)}), roles "
                          f"({', '.join(ROLES)}) or regexes over module names")
    if all(i in roles for i in items):
        return [roles[i] for i in items]
    return items
