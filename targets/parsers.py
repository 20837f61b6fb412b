"""Parsers for the text the device tools print: TFLite/LiteRT ``benchmark_model`` (all three generations
of its summary line, stats lines with and without percentiles, op-profiling tables), the LiteRT
CompiledModel / Python benchmark ``BENCHMARK RESULTS`` block and its JSON, and ``onnxruntime_perf_test``.
Every value comes back in milliseconds / bytes with the tool's own keys mapped to ours.
"""
from __future__ import annotations

import json
import re
from typing import Any

_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_STATS_RE = re.compile(r"count=(\d+)((?:\s+\w+=" + r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?" + r")+)")
_KV_RE = re.compile(r"(\w+)=" + _NUM)


def _stats_line(line: str) -> dict[str, float] | None:
    m = _STATS_RE.search(line)
    if not m:
        return None
    out: dict[str, float] = {"count": float(m.group(1))}
    for k, v in _KV_RE.findall(m.group(2)):
        out[k] = float(v)
    return out


def parse_benchmark_model(text: str) -> dict[str, Any]:
    """TFLite / LiteRT ``benchmark_model`` stdout (or logcat) -> latency (ms) and memory (MB)."""
    res: dict[str, Any] = {"tool": "benchmark_model"}
    lines = text.splitlines()
    # stats lines: the one after the last "Running benchmark for at least N iterations" is the timed phase
    stats: list[tuple[int, dict[str, float]]] = [(i, s) for i, ln in enumerate(lines) if (s := _stats_line(ln))]
    runs_at = [i for i, ln in enumerate(lines) if "Running benchmark for at least" in ln]
    if stats:
        after = [s for i, s in stats if runs_at and i > runs_at[-1]]
        timed = after[0] if after else stats[-1][1]
        warm = [s for i, s in stats if len(runs_at) > 1 and runs_at[-2] < i < runs_at[-1]]
        res["inference_us"] = timed
        lat = {"mean": timed.get("avg", 0) / 1e3, "std": timed.get("std", 0) / 1e3,
               "min": timed.get("min", 0) / 1e3, "max": timed.get("max", 0) / 1e3, "n": int(timed["count"])}
        for src, dst in (("median", "p50"), ("p5", "p5"), ("p95", "p95")):
            if src in timed:
                lat[dst] = timed[src] / 1e3
        res["latency_ms"] = lat
        if warm:
            res["warmup_us"] = warm[0]
    gen = None
    if m := re.search(r"Inference timings in us:\s*(.*)", text):          # current generation
        gen = "current"
        fields = dict((k.strip(), float(v)) for k, v in re.findall(r"([A-Za-z ()]+):\s*" + _NUM, m.group(1)))
        res.update({"init_ms": fields.get("Init", 0) / 1e3, "first_ms": fields.get("First inference", 0) / 1e3,
                    "warmup_avg_ms": fields.get("Warmup (avg)", 0) / 1e3,
                    "avg_ms": fields.get("Inference (avg)", 0) / 1e3})
    elif m := re.search(r"Average inference timings in us:\s*(.*)", text):  # oldest documented generation
        gen = "oldest"
        fields = dict((k.strip(), float(v)) for k, v in re.findall(r"([A-Za-z ()]+):\s*" + _NUM, m.group(1)))
        res.update({"init_ms": fields.get("Init", 0) / 1e3, "warmup_avg_ms": fields.get("Warmup", 0) / 1e3,
                    "avg_ms": fields.get("Inference", 0) / 1e3})
    if m := re.search(r"Memory footprint delta from the start of the tool \(MB\):\s*init=" + _NUM + r"\s+overall=" + _NUM,
                      text):
        res["memory_mb"] = {"init": float(m.group(1)), "overall": float(m.group(2)), "kind": "delta"}
    elif m := re.search(r"Peak memory footprint \(MB\):\s*init=" + _NUM + r"\s+overall=" + _NUM, text):
        res["memory_mb"] = {"init": float(m.group(1)), "overall": float(m.group(2)), "kind": "peak"}
        gen = "older" if gen == "current" else gen  # same timings line, TF-era memory line
    if "BENCHMARK RESULTS" in text:
        res.update(_parse_results_block(text))
        gen = gen or "compiled_model"
    if "latency_ms" not in res and "avg_ms" in res:
        res["latency_ms"] = {"mean": res["avg_ms"]}
    if "latency_ms" in res and "avg_ms" in res and res["avg_ms"]:
        res["latency_ms"]["mean"] = res["avg_ms"]
    nodes = parse_op_profile(text)
    if nodes:
        res["op_profile"] = nodes
    if _mentions_gpu(text):
        from .delegation import parse_delegation

        res["delegation"] = parse_delegation(text).to_dict()
    if "latency_ms" not in res:
        raise ValueError("no benchmark_model timings found in the output")
    res["generation"] = gen or "stats-only"
    return res


def _mentions_gpu(text: str) -> bool:
    """A GPU-delegate run: the tool echoes ``Use gpu: [1]`` or the delegate logs itself."""
    return bool(re.search(r"Use gpu\s*:\s*\[1\]|delegate for GPU|GPU delegate", text))


def _parse_results_block(text: str) -> dict[str, Any]:
    """``BENCHMARK RESULTS`` block of the LiteRT CompiledModel tool and the LiteRT Python benchmark."""
    out: dict[str, Any] = {}

    def ms(label: str) -> float | None:
        m = re.search(re.escape(label) + r"\s*:\s*" + _NUM + r"\s*(ms|us|s)\b", text)
        if not m:
            return None
        return float(m.group(1)) * {"ms": 1.0, "us": 1e-3, "s": 1e3}[m.group(2)]

    for label, key in (("Model initialization", "init_ms"), ("Warmup (first)", "first_ms"),
                       ("First inference", "first_ms"), ("Warmup (avg)", "warmup_avg_ms"),
                       ("Inference (avg)", "avg_ms")):
        v = ms(label)
        if v is not None:
            out[key] = v
    lat: dict[str, float] = {}
    if out.get("avg_ms") is not None:
        lat["mean"] = out["avg_ms"]
    # multi-value lines: "Inference (min|max|median|std|p5|p95): 1.0 | 2.0 | ... ms" or "Inference (avg|min|max|std)"
    for m in re.finditer(r"Inference \(([a-z0-9|]+)\)\s*:\s*([^\n]*)", text):
        names = m.group(1).split("|")
        vals = [float(v) for v in re.findall(_NUM, m.group(2))]
        if len(names) > 1 and len(vals) >= len(names):
            scale = 1e-3 if re.search(r"\bus\b", m.group(2)) else 1.0
            for n, v in zip(names, vals):
                lat[{"avg": "mean", "median": "p50"}.get(n, n)] = v * scale
    if lat:
        out["latency_ms"] = lat
    if m := re.search(r"Peak memory\s*:\s*" + _NUM + r"\s*MB", text):
        out["peak_memory_mb"] = float(m.group(1))
    if m := re.search(r"Throughput\s*:\s*" + _NUM + r"\s*MB/s", text):
        out["throughput_mb_s"] = float(m.group(1))
    if m := re.search(r"Fully accelerated\s*:\s*(True|False)", text):
        out["fully_accelerated"] = m.group(1) == "True"
    return out


def parse_op_profile(text: str) -> list[dict[str, Any]]:
    """Rows of the ``Summary by node type`` table of ``--enable_op_profiling`` output."""
    m = re.search(r"=+ Summary by node type =+\s*\n(.*?)(?:\n\s*\n|\n=+|\Z)", text, re.S)
    if not m:
        return []
    rows = []
    for line in m.group(1).splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("["):
            continue
        try:
            nums = [float(p.rstrip("%")) for p in parts[1:]]
        except ValueError:
            continue
        if len(nums) >= 6:
            rows.append({"node_type": parts[0], "count": int(nums[0]), "avg_ms": nums[1], "percent": nums[2],
                         "cdf_percent": nums[3], "mem_kb": nums[4], "times_called": int(nums[5])})
    return rows


def parse_perf_test(text: str) -> dict[str, Any]:
    """``onnxruntime_perf_test`` stdout (current and older builds, with or without ``-s``)."""
    res: dict[str, Any] = {"tool": "onnxruntime_perf_test"}
    m = re.search(r"Average inference time cost(?: total)?:\s*" + _NUM + r"\s*ms", text)
    if not m:
        raise ValueError("no 'Average inference time cost' line in the onnxruntime_perf_test output")
    res["generation"] = "current" if "Average inference time cost total" in text else "older"
    lat: dict[str, float] = {"mean": float(m.group(1))}
    for key, pat, scale in (("session_creation_ms", r"Session creation time cost:\s*" + _NUM + r"\s*s", 1e3),
                            ("first_ms", r"First inference time cost:\s*" + _NUM + r"\s*ms", 1.0),
                            ("total_s", r"Total inference time cost:\s*" + _NUM + r"\s*s", 1.0),
                            ("requests", r"Total inference requests:\s*" + _NUM, 1.0),
                            ("inferences_per_s", r"Number of inferences per second:\s*" + _NUM, 1.0),
                            ("avg_cpu_percent", r"Avg CPU usage:\s*" + _NUM + r"\s*%", 1.0),
                            ("peak_memory_bytes", r"Peak working set size:\s*" + _NUM + r"\s*bytes", 1.0)):
        if mm := re.search(pat, text):
            res[key] = float(mm.group(1)) * scale
    for name, key in (("Min", "min"), ("Max", "max"), ("P50", "p50"), ("P90", "p90"), ("P95", "p95"),
                      ("P99", "p99"), ("P999", "p999")):
        if mm := re.search(rf"^\s*{name} Latency:\s*" + _NUM + r"\s*s", text, re.M):
            lat[key] = float(mm.group(1)) * 1e3
    if "requests" in res:
        res["requests"] = int(res["requests"])
        lat["n"] = res["requests"]
    if "peak_memory_bytes" in res:
        res["peak_memory_bytes"] = int(res["peak_memory_bytes"])
    res["latency_ms"] = lat
    return res


def parse_litert_json(data: str | dict[str, Any]) -> dict[str, Any]:
    """``--result_json`` of ``ai_edge_litert.tools.benchmark_litert_model``."""
    d = json.loads(data) if isinstance(data, str) else data
    lat = d.get("latency") or {}
    out = {"tool": "benchmark_litert_model", "model": d.get("model"), "num_threads": d.get("num_threads"),
           "accelerators": d.get("accelerators"), "fully_accelerated": d.get("fully_accelerated"),
           "init_ms": lat.get("init_ms"), "first_ms": lat.get("warmup_first_ms"),
           "warmup_avg_ms": lat.get("warmup_avg_ms"),
           "latency_ms": {k2: lat[k1] for k1, k2 in (("avg_ms", "mean"), ("median_ms", "p50"), ("std_ms", "std"),
                                                     ("min_ms", "min"), ("max_ms", "max"), ("p5_ms", "p5"),
                                                     ("p95_ms", "p95")) if k1 in lat}}
    if "num_runs" in lat:
        out["latency_ms"]["n"] = lat["num_runs"]
    if "mean" not in out["latency_ms"]:
        raise ValueError("LiteRT benchmark JSON has no latency.avg_ms")
    return out
