"""TFLite (LiteRT) exporter: the pruned encoder rebuilt in TensorFlow, converted, verified in the interpreter.

The speed comes from the graph's structure (:mod:`tf_graph`, :mod:`tf_linear`), with each pruned
linear's formulation picked by timing it in the LiteRT interpreter (XNNPACK, one thread) at the
export's sequence length and dtype. TFLite's native sparse weight encoding
(``TfliteOptions.sparsity``) is optional: measured here it only shrinks files and is buggy in places
(docs/speed-notes.md, "TFLite sparse encoding / XNNPACK"), so the artifact is always verified in a child
process.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edgeprune.errors import ConfigError, ExportError
from edgeprune.quiet import native_stdout_off
from edgeprune.rundir import PrunedRun
from . import register_exporter
from . import tf_linear as tl
from .base import Exporter, verification_record
from .prepared import PreparedModel

ARTIFACT = "model.tflite"
TOKENIZER_DIR = "tokenizer"
TIMING_THREADS = 1
SIGNATURE_KEY = "serving_default"


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError:
        raise ConfigError("--format tflite needs TensorFlow; pip install 'edgeprune[tf]'") from None
    return tf


def convert(fn, dtype: str, representative: Callable[[], Iterator[list[np.ndarray]]] | None = None,
            sparsity: bool = False) -> bytes:
    """Convert a ``tf.function`` with an input signature to a TFLite flatbuffer in ``dtype``."""
    tf = _tf()
    holder = tf.Module()  # a trackable owner makes the converter write the "serving_default" signature
    holder.fn = fn
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], holder)
    opts: list = []
    if dtype == "fp16":
        opts = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif dtype == "int8-dynamic":
        opts = [tf.lite.Optimize.DEFAULT]
    elif dtype == "int8":
        if representative is None:
            raise ConfigError("full int8 needs a representative dataset")
        opts = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
    if sparsity:
        opts.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    conv.optimizations = opts
    try:
        with native_stdout_off():  # the int8 calibrator prints one C-level line per op to stdout
            return conv.convert()
    except Exception as e:  # the converter raises many types; name it in one line
        raise ExportError(f"TFLite conversion ({dtype}) failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None


class LinearTimer:
    """Times each candidate formulation as a one-layer TFLite model; cached by shape (not index values)."""

    def __init__(self, tokens: int, dtype: str, threads: int = TIMING_THREADS, runs: int = 25) -> None:
        self.tokens, self.dtype, self.threads, self.runs = tokens, dtype, threads, runs
        self.cache: dict[tuple, float] = {}
        self.log: dict[str, dict[str, float]] = {}

    def time(self, f: tl.Formulation) -> float:
        key = f.shape_key(self.tokens) + (self.dtype,)
        if key not in self.cache:
            self.cache[key] = self._measure(f)
        return self.cache[key]

    def _measure(self, f: tl.Formulation) -> float:
        tf = _tf()
        from ai_edge_litert.interpreter import Interpreter

        fn = tf.function(lambda x: f(x), input_signature=[tf.TensorSpec([self.tokens, f.n_in], tf.float32)])
        rng = np.random.default_rng(0)
        x = rng.standard_normal((self.tokens, f.n_in)).astype(np.float32)

        def rep():
            for _ in range(4):
                yield [rng.standard_normal((self.tokens, f.n_in)).astype(np.float32)]

        # timing proxy: fp16 weights are dequantized at load and run in fp32
        dtype = "fp32" if self.dtype == "fp16" else self.dtype
        buf = convert(fn, dtype, rep if dtype == "int8" else None)
        it = Interpreter(model_content=buf, num_threads=self.threads)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        for _ in range(3):
            it.invoke()
        ts = []
        for _ in range(self.runs):
            t = time.perf_counter()
            it.invoke()
            ts.append(time.perf_counter() - t)
        return float(np.median(ts) * 1e3)

    def __call__(self, name: str, cands: list[tl.Formulation]) -> tl.Formulation:
        times = [self.time(f) for f in cands]
        self.log[name] = {f"{f.kind}" + (f"_R{f.meta['R']}" if "R" in f.meta else ""): round(t, 4)
                          for f, t in zip(cands, times)}
        return cands[int(np.argmin(times))]


def _int32(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The prepared int64 feeds as the int32 the TFLite signature takes."""
    return {k: v.astype(np.int32) for k, v in feeds.items()}


def write_app_files(out_dir: Path, tokenizer, labels: list[str]) -> None:
    """``vocab.txt`` (one token per line, in id order) and ``labels.txt`` (one name per line, in output order):
    the associated files an Android text classifier (LiteRT Task Library BertNLClassifier, MediaPipe
    TextClassifier) reads; :func:`with_metadata` also packs them into the model."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    (out_dir / "vocab.txt").write_text("".join(t + "\n" for t, _ in vocab), encoding="utf-8")
    if labels:
        (out_dir / "labels.txt").write_text("".join(n + "\n" for n in labels), encoding="utf-8")


def with_metadata(buf: bytes, out_dir: Path, labels: list[str], names: list[str],
                  tokenizer: Any = None) -> tuple[bytes, dict[str, Any]]:
    """``buf`` with the Android text-classifier metadata embedded when possible, and the report's record of it.

    Metadata is a convenience for apps, never a reason to fail an export: without mediapipe, or for a model
    MediaPipe's BERT writer cannot describe, the plain model is kept and the record says why.
    """
    from . import tflite_metadata as tm

    skipped: dict[str, Any] = {"embedded": False, "min_parser_version": None, "associated_files": []}
    kind = type(getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)).__name__
    if tokenizer is not None and kind != "WordPiece":  # the metadata's BertTokenizer is WordPiece
        return buf, {**skipped, "reason": f"metadata skipped: the tokenizer is {kind}, MediaPipe's BERT "
                                          "tokenizer metadata describes WordPiece"}
    try:
        res = tm.embed_metadata(buf, out_dir / "vocab.txt", labels, names)
    except ValueError as e:
        return buf, {**skipped, "reason": f"metadata skipped: {e}"}
    except Exception as e:  # a writer bug must not cost the export
        return buf, {**skipped, "reason": f"metadata skipped: the writer failed: {type(e).__name__}: {e}"[:400]}
    if res is None:
        return buf, {**skipped, "reason": f"metadata skipped: mediapipe is not installed; {tm.INSTALL_HINT}"}
    return res


@dataclass(frozen=True)
class TfliteOptions:
    """TFLite-only export settings."""

    sparsity: bool = False  # also apply TFLite's native sparse weight encoding (smaller file, never faster)


@register_exporter("tflite")
class TFLiteExporter(Exporter):
    options_type = TfliteOptions
    ATOL = 1e-4
    MAX_POINTS = 1.0

    def _task(self, run: PrunedRun) -> str:
        task = self.config.task or run.task
        if not task:
            raise ConfigError("no GLUE task known for this checkpoint; pass --task (e.g. mrpc)")
        return task

    def _data(self) -> str | None:
        """--data (checked by ``export()`` before any work when verification or calibration needs it)."""
        return self.config.data_dir

    def check_config(self, run: PrunedRun) -> None:
        c = self.config
        if c.seq_len is None:
            raise ConfigError("TFLite needs a static sequence length; pass --seq-len N (e.g. 128)")
        if c.batch is not None and c.batch < 1:
            raise ConfigError(f"--batch must be >= 1, got {c.batch}")
        from edgeprune.data.glue import get_task

        get_task(self._task(run))
        _tf()

    def build(self, prepared: PreparedModel, out_dir: Path) -> dict[str, Any]:
        from . import tf_graph as tg
        from edgeprune.quiet import Progress, stage
        from .litert_run import run_in_child

        c = self.config
        seq, batch = int(c.seq_len), int(c.batch or 1)
        model, tokenizer, masks, spec = prepared.model, prepared.tokenizer, prepared.masks, prepared.spec
        weights = tg.extract(model, masks, tokenizer)
        names = tg.input_names(weights)
        t0 = time.perf_counter()
        timer = LinearTimer(batch * seq, c.dtype)
        chooser = timer if c.mode == "packed" and masks else tg.choose_fewest_macs
        with Progress("[export] time formulations" if chooser is timer else f"[export] plan {c.mode} layers",
                      len(weights.layers) * len(tg.ROLES)) as progress:
            plans = tg.plan_model(weights, c.mode if masks else "dense", chooser, progress.advance)
        plan_s = time.perf_counter() - t0
        fn = tg.build_function(weights, plans, seq, batch, tg.INT8_MASK_NEG if c.dtype == "int8" else tg.MASK_NEG)

        rep = None
        if c.dtype == "int8":
            calib = _int32(prepared.feeds(prepared.examples("train", c.calib_examples, self._data()), seq, names))

            def rep():
                n = calib["input_ids"].shape[0]
                for s in range(0, n - batch + 1, batch):
                    yield [calib[k][s:s + batch] for k in names]

        stage(f"[export] convert to TFLite {c.dtype}")
        t0 = time.perf_counter()
        buf = convert(fn, c.dtype, rep, sparsity=c.options.sparsity)
        convert_s = time.perf_counter() - t0
        artifact = out_dir / ARTIFACT
        tokenizer.save_pretrained(out_dir / TOKENIZER_DIR)
        label_names = prepared.labels
        write_app_files(out_dir, tokenizer, label_names)
        buf, meta = with_metadata(buf, out_dir, label_names, names, tokenizer)
        artifact.write_bytes(buf)  # the final file: the GPU check and the verification below read this one
        from .tflite_gpu import gpu_compatibility

        gpu = gpu_compatibility(artifact)

        verification: dict[str, Any] = {"passed": True, "skipped": True, "reason": "verification skipped (--no-verify)"}
        if c.verify:
            ref = prepared.reference(self._data(), c.verify_examples, seq, names,
                                     progress="[export] verify: PyTorch reference on dev examples")
            stage(f"[export] verify: the artifact in the LiteRT interpreter on {len(ref.labels)} dev examples")
            with tempfile.TemporaryDirectory() as work:
                got, err = run_in_child(artifact, _int32(ref.feeds), Path(work))
            if got is None:
                verification = {"passed": False, "reason": f"the LiteRT interpreter failed on the artifact: {err}",
                                "dtype": c.dtype, "num_examples": int(len(ref.labels))}
            else:
                verification = verification_record(ref.logits, got, ref.labels, spec, c.dtype, self.ATOL,
                                                    self.MAX_POINTS)
            verification.update({"runtime": "ai-edge-litert Interpreter (XNNPACK, 1 thread, child process)",
                                 "task": spec.name, "split": "dev", "seq_len": seq})
        summary = tg.plan_summary(plans)
        for layer in summary["layers"]:
            for role in tg.ROLES:
                name = layer[role]["name"]
                if name in timer.log:
                    layer[role]["timed_ms"] = timer.log[name]
        sparsity = "tflite-native" if c.options.sparsity else "none"
        io = {"inputs": [{"name": n, "dtype": "int32", "shape": [batch, seq]} for n in names],
              "outputs": [{"name": "logits", "dtype": "float32", "shape": [batch, spec.num_labels]}]}
        return {
            "artifact": ARTIFACT,
            "verification": verification,
            "file_bytes": len(buf),
            "structure": summary,
            "timing": {"plan_s": round(plan_s, 2), "convert_s": round(convert_s, 2),
                       "formulation_timing": f"LiteRT XNNPACK, {TIMING_THREADS} thread, {batch * seq} tokens"
                       if chooser is timer else "none (fewest multiply-adds)"},
            "sparsity_encoding": sparsity,
            "gpu_compatibility": gpu,
            "metadata": meta,
            "manifest": {
                "model": model.config.model_type, "arch": weights.arch, "batch": batch,
                "labels": label_names, "num_labels": spec.num_labels, "is_regression": spec.is_regression,
                "signature": SIGNATURE_KEY, **io, "tokenizer": TOKENIZER_DIR + "/",
                "max_seq_len": seq, "pad_token_id": weights.pad_id, "sparsity_encoding": sparsity,
                "formulations": summary["formulations"], "linear_mac_reduction": summary["linear_mac_reduction"],
                "runtime": "LiteRT / TFLite builtins only (no Flex ops)",
            },
        }
