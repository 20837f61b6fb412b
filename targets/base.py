"""What every runner takes (RunSpec) and returns (one dict per measurement), plus the shared helpers."""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.errors import ConfigError, TargetUnreachable

RUNNER_SCRIPT = Path(__file__).resolve().parent / "remote_runner.py"
RESULT_PREFIX = "EDGEPRUNE_RESULT "
FORMATS = {".onnx": "onnx", ".tflite": "tflite"}


def artifact_format(path: str | Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: unsupported artifact type; profile takes .onnx or .tflite (or a bundle folder)")
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
    extra: dict[str, Any] = field(default_factory=dict)

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
        artifact_format(self.artifact)

    @property
    def format(self) -> str:
        return artifact_format(self.artifact)

    def runner_args(self, artifact: str) -> list[str]:
        """Arguments of remote_runner.py for this spec (the artifact path as the device sees it)."""
        args = [artifact, "--threads", str(self.threads), "--batch", str(self.batch), "--seq-len",
                str(self.seq_len), "--warmup", str(self.warmup), "--runs", str(self.runs)]
        if self.format == "tflite" and not self.xnnpack:
            args.append("--no-xnnpack")
        return args


def parse_runner_output(stdout: str, where: str) -> dict[str, Any]:
    """The JSON line that remote_runner.py prints; a clear error when there is none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise TargetUnreachable(f"{where}: the runner printed no result; last output: {last_line(stdout)}")


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(nothing)"


def run_checked(cmd: list[str], where: str, timeout: float, env: dict[str, str] | None = None,
                cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a local command; a timeout or a missing binary becomes one TargetUnreachable line."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TargetUnreachable(f"{where}: no answer within {timeout:.0f} s (raise --timeout)") from None
    except FileNotFoundError:
        raise TargetUnreachable(f"{where}: {cmd[0]} not found; install it or give its path") from None
