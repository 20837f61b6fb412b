"""Run or time a ``.tflite`` file in the ai-edge-litert interpreter, in a child process.

Some TFLite combinations crash the process (dynamic int8 with native block sparsity segfaults
under XNNPACK; docs/speed-notes.md, "TFLite sparse encoding / XNNPACK"), and interpreters in one
process skew each other's timings, so the exporter and the benchmark call this module with ``python -m`` and read its
output files. Imports only numpy and ai_edge_litert (no TensorFlow).

    python -m edgeprune.exporters.litert_run run MODEL.tflite IN.npz OUT.npz [--threads N] [--no-xnnpack]
    python -m edgeprune.exporters.litert_run time MODEL.tflite OUT.json [--threads N] [--no-xnnpack] [--runs N]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SIGNATURE = "serving_default"


def interpreter(model_path: str | os.PathLike[str], threads: int = 1, xnnpack: bool = True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs: dict[str, Any] = {"model_path": str(model_path), "num_threads": threads}
    if not xnnpack:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(**kwargs)


def interpreter_logits(model_path: str | os.PathLike[str], inputs: dict[str, np.ndarray], threads: int = 1,
                       xnnpack: bool = True) -> np.ndarray:
    """Logits for every row of ``inputs`` (name -> [n, seq]), fed in the artifact's static batch size."""
    it = interpreter(model_path, threads, xnnpack)
    runner = it.get_signature_runner(SIGNATURE)
    details = runner.get_input_details()
    batch = next(iter(details.values()))["shape"][0]
    n = next(iter(inputs.values())).shape[0]
    outs = []
    for s in range(0, n, batch):
        feed = {}
        for name, d in details.items():
            a = inputs[name][s:s + batch]
            if a.shape[0] < batch:  # pad the last batch by repeating its first row
                a = np.concatenate([a, np.repeat(a[:1], batch - a.shape[0], axis=0)])
            feed[name] = a.astype(d["dtype"])
        out = runner(**feed)["logits"]
        outs.append(np.asarray(out)[: min(batch, n - s)])
    return np.concatenate(outs).astype(np.float32)


def time_model(model_path: str | os.PathLike[str], threads: int = 1, xnnpack: bool = True, runs: int = 30,
               warmup: int = 5) -> dict[str, float]:
    """Median / mean / min latency in ms of one invoke on fixed inputs (all ones, full mask)."""
    it = interpreter(model_path, threads, xnnpack)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.ones(d["shape"], d["dtype"]))
    for _ in range(warmup):
        it.invoke()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        ts.append((time.perf_counter() - t) * 1e3)
    return {"median_ms": float(np.median(ts)), "mean_ms": float(np.mean(ts)), "min_ms": float(np.min(ts)),
            "runs": runs}


def _child(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "edgeprune.exporters.litert_run", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def run_in_child(model_path: Path, inputs: dict[str, np.ndarray], work: Path, threads: int = 1,
                 xnnpack: bool = True, timeout: float = 1800) -> tuple[np.ndarray | None, str | None]:
    """(logits, None) or (None, why it failed) - a crash of the interpreter does not take us down."""
    inp, out = work / "verify_inputs.npz", work / "verify_logits.npz"
    np.savez(inp, **inputs)
    try:
        proc = _child(["run", str(model_path), str(inp), str(out), "--threads", str(threads)]
                      + ([] if xnnpack else ["--no-xnnpack"]), timeout)
    except subprocess.TimeoutExpired:
        return None, f"interpreter did not finish in {timeout:.0f} s"
    finally:
        inp.unlink(missing_ok=True)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
        return None, f"interpreter exited with code {proc.returncode} {tail[0][:200]}".strip()
    with np.load(out) as z:
        logits = z["logits"]
    out.unlink()
    return logits, None


def time_in_child(model_path: Path, out_json: Path, threads: int = 1, xnnpack: bool = True, runs: int = 30,
                  timeout: float = 900) -> dict[str, Any]:
    """Latency measured in a fresh process; {"error": ...} when the interpreter fails or crashes."""
    Path(out_json).unlink(missing_ok=True)  # never read a stale result
    try:
        proc = _child(["time", str(model_path), str(out_json), "--threads", str(threads), "--runs", str(runs)]
                      + ([] if xnnpack else ["--no-xnnpack"]), timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not out_json.exists():
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
        return {"error": f"exit code {proc.returncode} {tail[0][:200]}".strip()}
    return json.loads(out_json.read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="litert_run")
    ap.add_argument("what", choices=("run", "time"))
    ap.add_argument("model")
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-xnnpack", action="store_true")
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args(argv)
    if a.what == "run":
        with np.load(a.paths[0]) as z:
            inputs = {k: z[k] for k in z.files}
        logits = interpreter_logits(a.model, inputs, a.threads, not a.no_xnnpack)
        np.savez(a.paths[1], logits=logits)
    else:
        res = time_model(a.model, a.threads, not a.no_xnnpack, a.runs)
        Path(a.paths[0]).write_text(json.dumps(res))


if __name__ == "__main__":
    main()
