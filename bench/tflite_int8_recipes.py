"""Which ops should full int8 TFLite quantize? ai-edge-quantizer recipes on the same float flatbuffers.

    python -m bench.tflite_int8_recipes --data GLUE_DIR --float DENSE.tflite [PRUNED.tflite ...] [--rounds 3]

Each float flatbuffer (an fp32 ``model.tflite`` that ``edgeprune export --format tflite`` wrote, its
``tokenizer/`` beside it) is quantized with every recipe below, calibrated on the exporter's own
calibration examples (the first 64 training rows), and evaluated on the whole dev set in the LiteRT
interpreter. Latency: each artifact in its own process (``litert_run time``, XNNPACK, 1 thread, 30 invokes,
median), rounds interleaved and rotated. ``edgeprune`` is the recipe ``--dtype int8`` ships
(``exporters/tflite_convert.quantize``); the others are written out here. Run it on a quiet machine.
Writes bench/results/tflite_int8_recipes.{json,md,png}; quantized artifacts are cached in bench/work.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from bench.common import RESULTS, WORK, machine, pyplot

OUT = WORK / "tflite_int8_recipes"
# name -> what it is (the md table says it too)
RECIPES = {
    "fp32": "the float flatbuffer as converted",
    "int8-dynamic": "edgeprune --dtype int8-dynamic: int8 weights of FC and embeddings, float activations",
    "stock-static": "ai-edge-quantizer static_wi8_ai8: every op int8 (logits op float)",
    "stock-static+emb8": "static_wi8_ai8 plus int8 embedding tables",
    "fc+bmm-static": "static int8 FC and BATCH_MATMUL, int8 embedding tables, the rest float",
    "edgeprune": "edgeprune --dtype int8: static int8 FC, int8 embedding tables, the rest float",
}


def calibration(tok, data: str, task: str, names: list[str], seq: int) -> list[dict[str, np.ndarray]]:
    """The exporter's calibration feeds, one example per feed, keyed by the signature's input names."""
    from edgeprune.exporters.prepared import encode_examples, load_examples

    short = [n.removeprefix("serving_default_") for n in names]
    f = encode_examples(tok, load_examples(task, data, "train", 64), seq, short)
    return [{n: f[s][i:i + 1].astype(np.int32) for n, s in zip(names, short)} for i in range(len(f[short[0]]))]


def quantized(buf: bytes, recipe: str, calib: list[dict[str, np.ndarray]]) -> bytes:
    from ai_edge_quantizer import qtyping, quantizer, recipe as stock

    from edgeprune.exporters.tflite_convert import _static_int8, inline_buffers, output_names, quantize

    if recipe == "fp32":
        return buf
    if recipe in ("int8-dynamic", "edgeprune"):
        dtype = "int8" if recipe == "edgeprune" else recipe
        return inline_buffers(quantize(buf, dtype, {"serving_default": calib}, output_names(buf)))
    op = qtyping.TFLOperationName
    qt = quantizer.Quantizer(buf)
    if recipe.startswith("stock-static"):
        qt.load_quantization_recipe(stock.static_wi8_ai8())
    else:  # fc+bmm-static
        for o in (op.FULLY_CONNECTED, op.BATCH_MATMUL):
            qt.update_quantization_recipe(".*", o, _static_int8(qtyping))
    if recipe != "stock-static":
        qt.add_dynamic_config(".*", op.EMBEDDING_LOOKUP, 8)
    for n in output_names(buf):
        qt.update_quantization_recipe(re.escape(n), op.ALL_SUPPORTED, algorithm_key="no_quantize")
    return inline_buffers(bytes(qt.quantize(qt.calibrate({"serving_default": calib})).quantized_model))


def op_types(buf: bytes) -> dict[str, int]:
    """'OP(in dtypes)' -> count for the ops that matter for speed (what stayed float, what went int8)."""
    from collections import Counter

    from ai_edge_litert import schema_py_generated as fb

    ops = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    m = fb.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    sg = m.subgraphs[0]
    c: Counter = Counter()
    for o in sg.operators:
        code = m.operatorCodes[o.opcodeIndex]
        name = ops[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if name in ("FULLY_CONNECTED", "BATCH_MATMUL", "MEAN", "RSQRT", "SOFTMAX", "GELU", "EMBEDDING_LOOKUP"):
            t = o.inputs[1] if name == "EMBEDDING_LOOKUP" else o.inputs[0]  # the table, not the ids
            c[f"{name}({types[sg.tensors[t].type].lower()})"] += 1
    return dict(sorted(c.items()))


def build(src: Path, recipe: str, data: str, task: str) -> dict:
    """Quantize, evaluate on dev (cached per artifact; ``main`` adds the op table from the file)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeprune.data.glue import get_task, load_split
    from edgeprune.data.metrics import compute_metrics
    from edgeprune.exporters.litert_run import interpreter_logits
    from edgeprune.exporters.prepared import encode_examples
    from edgeprune.io import atomic_file, read_json, write_json
    from transformers import AutoTokenizer

    name = f"{src.parent.name}__{recipe}"
    path, rec_path = OUT / f"{name}.tflite", OUT / f"{name}.json"
    if rec_path.is_file():
        return read_json(rec_path)
    buf = src.read_bytes()
    details = Interpreter(model_content=buf).get_signature_runner("serving_default").get_input_details()
    names = list(details)
    seq = int(details[names[0]]["shape"][1])
    tok = AutoTokenizer.from_pretrained(src.parent / "tokenizer")
    q = quantized(buf, recipe, calibration(tok, data, task, names, seq))
    OUT.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        Path(tmp).write_bytes(q)
    dev = load_split(task, "dev", data)
    short = [n.removeprefix("serving_default_") for n in names]
    f = encode_examples(tok, dev, seq, short)
    logits = interpreter_logits(path, {n: f[s] for n, s in zip(names, short)})
    spec = get_task(task)
    m = compute_metrics(spec, logits, np.array([e.label for e in dev]))
    rec = {"model": src.parent.name, "recipe": recipe, "artifact": str(path), "file_bytes": len(q),
           "metric_name": spec.metric, "metric": float(m["main"]), "dev_examples": len(dev)}
    write_json(rec_path, rec)
    print(f"{name}: {rec['file_bytes'] / 1e6:.1f} MB, {spec.metric} {rec['metric']:.4f}", flush=True)
    return rec


def time_all(recs: list[dict], rounds: int) -> None:
    from edgeprune.exporters.litert_run import time_in_child

    for r in recs:
        r["latency_ms"] = []
    for rnd in range(rounds):
        order = recs[rnd % len(recs):] + recs[:rnd % len(recs)]
        for r in order:
            t = time_in_child(Path(r["artifact"]), OUT / "time.json", threads=1, runs=30)
            if "median_ms" in t:
                r["latency_ms"].append(round(t["median_ms"], 3))
            else:
                r.setdefault("errors", []).append(t.get("error"))
            print(f"round {rnd} {r['model']} {r['recipe']}: {t.get('median_ms', t.get('error'))}", flush=True)
    for r in recs:
        r["median_ms"] = float(np.median(r["latency_ms"])) if r["latency_ms"] else None


def write(res: dict) -> None:
    from edgeprune.io import write_json

    write_json(RESULTS / "tflite_int8_recipes.json", res)
    lines = ["# Full int8 TFLite: which ops to quantize (ai-edge-quantizer recipes, same float flatbuffers)", "",
             f"Machine: {res['machine'].get('cpu', '?')}; {res['budget']}", "",
             "| model | recipe | size (MB) | dev " + res["rows"][0]["metric_name"] + " | vs fp32 (pts) | "
             "latency (ms, 1 thread) | vs int8-dynamic | int8 / float ops |", "|---|---|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in res["rows"]):
        rows = [r for r in res["rows"] if r["model"] == model]
        base = next(r for r in rows if r["recipe"] == "fp32")
        dyn = next((r for r in rows if r["recipe"] == "int8-dynamic"), None)
        for r in rows:
            ms = r.get("median_ms")
            vs = f"{dyn['median_ms'] / ms:.2f}x" if dyn and ms and dyn.get("median_ms") else "-"
            ops = ", ".join(f"{k} {v}" for k, v in r["ops"].items())
            lines.append(f"| {model} | {r['recipe']} | {r['file_bytes'] / 1e6:.1f} | {r['metric']:.4f} | "
                         f"{100 * (r['metric'] - base['metric']):+.1f} | {ms:.2f} | {vs} | {ops} |"
                         if ms else f"| {model} | {r['recipe']} | {r['file_bytes'] / 1e6:.1f} | {r['metric']:.4f} | "
                         f"{100 * (r['metric'] - base['metric']):+.1f} | failed | - | {ops} |")
    lines += ["", "Recipes:", ""] + [f"* `{k}`: {v}" for k, v in RECIPES.items()] + [""]
    (RESULTS / "tflite_int8_recipes.md").write_text("\n".join(lines))
    plt = pyplot()
    if plt is None:
        return
    models = list(dict.fromkeys(r["model"] for r in res["rows"]))
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        for i, r in enumerate(x for x in res["rows"] if x["model"] == model):
            if r.get("median_ms"):
                ax.scatter(r["median_ms"], r["metric"], s=r["file_bytes"] / 2e5, color=f"C{i}", label=r["recipe"])
        ax.set_xlabel("latency (ms, 1 thread, XNNPACK)")
        ax.set_ylabel(f"dev {res['rows'][0]['metric_name']}")
        ax.set_title(model[:60], fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("Full int8 TFLite recipes (marker area ~ file size)", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "tflite_int8_recipes.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--float", dest="floats", type=Path, nargs="+", required=True)
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    for f in a.floats:
        if not f.is_file() or not (f.parent / "tokenizer").is_dir():
            print(f"error: {f} is not a float model.tflite with tokenizer/ beside it (an edgeprune fp32 TFLite "
                  f"bundle)", file=sys.stderr)
            return 2
    from edgeprune.quiet import quiet

    quiet()
    recs = [build(f, r, a.data, a.task) for f in a.floats for r in a.recipes]
    for r in recs:  # cheap, so always from the artifact itself
        r["ops"] = op_types(Path(r["artifact"]).read_bytes())
    time_all(recs, a.rounds)
    from importlib.metadata import version

    write({"machine": {**machine(), **{k: version(k) for k in ("ai-edge-quantizer", "ai-edge-litert", "litert-torch")}},
           "task": a.task,
           "budget": f"calibration: the first 64 training rows (the exporter's default); dev set: all "
                     f"{recs[0]['dev_examples']} rows; latency: {a.rounds} interleaved rounds x 30 invokes, each "
                     f"artifact in its own process, median of round medians",
           "rows": recs})
    print(json.dumps([(r["model"][:30], r["recipe"], r["median_ms"], r["metric"]) for r in recs], indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
