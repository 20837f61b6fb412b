"""Why pruned graphs scale worse with threads: onnxruntime op profiles of ONNX artifacts at 1 and N threads.

    nice -n 10 python -m bench.thread_profile NAME=path/model.onnx [NAME=...] [--threads 1 2] [--batch 1]
        [--json out.json]

Each profile runs in its own process (``python -m bench.export_onnx --profile``: onnxruntime's profiler, kernel ms per run
by op type, warm-up excluded). Prints, per artifact, the total kernel time at each thread count and the op types
whose time does not drop with more threads (scaling = t(1 thread) / t(N threads)). Numbers are only meaningful
on a quiet machine; on a loaded one the second core is not free and every op "scales" badly.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def scaling_table(profiles: dict[int, dict[str, float]], top: int = 10) -> list[dict]:
    """Per op type (largest at 1 thread first): ms at each thread count and t(min threads) / t(that count)."""
    base = min(profiles)
    ops = sorted(profiles[base], key=lambda k: -profiles[base][k])[:top]
    rows = []
    for op in ops:
        row = {"op": op, **{f"t{t}_ms": round(p.get(op, 0.0), 3) for t, p in sorted(profiles.items())}}
        for t, p in profiles.items():
            if t != base and p.get(op):
                row[f"scaling_t{t}"] = round(profiles[base][op] / p[op], 2)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifacts", nargs="+", help="NAME=path/to/model.onnx")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    arts = {}
    for spec in a.artifacts:
        name, _, path = spec.partition("=")
        if not path or not Path(path).is_file():
            print(f"error: {spec!r} is not NAME=path/to/model.onnx of an existing file", file=sys.stderr)
            return 2
        arts[name] = Path(path)
    from bench.export_onnx import profiled

    out = {}
    for name, path in arts.items():
        profs = {t: profiled(path, a.batch, t) for t in a.threads}
        totals = {t: round(sum(p.values()), 3) for t, p in profs.items()}
        out[name] = {"path": str(path), "total_kernel_ms": totals, "ops": scaling_table(profs)}
        print(f"{name}: total kernel ms {totals}")
        for r in out[name]["ops"]:
            print("   " + "  ".join(f"{k}={v}" for k, v in r.items()))
    if a.json:
        from edgeprune.io import write_json

        write_json(a.json, {"batch": a.batch, "threads": a.threads, "artifacts": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
