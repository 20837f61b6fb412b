"""Per-architecture facts, one registry (the way optimum's normalized configs do it).

Keys of ``ARCHS`` are Hugging Face ``model_type`` values. Each :class:`ArchSpec` says where things live in a
``*ForSequenceClassification`` model (the encoder, its layers, each layer's six prunable linears by role, the
layer norms, the embeddings, the classifier steps) and which config keys hold the head count, the hidden and FFN
widths and the activation, so code that walks a model looks facts up instead of branching on the model type.
Roles: q, k, v, attn_out, ffn_in, ffn_out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ModelError

@dataclass(frozen=True)
class ArchSpec:
    model_type: str
    base: str  # attribute of the classifier holding the encoder model ("bert")
    layers: str  # path from the base to the list of encoder layers
    linears: dict[str, str]  # role -> path of that linear inside one layer
    layer_norms: tuple[str, str]  # paths inside one layer: after attention, after the FFN
    heads_key: str  # config key of the attention head count
    hidden_key: str  # config key of the hidden width
    ffn_key: str  # config key of the FFN width (one for every layer)
    activation_key: str  # config key of the FFN activation name
    activation_attr: str  # attribute of ffn_in's parent module holding the activation function
    heads_attr: str  # attribute of the attention module holding its head count
    classifier: tuple[tuple[str, str], ...]  # (module path from the classifier, activation) applied to [CLS]
    token_types: bool  # has token type embeddings
    positions: str = "absolute"  # "absolute", or "padding_offset": RoBERTa's positions count non-pad tokens
    embeddings: str = "embeddings"  # path from the base to the embeddings module
    word: str = "word_embeddings"
    position: str = "position_embeddings"
    token_type: str = "token_type_embeddings"
    embedding_norm: str = "LayerNorm"

    @property
    def roles(self) -> dict[str, str]:
        """role -> regex matching the module name of that linear (``re.search`` over ``named_modules()``)."""
        return {role: rf"{re.escape(self.layers)}\.\d+\.{re.escape(path)}$" for role, path in self.linears.items()}

    @property
    def layer_regex(self) -> str:
        """Regex with one group: the encoder layer index of a module or parameter name."""
        return rf"{re.escape(self.layers)}\.(\d+)\."

    def role_of(self, module_name: str) -> str | None:
        for role, pattern in self.roles.items():
            if re.search(pattern, module_name):
                return role
        return None

    def layer_of(self, module_name: str) -> int | None:
        m = re.search(self.layer_regex, module_name)
        return int(m.group(1)) if m else None

    def module_name(self, layer: int, role: str) -> str:
        """The full module name of ``role``'s linear in encoder layer ``layer``."""
        return f"{self.base}.{self.layers}.{layer}.{self.linears[role]}"

    def encoder_layers(self, model) -> Any:
        return model.get_submodule(f"{self.base}.{self.layers}")

    def num_heads(self, config) -> int:
        return int(getattr(config, self.heads_key))

    def hidden_size(self, config) -> int:
        return int(getattr(config, self.hidden_key))

    def activation(self, config) -> str:
        return str(getattr(config, self.activation_key))

    def ffn_activation(self, model, ffn_in_name: str):
        """The activation function applied to ffn_in's output, as the model runs it."""
        return getattr(model.get_submodule(ffn_in_name.rpartition(".")[0]), self.activation_attr)

    def set_head_count(self, attn, heads: int) -> None:
        """Keep an attention module self-consistent after heads were removed (its forward reshapes with -1)."""
        setattr(attn, self.heads_attr, heads)
        if hasattr(attn, "all_head_size"):
            attn.all_head_size = heads * attn.attention_head_size


_BERT = dict(
    layers="encoder.layer",
    linears={"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "attn_out": "attention.output.dense", "ffn_in": "intermediate.dense", "ffn_out": "output.dense"},
    layer_norms=("attention.output.LayerNorm", "output.LayerNorm"), heads_key="num_attention_heads",
    hidden_key="hidden_size", ffn_key="intermediate_size", activation_key="hidden_act",
    activation_attr="intermediate_act_fn", heads_attr="num_attention_heads", token_types=True)

ARCHS: dict[str, ArchSpec] = {a.model_type: a for a in (
    ArchSpec("bert", base="bert", classifier=(("bert.pooler.dense", "tanh"), ("classifier", "none")), **_BERT),
    ArchSpec("roberta", base="roberta", classifier=(("classifier.dense", "tanh"), ("classifier.out_proj", "none")),
             positions="padding_offset", **_BERT),
    ArchSpec("distilbert", base="distilbert", layers="transformer.layer",
             linears={"q": "attention.q_lin", "k": "attention.k_lin", "v": "attention.v_lin",
                      "attn_out": "attention.out_lin", "ffn_in": "ffn.lin1", "ffn_out": "ffn.lin2"},
             layer_norms=("sa_layer_norm", "output_layer_norm"), heads_key="n_heads", hidden_key="dim",
             ffn_key="hidden_dim", activation_key="activation", activation_attr="activation", heads_attr="n_heads",
             classifier=(("pre_classifier", "relu"), ("classifier", "none")), token_types=False),
)}


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
