"""bench/frontier.py: the Pareto front and latency summary by hand, and the plumbing end to end on tiny models
(1 round, onnxruntime, 1 thread): JSON schema, fronts, resumability, bad input. No timed assertions."""
from __future__ import annotations

import json

import pytest

from bench import frontier
from bench.frontier_points import POINT_KEYS, check_point, dominates, mark_fronts, pareto_front, summarize_latency


def _p(lat, metric, runtime="onnxruntime", threads=1):
    return {"latency_ms": lat, "metric": metric, "runtime": runtime, "threads": threads}


def test_pareto_front_by_hand():
    pts = [_p(10, 0.90),  # 0: front (the most accurate)
           _p(5, 0.85),   # 1: front
           _p(6, 0.84),   # 2: dominated by 1 (slower, less accurate)
           _p(5, 0.80),   # 3: dominated by 1 (same latency, less accurate)
           _p(2, 0.70),   # 4: front (fastest)
           _p(12, 0.90),  # 5: dominated by 0 (same metric, slower)
           _p(2, 0.70)]   # 6: a tie with 4: neither dominates, both on the front
    assert pareto_front(pts) == [4, 6, 1, 0]
    assert dominates(pts[1], pts[2]) and not dominates(pts[4], pts[6]) and not dominates(pts[0], pts[1])
    assert pareto_front([]) == []


def test_fronts_are_per_runtime_and_threads():
    pts = [_p(5, 0.8), _p(4, 0.9), _p(50, 0.95, "litert"), _p(3, 0.5, threads=2)]
    marked = mark_fronts(pts)
    assert [m["pareto"] for m in marked] == [False, True, True, True]  # the slow litert point leads its own panel
    assert "pareto" not in pts[0]  # copies


def test_latency_summary_is_median_of_round_medians():
    s = summarize_latency([3.0, 1.0, 2.0, 10.0])
    assert s == {"latency_ms": 2.5, "latency_min_ms": 1.0, "latency_max_ms": 10.0, "rounds": 4}
    with pytest.raises(ValueError):
        summarize_latency([])


def test_point_schema_check():
    good = {"runtime": "litert", "threads": 2, "compression": 5.0, "dtype": "int8", "mode": "structured",
            "metric": 0.9, "latency_ms": 3.2, "file_bytes": 100, "peak_rss_bytes": 1000}
    check_point(good)
    for k, bad in (("runtime", "tvm"), ("threads", 0), ("file_bytes", 0), ("metric", None)):
        with pytest.raises(ValueError):
            check_point({**good, k: bad})
    with pytest.raises(ValueError, match="lacks"):
        check_point({k: v for k, v in good.items() if k != "peak_rss_bytes"})


def test_frontier_end_to_end_on_tiny_models(tiny_bert, tmp_path, glue, capsys):
    from tests.support.exports import make_run

    run = make_run(tiny_bert, tmp_path / "run5x", seed=3, keep=0.3, whole_units=True)
    out, work = tmp_path / "results", tmp_path / "work"
    argv = ["--task", "mrpc", "--dense", str(tiny_bert), "--runs", str(run), "--runtimes", "onnxruntime",
            "--threads", "1", "--rounds", "1", "--reps", "2", "--seq-len", "16", "--verify-examples", "16",
            "--eval-examples", "24", "--calib-examples", "8", "--work", str(work), "--out", str(out)]
    assert frontier.main(argv) == 0
    r = json.loads((out / "frontier.json").read_text())
    assert r["failed"] == []
    pts = r["points"]
    assert len(pts) == 4 + 3  # dense fp32/fp16/int8-dynamic/int8 + structured fp32/int8-dynamic/int8
    for p in pts:
        assert set(POINT_KEYS) <= p.keys()
        check_point(p)
        assert p["runtime"] == "onnxruntime" and p["threads"] == 1 and p["eval_examples"] == 24
        assert p["rounds"] == 1 and p["latency_min_ms"] <= p["latency_ms"] <= p["latency_max_ms"]
    dense = [p for p in pts if p["mode"] == "dense"]
    assert {p["dtype"] for p in dense} == {"fp32", "fp16", "int8-dynamic", "int8"}
    assert all(p["compression"] == 1.0 for p in dense)
    pruned = [p for p in pts if p["mode"] == "structured"]
    assert all(p["compression"] > 1.5 for p in pruned)
    front = set(pareto_front(pts))
    assert [p["pareto"] for p in pts] == [i in front for i in range(len(pts))]
    md = (out / "frontier.md").read_text()
    assert md.split("## Issue-14 targets")[0].count("| onnxruntime |") == 7  # one row per point
    assert json.loads((out / "frontier.json").read_text())["targets"][0]["runtime"] == "onnxruntime"
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # resumable: a second call re-exports, re-evaluates and re-times nothing
    lines = (work / frontier.TIMINGS).read_text().splitlines()
    mtimes = {p.name: p.stat().st_mtime_ns for p in work.glob("*.json")}
    assert frontier.main(argv) == 0
    assert (work / frontier.TIMINGS).read_text().splitlines() == lines
    assert {p.name: p.stat().st_mtime_ns for p in work.glob("*.json")} == mtimes
    assert json.loads((out / "frontier.json").read_text())["points"] == pts


def test_frontier_bad_input_one_line_exit_2(tmp_path, capsys):
    assert frontier.main(["--dense", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--dense" in err and "Traceback" not in err
    (tmp_path / "d").mkdir()
    assert frontier.main(["--dense", str(tmp_path / "d"), "--runs", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "neither a compress run" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_thread_scaling_table_by_hand():
    from bench import thread_profile

    rows = thread_profile.scaling_table({1: {"MatMul": 10.0, "Transpose": 2.0, "Gather": 1.0},
                                         2: {"MatMul": 5.0, "Transpose": 4.0}}, top=2)
    assert rows == [{"op": "MatMul", "t1_ms": 10.0, "t2_ms": 5.0, "scaling_t2": 2.0},
                    {"op": "Transpose", "t1_ms": 2.0, "t2_ms": 4.0, "scaling_t2": 0.5}]


def test_stage_checkpoints_are_named_after_their_run():
    from pathlib import Path

    stage = Path("w/compress/sst2-5x-gen3/compress_state/stages/2x/model")
    assert frontier.source_name(stage) == "sst2-5x-gen3@2x"
    assert frontier.source_name(Path("w/compress/sst2-5x-gen3")) == "sst2-5x-gen3"


def test_child_peak_rss_is_its_own_not_the_parents():
    """ru_maxrss survives fork + exec on Linux: a child of a big parent reported the parent's peak for every
    artifact. The timing child must report its own (a bare interpreter is far below the 300 MB held here)."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("VmHWM is Linux's")
    ballast = bytearray(300_000_000)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page: resident, not just reserved
    code = "from bench.frontier import peak_rss_bytes; print(peak_rss_bytes())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 0 < int(out.stdout.strip()) < 200_000_000
    del ballast


def test_issue14_targets_by_hand():
    from bench.frontier_points import issue14_targets

    def pt(mode, dtype, c, metric, ms, size, rt="onnxruntime", t=1, name=""):
        return {"runtime": rt, "threads": t, "mode": mode, "dtype": dtype, "compression": c, "metric": metric,
                "latency_ms": ms, "file_bytes": size, "artifact": name}

    pts = [pt("dense", "fp32", 1.0, 0.90, 50, 90), pt("dense", "int8-dynamic", 1.0, 0.89, 15, 23),
           pt("dense", "int8", 1.0, 0.88, 12, 23), pt("structured", "int8-dynamic", 1.5, 0.895, 9, 19, name="a"),
           pt("structured", "int8-dynamic", 2.0, 0.87, 7, 17, name="b"),
           pt("structured", "int8", 5.0, 0.85, 5, 14, name="c"), pt("structured", "fp32", 1.5, 0.9, 30, 70)]
    (r,) = issue14_targets(pts)
    assert r["dense_int8"]["latency_ms"] == 12  # the faster dense int8 is the baseline
    assert r["near"]["artifact"] == "a" and r["near"]["speedup"] == pytest.approx(12 / 9)
    assert r["near"]["smaller"] and r["near"]["holds"]
    assert r["at_5x"]["artifact"] == "c" and r["at_5x"]["speedup"] == pytest.approx(2.4) and r["at_5x"]["holds"]
    unverified = [dict(p, verified=False) if p["artifact"] == "c" else p for p in pts]
    assert issue14_targets(unverified)[0]["at_5x"] is None  # an artifact that failed verification never counts
    slow = [dict(p, latency_ms=11) if p["artifact"] == "a" else p for p in pts]
    assert not issue14_targets(slow)[0]["near"]["holds"]  # 12 / 11 < 1.3
