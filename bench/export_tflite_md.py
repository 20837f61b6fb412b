"""Render bench/results/export_tflite.json as markdown (``python -m bench.export_tflite_md`` re-renders)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.common import RESULTS, cell


def write_md(res: dict, path: Path, ab: dict | None = None) -> None:
    L = [f"# TFLite export benchmark: {res['model']}", "",
         f"Task MRPC, seq {res['seq_len']}, batch {res['batch']}; machine {res['machine']['platform']}, "
         f"{res['machine']['cpus']} vCPUs (shared with other helpers' jobs, load average 5-10 during the run: single latencies swung by up to several x). "
         f"Wall time {res.get('wall_s', 0) / 60:.1f} min. Versions: "
         + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".", "",
         f"Masks: one-shot block-magnitude pruning (edgeprune.prune, uniform per layer) with block `{res['block']}` "
         "balanced, of every encoder linear; no retraining, so the pruned model's own accuracy drops - what is "
         "checked here is that the artifact reproduces the pruned PyTorch model. Latency: median of 30 invokes "
         "(10 without XNNPACK) in a fresh process per number, ai-edge-litert Interpreter, inputs of all ones. "
         "`ideal` = encoder multiply-adds dense / pruned (linears by kept weights plus the attention matmuls).", "",
         "## How to read this", "",
         "* The fair speed comparison is the **interleaved A/B** table: the per-run table below took each number "
         "minutes apart while other jobs loaded the 2 shared cores, so its dense baselines and speedups swing widely.",
         "* The graph formulation of each pruned linear is chosen by timing the candidates with XNNPACK (LiteRT's "
         "default delegate on Android and the Pi). Without XNNPACK the reference GATHER / TRANSPOSE / BATCH_MATMUL "
         "kernels are slow, so fp32 packed graphs can be slower than dense there (see that table).",
         "* int8-dynamic: the timer keeps dense FULLY_CONNECTED (int8 kernels) for many layers because the "
         "batched-matmul formulations time slower than the int8 FC; file size still drops from the exact removal of "
         "whole heads, head dimensions and FFN units.",
         "* Full int8 (calibrated on 100 MRPC train examples) of the dense model misses the 1-point gate and is "
         "refused by verification (nothing is written); see the verification table.",
         "* The masks are one-shot magnitude pruning without retraining, so the pruned PyTorch models lose accuracy "
         "(their F1 is what predicting the majority class gives); recovering it is compress's job. The artifacts "
         "reproduce the pruned PyTorch model, which is what this benchmark verifies.", "",
         "## Speed and size (XNNPACK on)", "",
         "| compression | block | mode | dtype | threads | latency ms (median) | min ms | dense ms | speedup | ideal | file MB | dense MB | size ratio |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        if not r["xnnpack"]:
            continue
        sp = r["dense_latency_ms"] / r["latency_ms"] if r["latency_ms"] and r["dense_latency_ms"] else None
        size = r["dense_file_bytes"] / r["file_bytes"] if r["dense_file_bytes"] else None
        L.append(f"| {r['compression']:g}x | {r['block'] or '-'} | {r['mode']}{' +native-sparse' if r['sparsity_encoding'] != 'none' else ''} "
                 f"| {r['dtype']} | {r['threads']} | {cell(r['latency_ms'])} | {cell(r.get('latency_min_ms'))} | "
                 f"{cell(r['dense_latency_ms'])} | {cell(sp, '.2f', 'x')} | {r['ideal_speedup']:.2f}x | {r['file_bytes'] / 1e6:.2f} | "
                 f"{cell(r['dense_file_bytes'] and r['dense_file_bytes'] / 1e6)} | {cell(size, '.2f', 'x')} |")
    if ab and ab.get("pairs"):
        L += ["", f"## Interleaved A/B (bench/export_tflite_ab.py): dense and pruned alternate, {ab['rounds']} rounds, "
              f"{ab['threads']} thread, XNNPACK, min of 20 invokes per round", "",
              "| dtype | compression | dense min ms | pruned min ms | speedup (min) | speedup (median of round mins) |",
              "|---|---|---|---|---|---|"]
        for p in ab["pairs"]:
            L.append(f"| {p['dtype']} | {p['compression']:g}x | {p['dense_min_ms']:.2f} | {p['pruned_min_ms']:.2f} | "
                     f"{p['speedup_min']:.2f}x | {p['speedup_median']:.2f}x |")
    L += ["", "## Without XNNPACK (builtin kernels only)", "",
          "| compression | block | mode | dtype | threads | latency ms | dense ms | speedup | ideal |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        if r["xnnpack"]:
            continue
        sp = r["dense_latency_ms"] / r["latency_ms"] if r["latency_ms"] and r["dense_latency_ms"] else None
        L.append(f"| {r['compression']:g}x | {r['block'] or '-'} | {r['mode']}{' +native-sparse' if r['sparsity_encoding'] != 'none' else ''} "
                 f"| {r['dtype']} | {r['threads']} | {cell(r['latency_ms'])} {r.get('latency_error') or ''} | "
                 f"{cell(r['dense_latency_ms'])} | {cell(sp, '.2f', 'x')} | {r['ideal_speedup']:.2f}x |")
    L += ["", "## Verification (MRPC dev, 408 examples, LiteRT vs pruned PyTorch)", "",
          "| export | passed | max abs logit diff | F1 pruned torch | F1 artifact | points | formulations | export s |",
          "|---|---|---|---|---|---|---|---|"]
    for e in res["exports"]:
        if "error" in e:
            L.append(f"| {e['tag']} | **failed** | {e['error'][:160]} | | | | | {e['export_s']:.0f} |")
            continue
        v = e["verification"]
        L.append(f"| {e['tag']} | {v['passed']} | {v['max_abs_diff']:.3g} | {v['metric_torch']:.4f} | "
                 f"{v['metric_artifact']:.4f} | {v['metric_diff_points']:.2f} | "
                 + ", ".join(f"{k} {n}" for k, n in e["structure"]["formulations"].items())
                 + f" | {e['export_s']:.0f} |")
    L += ["", "## Formulation chosen per linear (timed per layer shape in LiteRT, XNNPACK, 1 thread, 128 tokens)", ""]
    for e in res["exports"]:
        if "error" in e or e["mode"] != "packed" or e["dtype"] not in ("fp32", "int8-dynamic"):
            continue
        L += [f"**{e['tag']}** (layer 0; the other layers have the same shapes):", "",
              "| linear | chosen | in x out | k (cols kept per group) | R | timed ms per candidate |", "|---|---|---|---|---|---|"]
        lay = e["layers"][0]
        for role in ("q", "k", "v", "o", "ffn_in", "ffn_out"):
            d = lay[role]
            L.append(f"| {role} | {d['kind']} | {d['in']} x {d['out']} | {d.get('k', '-')} | {d.get('R', '-')} | "
                     + ", ".join(f"{k} {t}" for k, t in d.get("timed_ms", {}).items()) + " |")
        L += ["", f"heads kept {lay['heads_kept']}/{lay['heads']}, FFN units kept {lay['ffn_units_kept']}/{lay['ffn_units']}", ""]
    path.write_text("\n".join(L) + "\n")


def merge(parts: list[dict]) -> dict:
    """Runs of several bench processes (export_tflite*.json) in one result; dense baselines filled from 1x."""
    res = dict(parts[0])
    runs = {(r["compression"], r.get("block"), r["mode"], r["dtype"], r["threads"], r["xnnpack"],
             r.get("sparsity_encoding")): r for p in parts for r in p["runs"]}
    res["runs"] = list(runs.values())
    res["exports"] = list({e["tag"]: e for p in parts for e in p["exports"]}.values())
    res["wall_s"] = max(p.get("wall_s", 0) for p in parts)
    res["parts"] = max(len(parts), max(p.get("parts", 1) for p in parts))
    dense = {(r["dtype"], r["threads"], r["xnnpack"]): r for r in res["runs"] if r["compression"] == 1}
    for r in res["runs"]:
        d = dense.get((r["dtype"], r["threads"], r["xnnpack"]))
        if d and r.get("dense_latency_ms") is None:
            r["dense_latency_ms"] = d["latency_ms"]
        if d and r.get("dense_file_bytes") is None:
            r["dense_file_bytes"] = d["file_bytes"]
    key = lambda r: (r["compression"], r.get("block") or "", r["mode"], r["dtype"], r["xnnpack"], r["threads"])  # noqa: E731
    res["runs"].sort(key=key)
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--final", action="store_true", help="fold export_tflite_part*.json into export_tflite.json")
    final = ap.parse_args(argv).final
    root = RESULTS
    files = [root / "export_tflite.json"] + sorted(root.glob("export_tflite_part*.json"))
    parts = [json.loads(p.read_text()) for p in files if p.is_file()]
    merged = merge(parts)
    if final and len(parts) > 1:  # fold the parts into export_tflite.json
        (root / "export_tflite.json").write_text(json.dumps(merged, indent=1, default=float))
        for p in sorted(root.glob("export_tflite_part*.json")):
            p.unlink()
    ab = root / "export_tflite_ab.json"
    write_md(merged, root / "export_tflite.md", json.loads(ab.read_text()) if ab.is_file() else None)


if __name__ == "__main__":
    main()
