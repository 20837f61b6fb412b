"""Hugging Face checkpoint exporter: the masked model physically shrunk, saved with ``save_pretrained``.

Attention heads and FFN units pruned whole are removed exactly (:mod:`structure`; the value biases of dead heads
and the constant outputs of half-dead units are folded into the next bias). Removed heads are recorded as
transformers always recorded them, ``config.pruned_heads``: transformers 4 narrows the layers from it when it
builds the model; transformers 5 dropped head pruning, so such a folder also carries :mod:`hf_modeling` as
``modeling_edgeprune.py`` (``auto_map``; load with ``trust_remote_code=True``). A config has one FFN width for
all layers, so every layer stores its live units plus zero units up to the widest layer's count (exact: a zero
unit adds nothing); the report counts the padding.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from edgeprune.errors import ConfigError, ExportError
from edgeprune.rundir import PrunedRun
from . import register_exporter
from .base import Exporter, check_task_labels, model_labels, verification_record

ARTIFACT = "model.safetensors"
MODELING = "modeling_edgeprune.py"
FFN_SIZE = {"bert": "intermediate_size", "roberta": "intermediate_size", "distilbert": "hidden_dim"}


def headless_layers(run: PrunedRun) -> list[int]:
    """Encoder layers whose masks leave no attention head alive (:func:`structure.dead_heads`), read before any
    weights load so the export fails at once."""
    import torch
    from transformers import AutoConfig

    from edgeprune.arch import get_arch
    from .structure import dead_heads

    config = AutoConfig.from_pretrained(run.model_dir, local_files_only=True)
    arch = get_arch(config.model_type)
    by_layer: dict[int, dict[str, Any]] = {}
    for name, m in run.masks.items():
        role = arch.role_of(name.removesuffix(".weight"))
        if role in ("v", "attn_out"):
            by_layer.setdefault(arch.layer_of(name), {})[role] = m.bool()
    head_size = config.hidden_size // config.num_attention_heads
    out = []
    for layer, m in sorted(by_layer.items()):
        full = torch.ones_like(next(iter(m.values())))  # both are [hidden, hidden] in these architectures
        v_dead, out_dead = dead_heads(m.get("v", full), m.get("attn_out", full), head_size)
        if bool((v_dead | out_dead).all()):
            out.append(layer)
    return out


def ffn_live_units(model, masks: dict[str, Any]) -> dict[int, int]:
    """Layer -> FFN units that survive :func:`structure.shrink_ffn` (counted on the unshrunk model)."""
    from .structure import dead_units, full_mask, roles_by_layer

    lin, by_layer = roles_by_layer(model)
    out = {}
    for layer, roles in sorted(by_layer.items()):
        fi, fo = roles["ffn_in"], roles["ffn_out"]
        dead_in, dead_out = dead_units(full_mask(masks.get(f"{fi}.weight"), lin[fi]),
                                       full_mask(masks.get(f"{fo}.weight"), lin[fo]))
        out[layer] = int((~(dead_in | dead_out)).sum())
    return out


def pad_ffn(model, width: int) -> None:
    """Give every layer's FFN ``width`` units by appending zero ones (zero in-rows and bias, zero out-columns)."""
    import torch

    from .structure import roles_by_layer, set_module

    lin, by_layer = roles_by_layer(model)
    for roles in by_layer.values():
        l_in, l_out = lin[roles["ffn_in"]], lin[roles["ffn_out"]]
        pad = width - l_in.out_features
        if pad == 0:
            continue
        n_in, n_out = torch.nn.Linear(l_in.in_features, width), torch.nn.Linear(width, l_out.out_features)
        with torch.no_grad():
            n_in.weight.copy_(torch.cat([l_in.weight, l_in.weight.new_zeros(pad, l_in.in_features)]))
            n_in.bias.copy_(torch.cat([l_in.bias, l_in.bias.new_zeros(pad)]))
            n_out.weight.copy_(torch.cat([l_out.weight, l_out.weight.new_zeros(l_out.out_features, pad)], dim=1))
            n_out.bias.copy_(l_out.bias)
        set_module(model, roles["ffn_in"], n_in)
        set_module(model, roles["ffn_out"], n_out)


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@register_exporter("hf")
class HfExporter(Exporter):
    """A ``from_pretrained`` folder whose dead heads and FFN units are gone, verified against the masked model."""

    ATOL = 1e-5  # the shrink is exact: only the summation order changes (3e-8 measured on MiniLM-L6)

    def check_config(self, run: PrunedRun) -> None:
        c = self.config
        if not run.masks:
            raise ConfigError(f"{run.root} has no masks (model/masks.safetensors); --format hf removes what a compress "
                              "run pruned, and a dense checkpoint has nothing to remove")
        if c.dtype != "fp32":
            raise ConfigError(f"--format hf writes fp32 weights; --dtype {c.dtype} applies to onnx and tflite")
        if c.mode == "dense":
            raise ConfigError("--format hf always removes the heads and FFN units pruned whole; --mode dense applies "
                              "to onnx and tflite")
        if c.opset is not None:
            raise ConfigError("--opset applies to ONNX exports only")
        empty = headless_layers(run)
        if empty:
            raise ExportError(f"the masks of {run.root} prune every attention head of layer(s) "
                              f"{', '.join(map(str, empty))}; a Hugging Face config cannot hold a layer without heads "
                              "(--format onnx --mode structured can)")

    def build(self, run: PrunedRun, out_dir: Path) -> dict[str, Any]:
        from edgeprune.models import load_model
        from edgeprune.quiet import stage
        from edgeprune.prune.masks import apply_masks
        from .structure import shrink_ffn, shrink_heads

        c = self.config
        task = c.task or run.task
        model, tok = load_model(run.model_dir)
        model.eval()
        apply_masks(model, run.masks)
        check_task_labels(model, task)
        stage("[export] removing the attention heads and FFN units pruned whole")
        shrunk = copy.deepcopy(model)
        masks, head_records = shrink_heads(shrunk, run.masks)
        live = ffn_live_units(model, run.masks)
        shrink_ffn(shrunk, masks)
        width = max(max(live.values()), 1)
        pad_ffn(shrunk, width)
        model_type = model.config.model_type
        cfg = shrunk.config
        setattr(cfg, FFN_SIZE[model_type], width)
        pruned = {r["layer"]: r["dead_heads"] for r in head_records}
        if pruned:
            from . import hf_modeling

            cfg.pruned_heads = pruned
            cfg.auto_map = {"AutoModelForSequenceClassification":
                            f"{Path(MODELING).stem}.{hf_modeling.CLASSES[model_type].__name__}"}
            (out_dir / MODELING).write_text(Path(hf_modeling.__file__).read_text(encoding="utf-8"), encoding="utf-8")
        stage(f"[export] saving the checkpoint to {out_dir}")
        shrunk.save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
        reloaded = self._reload(out_dir, model_type, bool(pruned))
        ver = self._verify(model, reloaded, tok, task)
        return self._report(run, model, reloaded, out_dir, head_records, live, width, ver)

    @staticmethod
    def _reload(out_dir: Path, model_type: str, pruned: bool):
        """The written folder loaded back the way a user loads it (the shipped class when heads were removed)."""
        from transformers import AutoModelForSequenceClassification

        from .hf_modeling import CLASSES

        cls = CLASSES[model_type] if pruned else AutoModelForSequenceClassification
        try:
            return cls.from_pretrained(out_dir, local_files_only=True).eval()
        except Exception as e:
            raise ExportError(f"the written checkpoint does not load back ({type(e).__name__}: "
                              f"{str(e)[:200]})") from None

    def _verify(self, model, reloaded, tok, task: str | None) -> dict[str, Any]:
        """verification.json: the reloaded checkpoint's logits vs the masked model's on real dev examples."""
        import numpy as np

        from edgeprune.data.glue import get_task
        from edgeprune.quiet import stage
        from .onnx_verify import encode_examples, load_examples, run_batches, torch_logits

        c = self.config
        if not c.verify:
            return {"passed": True, "reason": "verification skipped (--no-verify)", "skipped": True}
        stage(f"[export] verifying against the masked model on up to {c.verify_examples} dev examples")
        examples = load_examples(task, c.data_dir, "dev", c.verify_examples)
        feeds = encode_examples(tok, examples, c.seq_len, list(tok.model_input_names))
        ref = run_batches(lambda b: torch_logits(model, b), feeds)
        got = run_batches(lambda b: torch_logits(reloaded, b), feeds)
        labels = np.asarray([e.label for e in examples])
        rec = verification_record(ref, got, labels, get_task(task), "fp32", self.ATOL, self.MAX_POINTS)
        rec.update({"task": task, "split": "dev", "seq_len": c.seq_len, "runtime": "transformers (PyTorch)"})
        return rec

    def _report(self, run: PrunedRun, model, reloaded, out_dir: Path, head_records: list[dict[str, Any]],
                live: dict[int, int], width: int, ver: dict[str, Any]) -> dict[str, Any]:
        from .structure import roles_by_layer

        lin, by_layer = roles_by_layer(model)
        cfg = reloaded.config
        heads = cfg.num_attention_heads
        records = {r["layer"]: r for r in head_records}
        attention = []
        for layer in sorted(by_layer):
            r = records.get(layer, {"dead_heads": [], "v_bias_folded": 0})
            attention.append({"layer": layer, "heads": heads, "heads_kept": heads - len(r["dead_heads"]),
                              "heads_removed": r["dead_heads"], "v_bias_folded": r["v_bias_folded"]})
        ffn = [{"layer": layer, "units": lin[roles["ffn_in"]].out_features, "units_kept": live[layer],
                "units_stored": width, "zero_padding": width - live[layer]}
               for layer, roles in sorted(by_layer.items())]
        before, after = _params(model), _params(reloaded)
        src = run.model_dir / ARTIFACT
        sizes = {"file_bytes": (out_dir / ARTIFACT).stat().st_size,
                 "source_file_bytes": src.stat().st_size if src.is_file() else None}
        pruned = getattr(cfg, "pruned_heads", None) or {}
        loading = "AutoModelForSequenceClassification.from_pretrained(path" + (
            ", trust_remote_code=True)" if pruned else ")")
        why = (f" on transformers 5, which dropped head pruning: `{MODELING}` narrows the layers "
               "`config.pruned_heads` lists (transformers 4 reads `pruned_heads` itself, without the flag)"
               if pruned else "")
        padding = sum(f["zero_padding"] for f in ffn)
        notes = [f"FFN: {FFN_SIZE[cfg.model_type]} {width} (the widest layer's live units); "
                 f"{padding} zero units pad the narrower layers (exact)"] if padding else []
        labels = model_labels(model)
        return {
            "artifact": ARTIFACT,
            "verification": ver,
            "sizes": sizes,
            "parameters": {"before": before, "after": after, "removed": before - after,
                           "ratio": round(after / before, 4)},
            "attention_heads": attention,
            "ffn_units": ffn,
            "hf_config": {"pruned_heads": {str(k): v for k, v in pruned.items()}, FFN_SIZE[cfg.model_type]: width,
                          "auto_map": getattr(cfg, "auto_map", None)},
            "loading": loading,
            "notes": notes,
            "config": self.config.to_dict(),
            "card": {"library": "transformers", "tags": ["custom_code"] if pruned else [],
                     "notes": [f"Load with `{loading}`{why}.", *("\n" + n for n in notes)]},
            "manifest": {"model": str(run.model_dir), "mode": "structured", "labels": labels,
                         "file_bytes": sizes["file_bytes"], "parameters": after,
                         "trust_remote_code": bool(pruned)},
        }
