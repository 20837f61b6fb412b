"""Quiet by default: third-party warnings and C++ log lines off unless ``--verbose``; stage lines on stderr.

``quiet()`` runs before torch, tensorflow or onnxruntime are imported (their C++ loggers read the
environment once). ``stage()`` prints one edgeprune progress line on stderr, so results alone reach
stdout; ``to_stderr()`` sends a library's own prints (Trainer's metric dicts) to stderr as well.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from typing import Iterator

VERBOSE_ENV = "EDGEPRUNE_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet(verbose_: bool = False) -> None:
    """Silence third-party output for this process (and its children), unless ``verbose_``."""
    if verbose_:
        os.environ[VERBOSE_ENV] = "1"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("absl", "tensorflow", "onnxscript", "torch.onnx", "torch._dynamo", "torch.export", "jax",
                 "transformers", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def ort_quiet() -> None:
    """onnxruntime's default logger to errors only (call after importing onnxruntime)."""
    if verbose():
        return
    try:
        import onnxruntime as ort

        ort.set_default_logger_severity(3)
    except Exception:  # pragma: no cover
        pass


def stage(msg: str) -> None:
    """One progress line on stderr."""
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def to_stderr() -> Iterator[None]:
    """Send whatever the block prints to stdout to stderr (results are echoed after it)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield
