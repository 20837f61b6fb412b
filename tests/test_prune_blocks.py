"""Block spec parsing, partition and group norms against hand-computed small cases."""
from __future__ import annotations

import math

import pytest
import torch

from edgeprune.errors import ConfigError
from edgeprune.prune.blocks import (Side, expand_group_mask, group_mask_of, group_norms, group_sizes, parse_block,
                                    tiling_for)


@pytest.mark.parametrize("text,rows,cols,json", [
    ("128x1", Side(128), Side(1), [128, 1]),
    ("allx1", Side(None), Side(1), [None, 1]),
    ("1xall", Side(1), Side(None), [1, None]),
    ("16x16", Side(16), Side(16), [16, 16]),
    ("all/4x1", Side(None, 4), Side(1), ["all/4", 1]),
    ("ALLxALL", Side(None), Side(None), [None, None]),
    ("unstructured", Side(1), Side(1), None),
])
def test_parse_block(text, rows, cols, json):
    spec = parse_block(text)
    assert (spec.rows, spec.cols) == (rows, cols)
    assert spec.to_json() == json
    assert parse_block(str(spec)) == spec


@pytest.mark.parametrize("bad", ["128", "0x1", "ax1", "128x1x1", "all/0x1", "-1x4", ""])
def test_parse_block_rejects(bad):
    with pytest.raises(ConfigError, match="block shape"):
        parse_block(bad)


def test_kinds():
    assert parse_block("128x1").is_column_segment and parse_block("allx1").is_column_segment
    assert not parse_block("1x1").is_column_segment and parse_block("1x1").unstructured
    assert parse_block("1xall").is_row_segment


def test_tiling_resolve_and_padding():
    t = tiling_for((384, 1536), parse_block("128x1"))
    assert (t.R, t.C, t.nbr, t.nbc, t.padded) == (128, 1, 3, 1536, False)
    t = tiling_for((384, 384), parse_block("all/4x1"))
    assert (t.R, t.nbr, t.nbc) == (96, 4, 384)
    t = tiling_for((64, 128), parse_block("128x1"))  # R larger than the dim: clipped to the dim
    assert (t.R, t.nbr) == (64, 1) and not t.padded
    t = tiling_for((5, 7), parse_block("2x3"))
    assert (t.nbr, t.nbc, t.pad_rows, t.pad_cols, t.padded) == (3, 3, 1, 2, True)
    assert group_sizes(t).tolist() == [[6, 6, 2], [6, 6, 2], [3, 3, 1]]
    assert int(group_sizes(t).sum()) == 35


def test_group_norms_by_hand():
    w = torch.tensor([[3.0, 0.0, 1.0, 1.0],
                      [4.0, 0.0, 1.0, 1.0]])
    # 2x1 column segments: column norms 5, 0, sqrt2, sqrt2
    n = group_norms(w, tiling_for(w.shape, parse_block("2x1")))
    assert n.shape == (1, 4)
    torch.testing.assert_close(n, torch.tensor([[5.0, 0.0, math.sqrt(2), math.sqrt(2)]]), atol=1e-6, rtol=0)
    # 1x2 row segments: [3,0]->3, [1,1]->sqrt2, [4,0]->4, [1,1]->sqrt2
    n = group_norms(w, tiling_for(w.shape, parse_block("1x2")))
    torch.testing.assert_close(n, torch.tensor([[3.0, math.sqrt(2)], [4.0, math.sqrt(2)]]), atol=1e-6, rtol=0)
    # 2x2 blocks: sqrt(9+16)=5, sqrt(4)=2
    n = group_norms(w, tiling_for(w.shape, parse_block("2x2")))
    torch.testing.assert_close(n, torch.tensor([[5.0, 2.0]]), atol=1e-6, rtol=0)


def test_group_norms_padded_by_hand():
    w = torch.arange(1.0, 16.0).reshape(3, 5)  # rows [1..5], [6..10], [11..15]
    t = tiling_for(w.shape, parse_block("2x2"))
    n = group_norms(w, t)
    want = [[math.sqrt(1 + 4 + 36 + 49), math.sqrt(9 + 16 + 64 + 81), math.sqrt(25 + 100)],
            [math.sqrt(121 + 144), math.sqrt(169 + 196), 15.0]]
    torch.testing.assert_close(n, torch.tensor(want), atol=1e-5, rtol=0)


def test_group_norm_gradient_finite_at_zero():
    w = torch.zeros(4, 4, requires_grad=True)
    group_norms(w, tiling_for(w.shape, parse_block("2x2"))).sum().backward()
    assert torch.isfinite(w.grad).all() and (w.grad == 0).all()


def test_expand_and_back():
    t = tiling_for((5, 7), parse_block("2x3"))
    gm = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    m = expand_group_mask(gm, t)
    assert m.shape == (5, 7)
    assert m[0, 0] and not m[0, 3] and m[1, 6] and not m[2, 0] and m[4, 5] and not m[4, 6]
    assert int(m.sum()) == int((group_sizes(t) * gm).sum())
    assert torch.equal(group_mask_of(m, t), gm)
