"""LiteRT's GPU-delegate compatibility check, run on the exported .tflite (``tf.lite.experimental.Analyzer``).

The analyzer is static: "compatible" means every op passes the GPU delegate's op checks on this TF
version, not that the model runs on a given phone's GPU (it says so itself); only a device run with
``benchmark_model --use_gpu=true`` shows the delegation (``edgeprune profile --adb ... --use-gpu``).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
from typing import Any

COMPATIBLE_RE = re.compile(r"Your model looks compatible with GPU delegate on TFLite runtime version (\S+?)\.?$", re.M)
WARNING_RE = re.compile(r"^.*GPU COMPATIBILITY WARNING:.*$", re.M)


def parse_analyzer(text: str) -> dict[str, Any]:
    """The analyzer's verdict: compatible / incompatible (with its warning lines) / unknown."""
    lines = [ln.strip() for ln in WARNING_RE.findall(text)]
    summary = [ln for ln in lines if "has GPU delegate compatibility issues" in ln]
    warnings = [ln for ln in lines if ln not in summary]
    m = COMPATIBLE_RE.search(text)
    if lines:
        verdict = "incompatible"
    elif m:
        verdict = "compatible"
    else:
        verdict = "unknown"
    return {"verdict": verdict, "runtime_version": m.group(1) if m else None, "warnings": warnings[:50],
            "num_warnings": len(warnings), "summary": summary}


def gpu_compatibility(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Run the analyzer on ``path``; never raises (an analyzer failure is recorded as the verdict)."""
    tool = "tf.lite.experimental.Analyzer(gpu_compatibility=True)"
    if not os.path.isfile(path):
        return {"verdict": "not checked", "reason": f"{path}: no such file", "tool": tool}
    try:
        import tensorflow as tf

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            tf.lite.experimental.Analyzer.analyze(model_path=str(path), gpu_compatibility=True)
        out = parse_analyzer(buf.getvalue())
        out["tensorflow"] = tf.__version__
    except Exception as e:  # the check is advice: an export never fails because the analyzer did
        return {"verdict": "not checked", "reason": f"{type(e).__name__}: {e}"[:300], "tool": tool}
    out["tool"] = tool
    out["note"] = ("static op check only; a device run with benchmark_model --use_gpu=true "
                   "(edgeprune profile --adb SERIAL --use-gpu) shows what the delegate really takes")
    return out
