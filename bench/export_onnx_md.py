"""Render bench/results/export_onnx.json as Markdown (also usable alone: python -m bench.export_onnx_md [JSON])."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.common import RESULTS, cell

NOTES = Path(__file__).with_name("export_onnx_notes.md")  # hand-written findings appended to the report


def write_md(r: dict, path: Path) -> None:
    L = [f"# ONNX export benchmark: block-pruned MiniLM-L6 in stock onnxruntime {r['versions']['onnxruntime']}", "",
         f"Model: {r['model']}. Pruning: {r['pruning']}. Sequence length {r['seq_len']}; verification on "
         f"{r['verify_examples']} {r.get('task', 'mrpc').upper()} dev examples (at most; the set's size bounds it) "
         "against the pruned PyTorch model.",
         f"Machine: {r['machine']['processor']}, {r['machine']['cpus']} CPUs ({r['machine']['note']}). "
         f"Latency: {r['repetitions']['statistic']}, {r['repetitions']['batch1']} reps at batch 1, "
         f"{r['repetitions']['batch8']} at batch 8, intra-op spinning off. Whole run: {r['wall_s']} s.", "",
         "## Summary at 5x (target: speedup >= 0.6 of ideal, file within 5% of ideal bytes)", ""]
    for x in r["runs"]:
        if "error" in x or x.get("target_compression") != 5 or x["dtype"] != "fp32" or x["mode"] == "dense":
            continue
        L.append(f"- {x['mode']} fp32, batch {x['batch']}, {x['threads']} thread(s): {cell(x['speedup'])}x vs dense "
                 f"(ideal {x['ideal_speedup']:.2f}x, {cell(x['fraction_of_ideal'])} of ideal); file "
                 f"{x['file_bytes'] / 1e6:.1f} MB = {x['file_over_ideal']:.3f} x ideal, dense file "
                 f"{(x['dense_file_bytes'] or 0) / 1e6:.1f} MB; verified {x['verification_passed']} "
                 f"(max abs diff {x['max_abs_diff']:.1e})")
    L += ["",
         "## End to end", "",
         "| target | mode | dtype | batch | threads | latency ms | dense ms | speedup | ideal | of ideal | file MB | "
         "dense MB | ideal MB | file/ideal | max abs diff | metric torch | metric artifact | verified | fallback layers | int8 fallback layers |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["runs"]:
        if "error" in x:
            L.append(f"| {x['compression']}x | {x['mode']} | {x['dtype']} | | | | | | | | | | | | | | | FAILED: "
                     f"{x['error'][:80]} | |")
            continue
        L.append(f"| {x['target_compression']}x | {x['mode']} | {x['dtype']} | {x['batch']} | {x['threads']} | "
                 f"{cell(x['latency_ms'])} | {cell(x['dense_latency_ms'])} | {cell(x['speedup'])} | {cell(x['ideal_speedup'])} | "
                 f"{cell(x['fraction_of_ideal'])} | {x['file_bytes'] / 1e6:.2f} | "
                 f"{cell((x['dense_file_bytes'] or 0) / 1e6)} | {x['ideal_bytes'] / 1e6:.2f} | {x['file_over_ideal']:.3f} | "
                 f"{x['max_abs_diff']:.1e} | {x['metric_pruned_torch']:.4f} | {x['metric_artifact']:.4f} | "
                 f"{x['verification_passed']} | {x['fallback_layers']} | {x.get('int8_fallback_layers', '')} |")
    profs = r.get("op_profiles") or []
    if profs:
        L += ["", "## Where the time goes (onnxruntime profiler, 1 thread, kernel ms per run)", "",
              "The dense graph's prunable linears are its `Gemm` nodes; everything else (SkipLayerNormalization, "
              "attention products, softmax, GELU) runs unchanged after pruning. `bound` = the end-to-end "
              "speedup of a perfect packed kernel (linear time / compression, zero overhead) if the rest kept its "
              "dense-run time: an estimate, not a hard ceiling (the pruned graphs' rest is not identical, and the "
              "profiler sums kernel times, not wall time), but it shows that most of the gap between the measured "
              "speedup and the FLOP ideal is the unpruned rest of the graph, not the packed kernels.", ""]
        for pr in profs:
            if pr["compression"] == 1:
                for comp, bd in pr.get("bounds", {}).items():
                    L.append(f"- batch {pr['batch']}, {comp}: dense kernels {bd['dense_kernel_ms']:.2f} ms = linears "
                             f"{bd['dense_linear_ms']:.2f} + rest {bd['dense_other_ms']:.2f}; bound {bd['bound_speedup']:.2f}x "
                             f"vs FLOP ideal {bd['ideal_speedup']:.2f}x ({bd['bound_speedup'] / bd['ideal_speedup']:.2f} of ideal)")
        L += ["", "| artifact | batch | top ops (ms per run) |", "|---|---|---|"]
        for pr in profs:
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(pr["ops_ms"].items())[:8])
            L.append(f"| {pr['compression']}x {pr['mode']} | {pr['batch']} | {top} |")
    if r.get("layer_study"):
        L += ["", "## Layer study: which block shapes pay off in onnxruntime", "",
              "One linear, 128 activation rows, 1 thread, each session in its own process. `gather` = the "
              "`BlockSparseMatMul` body (rows of X^T gathered, one batched MatMul); `chosen` = what the exporter's "
              "cost model picks (`PackedDenseMatMul` = dense speed, packed file).", "",
              "| [out, in] | block | compression | R | k | nb | dense ms | gather ms | gather speedup | chosen op |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        for x in r["layer_study"]:
            L.append(f"| {x['shape']} | {x['block']} | {x['compression']}x | {x['block_rows']} | {x['k']} | {x['nb']} | "
                     f"{cell(x['dense_ms'], '.3f')} | {cell(x['gather_ms'], '.3f')} | {cell(x['gather_speedup'])} | "
                     f"{x['chosen_op']} |")
    L += ["", NOTES.read_text() if NOTES.exists() else ""]
    path.write_text("\n".join(L) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("json", type=Path, nargs="?", default=RESULTS / "export_onnx.json",
                    help="the benchmark's JSON; the .md is written beside it")
    p = ap.parse_args(argv).json
    write_md(json.loads(p.read_text()), p.with_suffix(".md"))


if __name__ == "__main__":
    main()
