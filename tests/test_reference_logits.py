"""The PyTorch reference that verification compares artifacts against: trimmed, length-sorted batches give
the logits of the full padded rows, in the rows' order."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert"])
def test_trimmed_reference_equals_the_padded_forward(arch, tiny_bert, tiny_roberta, tiny_distilbert):
    from edgeprune.exporters.prepared import reference_logits, torch_logits
    from edgeprune.models import load_model

    model, tok = load_model({"bert": tiny_bert, "roberta": tiny_roberta, "distilbert": tiny_distilbert}[arch])
    model.eval()
    rng = np.random.default_rng(0)
    texts = [" ".join(["word"] * int(n)) for n in rng.integers(1, 40, size=23)]
    enc = tok(texts, padding="max_length", truncation=True, max_length=64, return_tensors="np")
    feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    full = torch_logits(model, feeds)
    seen = []
    got = reference_logits(model, feeds, 5, seen.append)
    assert sum(seen) == 23 and got.shape == full.shape
    np.testing.assert_allclose(got, full, atol=1e-5, rtol=0)
    order = np.argsort(enc["attention_mask"].sum(1), kind="stable")
    assert not np.array_equal(order, np.arange(23))  # the batches were reordered: sorting mattered
