"""The PyTorch port of the TFLite graph (bench/litert_torch_model.py) against the masked HF model.

The litert-torch A/B (bench/litert_torch_ab.py) is only meaningful if the module it converts computes
what the TF path computes; this checks every formulation on BERT, RoBERTa and DistilBERT (no litert-torch
needed: the module is plain torch).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.test_tf_graph import FORMULATIONS, SEQ, arch_case, pick, tg, torch  # noqa: F401  (arch_case is a fixture)

from bench.litert_torch_model import build_module, replay_chooser  # noqa: E402


@pytest.mark.parametrize("mode,kind", FORMULATIONS)
def test_torch_module_matches_masked_model(arch_case, mode, kind):
    arch, model, weights, inputs, ref = arch_case
    assert ref.std(axis=0).min() > 0.01  # logits vary with the input: the check below can fail
    plans = tg.plan_model(weights, mode, pick(kind))
    module = build_module(weights, plans, SEQ, batch=4)
    with torch.inference_mode():
        got = module(*[torch.from_numpy(inputs[n]) for n in tg.input_names(weights)])["logits"].numpy()
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=0)


def test_replay_chooser_picks_the_recorded_formulation(arch_case):
    _, _, weights, _, _ = arch_case
    plans = tg.plan_model(weights, "packed", pick("segments"))
    replayed = tg.plan_model(weights, "packed", replay_chooser(tg.plan_summary(plans)["layers"]))
    for a, b in zip(plans, replayed):
        for role in tg.ROLES:
            assert (a.lins[role].kind, a.lins[role].meta.get("R")) == (b.lins[role].kind, b.lins[role].meta.get("R"))


def test_replay_chooser_refuses_an_unknown_plan():
    class F:
        kind, meta = "dense", {}

    choose = replay_chooser([{"q": {"name": "x", "kind": "segments_t", "R": 16}}])
    with pytest.raises(ValueError, match="not among the candidates"):
        choose("x", [F()])
