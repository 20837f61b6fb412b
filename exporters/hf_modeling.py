"""Head-pruned BERT / RoBERTa / DistilBERT classifiers for transformers 5, which dropped ``prune_heads``.

Copied as ``modeling_edgeprune.py`` into an ``edgeprune export --format hf`` checkpoint that removed heads, and
named in its ``config.json`` ``auto_map``, so ``from_pretrained(folder, trust_remote_code=True)`` builds the
stock model, then gives each layer in ``config.pruned_heads`` the Q/K/V and output-projection shapes of its
kept heads before the (shrunk) weights load. transformers 4 did this itself from ``config.pruned_heads``.
Imports only torch and transformers: the copy must work where edgeprune is not installed.
"""
from __future__ import annotations

from torch import nn
from transformers import (BertForSequenceClassification, DistilBertForSequenceClassification,
                          RobertaForSequenceClassification)

_BERT = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")
_DISTILBERT = ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin")


def narrow_heads(config, layers: nn.ModuleList, names: tuple[str, ...], heads_attr: str, heads: int,
                 hidden: int) -> None:
    """Resize the attention linears ``names`` (q, k, v, output) of every layer ``config.pruned_heads`` lists.

    Idempotent: a layer already at its kept width (transformers 4 narrows it itself) is left alone.
    """
    head_size = hidden // heads
    for layer, pruned in (getattr(config, "pruned_heads", None) or {}).items():
        block = layers[int(layer)]
        kept = heads - len(pruned)
        width = kept * head_size
        if block.get_submodule(names[0]).out_features == width:
            continue
        for i, name in enumerate(names):
            parent, _, attr = name.rpartition(".")
            shape = (width, hidden) if i < 3 else (hidden, width)
            setattr(block.get_submodule(parent), attr, nn.Linear(shape[1], shape[0]))
        attn = block.get_submodule(names[0].rpartition(".")[0])
        setattr(attn, heads_attr, kept)
        if hasattr(attn, "all_head_size"):
            attn.all_head_size = width


class EdgepruneBertForSequenceClassification(BertForSequenceClassification):
    def __init__(self, config) -> None:
        super().__init__(config)
        narrow_heads(config, self.bert.encoder.layer, _BERT, "num_attention_heads", config.num_attention_heads,
                     config.hidden_size)


class EdgepruneRobertaForSequenceClassification(RobertaForSequenceClassification):
    def __init__(self, config) -> None:
        super().__init__(config)
        narrow_heads(config, self.roberta.encoder.layer, _BERT, "num_attention_heads", config.num_attention_heads,
                     config.hidden_size)


class EdgepruneDistilBertForSequenceClassification(DistilBertForSequenceClassification):
    def __init__(self, config) -> None:
        super().__init__(config)
        narrow_heads(config, self.distilbert.transformer.layer, _DISTILBERT, "n_heads", config.n_heads, config.dim)


CLASSES = {"bert": EdgepruneBertForSequenceClassification, "roberta": EdgepruneRobertaForSequenceClassification,
           "distilbert": EdgepruneDistilBertForSequenceClassification}
