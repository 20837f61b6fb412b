"""What every runner takes (RunSpec), the argv of remote_runner.py, and the shared subprocess helpers
(what every runner returns is :mod:`.measurement`)."""
from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgeprune.errors import ConfigError, TargetUnreachable
from edgeprune.formats import Format, format_of, profilable_suffixes

RUNNER_SCRIPT = Path(__file__).resolve().parent / "remote_runner.py"
RESULT_PREFIX = "EDGEPRUNE_RESULT "
PROGRESS_PREFIX = "EDGEPRUNE_PROGRESS "
OnProgress = Callable[[str, int, int], None]  # (phase: load / warmup / run, done, total)


def profilable_format(path: str | Path) -> Format:
    """The registered format of an artifact file the runners can measure; a ConfigError otherwise."""
    fmt = format_of(path)
    if fmt is None or not fmt.profilable:
        raise ConfigError(f"{path}: unsupported artifact type; profile takes "
                          f"{' or '.join(profilable_suffixes())} (or a bundle folder)")
    return fmt


@dataclass(frozen=True)
class RunSpec:
    """One measurement: artifact, shape, threads, repetitions (validated here, once for all runners)."""

    artifact: Path
    threads: int = 1
    batch: int = 1
    seq_len: int = 128
    warmup: int = 5
    runs: int = 20
    xnnpack: bool = True
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("threads", "batch", "seq_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer (got {v!r})")
        for name in ("warmup", "runs"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"--{name} must be a non-negative integer (got {v!r})")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout must be positive (got {self.timeout_s})")
        profilable_format(self.artifact)

    @property
    def artifact_type(self) -> Format:
        return profilable_format(self.artifact)

    @property
    def format(self) -> str:
        return self.artifact_type.name

    def runner_args(self, artifact: str, progress: bool = False) -> list[str]:
        """Arguments of remote_runner.py for this spec (the artifact path as the device sees it);
        ``progress``: it reports its phases on stderr (see :func:`parse_progress`)."""
        args = [artifact, "--engine", str(self.artifact_type.engine), "--threads", str(self.threads),
                "--batch", str(self.batch), "--seq-len", str(self.seq_len), "--warmup", str(self.warmup),
                "--runs", str(self.runs)]
        if self.artifact_type.xnnpack and not self.xnnpack:
            args.append("--no-xnnpack")
        if progress:
            args.append("--progress")
        return args


def parse_runner_output(stdout: str, where: str) -> dict[str, Any]:
    """The JSON line that remote_runner.py prints; a clear error when there is none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise TargetUnreachable(f"{where}: the runner printed no result; last output: {last_line(stdout)}")


def parse_progress(line: str) -> tuple[str, int, int] | None:
    """(phase, done, total) of a runner's ``EDGEPRUNE_PROGRESS`` line; None for any other line."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        phase, done, total = line[len(PROGRESS_PREFIX):].split()
        return phase, int(done), int(total)
    except ValueError:
        return None


def stream(cmd: list[str], timeout: float, on_progress: OnProgress, env: dict[str, str] | None = None,
           cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd, capture_output=True)`` that hands the runner's progress lines to
    ``on_progress`` as they arrive (they are left out of the returned stderr)."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                          env=env, cwd=cwd) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
        reader.start()
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        err: list[str] = []
        try:
            for line in proc.stderr:
                got = parse_progress(line)
                if got is None:
                    err.append(line)
                else:
                    on_progress(*got)
            proc.wait()
            reader.join()
        finally:
            timer.cancel()
    if expired.is_set():
        raise subprocess.TimeoutExpired(cmd, timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(out), "".join(err))


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(nothing)"


def run_checked(cmd: list[str], where: str, timeout: float, env: dict[str, str] | None = None,
                cwd: str | None = None, on_progress: OnProgress | None = None) -> subprocess.CompletedProcess[str]:
    """Run a local command; a timeout or a missing binary becomes one TargetUnreachable line."""
    try:
        if on_progress is not None:
            return stream(cmd, timeout, on_progress, env=env, cwd=cwd)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TargetUnreachable(f"{where}: no answer within {timeout:.0f} s (raise --timeout)") from None
    except FileNotFoundError:
        raise TargetUnreachable(f"{where}: {cmd[0]} not found; install it or give its path") from None
