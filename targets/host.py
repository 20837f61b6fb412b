"""Host runner: each measurement in its own Python process, so load time and peak RSS are its own."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from edgeprune.errors import ModelError

from . import register_runner
from .base import RUNNER_SCRIPT, OnProgress, RunSpec, last_line, parse_runner_output, run_checked
from .measurement import Measurement, runner_measurement


@dataclass(frozen=True)
class HostConfig:
    python: str | None = None   # the interpreter that runs remote_runner.py (default: this one)


def run_host(spec: RunSpec, python: str | None = None, save_outputs: str | None = None,
             on_progress: OnProgress | None = None) -> dict[str, Any]:
    """remote_runner.py's answer for ``spec`` on this machine (``save_outputs``: also the last outputs, .npz)."""
    cmd = [python or sys.executable, str(RUNNER_SCRIPT),
           *spec.runner_args(str(spec.artifact), progress=on_progress is not None)]
    if save_outputs:
        cmd += ["--save-outputs", save_outputs]
    env = {**os.environ, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(spec.threads)}
    proc = run_checked(cmd, "host", spec.timeout_s, env=env, on_progress=on_progress)
    if proc.returncode != 0:
        raise ModelError(f"{spec.artifact} failed to run on the host: {last_line(proc.stderr or proc.stdout)}")
    res = parse_runner_output(proc.stdout, "host")
    res["raw_stdout"] = proc.stdout[-4000:]
    return res


@register_runner("host")
class HostRunner:
    """This machine, one subprocess per measurement."""

    config_type = HostConfig

    def __init__(self, config: HostConfig | None = None, on_progress: OnProgress | None = None) -> None:
        self.config, self.on_progress = config or HostConfig(), on_progress

    def describe(self, spec: RunSpec) -> str:
        return ""   # its progress lines say it all

    def measure(self, spec: RunSpec) -> list[Measurement]:
        return [runner_measurement(run_host(spec, self.config.python, on_progress=self.on_progress), "host")]
