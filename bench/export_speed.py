"""How long `edgeprune export` takes and how much memory it needs (issue 16: ONNX <= 30 s, TFLite <= 45 s
and <= 2 GB peak, verification included), each export in its own process under /usr/bin/time.

Exports start child processes (the TFLite converter, the LiteRT verification), so memory is reported
twice: the largest single process (/usr/bin/time's maximum resident set, which covers the waited-for
children) and the whole process tree (proportional set sizes of every live process summed, sampled every
50 ms from /proc), which is what the machine has to hold at once. The target is checked against both.

    python -m bench.export_speed --run COMPRESS_RUN_DIR --data GLUE_DIR [--repeats 1]

TFLite is exported twice per dtype: with an empty formulation-timing cache (cold, the first export on a
machine) and again with the cache the first one filled (warm, every later export of the same shapes).

Run it on a quiet machine: the wall time is the point. Writes bench/results/export_speed.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import RESULTS, ROOT, machine, md_table, pyplot, write_result

TARGETS = {"onnx": {"wall_s": 30.0}, "tflite": {"wall_s": 45.0, "peak_rss_gb": 2.0}}
# (format, dtype, timing cache): TFLite "cold" starts from an empty formulation-timing cache, "warm" is the
# next export of the same model on the same machine (exporters/timing_cache.py), as in a CI pipeline
CASES = [("onnx", "fp32", None), ("onnx", "int8-dynamic", None), ("tflite", "fp32", "cold"),
         ("tflite", "fp32", "warm"), ("tflite", "int8-dynamic", "cold"), ("tflite", "int8-dynamic", "warm")]


SAMPLE_S = 0.05
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its live descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:  # the process ended meanwhile
                pass
    return out


def proc_memory(pid: int) -> int:
    """Proportional set size in bytes (shared pages split between their users, so a tree's sum counts each
    page once, and a child caught between fork and exec adds nothing); resident size where there is no PSS."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):  # the process ended meanwhile
        return 0


def tree_rss(pid: int) -> int:
    """Memory of ``pid`` and its live descendants, summed (:func:`proc_memory`)."""
    return sum(proc_memory(p) for p in tree_pids(pid))


def run_sampled(cmd: list[str], env: dict[str, str],
                cwd: str | None = None) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``cmd`` to completion; also its process tree's peak summed resident set in bytes."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    peak = [0]

    def sample() -> None:
        while p.poll() is None:
            peak[0] = max(peak[0], tree_rss(p.pid))
            time.sleep(SAMPLE_S)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = p.communicate()
    t.join()
    return subprocess.CompletedProcess(cmd, p.returncode, out, err), peak[0]


def baseline_tree(rev: str, dest: Path) -> Path:
    """An importable ``edgeprune`` package of commit ``rev`` (its exporters/ and targets/ placed where the
    install maps them), to put first on PYTHONPATH: the same machine, interpreter and venv, older code."""
    src = dest / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    pkg = dest / "pkg"
    (pkg).mkdir()
    os.rename(src / "edgeprune", pkg / "edgeprune")
    for sub in ("exporters", "targets"):
        os.rename(src / sub, pkg / "edgeprune" / sub)
    return pkg


def one_export(run: Path, data: str, fmt: str, dtype: str, cache_dir: Path, pythonpath: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="edgeprune-speed-") as tmp:
        out = Path(tmp) / "bundle"
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "edgeprune", "export", str(Path(run).resolve()),
               "--format", fmt, "--dtype", dtype, "--data", str(Path(data).resolve()), "--out", str(out)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "EDGEPRUNE_CACHE_DIR": str(cache_dir)}
        cwd = None
        if pythonpath is not None:  # the working directory is searched before PYTHONPATH: leave the checkout
            env["PYTHONPATH"] = str(pythonpath)
            cwd = str(pythonpath)
        t0 = time.perf_counter()
        p, tree = run_sampled(cmd, env, cwd)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            errs = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")] or ["?"]
            return {"format": fmt, "dtype": dtype, "wall_s": round(wall, 1), "error": errs[-1]}
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) * 1024
        rp = out / "export_report.json"
        report = json.loads(rp.read_text()) if rp.is_file() else {}
        return {"format": fmt, "dtype": dtype, "wall_s": round(wall, 1), "peak_rss_bytes": rss,
                "peak_tree_rss_bytes": tree, "phases_s": report.get("phases_s"), "timing": report.get("timing")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, nargs="+", required=True, help="compress run directories")
    ap.add_argument("--data", required=True)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--note", default="", help="a measured observation to keep with the numbers")
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="also export the first run's cold cases with the code of commit REV, interleaved")
    args = ap.parse_args(argv)
    rows = []
    rel = lambda p: str(p.resolve().relative_to(ROOT)) if p.resolve().is_relative_to(ROOT) else str(p)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="edgeprune-speed-cache-") as caches:
        for ri, run_dir in enumerate(args.run):
            for rep in range(args.repeats):
                for fmt, dtype, cache in CASES:
                    cache_dir = Path(caches) / f"{ri}-{rep}-{fmt}-{dtype}"  # cold: new, empty; warm: the cold one's
                    print(f"[speed] {run_dir.name} {fmt} {dtype} {cache or ''} (repeat {rep + 1}/{args.repeats})",
                          flush=True)
                    rows.append({**one_export(run_dir, args.data, fmt, dtype, cache_dir), "run": rel(run_dir),
                                 "cache": cache, "repeat": rep})
                    print(f"[speed] -> {rows[-1]}", flush=True)
        if args.baseline:  # same machine, same model: old code and new, alternating, cold cases only
            base = baseline_tree(args.baseline, Path(caches) / "baseline")
            for fmt, dtype, cache in CASES:
                if cache == "warm":
                    continue
                for label, pp in ((args.baseline, base), ("HEAD", None)):
                    cache_dir = Path(caches) / f"ab-{label}-{fmt}-{dtype}"
                    print(f"[speed] A/B {label} {fmt} {dtype}", flush=True)
                    r = one_export(args.run[0], args.data, fmt, dtype, cache_dir, pp)
                    rows.append({**r, "run": rel(args.run[0]), "cache": cache, "code": label, "ab": True})
                    print(f"[speed] -> {rows[-1]}", flush=True)
    run = ", ".join(rel(p) for p in args.run)
    d = {"machine": machine(), "run": run, "targets": TARGETS, "rows": rows,
         "note": "each export in its own process, verification included; 2 cores; quiet machine",
         "observation": args.note}
    lines = report_lines(d)
    write_result("export_speed", d, lines)
    print("\n".join(lines))
    plot(d)


def report_lines(d: dict) -> list[str]:
    """The markdown report: wall time and peak memory of every export against its target."""
    cells = []
    for r in [r for r in d["rows"] if not r.get("ab")]:
        t = d["targets"][r["format"]]
        dtype = r["dtype"] + (f" ({r['cache']} timing cache)" if r.get("cache") else "")
        task = Path(r.get("run", d["run"])).name.split("-")[0]
        if "error" in r:
            cells.append([task, r["format"], dtype, f"refused after {r['wall_s']:.0f} s: {r['error']}", "", "", "", "",
                          ""])
            continue
        ok = "yes" if r["wall_s"] <= t["wall_s"] else "**no**"
        rss = r["peak_rss_bytes"] / 1e9
        tree = r.get("peak_tree_rss_bytes")  # absent in results written before the tree was sampled
        tree_gb = tree / 1e9 if tree else None
        tr = "-"
        if "peak_rss_gb" in t:
            lim = t["peak_rss_gb"]
            verdicts = [f"one process {'yes' if rss <= lim else '**no**'}"]
            if tree_gb is not None:
                verdicts.append(f"tree {'yes' if tree_gb <= lim else '**no**'}")
            tr = f"<= {lim:g} ({', '.join(verdicts)})"
        cells.append([task, r["format"], dtype, f"{r['wall_s']:.1f}", f"<= {t['wall_s']:g} ({ok})", f"{rss:.2f}",
                      f"{tree_gb:.2f}" if tree_gb is not None else "-", tr, phase_cell(r)])
    lines = ["# Export speed and peak memory (`edgeprune export`, verification included)", "",
             f"Runs: `{d['run']}` (MiniLM-L6 compressed by `compress`). Machine: {d['machine']['cpu']}, "
             f"{d['machine']['cores']} cores, quiet; each export in its own process under /usr/bin/time. "
             "Peak RSS: the largest single process (children included, /usr/bin/time) and the whole process "
             "tree summed (PSS, sampled every 50 ms).", "",
             "Plot: `export_speed.png`.", "",
             *md_table(["model", "format", "dtype", "wall (s)", "target wall", "peak RSS, one process (GB)",
                        "peak RSS, process tree (GB)", "target RSS", "where the time went (s)"], cells)]
    ab = [r for r in d["rows"] if r.get("ab")]
    if ab:
        lines += ["", f"## Before and after on this machine ({ab[0]['run']}, cold, interleaved)", "",
                  *md_table(["code", "format", "dtype", "wall (s)", "where the time went (s)"],
                            [[r["code"], r["format"], r["dtype"],
                              f"{r['wall_s']:.1f}" + (f" (refused: {r['error']})" if "error" in r else ""),
                              phase_cell(r)] for r in ab])]
    if d.get("observation"):
        lines += ["", d["observation"]]
    return lines


def phase_cell(r: dict) -> str:
    """The export's own stage timings (export_report.json ``phases_s``; TFLite adds the converter child's
    formulation planning/timing and conversion) and the timing cache's hits/misses; interpreter start-up
    and imports are the rest of the wall time."""
    parts = []
    for p in r.get("phases_s") or []:
        name = p["stage"].removeprefix("[export] ").split(" from ")[0].split(" to /")[0]
        if p["s"] >= 0.5:
            parts.append(f"{name} {p['s']:.1f}")
    t = r.get("timing") or {}
    if "plan_s" in t:
        parts.append(f"child: plan/time formulations {t['plan_s']:.1f}, convert {t['convert_s']:.1f}")
    tc = t.get("timing_cache")
    if tc:
        parts.append(f"cache {tc['hits']} hits / {tc['misses']} misses")
    return "; ".join(parts) or "-"


def plot(d: dict) -> None:
    """Wall time per export against its target; refused exports are drawn hatched at the time they took."""
    plt = pyplot()

    rows = [r for r in d["rows"] if not r.get("ab")]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.1 * len(rows)), 3.6))
    for i, r in enumerate(rows):
        ax.bar(i, r["wall_s"], color="C0" if "error" not in r else "white", edgecolor="C0",
               hatch=None if "error" not in r else "//")
        ax.hlines(d["targets"][r["format"]]["wall_s"], i - 0.4, i + 0.4, colors="red", linestyles="--")
    ax.set_xticks(range(len(rows)), [Path(r.get("run", "")).name.split("-")[0]
                                     + f"\n{r['format']}\n{r['dtype']}" + (f"\n{r['cache']}" if r.get("cache") else "")
                                     + ("\n(refused)" if "error" in r else "")
                                     for r in rows], fontsize=8)
    ax.set_ylabel("export wall time (s)")
    ax.set_title("edgeprune export, verification included (red: target)")
    fig.tight_layout()
    fig.savefig(RESULTS / "export_speed.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
