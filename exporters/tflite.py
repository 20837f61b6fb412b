"""TFLite (LiteRT) exporter: the pruned encoder as one PyTorch module, converted by litert-torch, verified.

The speed comes from the graph's structure (:mod:`tflite_graph`, :mod:`tflite_linear`), with each pruned
linear's formulation picked by timing it in the LiteRT interpreter (XNNPACK, one thread) at the
export's sequence length and dtype. Conversion and quantization (:mod:`tflite_convert`: litert-torch and
ai-edge-quantizer, no TensorFlow) run in a child process of their own (:mod:`tflite_build`), so their
memory never adds to the parent's model and verification (issue 16: <= 2 GB peak); the artifact is
verified in another child (:mod:`litert_run`). TFLite's native sparse weight encoding is not offered:
it needed TensorFlow's converter and was never faster (docs/speed-notes.md).
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import ConfigError, ExportError
from edgeprune.rundir import PrunedRun
from . import register_exporter
from . import tflite_linear as tl
from .base import Exporter, verification_record
from .prepared import PreparedModel, named_inputs

ARTIFACT = "model.tflite"
TOKENIZER_DIR = "tokenizer"
TIMING_THREADS = 1
TIMING_RUNS = 25  # timed invocations per candidate (the median is kept)
SIGNATURE_KEY = "serving_default"


class LinearTimer:
    """Times each candidate formulation as a one-linear signature in the LiteRT interpreter.

    Every distinct candidate shape of the model (:meth:`prepare`) goes into one multi-signature
    flatbuffer, so litert-torch converts once, not once per candidate (about 1.4 s each); a signature's
    latency equals the same linear converted alone (measured: within 3%). Cached by shape, not index values,
    in memory and in ``persistent`` (:mod:`timing_cache`), so a shape timed by an earlier export on this
    machine is not timed again.
    """

    def __init__(self, tokens: int, dtype: str, threads: int = TIMING_THREADS, runs: int = TIMING_RUNS,
                 persistent: Any = None, before_timing: Any = None) -> None:
        self.tokens, self.dtype, self.threads, self.runs = tokens, dtype, threads, runs
        self.cache: dict[tuple, float] = {}
        self.log: dict[str, dict[str, float]] = {}
        self.persistent = persistent
        self.before_timing = before_timing  # called once the candidates are converted, right before timing

    def key(self, f: tl.Formulation) -> tuple:
        return f.shape_key(self.tokens) + (self.dtype,)

    def prepare(self, cands: list[tl.Formulation]) -> None:
        """Measure every candidate whose shape is not cached yet, converted at once (:func:`convert_candidates`)."""
        todo: dict[tuple, tl.Formulation] = {}
        for f in cands:
            key = self.key(f)
            if key in self.cache or key in todo:
                continue
            ms = self.persistent.get(key) if self.persistent is not None else None
            if ms is not None:
                self.cache[key] = ms
            else:
                todo[key] = f
        if not todo:
            return
        rng = np.random.default_rng(0)
        items = list(todo.items())
        # timing proxy: fp16 weights are dequantized at load and run in fp32
        dtype = "fp32" if self.dtype == "fp16" else self.dtype
        calib = [[rng.standard_normal((self.tokens, f.n_in)).astype(np.float32) for _ in range(4)]
                 if dtype == "int8" else None for _, f in items]
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_content=convert_candidates([f for _, f in items], calib, self.tokens, dtype),
                         num_threads=self.threads)
        if self.before_timing is not None:
            self.before_timing()
        for i, (key, f) in enumerate(items):
            run = it.get_signature_runner(f"c{i}")
            xi = rng.standard_normal((self.tokens, f.n_in)).astype(np.float32)  # every dtype keeps a float input
            for _ in range(3):
                run(x=xi)
            ts = []
            for _ in range(self.runs):
                t = time.perf_counter()
                run(x=xi)
                ts.append(time.perf_counter() - t)
            self.cache[key] = float(np.median(ts) * 1e3)
        if self.persistent is not None:
            self.persistent.put_all({k: self.cache[k] for k in todo})

    def shortlist(self, cands: list[tl.Formulation]) -> list[tl.Formulation]:
        """The candidates this timer measures (:func:`tflite_linear.shortlist`)."""
        return tl.shortlist(cands, self.dtype)

    def __call__(self, name: str, cands: list[tl.Formulation]) -> tl.Formulation:
        cands = self.shortlist(cands)
        if len(cands) == 1:
            return cands[0]
        self.prepare(cands)
        times = [self.cache[self.key(f)] for f in cands]
        self.log[name] = {f"{f.kind}" + (f"_R{f.meta['R']}" if "R" in f.meta else ""): round(t, 4)
                          for f, t in zip(cands, times)}
        return cands[int(np.argmin(times))]


def convert_candidates(forms: list[tl.Formulation], calib: list, tokens: int, dtype: str) -> bytes:
    """One flatbuffer with signature ``c{i}`` = ``forms[i]`` on a [tokens, n_in] input, in one litert-torch
    conversion (about 0.4 s per signature; converting half of a 5x MiniLM-L6's 58 candidates in a spawned
    second process was slower, 28.0 vs 25.5 s, quiet machine: the worker's imports cost more than it saved)."""
    import torch

    from .tflite_convert import convert

    sigs = [(f"c{i}", f.module(), {"x": torch.zeros(tokens, f.n_in)}) for i, f in enumerate(forms)]
    cal = None
    if dtype == "int8":
        cal = {f"c{i}": [{"x": x} for x in calib[i]] for i in range(len(forms))}
    return convert(sigs, dtype, cal)


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


def tokenizer_kind(tokenizer: Any) -> str | None:
    """The fast tokenizer's model class name (``WordPiece``, ``BPE``, ...); None without a tokenizer."""
    if tokenizer is None:
        return None
    return type(getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)).__name__


def with_metadata(buf: bytes, out_dir: Path, labels: list[str], names: list[str],
                  kind: str | None = None) -> tuple[bytes, dict[str, Any]]:
    """``buf`` with the Android text-classifier metadata embedded when possible, and the report's record of it.

    Metadata is a convenience for apps, never a reason to fail an export: without mediapipe, or for a model
    MediaPipe's BERT writer cannot describe, the plain model is kept and the record says why.
    """
    from . import tflite_metadata as tm

    skipped: dict[str, Any] = {"embedded": False, "min_parser_version": None, "associated_files": []}
    if kind is not None and kind != "WordPiece":  # the metadata's BertTokenizer is WordPiece
        return buf, {**skipped, "reason": f"metadata skipped: the tokenizer is {kind}, MediaPipe's BERT "
                                          "tokenizer metadata describes WordPiece"}
    try:
        res = tm.embed_metadata(buf, out_dir / "vocab.txt", labels, names)
    except ValueError as e:
        hint = "; export with --tflite-segment-input to add one" if "token_type_ids" not in names else ""
        return buf, {**skipped, "reason": f"metadata skipped: {e}{hint}"}
    except Exception as e:  # a writer bug must not cost the export
        return buf, {**skipped, "reason": f"metadata skipped: the writer failed: {type(e).__name__}: {e}"[:400]}
    if res is None:
        return buf, {**skipped, "reason": f"metadata skipped: mediapipe is not installed; {tm.INSTALL_HINT}"}
    return res


@dataclass(frozen=True)
class TfliteOptions:
    """TFLite-only export settings."""

    # how each pruned linear's formulation is picked in packed mode: "timed" (fastest in the LiteRT
    # interpreter on this machine, so it can vary with load) or "fewest-macs" (deterministic structure)
    formulation: str = "timed"
    # give a model without segment ids (DistilBERT) an unused int32 ``token_type_ids`` input, so that MediaPipe's
    # BERT text-classifier metadata, whose writer names three inputs, can describe it (apps feed zeros)
    segment_input: bool = False
    # time every candidate afresh instead of reusing latencies cached by earlier exports on this machine
    # (timing_cache.py; the fresh ones replace them)
    retime: bool = False


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
        from .tflite_build import FORMULATIONS

        if c.options.formulation not in FORMULATIONS:
            raise ConfigError(f"unknown TFLite formulation choice {c.options.formulation!r}; "
                              f"choose one of: {', '.join(FORMULATIONS)}")
        from .tflite_convert import require

        require()  # found, not imported: the converter runs in a child

    def build(self, prepared: PreparedModel, out_dir: Path) -> dict[str, Any]:
        from . import tflite_graph as tg
        from . import tflite_build as tb
        from edgeprune.quiet import stage
        from .litert_run import run_in_child

        c = self.config
        seq, batch = int(c.seq_len), int(c.batch or 1)
        model, tokenizer, masks, spec = prepared.model, prepared.tokenizer, prepared.masks, prepared.spec
        weights = tg.extract(model, masks, tokenizer)
        torch_names = tg.input_names(weights)  # what the PyTorch model takes
        if c.options.segment_input and not weights.has_token_types:
            weights = dataclasses.replace(weights, has_token_types=True)
        names = tg.input_names(weights)  # the artifact's signature
        calib = None
        if c.dtype == "int8":
            calib = _int32(prepared.feeds(prepared.examples("train", c.calib_examples, self._data()), seq, names))
        artifact = out_dir / ARTIFACT
        tokenizer.save_pretrained(out_dir / TOKENIZER_DIR)
        label_names = prepared.labels
        write_app_files(out_dir, tokenizer, label_names)
        job = tb.Job(seq_len=seq, batch=batch, dtype=c.dtype, mode=c.mode, pruned=bool(masks),
                     formulation=c.options.formulation, retime=c.options.retime, input_names=names,
                     bundle_dir=str(out_dir), labels=label_names, tokenizer_kind=tokenizer_kind(tokenizer))
        arch, pad_id = weights.arch, weights.pad_id
        refs: list = []

        def reference() -> None:  # while the child converts: it does not depend on the artifact
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # the other core is the converter's
            try:
                refs.append(prepared.reference(self._data(), c.verify_examples, seq, torch_names,
                                               progress="[export] verify: PyTorch reference on dev examples"))
            finally:
                torch.set_num_threads(threads)

        with tempfile.TemporaryDirectory(prefix="edgeprune-tflite-") as work:
            tb.write_job(Path(work), job, weights, calib)
            del weights, calib  # the child reads them from disk; the converter never shares this process
            tb.release_memory()
            res = tb.run_child(Path(work), job, meanwhile=reference if c.verify else None)
        # the child wrote the final file (metadata embedded) and ran the GPU check on it
        gpu, meta, summary = res["gpu_compatibility"], res["metadata"], res["structure"]

        verification: dict[str, Any] = {"passed": True, "skipped": True, "reason": "verification skipped (--no-verify)"}
        if c.verify:
            ref = refs[0]
            stage(f"[export] verify: the artifact in the LiteRT interpreter on {len(ref.labels)} dev examples")
            with tempfile.TemporaryDirectory() as work:
                got, err = run_in_child(artifact, _int32(named_inputs(ref.feeds, names)), Path(work))
            if got is None:
                verification = {"passed": False, "reason": f"the LiteRT interpreter failed on the artifact: {err}",
                                "dtype": c.dtype, "num_examples": int(len(ref.labels))}
            else:
                verification = verification_record(ref.logits, got, ref.labels, spec, c.dtype, self.ATOL,
                                                    self.MAX_POINTS)
            verification.update({"runtime": "ai-edge-litert Interpreter (XNNPACK, 1 thread, child process)",
                                 "task": spec.name, "split": "dev", "seq_len": seq})
        io = {"inputs": [{"name": n, "dtype": "int32", "shape": [batch, seq]} for n in names],
              "outputs": [{"name": "logits", "dtype": "float32", "shape": [batch, spec.num_labels]}]}
        return {
            "artifact": ARTIFACT,
            "verification": verification,
            "file_bytes": artifact.stat().st_size,
            "structure": summary,
            "timing": {"plan_s": res["plan_s"], "convert_s": res["convert_s"], "timing_cache": res.get("timing_cache"),
                       "formulation_timing": f"LiteRT XNNPACK, {TIMING_THREADS} thread, {batch * seq} tokens"
                       if res["timed"] else "none (fewest multiply-adds)"},
            "sparsity_encoding": "none",
            "gpu_compatibility": gpu,
            "metadata": meta,
            "manifest": {
                "model": model.config.model_type, "arch": arch, "batch": batch,
                "labels": label_names, "num_labels": spec.num_labels, "is_regression": spec.is_regression,
                "signature": SIGNATURE_KEY, **io, "tokenizer": TOKENIZER_DIR + "/",
                "max_seq_len": seq, "pad_token_id": pad_id, "sparsity_encoding": "none",
                "formulations": summary["formulations"], "linear_mac_reduction": summary["linear_mac_reduction"],
                "runtime": "LiteRT / TFLite builtins only (no Flex ops)",
            },
        }
