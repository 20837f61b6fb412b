"""Quiet by default: third-party warnings and C++ log lines off unless ``--verbose``; stage lines on stderr.

``quiet()`` runs before torch, tensorflow or onnxruntime are imported (their C++ loggers read the
environment once). Some native libraries log to file descriptor 2 whatever the environment says
(absl's pre-init banner, oneDNN, the XNNPACK delegate), so ``native_stderr_off()`` points that
descriptor at /dev/null for the command and keeps Python's ``sys.stderr`` on the real one.
``stage()`` prints one edgeprune progress line on stderr and :class:`Progress` one that counts, so
results alone reach stdout; ``to_stderr()`` sends a library's own prints (Trainer's metric dicts)
to stderr as well.
"""
from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import sys
import time
import warnings
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

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
    # the root logger too: onnxruntime's quantizer warns through logging.warning()
    for name in ("", "absl", "tensorflow", "onnxruntime", "onnxscript", "torch.onnx", "torch._dynamo",
                 "torch.export", "torch.utils._pytree", "torchao", "litert_torch", "ai_edge_quantizer", "jax",
                 "transformers", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_off() -> Iterator[None]:
    """Discard what native code writes to file descriptor 2 in the block (unless verbose).

    Python's ``sys.stderr`` keeps writing to the real stderr (our stage lines, errors, tracebacks
    after the block); a fatal native crash still prints its Python traceback there (faulthandler).
    When ``sys.stderr`` is not descriptor 2 (a test's capture), it is left alone.
    """
    if verbose():
        yield
        return
    sys.stderr.flush()
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    old, crash_log = sys.stderr, faulthandler.is_enabled()
    if real:
        sys.stderr = open(saved, "w", buffering=1, encoding=old.encoding, errors="backslashreplace", closefd=False)
        faulthandler.enable(file=sys.stderr)
    try:
        yield
    finally:
        sys.stderr.flush()
        if real:
            faulthandler.disable()
            sys.stderr.close()
            sys.stderr = old
            if crash_log:
                faulthandler.enable()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def native_stdout_off() -> Iterator[None]:
    """Discard what native code prints to file descriptor 1 in the block (unless verbose): LiteRT's int8
    calibrator prints one C-level line per op there, which would land among the results on stdout."""
    if verbose():
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


_CLOCKS: list["StageClock"] = []


class StageClock:
    """Wall seconds per stage line (from one stage to the next) while active: where a command's time goes.

    ``with StageClock() as clock: ...``; ``clock.phases()`` lists ``{"stage", "s"}`` in order, the last stage
    running until the call. Stages printed in child processes are not seen (they report their own timings).
    """

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def __enter__(self) -> StageClock:
        _CLOCKS.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _CLOCKS.remove(self)

    def mark(self, msg: str) -> None:
        self.marks.append((msg, time.monotonic()))

    def phases(self) -> list[dict[str, float | str]]:
        ends = [t for _, t in self.marks[1:]] + [time.monotonic()]
        return [{"stage": m, "s": round(e - t, 2)} for (m, t), e in zip(self.marks, ends)]


def stage(msg: str) -> None:
    """One progress line on stderr (and a mark on every active :class:`StageClock`)."""
    for clock in _CLOCKS:
        clock.mark(msg)
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """A stage line that counts, ``[export] verify 64/256``.

    On a terminal it is redrawn in place; elsewhere (CI logs, pipes) it is printed when it starts,
    at most every ``every_s`` seconds while it runs, and when it is done, so logs stay short. Used
    as a context manager, a stage that fails part-way still ends its line (the error goes below).
    """

    def __init__(self, label: str, total: int, every_s: float = 10.0) -> None:
        self.label, self.total, self.every_s = label, max(int(total), 0), every_s
        self.done = 0
        self._tty = sys.stderr.isatty()
        self._last = time.monotonic()
        for clock in _CLOCKS:
            clock.mark(label)
        self._show()

    def update(self, done: int) -> None:
        """``done`` of ``total`` finished."""
        self.done = min(int(done), self.total)
        now = time.monotonic()
        if self._tty or self.done >= self.total or now - self._last >= self.every_s:
            self._last = now
            self._show()

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """Each of ``items``, counting one step once the caller is done with it."""
        for item in items:
            yield item
            self.advance()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tty and self.done < self.total:
            print(file=sys.stderr, flush=True)

    def _show(self) -> None:
        line = f"{self.label} {self.done}/{self.total}"
        end = "\n" if self.done >= self.total or not self._tty else ""
        print(("\r\x1b[K" if self._tty else "") + line, end=end, file=sys.stderr, flush=True)


@contextlib.contextmanager
def to_stderr() -> Iterator[None]:
    """Send whatever the block prints to stdout to stderr (results are echoed after it)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield
