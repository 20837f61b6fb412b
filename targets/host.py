"""Host runner: each measurement in its own Python process, so load time and peak RSS are its own."""
from __future__ import annotations

import os
import sys
from typing import Any

from . import register_runner
from .base import RUNNER_SCRIPT, OnProgress, RunSpec, last_line, parse_runner_output, run_checked


@register_runner("host")
def run_host(spec: RunSpec, python: str | None = None, save_outputs: str | None = None,
             on_progress: OnProgress | None = None) -> dict[str, Any]:
    cmd = [python or sys.executable, str(RUNNER_SCRIPT),
           *spec.runner_args(str(spec.artifact), progress=on_progress is not None)]
    if save_outputs:
        cmd += ["--save-outputs", save_outputs]
    env = {**os.environ, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(spec.threads)}
    proc = run_checked(cmd, "host", spec.timeout_s, env=env, on_progress=on_progress)
    if proc.returncode != 0:
        from edgeprune.errors import ModelError

        raise ModelError(f"{spec.artifact} failed to run on the host: {last_line(proc.stderr or proc.stdout)}")
    res = parse_runner_output(proc.stdout, "host")
    res["raw_stdout"] = proc.stdout[-4000:]
    return res
