"""The converter half of the TFLite export, run in a child process that never loads the Hugging Face model.

The converter stack (litert-torch with torch.export, its MLIR lowering, ai-edge-quantizer, jax) and its
transient copies of every constant would otherwise sit on top of the model and the verification in one
process (issue 16 item 6: <= 2 GB peak). The parent extracts the numpy weights, writes them to a job
folder and waits; this child plans the formulations (timed or fewest multiply-adds), builds the PyTorch
module, converts and quantizes it and writes the flatbuffer, then exits and hands all of that memory back.

    python -m edgeprune.exporters.tflite_build JOB_DIR

JOB_DIR holds ``job.json`` (:class:`Job`), ``weights.pkl`` (a :class:`tflite_graph.EncoderWeights`) and, for
full int8, ``calib.npz``. The child writes ``model.tflite`` and ``result.json`` (or ``error.json``).
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import json
import os
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeprune.errors import ConfigError, EdgepruneError, ExportError

FORMULATIONS = ("timed", "fewest-macs")  # how each pruned linear's formulation is chosen
_ERRORS = {"ConfigError": ConfigError, "ExportError": ExportError}


@dataclass(frozen=True)
class Job:
    """What the child builds: the graph's static shape, dtype and how formulations are chosen."""

    seq_len: int
    batch: int
    dtype: str
    mode: str  # dense / structured / packed
    pruned: bool  # the run has masks (a dense checkpoint is planned as dense whatever the mode)
    formulation: str  # one of FORMULATIONS
    input_names: list[str]
    bundle_dir: str  # where the final model.tflite goes (vocab.txt and labels.txt are already there)
    labels: list[str]
    tokenizer_kind: str | None  # the metadata describes WordPiece tokenizers only
    retime: bool = False  # ignore the persistent timing cache's latencies (and replace them)


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc keeps it otherwise, and it counts as resident)."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc
        pass


def write_job(work: Path, job: Job, weights: Any, calib: dict[str, np.ndarray] | None = None) -> None:
    """The child's inputs, on disk."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "job.json").write_text(json.dumps(dataclasses.asdict(job)))
    with open(work / "weights.pkl", "wb") as f:
        pickle.dump(weights, f, protocol=pickle.HIGHEST_PROTOCOL)
    if calib is not None:
        np.savez(work / "calib.npz", **calib)


GATE = "parent-idle"  # the file the parent writes once its own work beside the child is done


def run_child(work: Path, job: Job, timeout: float = 3600,
              meanwhile: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run the child on ``work``; its result record, or its error raised here as the same exception type.

    ``meanwhile`` runs here while the child converts (the PyTorch verification reference, which does not
    depend on the artifact); the child times formulations only after it returns (:data:`GATE`), so the
    timings never share the CPU with it.
    """
    try:
        real = sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):  # a test's in-memory capture
        real = False
    sys.stderr.flush()
    gate = work / GATE
    if meanwhile is None:
        gate.touch()
    # the child's stage lines go to our Python stderr (the CLI points descriptor 2 at /dev/null)
    proc = subprocess.Popen([sys.executable, "-m", "edgeprune.exporters.tflite_build", str(work)],
                            stderr=sys.stderr if real else subprocess.PIPE)
    try:
        if meanwhile is not None:
            try:
                meanwhile()
            finally:
                gate.touch()
            from edgeprune.quiet import stage

            stage("[export] waiting for the TFLite converter")
        _, err_bytes = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise ExportError(f"TFLite conversion ({job.dtype}) did not finish in {timeout:.0f} s") from None
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    if not real and err_bytes:
        sys.stderr.write(err_bytes.decode(errors="backslashreplace"))
    err = work / "error.json"
    if err.exists():
        e = json.loads(err.read_text())
        raise _ERRORS.get(e["type"], ExportError)(e["message"])
    if proc.returncode != 0 or not (work / "result.json").exists():
        raise ExportError(f"TFLite conversion ({job.dtype}) failed: the converter process exited with code "
                          f"{proc.returncode}")
    return json.loads((work / "result.json").read_text())


def wait_for(gate: Path | None, timeout: float = 3600) -> None:
    """Block until ``gate`` exists (the parent is idle), polling; None: go at once. A parent that died stops
    the wait too (this process was re-parented)."""
    t0, parent = time.monotonic(), os.getppid()
    while gate is not None and not gate.exists() and time.monotonic() - t0 < timeout and os.getppid() == parent:
        time.sleep(0.05)


def build(job: Job, weights: Any, calib: dict[str, np.ndarray] | None, gate: Path | None = None) -> dict[str, Any]:
    """Plan, build, convert, embed the metadata, write the artifact and check it for the GPU delegate.

    Formulation timing waits for ``gate`` (:func:`run_child`), so it runs on a machine the parent left quiet."""
    from edgeprune.quiet import Progress, stage

    from . import tflite_graph as tg
    from .tflite import ARTIFACT, TIMING_RUNS, TIMING_THREADS, LinearTimer, with_metadata
    from .tflite_convert import convert
    from .tflite_gpu import gpu_compatibility

    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    packed = job.mode == "packed" and job.pruned
    mode = job.mode if job.pruned else "dense"
    timed = packed and job.formulation == "timed"
    cache = None
    if timed:
        from .timing_cache import TimingCache

        cache = TimingCache(TIMING_THREADS, TIMING_RUNS, read=not job.retime)
    timer = LinearTimer(job.batch * job.seq_len, job.dtype, TIMING_THREADS, TIMING_RUNS, persistent=cache,
                        before_timing=lambda: wait_for(gate))
    segments = job.dtype != "fp16"  # fp16 cannot cast BATCH_MATMUL constants (tflite_convert)
    if timed:  # every candidate of the model in one conversion, then each linear picks from the cache
        stage("[export] time formulations: convert every candidate linear")
        seen: list = []

        def collect(name, cands):
            short = timer.shortlist(cands)
            if len(short) > 1:  # a shortlist of one is chosen without timing
                seen.extend(short)
            return cands[0]

        tg.plan_model(weights, mode, collect, segments=segments)
        timer.prepare(seen)
        del seen
    chooser = timer if timed else tg.choose_fewest_macs
    label = "[export] time formulations" if timed else f"[export] plan {job.mode} layers"
    with Progress(label, len(weights.layers) * len(tg.ROLES)) as progress:
        plans = tg.plan_model(weights, mode, chooser, progress.advance, segments=segments)
    plan_s = time.perf_counter() - t0
    module = tg.build_module(weights, plans, job.seq_len, job.batch)
    summary = tg.plan_summary(plans)
    del plans, weights
    release_memory()  # with what timing the candidates left behind

    sample = {k: torch.zeros(job.batch, job.seq_len, dtype=torch.int32) for k in job.input_names}
    cal = None
    if calib is not None:
        n = calib[job.input_names[0]].shape[0]
        cal = {"serving_default": [{k: calib[k][s:s + job.batch] for k in job.input_names}
                                   for s in range(0, n - job.batch + 1, job.batch)]}

    stage(f"[export] convert to TFLite {job.dtype}")
    t0 = time.perf_counter()
    buf = convert([("serving_default", module, sample)], job.dtype, cal)
    convert_s = time.perf_counter() - t0
    del module, cal
    release_memory()  # the converter's copies go before the metadata writer and the analyzer run
    out = Path(job.bundle_dir)
    buf, meta = with_metadata(buf, out, job.labels, job.input_names, job.tokenizer_kind)
    (out / ARTIFACT).write_bytes(buf)  # the final file: the GPU check here and the verification read this one
    del buf
    gpu = gpu_compatibility(out / ARTIFACT)
    for layer in summary["layers"]:
        for role in tg.ROLES:
            name = layer[role]["name"]
            if name in timer.log:
                layer[role]["timed_ms"] = timer.log[name]
    return {"structure": summary, "plan_s": round(plan_s, 2), "convert_s": round(convert_s, 2),
            "timed": timed, "timing_cache": cache.record() if cache is not None else None, "metadata": meta,
            "gpu_compatibility": gpu}


def _weights(work: Path) -> Any:
    with open(work / "weights.pkl", "rb") as f:
        return pickle.load(f)


def main(argv: list[str] | None = None) -> int:
    from edgeprune.io import write_json
    from edgeprune.quiet import native_stderr_off, quiet, verbose

    work = Path((argv if argv is not None else sys.argv[1:])[0])
    quiet(verbose())
    with native_stderr_off():
        try:
            job = Job(**json.loads((work / "job.json").read_text()))
            calib = None
            if (work / "calib.npz").exists():
                with np.load(work / "calib.npz") as z:
                    calib = {k: z[k] for k in z.files}
            result = build(job, _weights(work), calib, work / GATE)  # no reference here: build() frees the weights
        except EdgepruneError as e:
            (work / "error.json").write_text(json.dumps({"type": type(e).__name__, "message": str(e)}))
            return 3
        write_json(work / "result.json", result)  # numpy scalars in the plan summary included
    return 0


if __name__ == "__main__":
    sys.exit(main())
