"""Interleaved A/B latency of the dense and pruned TFLite bundles that ``bench.export_tflite`` wrote.

On a shared 2-core machine the load changes from minute to minute, so one number per bundle taken
minutes apart is noisy. Here dense and pruned alternate, each invoke series in its own process,
for several rounds; the table compares the per-bundle minimum and median over rounds.
Writes bench/results/export_tflite_ab.json (rendered into export_tflite.md by ``bench.export_tflite_md``).

    nice -n 10 python -m bench.export_tflite_ab [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bench.common import RESULTS, WORK

BUNDLES = WORK / "tflite" / "bundles"  # written by bench.export_tflite


def retime_duplicates(path: Path) -> int:
    """Re-measure runs whose latency value also appears elsewhere (two bench parts once shared a result
    file, so a number could be read by the wrong process); dense baselines are refreshed afterwards."""
    from collections import Counter

    from edgeprune.exporters.litert_run import time_in_child

    res = json.loads(path.read_text())
    seen = Counter(r["latency_ms"] for r in res["runs"] if r.get("latency_ms") is not None)
    redo = [r for r in res["runs"] if r.get("latency_ms") is not None and seen[r["latency_ms"]] > 1]
    for r in redo:
        tag = f"{r.get('block') or '128x1'}_{r['compression']:g}x_{r['mode']}_{r['dtype']}"
        lat = time_in_child(BUNDLES / tag / "model.tflite", RESULTS / ".ab.json", r["threads"], r["xnnpack"],
                            runs=30 if r["xnnpack"] else 10)
        print(f"retimed {tag} threads {r['threads']} xnnpack {r['xnnpack']}: {r['latency_ms']} -> {lat}", flush=True)
        r.update(latency_ms=lat.get("median_ms"), latency_min_ms=lat.get("min_ms"), latency_error=lat.get("error"),
                 retimed=True)
    dense = {(r["dtype"], r["threads"], r["xnnpack"]): r["latency_ms"] for r in res["runs"] if r["compression"] == 1}
    for r in res["runs"]:
        r["dense_latency_ms"] = dense.get((r["dtype"], r["threads"], r["xnnpack"]))
    path.write_text(json.dumps(res, indent=1))
    (RESULTS / ".ab.json").unlink(missing_ok=True)
    return len(redo)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dtypes", default="fp32,int8-dynamic")
    ap.add_argument("--compressions", default="5,8,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--retime-duplicates", action="store_true",
                    help="first re-measure duplicated latencies in export_tflite.json (see retime_duplicates)")
    a = ap.parse_args()
    if a.retime_duplicates:
        print(f"retimed {retime_duplicates(RESULTS / 'export_tflite.json')} runs", flush=True)
    from edgeprune.exporters.litert_run import time_in_child

    out = {"rounds": a.rounds, "threads": a.threads, "xnnpack": True, "pairs": []}
    for dt in a.dtypes.split(","):
        dense = BUNDLES / f"128x1_1x_dense_{dt}" / "model.tflite"
        for c in a.compressions.split(","):
            pruned = BUNDLES / f"128x1_{c}x_packed_{dt}" / "model.tflite"
            if not (dense.is_file() and pruned.is_file()):
                continue
            lat: dict[str, list[float]] = {"dense": [], "pruned": []}
            for _ in range(a.rounds):
                for name, path in (("dense", dense), ("pruned", pruned)):
                    r = time_in_child(path, RESULTS / ".ab.json", a.threads, True, runs=20)
                    if "min_ms" in r:
                        lat[name].append(r["min_ms"])
            (RESULTS / ".ab.json").unlink(missing_ok=True)
            if not lat["dense"] or not lat["pruned"]:
                continue
            rec = {"dtype": dt, "compression": float(c), "dense_min_ms": min(lat["dense"]),
                   "pruned_min_ms": min(lat["pruned"]), "dense_median_of_mins_ms": statistics.median(lat["dense"]),
                   "pruned_median_of_mins_ms": statistics.median(lat["pruned"]), "dense_ms": lat["dense"],
                   "pruned_ms": lat["pruned"]}
            rec["speedup_min"] = rec["dense_min_ms"] / rec["pruned_min_ms"]
            rec["speedup_median"] = rec["dense_median_of_mins_ms"] / rec["pruned_median_of_mins_ms"]
            out["pairs"].append(rec)
            print(f"{dt} {c}x: dense {rec['dense_min_ms']:.2f} ms, pruned {rec['pruned_min_ms']:.2f} ms, "
                  f"{rec['speedup_min']:.2f}x (median {rec['speedup_median']:.2f}x)", flush=True)
            (RESULTS / "export_tflite_ab.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
