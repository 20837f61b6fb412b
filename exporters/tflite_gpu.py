"""LiteRT's GPU-delegate compatibility check, run on the exported .tflite (ai-edge-litert's ModelAnalyzer).

The analyzer is static: "compatible" means every op passes the GPU delegate's op checks in this LiteRT
version, not that the model runs on a given phone's GPU (it says so itself); only a device run with
``benchmark_model --use_gpu=true`` shows the delegation (``edgeprune profile --adb ... --use-gpu``).
"""
from __future__ import annotations

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
    tool = "ai_edge_litert ModelAnalyzer (gpu_compatibility=True), the analyzer behind tf.lite.experimental.Analyzer"
    if not os.path.isfile(path):
        return {"verdict": "not checked", "reason": f"{path}: no such file", "tool": tool}
    try:
        from importlib.metadata import version

        from ai_edge_litert import _pywrap_analyzer_wrapper as analyzer

        out = parse_analyzer(analyzer.ModelAnalyzer(str(path), True, True))  # (model, is a file path, gpu check)
        out["ai_edge_litert"] = version("ai-edge-litert")
    except Exception as e:  # the check is advice: an export never fails because the analyzer did
        return {"verdict": "not checked", "reason": f"{type(e).__name__}: {e}"[:300], "tool": tool}
    out["tool"] = tool
    out["note"] = ("static op check only; a device run with benchmark_model --use_gpu=true "
                   "(edgeprune profile --adb SERIAL --use-gpu) shows what the delegate really takes")
    return out
