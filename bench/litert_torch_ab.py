"""Experiment (issue 17, item 6): litert-torch on the PyTorch packed encoder vs the hand-written TF path.

One pruned checkpoint (MiniLM-L6 one-shot block-magnitude pruned, SST-2 head; or ``--tiny``), two
TFLite artifacts per dtype (fp32, int8-dynamic):

* ``tf``: edgeprune's exporter (``exporters/tflite.py``: the encoder rebuilt in TensorFlow, each
  pruned linear's formulation timed on LiteRT, TFLiteConverter);
* ``lt``: the same shrink and the same per-linear formulations (replayed from the TF export's report)
  written once in PyTorch (:mod:`bench.litert_torch_model`) and converted by litert-torch in a child
  process in ``.venv-litert-torch`` (:mod:`bench.litert_torch_convert`), since litert-torch's
  dependencies are not in the project's pins.

Both are verified against the masked PyTorch model on SST-2 dev sentences (the exporter's own
verification record) and timed in the LiteRT interpreter (XNNPACK, 1 thread), interleaved A/B/B/A
per round, each timing in its own process. ``--arch-check`` also converts tiny BERT, RoBERTa and
DistilBERT (fp32 and int8-dynamic). Writes bench/results/litert_torch_ab.{json,md}.

    nice -n 10 python -m bench.litert_torch_ab [--rounds 5] [--arch-check] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import common
from bench.common import RESULTS, ROOT, glue_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
WORK = common.WORK / "litert_torch"
VENV = ROOT / ".venv-litert-torch"
TASK = "sst2"
DTYPES = ("fp32", "int8-dynamic")


def op_counts(path: Path) -> dict[str, int]:
    """Builtin (or custom) op name -> count over all subgraphs of a .tflite flatbuffer."""
    from ai_edge_litert import schema_py_generated as sch

    model = sch.Model.GetRootAsModel(path.read_bytes(), 0)
    names = {v: k for k, v in vars(sch.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        c = model.OperatorCodes(i)
        code = max(c.BuiltinCode(), c.DeprecatedBuiltinCode())
        codes.append(c.CustomCode().decode() if code == sch.BuiltinOperator.CUSTOM else names.get(code, str(code)))
    out: dict[str, int] = {}
    for s in range(model.SubgraphsLength()):
        g = model.Subgraphs(s)
        for j in range(g.OperatorsLength()):
            name = codes[g.Operators(j).OpcodeIndex()]
            out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def export_tf(run_dir: Path, dtype: str, out: Path, seq: int, examples: int) -> dict[str, Any]:
    """edgeprune's TFLite export (packed mode), verified by the exporter itself."""
    from edgeprune.errors import EdgepruneError
    from edgeprune.exporters.api import export
    from edgeprune.exporters.base import ExportConfig
    from edgeprune.exporters.tflite import TfliteOptions

    if out.exists():
        shutil.rmtree(out)
    cfg = ExportConfig(format="tflite", dtype=dtype, mode="packed", seq_len=seq, data_dir=str(glue_dir()), task=TASK,
                       verify_examples=examples, calib_examples=32, options=TfliteOptions())
    t0 = time.perf_counter()
    try:
        res = export(run_dir, cfg, out)
    except EdgepruneError as e:
        return {"ok": False, "error": str(e), "export_s": time.perf_counter() - t0}
    return {"ok": True, "artifact": str(res.artifact), "export_s": time.perf_counter() - t0,
            "verification": res.verification, "file_bytes": res.report["file_bytes"],
            "formulations": res.report["structure"]["formulations"], "report": str(out / "export_report.json")}


def convert_lt(run_dir: Path, dtype: str, out: Path, seq: int, feeds: Path, plan: Path | None) -> dict[str, Any]:
    """litert-torch conversion in the side venv (a child process); its JSON record."""
    rec_path = out.with_suffix(".json")
    rec_path.unlink(missing_ok=True)
    py = VENV / "bin" / "python"
    if not py.exists():
        return {"ok": False, "error": f"{py} not found: create the litert-torch venv (docs/litert-torch.md)"}
    cmd = [str(py), "-m", "bench.litert_torch_convert", str(run_dir), str(out), str(rec_path), "--feeds", str(feeds),
           "--seq-len", str(seq), "--dtype", dtype, "--task", TASK] + (["--plan", str(plan)] if plan else [])
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=3600)
    if not rec_path.exists():
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {"ok": False, "error": f"child exited {proc.returncode}: {' | '.join(tail)[:600]}"}
    rec = json.loads(rec_path.read_text())
    rec["wall_s"] = time.perf_counter() - t0
    if rec.get("ok"):
        rec["artifact"] = str(out)
    return rec


def verify_artifact(path: Path, ref, spec, dtype: str) -> dict[str, Any]:
    """The TFLite exporter's verification record for any .tflite with a ``logits`` output (child process)."""
    import tempfile

    from edgeprune.exporters.base import verification_record
    from edgeprune.exporters.litert_run import run_in_child
    from edgeprune.exporters.tflite import TFLiteExporter

    with tempfile.TemporaryDirectory() as work:
        got, err = run_in_child(path, {k: v.astype(np.int32) for k, v in ref.feeds.items()}, Path(work))
    if got is None:
        return {"passed": False, "reason": err}
    return verification_record(ref.logits, got, ref.labels, spec, dtype, TFLiteExporter.ATOL, TFLiteExporter.MAX_POINTS)


def time_ab(pairs: dict[str, dict[str, Path]], rounds: int, runs: int) -> dict[str, Any]:
    """Interleaved A/B: per round and dtype, tf then lt (odd rounds lt then tf), each in its own process."""
    from edgeprune.exporters.litert_run import time_in_child

    tmp = WORK / ".t.json"
    lat: dict[str, dict[str, list[float]]] = {dt: {"tf": [], "lt": []} for dt in pairs}
    errors: list[str] = []
    for r in range(rounds):
        for dt, arts in pairs.items():
            order = ("tf", "lt") if r % 2 == 0 else ("lt", "tf")
            for side in order:
                res = time_in_child(arts[side], tmp, threads=1, xnnpack=True, runs=runs)
                if "median_ms" in res:
                    lat[dt][side].append(res["median_ms"])
                else:
                    errors.append(f"{dt} {side} round {r}: {res.get('error')}")
        print(f"[time] round {r + 1}/{rounds}: " + ", ".join(
            f"{dt} tf {v['tf'][-1]:.2f} / lt {v['lt'][-1]:.2f} ms" for dt, v in lat.items() if v["tf"] and v["lt"]),
            flush=True)
    tmp.unlink(missing_ok=True)
    out: dict[str, Any] = {"rounds": rounds, "runs_per_process": runs, "threads": 1, "xnnpack": True,
                           "errors": errors, "dtypes": {}}
    for dt, v in lat.items():
        if not (v["tf"] and v["lt"]):
            continue
        s = {side: {"median_ms": statistics.median(x), "min_ms": min(x), "max_ms": max(x), "all_ms": x}
             for side, x in v.items()}
        paired = [b / a for a, b in zip(v["tf"], v["lt"])]
        s["ratio_lt_over_tf_median"] = s["lt"]["median_ms"] / s["tf"]["median_ms"]
        s["ratio_lt_over_tf_paired"] = {"median": statistics.median(paired), "min": min(paired), "max": max(paired)}
        s["within_10pct"] = s["ratio_lt_over_tf_median"] <= 1.10
        out["dtypes"][dt] = s
    return out


def prune(src: str, compression: float, block: str, out: Path) -> dict[str, Any]:
    from bench.export_tflite import make_run

    return make_run(src, compression, block, True, out)


def compare(run_dir: Path, tag: str, seq: int, examples: int, dtypes: tuple[str, ...]) -> dict[str, Any]:
    """Both artifacts of one pruned run in every dtype: export, convert, verify, op counts."""
    from edgeprune.exporters import tf_graph as tg
    from edgeprune.exporters.prepared import prepare

    prepared = prepare(run_dir, TASK)
    names = tg.input_names(tg.extract(prepared.model, prepared.masks, prepared.tokenizer))
    ref = prepared.reference(str(glue_dir()), examples, seq, names)
    feeds = WORK / f"{tag}_feeds.npz"
    np.savez(feeds, logits=ref.logits, **ref.feeds)
    out: dict[str, Any] = {}
    for dt in dtypes:
        print(f"[{tag}] {dt}: TF export", flush=True)
        tf = export_tf(run_dir, dt, WORK / "bundles" / f"{tag}_tf_{dt}", seq, examples)
        plan = Path(tf["report"]) if tf.get("ok") else None
        print(f"[{tag}] {dt}: litert-torch conversion", flush=True)
        lts = {"lt": convert_lt(run_dir, dt, WORK / "bundles" / f"{tag}_lt_{dt}.tflite", seq, feeds, plan)}
        if dt == "int8-dynamic":  # the stock recipe also quantizes BATCH_MATMUL weights (litert_torch_convert)
            lts["lt_fc"] = convert_lt(run_dir, "int8-dynamic-fc", WORK / "bundles" / f"{tag}_lt_{dt}_fc.tflite",
                                      seq, feeds, plan)
        for lt in lts.values():
            if lt.get("ok"):
                lt["verification"] = verify_artifact(Path(lt["artifact"]), ref, prepared.spec, dt)
        for side in (tf, *lts.values()):
            if side.get("ok"):
                side["ops"] = op_counts(Path(side["artifact"]))
                side["num_ops"] = sum(side["ops"].values())
        for name, lt in lts.items():
            v = lt.get("verification", {})
            print(f"[{tag}] {dt}: tf ok={tf.get('ok')} {name} ok={lt.get('ok')} verified={v.get('passed')} "
                  f"max_abs={v.get('max_abs_diff')} {(lt.get('error') or v.get('reason') or '')[:300]}", flush=True)
        out[dt] = {"tf": tf, **lts}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm-l6", help="checkpoint to prune (alias or folder)")
    ap.add_argument("--compression", type=float, default=5.0)
    ap.add_argument("--block", default="128x1")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--examples", type=int, default=128, help="SST-2 dev sentences to verify on")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20, help="invokes per timing process")
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--arch-check", action="store_true", help="also convert tiny BERT / RoBERTa / DistilBERT")
    ap.add_argument("--tiny", action="store_true", help="smoke run: a tiny BERT instead of --model")
    ap.add_argument("--conditions", default="", help="free text recorded with the numbers (machine load etc.)")
    ap.add_argument("--out-name", default="litert_torch_ab")
    a = ap.parse_args(argv)
    dtypes = tuple(a.dtypes.split(","))
    if any(d not in DTYPES for d in dtypes) or a.rounds < 1 or a.compression < 1:
        print(f"error: --dtypes must be from {DTYPES}, --rounds >= 1, --compression >= 1", file=sys.stderr)
        raise SystemExit(2)
    from edgeprune.bundle import tool_versions

    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    lt_versions = subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True,
                                 text=True).stdout.splitlines() if (VENV / "bin" / "python").exists() else []
    keep = ("litert-torch", "litert-converter", "ai-edge-litert", "ai-edge-quantizer", "torch", "torchao",
            "transformers", "numpy", "jax", "jaxlib", "protobuf")
    result: dict[str, Any] = {
        "benchmark": "litert_torch_ab", "task": TASK, "seq_len": a.seq_len, "batch": 1,
        "machine": {**common.machine(), "loadavg_start": os.getloadavg()}, "conditions": a.conditions,
        "versions": {"project_venv": tool_versions(),
                     "litert_torch_venv": [ln for ln in lt_versions if ln.split("==")[0] in keep]},
        "args": vars(a)}
    out_json = RESULTS / f"{a.out_name}.json"

    def save() -> None:
        result["wall_s"] = time.perf_counter() - t_start
        out_json.write_text(json.dumps(result, indent=1, default=float))

    if a.arch_check:
        from tests.support.checkpoints import build_tiny_checkpoint

        result["arch_check"] = {}
        for arch in ("bert", "roberta", "distilbert"):
            ck = build_tiny_checkpoint(arch, WORK / f"tiny_{arch}", hidden=64, intermediate=128)
            rd = WORK / "runs" / f"tiny_{arch}_2x"
            info = prune(str(ck), 2.0, "16x1", rd)
            result["arch_check"][arch] = {"prune": info, **compare(rd, f"tiny_{arch}", 32, 64, dtypes)}
            save()
    if a.tiny:
        from tests.support.checkpoints import build_tiny_checkpoint

        src, desc, block, seq = str(build_tiny_checkpoint("bert", WORK / "tiny_main")), "tiny BERT", "16x1", 32
    else:
        src, desc, block, seq = a.model, f"{a.model} one-shot block-magnitude pruned", a.block, a.seq_len
    rd = WORK / "runs" / f"main_{a.compression:g}x"
    print(f"[main] pruning {desc} {a.compression:g}x {block}", flush=True)
    result["model"] = {"source": src, "description": desc, "block": block, "seq_len": seq,
                       "prune": prune(src, a.compression, block, rd)}
    result["main"] = compare(rd, "main", seq, a.examples, dtypes)
    save()
    pairs = {}
    for dt, r in result["main"].items():
        lt = best_lt(r)
        if r["tf"].get("ok") and lt:
            pairs[dt] = {"tf": Path(r["tf"]["artifact"]), "lt": Path(r[lt]["artifact"])}
            r["timed_lt"] = lt
    if pairs:
        result["timing"] = time_ab(pairs, a.rounds, a.runs)
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["decision"] = decide(result)
    save()
    from bench.litert_torch_md import render

    (RESULTS / f"{a.out_name}.md").write_text(render(result))
    print(f"wrote {out_json} and .md: {result['decision']['summary']}", flush=True)


def best_lt(r: dict[str, Any]) -> str | None:
    """The litert-torch artifact to time: the stock recipe's if it verified, else the FC-only one's."""
    for name in ("lt", "lt_fc"):
        if r.get(name, {}).get("verification", {}).get("passed"):
            return name
    return None


def decide(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's rule: replace the TF path only if both fp32 and int8-dynamic verify and time within 10%."""
    per = {}
    for dt in DTYPES:
        r = result.get("main", {}).get(dt)
        t = result.get("timing", {}).get("dtypes", {}).get(dt)
        if r is None:
            per[dt] = "not run"
        elif not any(r.get(n, {}).get("ok") for n in ("lt", "lt_fc")):
            per[dt] = "litert-torch conversion failed"
        elif best_lt(r) is None:
            per[dt] = "litert-torch artifact failed verification"
        elif t is None:
            per[dt] = "not timed"
        else:
            how = " (int8 recipe without BATCH_MATMUL)" if r.get("timed_lt") == "lt_fc" else ""
            per[dt] = ("within 10%" if t["within_10pct"] else f"slower: {t['ratio_lt_over_tf_median']:.2f}x") + how
    ok = all(v.startswith("within 10%") for v in per.values())
    summary = (("qualifies for replacing the TF path (lead decides)" if ok else "does not qualify: keep the TF path")
               + f" ({'; '.join(f'{k}: {v}' for k, v in per.items())})")
    if result.get("args", {}).get("tiny"):  # ~0.05 ms models: the ratio is timer noise, not a decision
        summary = f"smoke model only, not a decision: {summary}"
        ok = False
    return {"per_dtype": per, "qualifies": ok, "summary": summary}


if __name__ == "__main__":
    main()
