"""Presets: which layers to prune per architecture, and which block shapes each runtime turns into speed.

Block presets come from measurements on this machine (``docs/speed-notes.md``, and the exporters'
own layer studies: ``exporters/onnx.py``, ``exporters/tflite_linear.py``, ``bench/results/export_onnx.*`` /
``export_tflite.*``):

* ``ort``: balanced 128-row column segments (``128x1``). The ONNX exporter's row-gather on the
  transposed activation runs a block-row layer at about ``0.07 + 1.07 * kept`` of the dense time
  for R = 128 (3-4x faster than dense at 20% kept); block rows shorter than 32 are slower than
  dense (32x32 gathers were 1.4-1.6x slower), so short blocks are not offered here.
* ``tflite``: whole input columns (``allx1``): one GATHER of the kept columns then a smaller dense
  FULLY_CONNECTED, which XNNPACK runs at full speed. TFLite's own sparse encoding gives no speedup
  (``docs/speed-notes.md``, TFLite sparse encoding / XNNPACK), so only structurally smaller dense layers run faster.
* ``paper``: 16x16 square blocks, the authors' hard-pruning blocks (not balanced; the exporters
  fall back to packed-dense for them, i.e. smaller files but dense speed).
* ``rows``: whole output rows (``1xall``): a smaller dense MatMul in any runtime, the coarsest
  (and least accurate) structure.
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
    "ort": BlockPreset("128x1", True, "onnxruntime: balanced 128-row column segments (row-gather + batched MatMul)"),
    "tflite": BlockPreset("allx1", True, "TFLite/XNNPACK: whole input columns -> GATHER + smaller dense FC"),
    "paper": BlockPreset("16x16", False, "the authors' 16x16 hard-pruning blocks"),
    "rows": BlockPreset("1xall", False, "whole output rows: a smaller dense MatMul in any runtime"),
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
