"""Benchmark: MiniLM-L6 (MRPC head) pruned to 1x/2x/5x/8x, exported to TFLite in every dtype, verified and timed.

Masks come from one-shot block-magnitude pruning with edgeprune.prune (balanced ``128x1`` column
segments by default, uniform per layer) unless ``--run-glob`` names finished compress runs. Each
artifact is verified in the LiteRT interpreter against the pruned PyTorch model on the MRPC dev
set, and each latency (XNNPACK on/off, 1/2 threads, batch 1, seq 128) is measured in its own
process. Writes bench/results/export_tflite.{json,md}.

    nice -n 10 python -m bench.export_tflite [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

from bench import common
from bench.common import DENSE, RESULTS, glue_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
WORK = common.WORK / "tflite"  # pruned model folders, bundles, the partly fine-tuned base model
DTYPES = ("fp32", "fp16", "int8-dynamic", "int8")


def base_model() -> tuple[str, str]:
    tuned = DENSE / "mrpc" / "model"
    if (tuned / "config.json").is_file():
        return str(tuned), "MiniLM-L6 fine-tuned on MRPC (bench/work/dense/mrpc/model)"
    partial = WORK / "base_model"  # a copy of the dense-baseline fine-tune's checkpoint-100 (~0.9 epoch)
    if (partial / "config.json").is_file():
        return str(partial), ("MiniLM-L6 partly fine-tuned on MRPC (checkpoint-100 = 0.87 epoch of the dense "
                              "baseline run, copied to bench/work/tflite/base_model; the final model was not ready)")
    return "minilm-l6", "MiniLM-L6 (pretrained encoder, untrained MRPC head: the fine-tuned model was not available)"


def make_run(model_src: str, compression: float, block: str, balanced: bool, out: Path) -> dict:
    """A plain model folder + masks.safetensors pruned to ``compression`` by block magnitude."""
    import torch

    from edgeprune.arch import prunable_linears
    from edgeprune.models import load_model, save_model
    from edgeprune.prune.blocks import parse_block, tiling_for
    from edgeprune.prune.masks import apply_masks, magnitude_scores, prune_groups
    from edgeprune.rundir import save_masks

    torch.manual_seed(0)  # a fresh head (when the source has none) is the same in every run
    model, tok = load_model(model_src, num_labels=2)
    if out.exists():
        shutil.rmtree(out)
    info = {"compression": compression, "block": block, "balanced": balanced}
    if compression > 1:
        spec = parse_block(block)
        weights = {f"{n}.weight": m.weight for n, m in prunable_linears(model).items()}
        tilings = {n: tiling_for(tuple(w.shape), spec) for n, w in weights.items()}
        res = prune_groups(magnitude_scores(weights, tilings), tilings, 1.0 / compression, "uniform", balanced)
        apply_masks(model, res.masks)
        save_model(model, tok, out)
        save_masks(res.masks, out / "masks.safetensors")
        info.update(kept=res.kept_total, total=res.total, actual_compression=res.compression)
    else:
        save_model(model, tok, out)
    hidden, layers = model.config.hidden_size, model.config.num_hidden_layers
    kept = info.get("kept", sum(m.weight.numel() for m in prunable_linears(model).values()))
    total = info.get("total", kept)
    attn = 2 * 128 * hidden * layers  # QK^T and PV multiply-adds per token at seq 128
    info["ideal_speedup"] = (total + attn) / (kept + attn)
    info["ideal_linear_speedup"] = total / max(kept, 1)
    return info


def export_one(run_dir: Path, dtype: str, mode: str, out: Path, verify: int = 408) -> dict:
    from edgeprune.errors import EdgepruneError
    from edgeprune.exporters.api import export
    from edgeprune.exporters.base import ExportConfig

    if out.exists():
        shutil.rmtree(out)
    cfg = ExportConfig(format="tflite", dtype=dtype, mode=mode, seq_len=128, data_dir=str(glue_dir()), task="mrpc",
                       verify_examples=verify, calib_examples=100)
    t0 = time.perf_counter()
    try:
        res = export(run_dir, cfg, out)
    except EdgepruneError as e:
        return {"error": str(e), "export_s": time.perf_counter() - t0}
    rep = res.report
    return {"artifact": str(res.artifact), "export_s": time.perf_counter() - t0, "verification": res.verification,
            "file_bytes": rep["file_bytes"], "structure": {k: v for k, v in rep["structure"].items() if k != "layers"},
            "layers": rep["structure"]["layers"], "timing": rep["timing"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compressions", default="1,5,8,2", help="1 (the dense baseline) must come first")
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--block", default="128x1")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--other-dtypes", default="fp32,int8-dynamic", help="dtypes at compressions other than 1x and 5x")
    ap.add_argument("--verify-examples", type=int, default=408, help="MRPC dev examples (408 = all)")
    ap.add_argument("--extras", action=argparse.BooleanOptionalAction, default=False,
                    help="also the 5x 1xall block")
    ap.add_argument("--quick", action="store_true", help="fp32 only, 1 and 5x (smoke run)")
    ap.add_argument("--out-name", default="export_tflite",
                    help="results file stem; export_tflite_*.json parts are merged into export_tflite.md")
    a = ap.parse_args()
    from edgeprune.bundle import tool_versions
    from edgeprune.exporters.litert_run import time_in_child

    comps = [float(c) for c in a.compressions.split(",")]
    dtypes = a.dtypes.split(",")
    if a.quick:
        comps, dtypes, a.extras = [1.0, 5.0], ["fp32"], False
    threads = [int(t) for t in a.threads.split(",")]
    src, model_desc = base_model()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    result = {"benchmark": "export_tflite", "model": model_desc, "model_source": src, "task": "mrpc", "seq_len": 128,
              "batch": 1, "block": a.block, "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                                         "processor": platform.processor()},
              "versions": tool_versions(), "runs": [], "exports": []}

    def save() -> None:
        result["wall_s"] = time.perf_counter() - t_start
        (RESULTS / f"{a.out_name}.json").write_text(json.dumps(result, indent=1, default=float))

    jobs = []  # (compression, block, balanced, mode, dtype)
    for c in comps:
        for dt in (dtypes if c in (1.0, 5.0) else [d for d in dtypes if d in a.other_dtypes.split(",")]):
            jobs.append((c, a.block, True, "packed" if c > 1 else "dense", dt))
    if a.extras:
        jobs += [(5.0, "1xall", False, "packed", "fp32")]  # (TFLite native sparsity went with TensorFlow)
    runs_made: dict[tuple, dict] = {}
    dense_lat: dict[tuple, float] = {}
    dense_bytes: dict[str, int] = {}
    for c, block, balanced, mode, dt in jobs:
        key = (c, block)
        if key not in runs_made:
            rd = WORK / "runs" / f"{block.replace('/', '_')}_{c:g}x"
            print(f"[{time.perf_counter() - t_start:6.0f}s] pruning {c:g}x {block}", flush=True)
            runs_made[key] = {"dir": rd, **make_run(src, c, block, balanced, rd)}
        run = runs_made[key]
        tag = f"{block.replace('/', '_')}_{c:g}x_{mode}_{dt}"
        print(f"[{time.perf_counter() - t_start:6.0f}s] export {tag}", flush=True)
        ex = export_one(run["dir"], dt, mode, WORK / "bundles" / tag, a.verify_examples)
        ex.update(tag=tag, compression=c, block=block if c > 1 else None, mode=mode, dtype=dt,
                  sparsity_encoding="none",
                  ideal_speedup=run["ideal_speedup"], ideal_linear_speedup=run["ideal_linear_speedup"])
        result["exports"].append(ex)
        if "error" in ex:
            print(f"   failed: {ex['error']}", flush=True)
            save()
            continue
        v = ex["verification"]
        print(f"   {ex['file_bytes'] / 1e6:.2f} MB, max|diff| {v.get('max_abs_diff', float('nan')):.3g}, "
              f"metric {v.get('metric_torch', 0):.4f} -> {v.get('metric_artifact', 0):.4f}, "
              f"{ex['structure']['formulations']}", flush=True)
        if c == 1:
            dense_bytes[dt] = ex["file_bytes"]
        for xnn in (True, False):
            for th in threads:
                lat_file = WORK / f"lat_{a.out_name}.json"  # one per process: parallel parts must not share it
                lat_file.unlink(missing_ok=True)
                lat = time_in_child(Path(ex["artifact"]), lat_file, th, xnn, runs=30 if xnn else 10)
                if c == 1:
                    dense_lat[(dt, th, xnn)] = lat.get("median_ms", float("nan"))
                result["runs"].append({
                    "model": "minilm-l6", "compression": c, "block": block if c > 1 else None, "mode": mode,
                    "dtype": dt, "threads": th, "xnnpack": xnn, "sparsity_encoding": ex["sparsity_encoding"],
                    "latency_ms": lat.get("median_ms"), "latency_min_ms": lat.get("min_ms"),
                    "latency_error": lat.get("error"),
                    "dense_latency_ms": dense_lat.get((dt, th, xnn)), "ideal_speedup": run["ideal_speedup"],
                    "ideal_linear_speedup": run["ideal_linear_speedup"],
                    "linear_mac_reduction": ex["structure"]["linear_mac_reduction"],
                    "file_bytes": ex["file_bytes"], "dense_file_bytes": dense_bytes.get(dt),
                    "max_abs_diff": v.get("max_abs_diff"), "metric_pruned_torch": v.get("metric_torch"),
                    "metric_artifact": v.get("metric_artifact"), "verified": v.get("passed"),
                    "formulations": ex["structure"]["formulations"]})
                r = result["runs"][-1]
                sp = (r["dense_latency_ms"] / r["latency_ms"]) if r["latency_ms"] and r["dense_latency_ms"] else None
                print(f"   threads {th} xnnpack {xnn}: {r['latency_ms']} ms"
                      + (f" ({sp:.2f}x vs dense)" if sp else ""), flush=True)
        save()
    (WORK / f"lat_{a.out_name}.json").unlink(missing_ok=True)
    save()
    from bench.export_tflite_md import main as write_md

    write_md([])
    print(f"done in {time.perf_counter() - t_start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
