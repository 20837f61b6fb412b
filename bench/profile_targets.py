"""Benchmark: dense vs pruned (2x, 5x) MiniLM-L6 on every target.

    nice -n 10 python bench/profile_targets.py [--seq-len 128] [--formats onnx,tflite]

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
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "profile_targets"
RESULTS = ROOT / "bench" / "results"
RATIOS = (1.0, 2.0, 5.0)


def _ratio(man: dict[str, Any]) -> float | None:
    c = man.get("compression")
    if isinstance(c, dict):
        c = c.get("compression") or c.get("ratio")
    try:
        return float(c) if c is not None else (1.0 if man.get("mode") == "dense" else None)
    except (TypeError, ValueError):
        return None


def find_bundles(fmt: str) -> dict[float, Path]:
    """fp32 MiniLM bundles (dense, 2x, 5x) that the export benchmarks left under bench/work/."""
    from edgeprune.io import read_json

    found: dict[float, Path] = {}
    for man_path in sorted((ROOT / "bench" / "work").rglob("manifest.json")):
        if WORK in man_path.parents:
            continue
        try:
            man = read_json(man_path)
        except (OSError, ValueError):
            continue
        if man.get("format") != fmt or man.get("dtype", "fp32") != "fp32" or not man.get("artifact"):
            continue
        if "minilm" not in str(man.get("model", "")).lower() and "minilm" not in str(man_path).lower():
            continue
        r = _ratio(man)
        for want in RATIOS:
            if r is not None and abs(r - want) / want < 0.1 and want not in found:
                found[want] = man_path.parent
    return found


def self_export(ratio: float, seq_len: int) -> Path:
    """MiniLM-L6 with whole heads / FFN neurons removed by magnitude to keep 1/ratio of encoder linears."""
    import torch

    from edgeprune.models import load_model

    out = WORK / f"minilm_structured_{ratio:g}x.onnx"
    if out.exists():
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    dense_dir = ROOT / "bench" / "work" / "dense" / "mrpc"
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

    class Logits(torch.nn.Module):
        def __init__(self, m: torch.nn.Module):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    ids = torch.ones(1, seq_len, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    tmp = out.with_suffix(".tmp.onnx")
    torch.onnx.export(Logits(model), (ids, ids, torch.zeros_like(ids)), str(tmp), input_names=names,
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={k: {0: "batch", 1: "seq"} for k in names})
    tmp.replace(out)
    return out


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--formats", default="onnx,tflite")
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()

    from edgeprune.bundle import tool_versions
    from edgeprune.io import write_json
    from edgeprune.profiling import roofline
    from edgeprune.profiling.api import ProfileConfig, profile
    from edgeprune.targets import load_targets

    targets = load_targets()
    runs: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    t_start = time.time()
    for fmt in a.formats.split(","):
        bundles = find_bundles(fmt)
        if fmt == "onnx" and len(bundles) < len(RATIOS):
            arts = {r: self_export(r, a.seq_len) for r in RATIOS}
            sources[fmt] = ("self-exported: plain torch.onnx.export of MiniLM-L6 (fine-tuned MRPC checkpoint when "
                            "present) with whole attention heads and FFN neurons removed by magnitude (structured), "
                            "because no dense/2x/5x ONNX bundles were found under bench/work/")
        elif len(bundles) == len(RATIOS):
            arts = bundles
            sources[fmt] = "bundles from bench/work: " + ", ".join(str(p.relative_to(ROOT)) for p in bundles.values())
        else:
            sources[fmt] = f"skipped: found bundles for {sorted(bundles)} of {list(RATIOS)} under bench/work/"
            continue
        for ratio, art in arts.items():
            print(f"[{time.time() - t_start:6.0f}s] {fmt} {ratio:g}x: {art}", flush=True)
            cfg = ProfileConfig(threads=1, seq_len=a.seq_len, batch=1, warmup=3, runs=a.runs, xnnpack="on",
                                emulate=("rpi4", "rpi5"), marked_runs=1, timeout_s=1800)
            rep = profile(art, config=cfg)
            path = Path(rep["artifact"])
            costs = roofline.artifact_costs(path, 1, a.seq_len)
            base = {"model": "minilm-l6", "compression": ratio, "format": fmt, "artifact": str(path.relative_to(ROOT)),
                    "file_bytes": rep["file_bytes"], "seq_len": a.seq_len, "batch": 1,
                    "gflop": rep["costs"]["flops"] / 1e9}
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
                runs.append(row)
                if r.get("gpu_latency_ms"):
                    runs.append({**base, "target": r["target"], "kind": "predicted", "unit": "gpu", "threads": None,
                                 "latency_ms": r["gpu_latency_ms"]["mean"], "instructions": None})
            for name in ("rpi4", "rpi5", "phone"):  # all four cores too
                t = targets[name]
                runs.append({**base, "target": name, "kind": "predicted", "threads": t.cores,
                             "latency_ms": roofline.predict_ms(costs, t, t.cores), "instructions": None,
                             "efficiency": t.efficiency})
    result = {"benchmark": "profile_targets", "seq_len": a.seq_len, "artifact_sources": sources,
              "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
              "tools": tool_versions(), "wall_s": round(time.time() - t_start, 1),
              "targets": {n: t.summary() for n, t in targets.items()}, "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "profile_targets.json", result)
    (RESULTS / "profile_targets.md").write_text(markdown(result))
    print(f"wrote {RESULTS / 'profile_targets.json'} in {result['wall_s']} s")


def markdown(res: dict[str, Any]) -> str:
    runs = res["runs"]
    lines = ["# profile_targets: dense vs pruned MiniLM-L6 on host, Pi 4, Pi 5 and phone", "",
             f"Machine: {res['machine']['platform']} (2 shared cores), Python {res['machine']['python']}, "
             f"onnxruntime {res['tools'].get('onnxruntime')}, ai-edge-litert {res['tools'].get('ai-edge-litert')}. "
             f"Batch 1, seq_len {res['seq_len']}. Wall time {res['wall_s']} s.", ""]
    for fmt, src in res["artifact_sources"].items():
        lines.append(f"- **{fmt} artifacts**: {src}")
    lines += ["", "Measured = this host, own process per artifact, 1 thread (ORT spinning off / LiteRT XNNPACK). "
              "Emulated = instructions per inference on the single inference thread under qemu-aarch64 7.2 "
              "(`-cpu cortex-a72` = Pi 4, `cortex-a76` = Pi 5) with the real aarch64 wheels, outputs checked against "
              "the host (not a latency). Predicted = roofline from the artifact's FLOPs/bytes per op and "
              "targets/*.toml peaks with the prior efficiency 0.4 (not calibrated on a device: no Pi or phone here).",
              ""]
    groups = sorted({(r["format"], r["compression"]) for r in runs})
    cols = [("host", "measured", 1), ("rpi4", "emulated", 1), ("rpi5", "emulated", 1), ("host", "predicted", 1),
            ("rpi4", "predicted", 1), ("rpi4", "predicted", 4), ("rpi5", "predicted", 1), ("rpi5", "predicted", 4),
            ("phone", "predicted", 4)]
    head = ["format", "compression", "GFLOP", "file MB"] + [
        f"{t} {k} {'instr (M)' if k == 'emulated' else f'ms ({n}t)'}" for t, k, n in cols] + ["phone GPU pred ms"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fmt, comp in groups:
        rs = [r for r in runs if r["format"] == fmt and r["compression"] == comp]
        cells = [fmt, f"{comp:g}x", f"{rs[0]['gflop']:.3f}", f"{rs[0]['file_bytes'] / 1e6:.1f}"]
        for t, k, n in cols:
            hit = [r for r in rs if r["target"] == t and r["kind"] == k and r.get("unit") != "gpu"
                   and (k == "emulated" or r["threads"] == n)]
            if not hit:
                cells.append("-")
            elif k == "emulated":
                cells.append(f"{hit[0]['instructions'] / 1e6:.2f}")
            else:
                cells.append(f"{hit[0]['latency_ms']:.2f}")
        gpu = [r for r in rs if r.get("unit") == "gpu" and r["target"] == "phone"]
        cells.append(f"{gpu[0]['latency_ms']:.2f}" if gpu else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Speed-up against dense (same format)", "",
              "| format | compression | host measured | A72 instructions | A76 instructions | Pi 4 predicted (1t) |",
              "|---|---|---|---|---|---|"]
    for fmt, comp in groups:
        if comp == 1.0:
            continue

        def pick(c: float, t: str, k: str, key: str) -> float | None:
            hit = [r for r in runs if r["format"] == fmt and r["compression"] == c and r["target"] == t
                   and r["kind"] == k and r.get("unit") != "gpu" and (k == "emulated" or r["threads"] == 1)]
            return hit[0][key] if hit else None

        cells = [fmt, f"{comp:g}x"]
        for t, k, key in (("host", "measured", "latency_ms"), ("rpi4", "emulated", "instructions"),
                          ("rpi5", "emulated", "instructions"), ("rpi4", "predicted", "latency_ms")):
            d, p = pick(1.0, t, k, key), pick(comp, t, k, key)
            cells.append(f"{d / p:.2f}x" if d and p else "-")
        lines.append("| " + " | ".join(cells) + " |")
    eff = [r for r in runs if r["kind"] == "measured" and r.get("efficiency_fit")]
    if eff:
        lines += ["", "Host roofline efficiency fitted from the measured runs (what `--calibrate` would use): " +
                  ", ".join(f"{r['format']} {r['compression']:g}x {r['efficiency_fit']:.2f}" for r in eff) + "."]
    lines += ["", "Emulated outputs matched the host's for every artifact: " +
              str(all(r.get("outputs_match_host") for r in runs if r["kind"] == "emulated")) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
