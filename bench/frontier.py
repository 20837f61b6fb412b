"""The accuracy-latency-size frontier: every artifact a user could ship, on one chart.

    nice -n 10 python -m bench.frontier --task sst2 --dense bench/work/dense/sst2 \
        --runs bench/work/compress/sst2-...-5x... bench/work/compress/sst2-...-5x.../compress_state/stages/2x/model \
        [--runtimes onnxruntime litert]

For the dense finetune run: dense fp32, fp16, int8-dynamic and static int8; for every compress run (``--runs``):
``--modes`` (structured by default) in fp32, int8-dynamic and int8; in each ``--runtimes``. Every artifact is
exported with the project's exporters (verified against PyTorch; an artifact that fails verification is kept,
exported unverified and labelled ``verified: false``), evaluated on the full dev set in its runtime, and timed
at ``--threads`` in its own process per measurement, in interleaved rounds (round r times every artifact once,
in an order rotated by r, so load drift hits all alike). Peak RSS is the timing process's own peak resident set
(``VmHWM``: runtime + model, after loading and the runs).

Resumable: exports, evaluations and per-round timings are cached under ``--work`` (``frontier_timings.jsonl``:
one line per artifact x threads x round) and skipped when present. Writes ``--out``/frontier.{json,md,png}
atomically. The pure parts (points, latency summary, Pareto front) are in bench/frontier_points.py.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, ROOT, WORK, module_argv, pyplot
from bench.frontier_points import (Artifact, artifact_key, check_point, issue14_targets, mark_fronts,
                                   summarize_latency)
from edgeprune.targets.remote_runner import peak_rss_bytes

DENSE_DTYPES = ("fp32", "fp16", "int8-dynamic", "int8")
PRUNED_DTYPES = ("fp32", "int8-dynamic", "int8")
TIMINGS = "frontier_timings.jsonl"
MARKERS = {"dense": "o", "heads+units": "^"}  # other pruned structures: squares


class BadInput(Exception):
    """One line to the user, exit 2."""


# ------------------------------------------------------------------ child: time one artifact ----------
def feeds_for(names: list[str], shapes: dict[str, list], seq: int) -> dict[str, np.ndarray]:
    out = {}
    for n in names:
        shp = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else seq) for i, d in enumerate(shapes[n])]
        x = np.ones(shp, np.int64)
        if "input_ids" in n:
            x = np.random.default_rng(0).integers(5, 900, shp).astype(np.int64)
        elif "token_type" in n:
            x[:] = 0
        out[n] = x
    return out


def time_one(runtime: str, path: str, threads: int, reps: int, seq: int) -> dict[str, Any]:
    """Median / p10 / p90 ms of ``reps`` runs after warm-up, and this process's peak RSS (bytes)."""
    if runtime == "onnxruntime":
        from edgeprune.exporters.onnx_verify import ort_session

        s = ort_session(path, threads=threads)
        ins = s.get_inputs()
        feeds = feeds_for([i.name for i in ins], {i.name: i.shape for i in ins}, seq)

        def run():
            s.run(None, feeds)
    else:
        from edgeprune.exporters.litert_run import SIGNATURE, interpreter

        it = interpreter(path, threads)
        runner = it.get_signature_runner(SIGNATURE)
        details = runner.get_input_details()
        feeds = {k: v.astype(details[k]["dtype"]) for k, v in feeds_for(
            list(details), {k: list(d["shape"]) for k, d in details.items()}, seq).items()}

        def run():
            runner(**feeds)
    for _ in range(3):
        run()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        ts.append((time.perf_counter() - t) * 1e3)
    return {"median_ms": float(np.median(ts)), "p10_ms": float(np.percentile(ts, 10)),
            "p90_ms": float(np.percentile(ts, 90)),
            "peak_rss_bytes": peak_rss_bytes()}


def timed_in_child(art_path: Path, runtime: str, threads: int, reps: int, seq: int) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(module_argv("frontier", "--time-one", runtime, Path(art_path).resolve(), threads, reps, seq),
                       capture_output=True, text=True, env=env, cwd=ROOT)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"exit {r.returncode}: {(r.stderr.strip().splitlines() or [''])[-1][:200]}"}


# ------------------------------------------------------------------ plan, export, evaluate ------------
def compression_of(run_dir: Path) -> float:
    from edgeprune.rundir import open_run

    masks = open_run(run_dir).masks
    if not masks:
        return 1.0
    dense = sum(int(m.numel()) for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    return dense / max(kept, 1)


def structure_of(source: str | Path) -> str:
    """What a pruned artifact removed: ``heads+units`` (``compress --units``), the block shape, or ``dense``;
    read from the run's compression.json (a staged checkpoint ``RUN/compress_state/stages/<C>x/model``: RUN's)."""
    from edgeprune.io import read_json

    src = Path(source)
    for d in (src, src.parent, *src.parents[:4]):
        f = d / "compression.json"
        if f.is_file():
            return str(read_json(f).get("block_str", "?"))  # compress writes "heads+units" for --units runs
    return "dense"


def source_name(run: Path) -> str:
    """A finished run by its folder name; a staged run's intermediate checkpoint
    (``RUN/compress_state/stages/<C>x/model``) as ``RUN@<C>x``."""
    if run.name == "model" and run.parent.parent.name == "stages":
        return f"{run.parent.parent.parent.parent.name}@{run.parent.name}"
    return run.name


def plan_artifacts(dense: Path, runs: list[Path], runtimes: list[str], modes: list[str]) -> list[Artifact]:
    arts = []
    for rt in runtimes:
        for dt in DENSE_DTYPES:
            arts.append(Artifact(artifact_key(rt, 1.0, "dense", dt), str(dense), rt, "dense", dt, 1.0))
        for run in runs:
            c = compression_of(run)
            for mode in modes:
                for dt in PRUNED_DTYPES:
                    arts.append(Artifact(artifact_key(rt, c, mode, dt, source_name(run)), str(run), rt, mode, dt, c))
    keys = [a.key for a in arts]
    if len(set(keys)) != len(keys):
        raise BadInput("two --runs have the same folder name; give each run its own name")
    return arts


def export_one(a: Artifact, work: Path, task: str, seq: int, verify_examples: int, calib: int) -> dict[str, Any]:
    """Export (cached): {"dir", "artifact", "verified", "reason", "file_bytes", "report"}."""
    import dataclasses

    from edgeprune.errors import NumericMismatchError
    from edgeprune.exporters.api import export
    from edgeprune.exporters.base import ExportConfig
    from edgeprune.io import read_json, write_json
    from bench.common import glue_dir

    out = work / a.key
    rec_path = work / f"{a.key}.export.json"
    if rec_path.is_file() and (out / "manifest.json").is_file():
        return read_json(rec_path)
    c = ExportConfig(format=a.format, mode=a.mode, dtype=a.dtype, seq_len=seq, batch=1, data_dir=str(glue_dir()),
                     task=task, verify_examples=verify_examples, calib_examples=calib)
    verified, reason = True, None
    try:
        res = export(a.source, c, out)
    except NumericMismatchError as e:  # a shippable file that misses the 0.5-point rule: keep it, say so
        verified, reason = False, str(e)
        res = export(a.source, dataclasses.replace(c, verify=False), out)
    rep = res.report
    rec = {"dir": str(out), "artifact": str(res.artifact), "verified": verified, "reason": reason,
           "file_bytes": int(res.artifact.stat().st_size), "inputs": rep.get("inputs", []),
           "int8_fallback_layers": len(rep.get("int8_fallback_layers", [])),
           "notes": rep.get("notes", [])}
    write_json(rec_path, rec)
    return rec


def evaluate_one(a: Artifact, exp: dict[str, Any], work: Path, task: str, seq: int, limit: int | None
                 ) -> dict[str, Any]:
    """Task metric of the artifact itself, in its runtime, on the dev set (cached)."""
    from edgeprune.data.glue import get_task, load_split
    from edgeprune.data.metrics import compute_metrics
    from edgeprune.exporters.onnx_verify import encode_examples
    from edgeprune.io import read_json, write_json
    from transformers import AutoTokenizer

    from bench.common import glue_dir

    path = work / f"{a.key}.eval.json"
    if path.is_file():
        return read_json(path)
    spec = get_task(task)
    ex = load_split(task, "dev", glue_dir(), limit=limit)
    tdir = Path(exp["dir"]) / "tokenizer"  # the bundle's own tokenizer, else the source checkpoint's
    if not tdir.is_dir():
        tdir = Path(a.source) / "model" if (Path(a.source) / "model" / "config.json").is_file() else Path(a.source)
    tok = AutoTokenizer.from_pretrained(tdir)
    labels = np.asarray([e.label for e in ex])
    if a.runtime == "onnxruntime":
        from edgeprune.exporters.onnx_verify import ort_session, run_batches

        s = ort_session(exp["artifact"], threads=os.cpu_count() or 1)
        feeds = encode_examples(tok, ex, seq, [i.name for i in s.get_inputs()])
        logits = run_batches(lambda b: s.run(["logits"], b)[0], feeds, 1)
    else:
        from edgeprune.exporters.litert_run import run_in_child

        manifest = json.loads((Path(exp["dir"]) / "manifest.json").read_text())
        names = [i["name"] if isinstance(i, dict) else i for i in manifest.get("inputs", [])]
        feeds = encode_examples(tok, ex, seq, names or ["input_ids", "attention_mask"])
        logits, err = run_in_child(Path(exp["artifact"]), feeds, work)
        if logits is None:
            raise RuntimeError(f"{a.key}: LiteRT evaluation failed: {err}")
    m = compute_metrics(spec, logits, labels)
    rec = {"metric_name": spec.metric, "metric": float(m["main"]), "examples": int(len(labels))}
    write_json(path, rec)
    return rec


# ------------------------------------------------------------------ timing rounds ---------------------
def load_timings(work: Path) -> dict[tuple, dict]:
    out = {}
    p = work / TIMINGS
    if p.is_file():
        for line in p.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                out[(r["key"], r["threads"], r["round"])] = r
    return out


def timing_rounds(arts: list[Artifact], exports: dict[str, dict], work: Path, threads: list[int], rounds: int,
                  reps: int, seq: int) -> dict[tuple, dict]:
    done = load_timings(work)
    if not arts:
        return done
    with open(work / TIMINGS, "a") as log:
        for rnd in range(rounds):
            for t in threads:
                order = arts[rnd % len(arts):] + arts[:rnd % len(arts)]  # rotated: nobody always goes first
                for a in order:
                    if (a.key, t, rnd) in done:
                        continue
                    r = timed_in_child(Path(exports[a.key]["artifact"]), a.runtime, t, reps, seq)
                    r.update({"key": a.key, "threads": t, "round": rnd})
                    log.write(json.dumps(r) + "\n")
                    log.flush()
                    done[(a.key, t, rnd)] = r
                    print(f"round {rnd} t{t} {a.key}: {r.get('median_ms', r.get('error'))}", flush=True)
    return done


def build_points(arts: list[Artifact], exports: dict, evals: dict, timings: dict, threads: list[int]
                 ) -> list[dict[str, Any]]:
    points = []
    for a in arts:
        for t in threads:
            rs = [r for (k, th, _), r in sorted(timings.items()) if k == a.key and th == t and "median_ms" in r]
            if not rs:
                continue
            lat = summarize_latency(r["median_ms"] for r in rs)
            p = {"runtime": a.runtime, "threads": t, "compression": round(a.compression, 3), "dtype": a.dtype,
                 "mode": a.mode, "structure": "dense" if a.mode == "dense" else structure_of(a.source),
                 "metric": evals[a.key]["metric"], "metric_name": evals[a.key]["metric_name"],
                 "eval_examples": evals[a.key]["examples"], **lat,
                 "latency_p10_ms": float(np.median([r["p10_ms"] for r in rs])),
                 "latency_p90_ms": float(np.median([r["p90_ms"] for r in rs])),
                 "file_bytes": exports[a.key]["file_bytes"],
                 "peak_rss_bytes": max(int(r["peak_rss_bytes"]) for r in rs),
                 "verified": exports[a.key]["verified"], "int8_fallback_layers": exports[a.key]["int8_fallback_layers"],
                 "artifact": a.key, "source": a.source}
            check_point(p)
            points.append(p)
    return mark_fronts(points)


# ------------------------------------------------------------------ outputs ---------------------------
def write_md(result: dict[str, Any], path: Path) -> None:
    from edgeprune.io import atomic_file

    L = ["# Accuracy-latency-size frontier", "", f"Task {result['task']}, seq {result['seq_len']}, batch 1. "
         f"{result['timing']}", f"Machine: {result['machine']['platform']}, {result['machine']['cpus']} CPUs.", "",
         "| runtime | threads | artifact | compression | mode | structure | dtype | metric | latency ms (min-max) | "
         "file MB | peak RSS MB | verified | Pareto |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(result["points"], key=lambda p: (p["runtime"], p["threads"], p["latency_ms"])):
        L.append(f"| {p['runtime']} | {p['threads']} | {p['artifact']} | {p['compression']:.2f} | {p['mode']} | "
                 f"{p.get('structure', '')} | "
                 f"{p['dtype']} | {p['metric']:.4f} | {p['latency_ms']:.2f} ({p['latency_min_ms']:.2f}-"
                 f"{p['latency_max_ms']:.2f}) | {p['file_bytes'] / 1e6:.2f} | {p['peak_rss_bytes'] / 1e6:.0f} | "
                 f"{p['verified']} | {'yes' if p['pareto'] else ''} |")
    L += ["", "## Issue-14 targets in this run", "",
          "Verified artifacts only. Baseline: the fastest dense int8 artifact of the same runtime and threads. `near`: the fastest pruned "
          "int8 artifact within 1 point of dense fp32 (target: >= 1.3x faster than the baseline and smaller); "
          "`5x`: the fastest pruned int8 artifact at 5x (target: >= 2.0x at 1 thread).", "",
          "| runtime | threads | dense int8 ms | near: artifact | metric | ms | speedup | smaller | holds | "
          "5x: ms | speedup | holds |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result.get("targets", []):
        n, f, b = r["near"], r["at_5x"], r["dense_int8"]
        L.append(f"| {r['runtime']} | {r['threads']} | {b['latency_ms']:.2f} ({b['dtype']}) | "
                 + (f"{n['artifact']} | {n['metric']:.4f} | {n['latency_ms']:.2f} | {n['speedup']:.2f}x | "
                    f"{n['smaller']} | {n['holds']} | " if n else "none | | | | | | ")
                 + (f"{f['latency_ms']:.2f} | {f['speedup']:.2f}x | {f['holds']} |" if f else " | | |"))
    with atomic_file(path) as tmp:
        tmp.write_text("\n".join(L) + "\n")


def write_png(points: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()

    from edgeprune.io import atomic_file

    panels = sorted({(p["runtime"], p["threads"]) for p in points})
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.8 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    smax = max(p["file_bytes"] for p in points)
    colors = {"fp32": "tab:blue", "fp16": "tab:cyan", "int8-dynamic": "tab:orange", "int8": "tab:red"}
    for ax, (rt, t) in zip(axes.flat, panels):
        ps = [p for p in points if p["runtime"] == rt and p["threads"] == t]
        for p in ps:
            ax.scatter(p["latency_ms"], p["metric"], s=40 + 800 * p["file_bytes"] / smax, alpha=0.6,
                       c=colors.get(p["dtype"], "gray"), marker=MARKERS.get(p.get("structure", ""), "s"),
                       edgecolors="k" if p["pareto"] else "none")
            ax.annotate(f"{p['compression']:.3g}x {p['dtype']}{'' if p['verified'] else '*'}",
                        (p["latency_ms"], p["metric"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        front = sorted((p for p in ps if p["pareto"]), key=lambda p: p["latency_ms"])
        ax.step([p["latency_ms"] for p in front], [p["metric"] for p in front], where="post", color="k", lw=1,
                label="Pareto front")
        ax.set_title(f"{rt}, {t} thread(s)")
        ax.set_xlabel("latency ms (batch 1, median)")
        ax.set_ylabel(ps[0]["metric_name"] if ps else "metric")
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle("accuracy vs latency; marker area = file size; circles dense, triangles whole heads + FFN units, "
                 "squares other pruned blocks; black edge = Pareto front; * = missed the 0.5-point verification", fontsize=9)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ main ------------------------------
def parse(argv: list[str] | None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-one", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--dense", type=Path, help="dense finetune run (model folder or run dir)")
    ap.add_argument("--runs", type=Path, nargs="*", default=[],
                    help="compress run dirs, or a staged run's intermediate checkpoints "
                         "(RUN/compress_state/stages/<C>x/model)")
    ap.add_argument("--runtimes", nargs="+", default=["onnxruntime", "litert"], choices=["onnxruntime", "litert"])
    ap.add_argument("--modes", nargs="+", default=["structured"], choices=["structured", "packed"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--verify-examples", type=int, default=100000, help="default: the whole dev set")
    ap.add_argument("--eval-examples", type=int, default=None, help="default: the whole dev set")
    ap.add_argument("--calib-examples", type=int, default=64)
    ap.add_argument("--work", type=Path, default=WORK / "frontier")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--export-only", action="store_true",
                    help="export and evaluate (cached under --work), time nothing: the timing rounds then run "
                         "later, on a quiet machine")
    return ap.parse_args(argv)


def check_args(a) -> None:
    if a.dense is None or not a.dense.exists():
        raise BadInput(f"--dense {a.dense} does not exist; pass the dense finetune run of {a.task}")
    for r in a.runs:
        if not (r / "compression.json").is_file() and not (r / "masks.safetensors").is_file():
            raise BadInput(f"--runs {r} is neither a compress run (no compression.json) nor a pruned checkpoint "
                           "(no masks.safetensors, as in RUN/compress_state/stages/<C>x/model)")
    if any(t < 1 for t in a.threads) or a.rounds < 1 or a.reps < 1:
        raise BadInput("--threads, --rounds and --reps must be >= 1")


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.time_one:
        rt, path, t, reps, seq = a.time_one
        print(json.dumps(time_one(rt, path, int(t), int(reps), int(seq))))
        return 0
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        check_args(a)
        from edgeprune.data.glue import get_task

        get_task(a.task)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # an unknown task is bad input too
        print(f"error: {e}", file=sys.stderr)
        return 2
    import edgeprune.exporters.onnx  # noqa: F401  (registers the exporters)

    if "litert" in a.runtimes:
        import edgeprune.exporters.tflite  # noqa: F401
    t0 = time.time()
    a.work.mkdir(parents=True, exist_ok=True)
    try:
        arts = plan_artifacts(a.dense, a.runs, a.runtimes, a.modes)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    exports, evals, failed = {}, {}, []
    for art in arts:
        try:
            exports[art.key] = export_one(art, a.work, a.task, a.seq_len, a.verify_examples, a.calib_examples)
            evals[art.key] = evaluate_one(art, exports[art.key], a.work, a.task, a.seq_len, a.eval_examples)
        except Exception as e:  # an artifact this toolchain cannot build is reported, the rest still measured
            failed.append({"artifact": art.key, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            print(f"{art.key}: FAILED {failed[-1]['error']}", flush=True)
    ok = [x for x in arts if x.key in evals]
    if a.export_only:
        print(f"{len(ok)} artifacts exported and evaluated, {len(failed)} failed; timing skipped (--export-only)")
        return 0
    timings = timing_rounds(ok, exports, a.work, a.threads, a.rounds, a.reps, a.seq_len)
    points = build_points(ok, exports, evals, timings, a.threads)
    import onnxruntime

    result = {
        "benchmark": "frontier", "task": a.task, "seq_len": a.seq_len, "batch": 1,
        "dense": str(a.dense), "runs": [str(r) for r in a.runs],
        "timing": (f"Latency: median over {a.rounds} interleaved rounds of each round's median of {a.reps} runs, "
                   "each artifact in its own process per round (min-max of the round medians in brackets); peak "
                   "RSS = the timing process's max resident set."),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "versions": {"onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "points": points, "targets": issue14_targets(points), "failed": failed, "wall_s": round(time.time() - t0, 1),
    }
    from edgeprune.io import write_json

    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / "frontier.json", result)
    write_md(result, a.out / "frontier.md")
    if points:
        write_png(points, a.out / "frontier.png")
    print(f"{len(points)} points, {len(failed)} failed artifacts -> {a.out}/frontier.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
