"""The public one-shot verb ``edgeprune.prune.prune`` on a tiny real checkpoint: the target is hit, the
masks fit the model, the cut is deterministic and the same one ``compress`` makes."""
from __future__ import annotations

import pytest
import torch

from edgeprune.errors import ConfigError
from edgeprune.models import load_model
from edgeprune.prune import prune
from edgeprune.prune.masks import apply_masks
from edgeprune.rundir import check_masks_match


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.support.checkpoints import build_tiny_checkpoint

    return build_tiny_checkpoint("bert", tmp_path_factory.mktemp("oneshot") / "bert")


def _compression(masks) -> float:
    return sum(m.numel() for m in masks.values()) / sum(int(m.sum()) for m in masks.values())


@pytest.mark.parametrize("block,target,scope", [("16x1", 4.0, "uniform"), ("16x1", "4x", "global"),
                                                ("8x8", "0.5", "uniform"), ("allx1", 2, "uniform")])
def test_hits_the_target_and_fits_the_model(tiny, block, target, scope):
    model, _ = load_model(tiny)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    masks = prune(model, block, target, scope=scope)
    check_masks_match(masks, model)
    assert len(masks) == 12 and all(m.dtype == torch.bool for m in masks.values())  # 6 linears x 2 layers
    want = 2.0 if target == "0.5" else float(str(target).rstrip("x"))
    assert _compression(masks) == pytest.approx(want, rel=0.02)
    assert all(torch.equal(before[n], p.detach()) for n, p in model.named_parameters())  # masks only
    apply_masks(model, masks)
    params = dict(model.named_parameters())
    assert all((params[n].detach()[~m] == 0).all() for n, m in masks.items())


def test_deterministic_and_the_same_cut_as_compress(tiny):
    from edgeprune.compress import CompressConfig
    from edgeprune.compress.cut import cut_to_target, matrices

    model, _ = load_model(tiny)
    a, b = prune(model, "16x1", 4), prune(model, "16x1", 4)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    cfg = CompressConfig(model=str(tiny), task="mrpc", data_dir=None, out="unused", block="16x1", compression=4.0)
    m = matrices(model, cfg)
    ref = cut_to_target(cfg, m.params, m.tilings).masks
    assert all(torch.equal(a[n], ref[n]) for n in ref)
    per_row = a["bert.encoder.layer.0.attention.self.query.weight"].reshape(4, 16, -1)[:, 0, :].sum(dim=1)
    assert len(set(per_row.tolist())) == 1  # column segments are balanced by default, as in compress


def test_activation_score_and_bad_input(tiny):
    model, _ = load_model(tiny)
    mats_rms = {n: torch.ones(m.shape[1]) for n, m in prune(model, "16x1", 2).items()}
    assert all(torch.equal(x, y) for x, y in zip(prune(model, "16x1", 2).values(),
                                                 prune(model, "16x1", 2, score="activation",
                                                       input_rms=mats_rms).values()))  # unit RMS: the weight rank
    for kw, needle in [({"score": "fisher"}, "unknown score"), ({"scope": "layer"}, "unknown scope"),
                       ({"score": "activation"}, "needs input_rms")]:
        with pytest.raises(ConfigError, match=needle):
            prune(model, "16x1", 2, **kw)
    with pytest.raises(ConfigError, match="block shape"):
        prune(model, "16y1", 2)
    with pytest.raises(ConfigError, match="compression > 1x"):
        prune(model, "16x1", 1)
    with pytest.raises(ConfigError, match="would prune every group"):
        prune(model, "allx1", 1000)
