"""Benchmark: dense vs pruned (2x, 5x) MiniLM-L6 on every target.

    nice -n 10 python -m bench.profile_targets [--seq-len 128] [--formats onnx,tflite]

For each artifact: measured host latency (own process, 1 thread, spinning off), instruction counts per
inference under qemu-aarch64 -cpu cortex-a72 (Pi 4) and cortex-a76 (Pi 5) with the real aarch64 wheels
(outputs checked against the host), and roofline-predicted latency for host / Pi 4 / Pi 5 / phone (1 and
4 threads). Artifacts: fp32 MiniLM-L6 bundles exported by the ONNX/TFLite benchmarks under bench/work/
when present; otherwise (per format) a plain torch.onnx.export of MiniLM-L6 with the lowest-magnitude
attention heads and FFN neurons *removed* (structured pruning, so FLOPs really drop), said so in the
results. Writes bench/results/profile_targets.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.common import DENSE, RESULTS, ROOT

WORK = common.WORK / "profile_targets"  # snapshots of the bundles, self-exported models, cached rows
RATIOS = (1.0, 2.0, 5.0)


def _ratio(man: dict[str, Any]) -> float | None:
    c = man.get("compression")
    if isinstance(c, dict) and "prunable" in c:
        c = c["prunable"]
    if isinstance(c, dict):
        c = c.get("compression") or c.get("ratio")
    try:
        return float(c) if c is not None else (1.0 if man.get("mode") == "dense" else None)
    except (TypeError, ValueError):
        return None


def find_bundles(fmt: str, mode: str = "packed") -> dict[float, Path]:
    """fp32 MiniLM-L6 bundles (2x, 5x; dense when exported) that the export benchmarks left under bench/work/."""
    from edgeprune.io import read_json

    found: dict[float, Path] = {}
    for man_path in sorted(common.WORK.rglob("manifest.json")):
        if WORK in man_path.parents and WORK / "snap" not in man_path.parents:
            continue  # our own snapshots count: the export benchmarks may have rewritten the originals since
        try:
            man = read_json(man_path)
        except (OSError, ValueError):
            continue
        if man.get("format") != fmt or man.get("dtype", "fp32") != "fp32" or not man.get("artifact"):
            continue
        from_bench = any(part in ("export_onnx", "tflite", "snap") for part in man_path.parts)
        if not from_bench and "minilm" not in str(man.get("model", "")).lower():
            continue
        r = _ratio(man)
        if man.get("mode") != "dense" and (r is None or r == 1.0):  # compression not recorded: the folder name
            m = re.search(r"_(\d+(?:\.\d+)?)x_", man_path.parent.name)
            r = float(m.group(1)) if m else None
        if man.get("mode") not in (mode, "dense") or (man.get("mode") == "dense") != (r == 1.0):
            continue
        for want in RATIOS:
            if r is not None and abs(r - want) / want < 0.1 and want not in found:
                found[want] = man_path.parent
    return found


def snapshot(bundle: Path) -> Path:
    """Copy a bundle's artifact + manifest into our work dir: the export benchmarks may rewrite theirs meanwhile."""
    import shutil

    from edgeprune.io import read_json

    dest = WORK / "snap" / bundle.name
    man = read_json(bundle / "manifest.json")
    src = bundle / man["artifact"]
    if not (dest / man["artifact"]).exists() or (dest / man["artifact"]).stat().st_size != src.stat().st_size:
        tmp = WORK / "snap" / f".{bundle.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / man["artifact"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp / man["artifact"])
        shutil.copyfile(bundle / "manifest.json", tmp / "manifest.json")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.replace(dest)
    return dest


def self_export(ratio: float, seq_len: int) -> Path:
    """MiniLM-L6 with whole heads / FFN neurons removed by magnitude to keep 1/ratio of encoder linears."""
    import torch

    from edgeprune.models import load_model

    out = WORK / f"minilm_structured_{ratio:g}x.onnx"
    if out.exists():
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    dense_dir = DENSE / "mrpc"
    src = dense_dir if (dense_dir / "config.json").exists() and any(dense_dir.glob("*.safetensors")) else "minilm-l6"
    model, _ = load_model(str(src), num_labels=2)
    model.eval()
    torch.manual_seed(0)
    keep = 1.0 / ratio
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            att, so = layer.attention.self, layer.attention.output
            h, d = att.num_attention_heads, att.attention_head_size
            if ratio > 1:
                score = torch.stack([
                    sum(m.weight[i * d:(i + 1) * d].norm() ** 2 for m in (att.query, att.key, att.value))
                    + so.dense.weight[:, i * d:(i + 1) * d].norm() ** 2 for i in range(h)])
                heads = sorted(score.argsort(descending=True)[:max(1, round(h * keep))].tolist())
                idx = torch.cat([torch.arange(i * d, (i + 1) * d) for i in heads])
                for name in ("query", "key", "value"):
                    setattr(att, name, _rows(getattr(att, name), idx))
                so.dense = _cols(so.dense, idx)
                att.num_attention_heads = len(heads)
                att.all_head_size = len(heads) * d
                fin, fout = layer.intermediate.dense, layer.output.dense
                nscore = fin.weight.norm(dim=1) ** 2 + fout.weight.norm(dim=0) ** 2
                nidx = nscore.argsort(descending=True)[:max(1, round(fin.out_features * keep))].sort().values
                layer.intermediate.dense = _rows(fin, nidx)
                layer.output.dense = _cols(fout, nidx)

    from tests.support.testmodels import export_logits_onnx

    return export_logits_onnx(model, out, seq_len)


def _rows(lin: Any, idx: Any) -> Any:
    import torch

    new = torch.nn.Linear(lin.in_features, len(idx), bias=lin.bias is not None)
    new.weight.copy_(lin.weight[idx])
    if lin.bias is not None:
        new.bias.copy_(lin.bias[idx])
    return new


def _cols(lin: Any, idx: Any) -> Any:
    import torch

    new = torch.nn.Linear(len(idx), lin.out_features, bias=lin.bias is not None)
    new.weight.copy_(lin.weight[:, idx])
    if lin.bias is not None:
        new.bias.copy_(lin.bias)
    return new


def profile_rows(art: Path, fmt: str, variant: str, ratio: float, a: Any, targets: dict[str, Any]) -> list[dict[str, Any]]:
    from edgeprune.profiling import roofline
    from edgeprune.profiling.api import ProfileConfig, profile

    cfg = ProfileConfig(threads=1, seq_len=a.seq_len, batch=1, warmup=3, runs=a.runs, xnnpack="on",
                        emulate=("rpi4", "rpi5"), marked_runs=1, timeout_s=3600)
    rep = profile(art, config=cfg)
    path = Path(rep["artifact"])
    costs = roofline.artifact_costs(path, 1, a.seq_len)
    base = {"model": "minilm-l6", "compression": ratio, "format": fmt, "variant": variant,
            "artifact": str(path.relative_to(ROOT)), "file_bytes": rep["file_bytes"], "seq_len": a.seq_len,
            "batch": 1, "gflop": rep["costs"]["flops"] / 1e9}
    rows = []
    for r in rep["results"]:
        row = {**base, "target": r["target"], "kind": r["kind"], "threads": r["threads"],
               "latency_ms": (r.get("latency_ms") or {}).get("mean"), "instructions": r.get("instructions")}
        if r["kind"] == "measured":
            row.update({"latency_p50_ms": r["latency_ms"]["p50"], "latency_p90_ms": r["latency_ms"]["p90"],
                        "peak_memory_bytes": r["peak_memory_bytes"], "load_ms": r["load_ms"],
                        "efficiency_fit": r.get("efficiency_fit")})
        if r["kind"] == "emulated":
            row.update({"qemu_cpu": r["qemu_cpu"], "outputs_match_host": r["outputs_match_host"],
                        "max_abs_diff_vs_host": r["max_abs_diff_vs_host"]})
        if r["kind"] == "predicted":
            row["efficiency"] = r["efficiency"]
        rows.append(row)
        if r.get("gpu_latency_ms"):
            rows.append({**base, "target": r["target"], "kind": "predicted", "unit": "gpu", "threads": None,
                         "latency_ms": r["gpu_latency_ms"]["mean"], "instructions": None})
    for name in ("rpi4", "rpi5", "phone"):  # all four cores too
        t = targets[name]
        rows.append({**base, "target": name, "kind": "predicted", "threads": t.cores,
                     "latency_ms": roofline.predict_ms(costs, t, t.cores), "instructions": None,
                     "efficiency": t.efficiency})
    return rows


def measure_host_rows(art: Path, base_row: dict[str, Any], a: Any) -> list[dict[str, Any]]:
    from edgeprune.profiling.api import ProfileConfig, profile

    rep = profile(art, config=ProfileConfig(threads=1, seq_len=a.seq_len, batch=1, warmup=3, runs=a.runs,
                                            xnnpack="on", timeout_s=3600))
    keep = ("model", "compression", "format", "variant", "artifact", "file_bytes", "seq_len", "batch", "gflop")
    base = {k: base_row[k] for k in keep}
    return [{**base, "target": r["target"], "kind": "measured", "threads": r["threads"],
             "latency_ms": r["latency_ms"]["mean"], "instructions": None, "latency_p50_ms": r["latency_ms"]["p50"],
             "latency_p90_ms": r["latency_ms"]["p90"], "peak_memory_bytes": r["peak_memory_bytes"],
             "load_ms": r["load_ms"], "efficiency_fit": r.get("efficiency_fit")}
            for r in rep["results"] if r["kind"] == "measured"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--formats", default="onnx,tflite")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--variants", default="structured,packed", help="structured (self-export) and/or packed bundles")
    ap.add_argument("--fresh", action="store_true", help="ignore cached per-artifact rows")
    ap.add_argument("--remeasure-host", action="store_true",
                    help="re-time the host for every cached artifact in one window (keeps emulated/predicted rows)")
    ap.add_argument("--no-dense", action="store_true", help="profile only the pruned artifacts (dense cached elsewhere)")
    a = ap.parse_args()

    from edgeprune.bundle import tool_versions
    from edgeprune.io import write_json
    from edgeprune.targets import load_targets

    targets = load_targets()
    runs: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    t_start = time.time()
    plan: list[tuple[str, str, float, Path]] = []      # (format, variant, ratio, artifact)
    for fmt in a.formats.split(","):
        for variant in a.variants.split(","):
            if variant == "structured":
                if fmt != "onnx":
                    continue
                arts = {r: self_export(r, a.seq_len) for r in RATIOS}
                sources[f"{fmt}/structured"] = (
                    "self-exported: plain torch.onnx.export of MiniLM-L6 (the fine-tuned MRPC checkpoint when present) "
                    "with whole attention heads and FFN neurons removed by magnitude (structured pruning)")
            else:
                arts = find_bundles(fmt, variant)
                if 2.0 not in arts and 5.0 not in arts or (fmt != "onnx" and 1.0 not in arts):
                    sources[f"{fmt}/{variant}"] = (f"skipped: found {variant}/dense {fmt} bundles for "
                                                   f"{sorted(arts) or 'no'} compression under bench/work/")
                    continue
                arts = {r: p if WORK in p.parents else snapshot(p) for r, p in arts.items()}
                if 1.0 not in arts and fmt == "onnx":
                    arts[1.0] = self_export(1.0, a.seq_len)
                sources[f"{fmt}/{variant}"] = "pruned bundles from the export benchmarks: " + ", ".join(
                    f"{r:g}x {p.relative_to(ROOT)}" for r, p in sorted(arts.items()) if r != 1.0) + \
                    " (dense reference: see the artifact list)"
            for ratio, art in sorted(arts.items()):
                plan.append((fmt, "dense" if ratio == 1.0 else variant, ratio, art))
    seen: set[str] = set()
    for fmt, variant, ratio, art in plan:
        key = f"{fmt}_{variant}_{ratio:g}x_seq{a.seq_len}"
        if key in seen:
            continue
        seen.add(key)
        if a.no_dense and ratio == 1.0:
            continue
        cache = WORK / "rows" / f"{key}.json"
        if cache.exists() and not a.fresh:
            rows = json.loads(cache.read_text())
            if a.remeasure_host:
                print(f"[{time.time() - t_start:6.0f}s] {key}: re-measuring the host", flush=True)
                recorded = ROOT / rows[0]["artifact"]   # the very artifact the cached rows were made from
                rows = [r for r in rows if r["kind"] != "measured"] + measure_host_rows(recorded, rows[0], a)
                write_json(cache, rows)
            runs.extend(rows)
            print(f"[{time.time() - t_start:6.0f}s] {key}: cached", flush=True)
            continue
        print(f"[{time.time() - t_start:6.0f}s] {key}: {art}", flush=True)
        rows = profile_rows(art, fmt, variant, ratio, a, targets)
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json(cache, rows)
        runs.extend(rows)
    result = {"benchmark": "profile_targets", "seq_len": a.seq_len, "artifact_sources": sources,
              "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
              "tools": tool_versions(), "wall_s": round(time.time() - t_start, 1),
              "targets": {n: t.summary() for n, t in targets.items()}, "host_remeasured": a.remeasure_host, "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "profile_targets.json", result)
    (RESULTS / "profile_targets.md").write_text(markdown(result))
    print(f"wrote {RESULTS / 'profile_targets.json'} in {result['wall_s']} s")


def markdown(res: dict[str, Any]) -> str:
    runs = res["runs"]
    lines = ["# profile_targets: dense vs pruned MiniLM-L6 on host, Pi 4, Pi 5 and phone", "",
             f"Machine: {res['machine']['platform']} (2 cores shared with other jobs), Python "
             f"{res['machine']['python']}, onnxruntime {res['tools'].get('onnxruntime')}, ai-edge-litert "
             f"{res['tools'].get('ai-edge-litert')}. Batch 1, seq_len {res['seq_len']}, fp32. "
             "Emulated and predicted rows are cached per artifact (bench/work/profile_targets/rows). " +
             ("Host timings of all artifacts were re-measured back to back in one window (--remeasure-host). "
              if res.get("host_remeasured") else "") + f"Last invocation: {res['wall_s']} s.", ""]
    for key, src in res["artifact_sources"].items():
        lines.append(f"- **{key}**: {src}")
    lines += ["", "Artifacts profiled (the dense row of a format is shared by its pruned variants):", ""]
    for fmt, variant, comp, art in sorted({(r["format"], r.get("variant", "-"), r["compression"], r["artifact"])
                                          for r in runs}):
        lines.append(f"- {fmt} {variant} {comp:g}x: `{art}`")
    lines += ["", "*Measured* = this host, own process per artifact, 1 thread (ORT intra-op spinning off; LiteRT with "
              "XNNPACK), median (p50) of the timed runs in the tables, mean as `latency_ms` in the JSON. *Emulated* = instructions per inference of the single inference "
              "thread under qemu-aarch64 7.2 (`-cpu cortex-a72` = Pi 4, `cortex-a76` = Pi 5) with the real aarch64 "
              "wheels, outputs checked against the host: an instruction count, not a latency. *Predicted* = roofline "
              "from the artifact's FLOPs/bytes per op and targets/*.toml peaks with the prior efficiency 0.4 (not "
              "calibrated on a device: no Pi or phone is reachable from this machine).", ""]
    groups = sorted({(r["format"], r.get("variant", "-"), r["compression"]) for r in runs},
                    key=lambda g: (g[0], g[2] != 1.0, g[1], g[2]))
    cols = [("host", "measured", 1), ("rpi4", "emulated", 1), ("rpi5", "emulated", 1), ("host", "predicted", 1),
            ("rpi4", "predicted", 1), ("rpi4", "predicted", 4), ("rpi5", "predicted", 1), ("rpi5", "predicted", 4),
            ("phone", "predicted", 4)]
    head = ["format", "variant", "compression", "GFLOP", "file MB"] + [
        f"{t} {k} {'instr (M)' if k == 'emulated' else f'p50 ms ({n}t)' if k == 'measured' else f'ms ({n}t)'}"
        for t, k, n in cols] + ["phone GPU pred ms"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def rows_of(g: tuple[str, str, float]) -> list[dict[str, Any]]:
        return [r for r in runs if (r["format"], r.get("variant", "-"), r["compression"]) == g]

    def pick(rs: list[dict[str, Any]], t: str, k: str, n: int) -> dict[str, Any] | None:
        hit = [r for r in rs if r["target"] == t and r["kind"] == k and r.get("unit") != "gpu"
               and (k == "emulated" or r["threads"] == n)]
        return hit[0] if hit else None

    for g in groups:
        rs = rows_of(g)
        cells = [g[0], g[1], f"{g[2]:g}x", f"{rs[0]['gflop']:.3f}", f"{rs[0]['file_bytes'] / 1e6:.1f}"]
        for t, k, n in cols:
            hit = pick(rs, t, k, n)
            cells.append("-" if hit is None else f"{hit['instructions'] / 1e6:.1f}" if k == "emulated"
                         else f"{hit['latency_p50_ms']:.2f}" if k == "measured" else f"{hit['latency_ms']:.2f}")
        gpu = [r for r in rs if r.get("unit") == "gpu" and r["target"] == "phone"]
        cells.append(f"{gpu[0]['latency_ms']:.2f}" if gpu else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Against dense (same format)", "",
              "| format | variant | compression | host measured speed-up (p50) | A72 instruction ratio | "
              "A76 instruction ratio | Pi 4 predicted speed-up (1t) | phone predicted speed-up (4t) |",
              "|---|---|---|---|---|---|---|---|"]
    for g in groups:
        dense = [d for d in groups if d[0] == g[0] and d[2] == 1.0]
        if g[2] == 1.0 or not dense:
            continue
        rs, ds = rows_of(g), rows_of(dense[0])
        cells = [g[0], g[1], f"{g[2]:g}x"]
        for t, k, n, key in (("host", "measured", 1, "latency_p50_ms"), ("rpi4", "emulated", 1, "instructions"),
                             ("rpi5", "emulated", 1, "instructions"), ("rpi4", "predicted", 1, "latency_ms"),
                             ("phone", "predicted", 4, "latency_ms")):
            d, p = pick(ds, t, k, n), pick(rs, t, k, n)
            cells.append(f"{d[key] / p[key]:.2f}x" if d and p and p[key] else "-")
        lines.append("| " + " | ".join(cells) + " |")
    eff = [r for r in runs if r["kind"] == "measured" and r.get("efficiency_fit")]
    if eff:
        lines += ["", "Host roofline efficiency fitted from the measured runs (what `--calibrate` would use): " +
                  ", ".join(f"{r['format']} {r.get('variant', '')} {r['compression']:g}x {r['efficiency_fit']:.2f}"
                            for r in eff) + "."]
    emu = [r for r in runs if r["kind"] == "emulated"]
    if emu:
        lines += ["", f"Emulated outputs matched the host's (rtol 1e-4, atol 1e-5) in {sum(bool(r['outputs_match_host']) for r in emu)}"
                  f" of {len(emu)} emulated runs; largest abs difference {max(r['max_abs_diff_vs_host'] for r in emu):.2e}."]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
