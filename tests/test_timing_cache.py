"""The persistent formulation-timing cache: keyed by shape and machine, tolerant of damage, skipped on retime."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeprune.exporters import tflite_linear as tl
from edgeprune.exporters.timing_cache import TimingCache, machine_key


def test_latencies_survive_a_new_process_and_stay_in_their_machine_section(tmp_path):
    path = tmp_path / "t.json"
    a = TimingCache(1, 25, path)
    assert a.get(("cols", 128, 384, 384)) is None and a.misses == 1
    a.put_all({("cols", 128, 384, 384): 1.25, ("dense", 128, 384, 384): 2.5})
    b = TimingCache(1, 25, path)
    assert b.get(("cols", 128, 384, 384)) == 1.25 and b.get(("dense", 128, 384, 384)) == 2.5 and b.hits == 2
    other = TimingCache(2, 25, path)  # another thread count is another machine section
    assert other.get(("cols", 128, 384, 384)) is None
    other.put_all({("cols", 128, 384, 384): 0.7})
    data = json.loads(path.read_text())
    assert set(data) == {machine_key(1, 25), machine_key(2, 25)}
    assert TimingCache(1, 25, path).get(("cols", 128, 384, 384)) == 1.25  # the other writer kept this section


def test_retime_ignores_what_is_cached_and_replaces_it(tmp_path):
    path = tmp_path / "t.json"
    TimingCache(1, 25, path).put_all({("cols", 1, 2, 3): 9.0})
    fresh = TimingCache(1, 25, path, read=False)
    assert fresh.get(("cols", 1, 2, 3)) is None
    fresh.put_all({("cols", 1, 2, 3): 1.0})
    assert TimingCache(1, 25, path).get(("cols", 1, 2, 3)) == 1.0


def test_a_damaged_or_unwritable_cache_never_fails(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{not json")
    c = TimingCache(1, 25, path)
    assert c.get(("x",)) is None
    c.put_all({("x",): 1.0})
    assert TimingCache(1, 25, path).get(("x",)) == 1.0
    blocked = tmp_path / "file"
    blocked.write_text("")
    TimingCache(1, 25, blocked / "sub" / "t.json").put_all({("x",): 1.0})  # parent is a file: ignored


def test_timer_takes_cached_shapes_without_converting(tmp_path, monkeypatch):
    """Every candidate cached: no conversion runs, and the fastest cached one is chosen (even dense)."""
    pytest.importorskip("litert_torch")
    from edgeprune.exporters import tflite_convert
    from edgeprune.exporters.tflite import LinearTimer

    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((64, 32)).astype(np.float32), np.zeros(64, np.float32)
    mask = np.zeros((64, 32), np.uint8)
    mask[:, :27] = 1  # 84% of the MACs: dense stays in the race
    cands = tl.candidates(w, b, mask, allow_rows=False, allow_segments=False)
    assert [f.kind for f in cands] == ["dense", "cols"]
    cache = TimingCache(1, 25, tmp_path / "t.json")
    timer = LinearTimer(16, "int8-dynamic", 1, 25, persistent=cache)  # int8 keeps dense in the race
    cache.put_all({timer.key(cands[0]): 0.5, timer.key(cands[1]): 3.0})  # dense cached as the faster

    def refuse(*a, **k):
        raise AssertionError("converted although every shape was cached")

    monkeypatch.setattr(tflite_convert, "convert", refuse)
    assert timer("layer", cands).kind == "dense" and cache.hits == 2 and cache.misses == 0
    assert timer.log["layer"] == {"dense": 0.5, "cols": 3.0}




def test_shortlist_keeps_the_tallest_cheap_segment_and_drops_dense_in_float_only():
    dense = tl.Formulation("dense", 10, 10, {}, {})  # 100 MACs
    cols = tl.Formulation("cols", 10, 10, {}, {"k": 6})  # 60
    s16 = tl.Formulation("segments_t", 10, 10, {}, {"groups": 2, "k": 2, "R": 5})  # 20
    s32 = tl.Formulation("segments_t", 10, 10, {}, {"groups": 1, "k": 2, "R": 10})  # 20: as cheap, taller
    s64 = tl.Formulation("segments_t", 10, 10, {}, {"groups": 1, "k": 3, "R": 10})  # 30
    cands = [dense, cols, s16, s32, s64]
    assert tl.shortlist(cands, "fp32") == [s32]  # cols needs 3x the segments' MACs: not timed in float
    assert tl.shortlist(cands, "int8-dynamic") == [cols]  # int8 FC: the float segments need > 0.3x its MACs
    assert tl.shortlist([dense, s32], "int8") == [dense, s32]  # int8 dense races segments at 0.2x its MACs
    s_big = tl.Formulation("segments_t", 10, 10, {}, {"groups": 1, "k": 4, "R": 10})  # 40 MACs: 0.4x dense
    assert tl.shortlist([dense, s_big], "int8") == [dense]
    near = tl.Formulation("cols", 10, 10, {}, {"k": 3})  # 30 MACs: 1.5x the segments', it races them
    assert tl.shortlist([dense, near, s32], "fp32") == [near, s32]
    tight = tl.Formulation("cols", 10, 10, {}, {"k": 8})  # 80 MACs: not enough saving to skip dense
    assert tl.shortlist([dense, tight], "fp32") == [dense, tight]
    assert tl.shortlist([dense], "fp32") == [dense]


def test_the_child_times_only_once_the_parent_is_idle(tmp_path):
    """tflite_build.wait_for: blocks until the parent's gate file appears (the parent computes the PyTorch
    reference meanwhile), returns at once without a gate."""
    import threading
    import time

    from edgeprune.exporters.tflite_build import wait_for

    gate = tmp_path / "parent-idle"
    threading.Timer(0.3, gate.touch).start()
    t0 = time.monotonic()
    wait_for(gate)
    assert gate.exists() and time.monotonic() - t0 >= 0.25
    t0 = time.monotonic()
    wait_for(None)
    assert time.monotonic() - t0 < 0.1
