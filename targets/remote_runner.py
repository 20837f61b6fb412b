#!/usr/bin/env python3
"""Device-side benchmark: one artifact, one engine, one process; prints one JSON line.

Copied to the device (SSH), run under qemu-aarch64 (emulation) or in a subprocess (host). It needs only
the standard library, numpy and onnxruntime (.onnx) or ai_edge_litert / tflite_runtime (.tflite), so it
runs with a device's plain ``pip install onnxruntime ai-edge-litert``. Inputs are synthetic and seeded:
``input_ids`` in [1, 100), ``attention_mask`` ones, ``token_type_ids`` zeros, anything else zeros.
With ``--mark K`` it runs K inferences between ``syscall(4095, 1)`` and ``syscall(4095, 0)``: markers
that the edgeprune qemu plugin uses to count the instructions of exactly those inferences.
"""
import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import sys
import time

RESULT_PREFIX = "EDGEPRUNE_RESULT "
PROGRESS_PREFIX = "EDGEPRUNE_PROGRESS "
MARK_SYSCALL = 4095


class Progress:
    """``EDGEPRUNE_PROGRESS <phase> <done> <total>`` lines on stderr for the caller's stage lines.

    Written between runs, never inside a timed one, at most twice a second, so the writes cost the
    measurement nothing; silent unless ``--progress``.
    """

    def __init__(self, on):
        self.on = on
        self.last = 0.0

    def __call__(self, phase, done, total):
        now = time.perf_counter()
        if self.on and (done in (0, total) or now - self.last >= 0.5):
            self.last = now
            sys.stderr.write(f"{PROGRESS_PREFIX}{phase} {done} {total}\n")
            sys.stderr.flush()


def _status_bytes(key):
    """VmRSS / VmHWM from /proc/self/status in bytes (None where there is no procfs)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes():
    """This process's own peak resident set: ``VmHWM``, not ``ru_maxrss``, which Linux carries across
    fork + exec (a child of a big parent would report the parent's peak)."""
    hwm = _status_bytes("VmHWM")
    if hwm:
        return hwm
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru if sys.platform == "darwin" else ru * 1024


def _cpu_part():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("CPU part") or line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def signature_input_names(it):
    """Tensor index -> the input's signature name (``input_ids``), for the first signature.

    litert-torch names the input tensors ``serving_default_input_ids``; the signature keeps the module's
    argument names, which are what feeds are keyed by. Tensors outside any signature keep their own name.
    """
    try:
        sigs = it.get_signature_list()
        key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
        return {int(d["index"]): name for name, d in it.get_signature_runner(key).get_input_details().items()}
    except Exception:  # no signature (or an old runtime without signature runners)
        return {}


def _fill(name, shape, dtype, rng):
    import numpy as np

    lname = name.lower()
    if "input_ids" in lname or lname.endswith("ids") and "type" not in lname:
        return rng.integers(1, 100, size=shape).astype(dtype)
    if "mask" in lname:
        return np.ones(shape, dtype=dtype)
    return np.zeros(shape, dtype=dtype)


def _concrete(shape, batch, seq_len):
    """Replace dynamic dims: the first by ``batch``, the others by ``seq_len``."""
    out = []
    for i, d in enumerate(shape):
        if isinstance(d, int) and d > 0:
            out.append(d)
        else:
            out.append(batch if i == 0 else seq_len)
    return out


class OrtEngine:
    def __init__(self, path, threads, batch, seq_len, xnnpack):
        import numpy as np
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        types = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
                 "tensor(float16)": np.float16, "tensor(bool)": np.bool_}
        rng = np.random.default_rng(0)
        self.feeds = {}
        for i in self.sess.get_inputs():
            shape = _concrete(i.shape, batch, seq_len)
            self.feeds[i.name] = _fill(i.name, shape, types.get(i.type, np.float32), rng)
        self.out_names = [o.name for o in self.sess.get_outputs()]
        self.version = ort.__version__
        self.xnnpack = None   # onnxruntime's CPU provider has no XNNPACK switch here

    def input_shapes(self):
        return {n: list(arr.shape) for n, arr in self.feeds.items()}

    def run(self):
        return dict(zip(self.out_names, self.sess.run(self.out_names, self.feeds)))


class LiteEngine:
    def __init__(self, path, threads, batch, seq_len, xnnpack):
        import numpy as np

        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
            import ai_edge_litert as mod
        except ImportError:  # legacy runtime on older devices
            from tflite_runtime.interpreter import Interpreter, OpResolverType
            import tflite_runtime as mod
        kind = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.it = Interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=kind)
        rng = np.random.default_rng(0)
        self.inputs = []
        names = signature_input_names(self.it)
        for d in self.it.get_input_details():
            sig = [int(x) for x in d.get("shape_signature", d["shape"])]
            shape = _concrete(sig, batch, seq_len)
            if list(shape) != [int(x) for x in d["shape"]]:
                self.it.resize_tensor_input(d["index"], shape)
            self.inputs.append((d["index"], names.get(int(d["index"]), d["name"]), shape, d["dtype"]))
        self.it.allocate_tensors()
        self.feeds = [(idx, _fill(name, shape, dt, rng)) for idx, name, shape, dt in self.inputs]
        self.outs = [(d["index"], d["name"]) for d in self.it.get_output_details()]
        self.version = getattr(mod, "__version__", "unknown")
        self.xnnpack = xnnpack

    def input_shapes(self):
        return {n: list(arr.shape) for (_, n, _, _), (_, arr) in zip(self.inputs, self.feeds)}

    def run(self):
        for idx, arr in self.feeds:
            self.it.set_tensor(idx, arr)
        self.it.invoke()
        return {name: self.it.get_tensor(idx).copy() for idx, name in self.outs}


# the engines edgeprune.formats names (Format.engine); this file stays self-contained for the device
ENGINES = {"ort": OrtEngine, "litert": LiteEngine}
SUFFIX_ENGINES = {".onnx": "ort", ".tflite": "litert"}   # --engine auto, for running this script by hand


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("--engine", choices=["auto", *ENGINES], default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-xnnpack", action="store_true")
    ap.add_argument("--mark", type=int, default=0, help="count K inferences between marker syscalls")
    ap.add_argument("--save-outputs", default=None, help="write the last outputs to this .npz")
    ap.add_argument("--label", default=None, help="echoed back in the result (e.g. the artifact's original name)")
    ap.add_argument("--progress", action="store_true", help="report load / warm-up / timed runs on stderr")
    a = ap.parse_args(argv)
    progress = Progress(a.progress)

    engine = a.engine
    if engine == "auto":
        engine = SUFFIX_ENGINES.get(os.path.splitext(a.artifact)[1].lower(), "ort")
    rss_start = _status_bytes("VmRSS")
    progress("load", 0, 1)
    t0 = time.perf_counter()
    cls = ENGINES[engine]
    eng = cls(a.artifact, a.threads, a.batch, a.seq_len, not a.no_xnnpack)
    load_ms = (time.perf_counter() - t0) * 1e3
    rss_loaded = _status_bytes("VmRSS")
    progress("load", 1, 1)

    outs = None
    for i in range(a.warmup):
        progress("warmup", i, a.warmup)
        outs = eng.run()
    progress("warmup", a.warmup, a.warmup)
    # no cyclic GC inside measured regions: its trigger points depend on earlier allocations, which would
    # make instruction counts differ between otherwise identical runs (and add timing noise)
    gc.collect()
    gc.disable()
    if a.mark > 0:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.syscall(ctypes.c_long(MARK_SYSCALL), ctypes.c_long(1))
        for _ in range(a.mark):
            outs = eng.run()
        libc.syscall(ctypes.c_long(MARK_SYSCALL), ctypes.c_long(0))
    lat = []
    for i in range(a.runs):
        progress("run", i, a.runs)
        t = time.perf_counter()
        outs = eng.run()
        lat.append((time.perf_counter() - t) * 1e3)
    progress("run", a.runs, a.runs)
    gc.enable()
    if outs is None:
        outs = eng.run()
    if a.save_outputs:
        import numpy as np

        np.savez(a.save_outputs, **{k.replace("/", "_").replace(":", "_"): v for k, v in outs.items()})
    result = {
        "label": a.label, "engine": engine, "runtime_version": eng.version, "xnnpack": eng.xnnpack,
        "load_ms": load_ms, "latencies_ms": lat, "threads": a.threads, "batch": a.batch, "seq_len": a.seq_len,
        "warmup": a.warmup, "marked_runs": a.mark,
        "inputs": eng.input_shapes(),
        "outputs": {k: list(v.shape) for k, v in outs.items()},
        "checksum": float(sum(float(abs(v.astype("float64")).sum()) for v in outs.values())),
        "peak_rss_bytes": peak_rss_bytes(), "rss_start_bytes": rss_start, "rss_after_load_bytes": rss_loaded,
        "machine": platform.machine(), "cpu": _cpu_part(), "python": platform.python_version(),
        "pid": os.getpid(),
    }
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
