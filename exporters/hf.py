"""Hugging Face checkpoint exporter: the masked model physically shrunk, saved with ``save_pretrained``.

Attention heads and FFN units pruned whole are removed exactly (:mod:`structured`; the value biases of dead heads
and the constant outputs of half-dead units are folded into the next bias). Removed heads are recorded as
transformers always recorded them, ``config.pruned_heads``: transformers 4 narrows the layers from it when it
builds the model; transformers 5 dropped head pruning, so such a folder also carries :mod:`hf_modeling` as
``modeling_edgeprune.py`` (``auto_map``; load with ``trust_remote_code=True``). A config has one FFN width for
all layers, so every layer stores its live units plus zero units up to the widest layer's count (exact: a zero
unit adds nothing); the report counts the padding.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.errors import ConfigError, ExportError
from edgeprune.rundir import PrunedRun
from . import register_exporter
from .base import Exporter, verification_record
from .prepared import PreparedModel

ARTIFACT = "model.safetensors"
MODELING = "modeling_edgeprune.py"


def headless_layers(run: PrunedRun) -> list[int]:
    """Encoder layers whose masks leave no attention head alive (:func:`structured.attention_shrink`), read before
    any weights load so the export fails at once."""
    from transformers import AutoConfig

    from edgeprune.arch import get_arch
    from .structured import attention_shrink

    config = AutoConfig.from_pretrained(run.model_dir, local_files_only=True)
    arch = get_arch(config.model_type)
    by_layer: dict[int, dict[str, Any]] = {}
    for name, m in run.masks.items():
        role = arch.role_of(name.removesuffix(".weight"))
        if role in ("v", "attn_out"):
            by_layer.setdefault(arch.layer_of(name), {})[role] = m
    heads = arch.num_heads(config)
    return [layer for layer, m in sorted(by_layer.items())
            if attention_shrink(None, None, m.get("v"), m.get("attn_out"), None, heads).placeholder]


def pad_ffn(model, width: int) -> None:
    """Give every layer's FFN ``width`` units by appending zero ones (zero in-rows and bias, zero out-columns)."""
    import torch

    from .structured import roles_by_layer, set_module

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


@dataclass(frozen=True)
class HfOptions:
    """The Hugging Face checkpoint has no settings of its own (always fp32, always structured)."""


@register_exporter("hf")
class HfExporter(Exporter):
    """A ``from_pretrained`` folder whose dead heads and FFN units are gone, verified against the masked model."""

    options_type = HfOptions

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
        empty = headless_layers(run)
        if empty:
            raise ExportError(f"the masks of {run.root} prune every attention head of layer(s) "
                              f"{', '.join(map(str, empty))}; a Hugging Face config cannot hold a layer without heads "
                              "(--format onnx --mode structured can)")

    def build(self, prepared: PreparedModel, out_dir: Path) -> dict[str, Any]:
        from edgeprune.arch import get_arch
        from edgeprune.quiet import stage
        from .structured import shrink_ffn, shrink_heads

        model, tok = prepared.model, prepared.tokenizer
        stage("[export] removing the attention heads and FFN units pruned whole")
        shrunk = copy.deepcopy(model)
        masks, head_records = shrink_heads(shrunk, prepared.masks)
        _, live = shrink_ffn(shrunk, masks)
        width = max(max(live.values()), 1)
        pad_ffn(shrunk, width)
        model_type = model.config.model_type
        cfg = shrunk.config
        setattr(cfg, get_arch(model_type).ffn_key, width)
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
        ver = self._verify(prepared, reloaded)
        return self._report(prepared, reloaded, out_dir, head_records, live, width, ver)

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

    def _verify(self, prepared: PreparedModel, reloaded) -> dict[str, Any]:
        """verification.json: the reloaded checkpoint's logits vs the masked model's on real dev examples."""
        from edgeprune.quiet import stage
        from .onnx_verify import run_batches
        from .prepared import torch_logits

        c = self.config
        if not c.verify:
            return {"passed": True, "reason": "verification skipped (--no-verify)", "skipped": True}
        stage(f"[export] verifying against the masked model on up to {c.verify_examples} dev examples")
        ref = prepared.reference(c.data_dir, c.verify_examples, c.seq_len, list(prepared.tokenizer.model_input_names))
        got = run_batches(lambda b: torch_logits(reloaded, b), ref.feeds)
        rec = verification_record(ref.logits, got, ref.labels, prepared.spec, "fp32", self.ATOL, self.MAX_POINTS)
        rec.update({"task": prepared.task, "split": "dev", "seq_len": c.seq_len, "runtime": "transformers (PyTorch)"})
        return rec

    def _report(self, prepared: PreparedModel, reloaded, out_dir: Path, head_records: list[dict[str, Any]],
                live: dict[int, int], width: int, ver: dict[str, Any]) -> dict[str, Any]:
        from edgeprune.arch import get_arch
        from .structured import roles_by_layer

        run, model = prepared.run, prepared.model
        lin, by_layer = roles_by_layer(model)
        ffn_key = get_arch(model.config.model_type).ffn_key
        cfg = reloaded.config
        heads = get_arch(cfg.model_type).num_heads(cfg)
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
        notes = [f"FFN: {ffn_key} {width} (the widest layer's live units); "
                 f"{padding} zero units pad the narrower layers (exact)"] if padding else []
        labels = prepared.labels
        return {
            "artifact": ARTIFACT,
            "verification": ver,
            "sizes": sizes,
            "parameters": {"before": before, "after": after, "removed": before - after,
                           "ratio": round(after / before, 4)},
            "attention_heads": attention,
            "ffn_units": ffn,
            "hf_config": {"pruned_heads": {str(k): v for k, v in pruned.items()}, ffn_key: width,
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
