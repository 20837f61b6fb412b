"""Pack/unpack of block masks: every supported block shape, empty and full blocks and layers."""
from __future__ import annotations

import numpy as np
import pytest

from edgeprune.exporters.packing import (analyze_mask, index_dtype, pack_linear, packed_matmul, unpack_linear)
from tests.support.exports import block_mask


SHAPES = {  # name -> (R, C, balanced)
    "32x1": (32, 1, True), "allx1": (None, 1, True), "1xall": (1, None, False), "16x16": (16, 16, False),
    "8x8": (8, 8, False), "32x1-unbalanced": (32, 1, False), "1x1": (1, 1, False),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("keep", [0.0, 0.3, 1.0])
def test_round_trip_every_block_shape(name, keep):
    rng = np.random.default_rng(hash((name, keep)) % 2**32)
    R, C, bal = SHAPES[name]
    out, inp = 96, 80
    m = block_mask(rng, out, inp, R, C, keep, bal) if keep > 0 else np.zeros((out, inp), bool)
    w = rng.standard_normal((out, inp)).astype(np.float32)
    b = rng.standard_normal(out).astype(np.float32)
    p = pack_linear(w, m, b)
    dense, stored = unpack_linear(p)
    np.testing.assert_array_equal(dense, w * m)
    assert (stored | ~m).all(), "every kept position must be stored"
    assert p.kept == m.sum()
    x = rng.standard_normal((2, 5, inp)).astype(np.float32)
    np.testing.assert_allclose(packed_matmul(x, p), x @ (w * m).T + b, rtol=1e-5, atol=1e-5)
    if bal and keep > 0:
        np.testing.assert_array_equal(stored, m)  # balanced blocks pack with no padding
        assert p.values.size == m.sum()


def test_empty_and_full_blocks_inside_one_layer():
    rng = np.random.default_rng(1)
    out, inp = 64, 40
    m = np.zeros((out, inp), bool)
    m[0:16, :] = True  # a full block row
    m[16:32, [1, 5, 9]] = True  # a sparse block row; rows 32:48 empty; rows 48:64 another pattern
    m[48:64, [2, 3]] = True
    w = rng.standard_normal((out, inp)).astype(np.float32)
    p = pack_linear(w, m)
    np.testing.assert_array_equal(unpack_linear(p)[0], w * m)
    assert p.row_map is not None and set(np.flatnonzero(p.row_map == p.nb * p.block_rows)) == set(range(32, 48))
    st = analyze_mask(m)
    assert st.zero_rows == 16 and st.runs == (16, 16, 16) and not st.balanced


def test_hand_computed_pack():
    w = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    m = np.array([[1, 0, 1], [0, 0, 0]], bool)
    p = pack_linear(w, m, np.array([10, 20], np.float32))
    np.testing.assert_array_equal(p.values, [[[1, 3]]])
    np.testing.assert_array_equal(p.col_idx, [[0, 2]])
    np.testing.assert_array_equal(p.row_map, [0, 1])  # row 1 -> the zero row (nb * R = 1)
    y = packed_matmul(np.array([[1, 1, 1]], np.float32), p)
    np.testing.assert_array_equal(y, [[1 + 3 + 10, 20]])


def test_identity_row_order_has_no_row_map():
    rng = np.random.default_rng(2)
    m = block_mask(rng, 64, 48, 16, 1, 0.25)
    p = pack_linear(rng.standard_normal((64, 48)).astype(np.float32), m)
    assert p.row_map is None and p.values.shape == (4, 16, 12)


def test_structure_kinds():
    rng = np.random.default_rng(3)
    assert analyze_mask(np.ones((8, 8))).kind() == "full"
    assert analyze_mask(np.zeros((8, 8))).kind() == "empty"
    rows = np.ones((64, 32), bool)
    rows[::3] = False
    assert analyze_mask(rows).kind() == "rows"
    cols = np.ones((64, 32), bool)
    cols[:, ::4] = False
    assert analyze_mask(cols).kind() == "cols"
    assert analyze_mask(block_mask(rng, 128, 64, 32, 1, 0.5)).kind() == "blockrows"
    assert analyze_mask(rng.random((64, 64)) < 0.5).kind() == "irregular"


def test_smallest_index_types():
    assert index_dtype(255) == np.uint8 and index_dtype(256) == np.uint16 and index_dtype(70000) == np.int32
    rng = np.random.default_rng(4)
    for inp, dt in ((200, np.uint8), (384, np.uint16)):
        p = pack_linear(rng.standard_normal((32, inp)).astype(np.float32), block_mask(rng, 32, inp, 16, 1, 0.5))
        assert p.col_idx.dtype == dt


def test_ideal_bytes_of_balanced_mask_is_values_plus_indices():
    rng = np.random.default_rng(5)
    m = block_mask(rng, 128, 96, 32, 1, 0.25)
    p = pack_linear(rng.standard_normal((128, 96)).astype(np.float32), m)
    assert p.ideal_bytes() == p.stored_bytes() == m.sum() * 4 + 4 * 24 * 1  # 4 block rows x 24 uint8 indices


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        pack_linear(np.zeros((4, 4)), np.ones((4, 5)))
