"""Per-architecture facts, one registry: which linears are prunable and what each one is.

Keys of ``ARCHS`` are Hugging Face ``model_type`` values. Patterns are regular expressions over
``model.named_modules()`` names; each prunable linear has a role (q, k, v, attn_out, ffn_in, ffn_out).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ModelError


@dataclass(frozen=True)
class ArchSpec:
    model_type: str
    roles: dict[str, str]  # role -> regex matching the module name of that linear
    layer_regex: str  # regex with one group: the encoder layer index
    extra: dict[str, str] = field(default_factory=dict)

    def role_of(self, module_name: str) -> str | None:
        for role, pattern in self.roles.items():
            if re.search(pattern, module_name):
                return role
        return None

    def layer_of(self, module_name: str) -> int | None:
        m = re.search(self.layer_regex, module_name)
        return int(m.group(1)) if m else None


ARCHS: dict[str, ArchSpec] = {}


def register_arch(*model_types: str, roles: dict[str, str], layer_regex: str) -> None:
    for mt in model_types:
        ARCHS[mt] = ArchSpec(mt, roles, layer_regex)


_BERT_ROLES = {
    "q": r"encoder\.layer\.\d+\.attention\.self\.query$",
    "k": r"encoder\.layer\.\d+\.attention\.self\.key$",
    "v": r"encoder\.layer\.\d+\.attention\.self\.value$",
    "attn_out": r"encoder\.layer\.\d+\.attention\.output\.dense$",
    "ffn_in": r"encoder\.layer\.\d+\.intermediate\.dense$",
    "ffn_out": r"encoder\.layer\.\d+\.output\.dense$",
}
register_arch("bert", "roberta", roles=_BERT_ROLES, layer_regex=r"encoder\.layer\.(\d+)\.")
register_arch(
    "distilbert",
    roles={
        "q": r"transformer\.layer\.\d+\.attention\.q_lin$",
        "k": r"transformer\.layer\.\d+\.attention\.k_lin$",
        "v": r"transformer\.layer\.\d+\.attention\.v_lin$",
        "attn_out": r"transformer\.layer\.\d+\.attention\.out_lin$",
        "ffn_in": r"transformer\.layer\.\d+\.ffn\.lin1$",
        "ffn_out": r"transformer\.layer\.\d+\.ffn\.lin2$",
    },
    layer_regex=r"transformer\.layer\.(\d+)\.",
)


def get_arch(model_type: str) -> ArchSpec:
    if model_type not in ARCHS:
        raise ModelError(f"unsupported architecture {model_type!r}; edgeprune supports: {', '.join(sorted(ARCHS))}")
    return ARCHS[model_type]


def prunable_linears(model, patterns: list[str] | None = None) -> dict[str, object]:
    """Module name -> nn.Linear for every prunable encoder linear (or those matching ``patterns``)."""
    import torch

    arch = get_arch(model.config.model_type)
    out = {}
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        if patterns is not None:
            if any(re.search(p, name) for p in patterns):
                out[name] = mod
        elif arch.role_of(name) is not None:
            out[name] = mod
    return out
