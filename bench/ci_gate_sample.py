"""The sample output in docs/ci-gate.md, produced for real: prune -> export -> profile -> `edgeprune check`.

A tiny randomly initialised BERT (tests.support.checkpoints, 2 layers, hidden 64) is magnitude-pruned to
5x in 16x16 blocks (a stand-in for `edgeprune compress`, which writes the same run directory),
evaluated on real SST-2 dev examples, exported with the real ONNX exporter (packed ops, verified in
onnxruntime), profiled with `edgeprune profile` (measured on this host, roofline-predicted for the other targets), and gated
by `edgeprune check` with budgets in a pyproject.toml. Writes bench/results/ci_gate_sample.{json,md}.

    nice -n 10 python -m bench.ci_gate_sample
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS, glue_dir

TASK, SEQ_LEN, DEV_EXAMPLES, BLOCK, TARGET = "sst2", 64, 256, "16x16", 5.0

PYPROJECT = """\
[project]
name = "sentiment-app"
version = "1.0.0"

[tool.edgeprune.budgets]
max_size = "1MB"
max_params = "150k"
max_latency = { host = "25ms", rpi4 = "80ms" }
max_accuracy_drop = "5pt"
min_compression = "5x"
"""


def make_run(work: Path) -> Path:
    """A compress-style run directory: pruned checkpoint, masks, compression.json with real metrics."""
    from edgeprune.arch import get_arch, prunable_linears
    from edgeprune.io import write_json
    from edgeprune.models import load_model, save_model
    from edgeprune.prune.blocks import parse_block, tiling_for
    from edgeprune.prune.masks import apply_masks, magnitude_scores, prune_groups
    from edgeprune.prune.report import compression_figures
    from edgeprune.rundir import save_masks
    from edgeprune.training import task_metrics
    from tests.support.checkpoints import build_tiny_checkpoint

    dense_dir = build_tiny_checkpoint("bert", work / "dense")
    model, tok = load_model(dense_dir)
    dense = task_metrics((model, tok), TASK, glue_dir(), limit=DEV_EXAMPLES, max_seq_len=SEQ_LEN)
    linears = prunable_linears(model)
    weights = {f"{n}.weight": m.weight.detach() for n, m in linears.items()}
    spec = parse_block(BLOCK)
    tilings = {n: tiling_for(tuple(w.shape), spec) for n, w in weights.items()}
    res = prune_groups(magnitude_scores(weights, tilings), tilings, 1.0 / TARGET)
    apply_masks(model, res.masks)
    pruned = task_metrics((model, tok), TASK, glue_dir(), limit=DEV_EXAMPLES, max_seq_len=SEQ_LEN)
    run = work / "run"
    save_model(model, tok, run / "model")
    save_masks({n: m for n, m in res.masks.items()}, run / "model" / "masks.safetensors")
    figs = compression_figures(model, res.masks, get_arch(model.config.model_type).layer_regex)
    write_json(run / "compression.json", {
        "task": TASK, "block": spec.to_json(),
        "method": "magnitude (sample stand-in for compress)", "compression": figs,
        "metrics": {"dense": dense, "pruned": pruned, "metric": dense["metric"]}})
    return run


def export_bundle(run: Path, out: Path) -> Path:
    from edgeprune.exporters.api import export
    from edgeprune.exporters.base import ExportConfig

    export(run, ExportConfig(format="onnx", seq_len=SEQ_LEN, task=TASK, data_dir=str(glue_dir()),
                             verify_examples=DEV_EXAMPLES), out)
    return out


def profile_bundle(repo: Path, rel: str) -> dict:
    """`edgeprune profile BUNDLE`: measured on this host, predicted for every target; profile.json in the bundle."""
    exe = Path(sys.executable).with_name("edgeprune")
    p = subprocess.run([str(exe), "profile", rel, "--runs", "50"], cwd=repo, capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"edgeprune profile failed: {p.stderr.strip()[-500:]}")
    return {"args": ["edgeprune", "profile", rel, "--runs", "50"], "stdout": p.stdout, "stderr": p.stderr,
            "report": json.loads((repo / rel / "profile.json").read_text())}


def check(repo: Path, *args: str) -> dict:
    exe = Path(sys.executable).with_name("edgeprune")
    env = {**os.environ, "COLUMNS": "150", "GITHUB_STEP_SUMMARY": ""}
    p = subprocess.run([str(exe), "check", *args], cwd=repo, capture_output=True, text=True, env=env, timeout=300)
    return {"args": ["edgeprune", "check", *args], "exit_code": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ci_gate_sample."))
    try:
        repo = work / "repo"
        repo.mkdir()
        (repo / "pyproject.toml").write_text(PYPROJECT)
        t0 = time.time()
        run = make_run(work)
        bundle = export_bundle(run, repo / "dist" / "bundle")
        from edgeprune.budget.params import count_onnx

        pc = count_onnx(bundle / "model.onnx")
        params = {"stored": pc.stored, "dense_equivalent": pc.dense_equivalent, "tensors": pc.tensors,
                  "by_dtype": pc.by_dtype}
        prof = profile_bundle(repo, "dist/bundle")
        runs = [
            check(repo, "dist/bundle", "--junit", "check.xml", "--github", "--markdown", "check.md"),
            check(repo, "dist/bundle", "--max-size", "100kB", "--github"),
            check(repo, "dist/bundle", "--max-latency", "pixel8=20ms"),
        ]
        junit = (repo / "check.xml").read_text()
        md = (repo / "check.md").read_text()
        manifest = json.loads((bundle / "manifest.json").read_text())
        (bundle / "model.onnx").write_bytes((bundle / "model.onnx").read_bytes()[:-100])  # truncate: gate must fail
        runs.append(check(repo, "dist/bundle"))
        elapsed = time.time() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)

    from importlib import metadata

    out = {"machine": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
           "versions": {n: metadata.version(n) for n in ("onnx", "onnxruntime", "torch", "transformers", "rich")},
           "task": TASK, "seq_len": SEQ_LEN, "dev_examples": DEV_EXAMPLES, "block": BLOCK, "target": TARGET,
           "compression": manifest.get("compression"), "metrics": manifest.get("metrics"),
           "profile": prof["report"], "profile_stdout": prof["stdout"], "params": params, "pyproject": PYPROJECT, "runs": runs, "junit": junit, "markdown": md,
           "elapsed_s": round(elapsed, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ci_gate_sample.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    lines = ["# `edgeprune check` on a real exported bundle", "",
             f"Machine: {out['machine']}, {out['cpu_count']} CPUs, Python {out['python']}; "
             + ", ".join(f"{k} {v}" for k, v in out["versions"].items()) + ".", "",
             f"Tiny random-init BERT (2 layers, hidden 64) magnitude-pruned to {TARGET:g}x in {BLOCK} blocks, metrics on "
             f"{DEV_EXAMPLES} real {TASK} dev examples, exported to packed ONNX (seq {SEQ_LEN}), profiled with "
             f"`edgeprune profile` (host measured, 50 runs; other targets predicted). Total {out['elapsed_s']} s.", "",
             "pyproject.toml:", "", "```toml", PYPROJECT.rstrip(), "```", ""]
    for r in runs:
        lines += [f"`{' '.join(r['args'])}` -> exit {r['exit_code']}", "", "```", (r["stdout"] + r["stderr"]).rstrip(),
                  "```", ""]
    lines += ["JUnit XML (first run):", "", "```xml", junit.rstrip(), "```", "", "Markdown (first run):", "",
              md.rstrip(), ""]
    (RESULTS / "ci_gate_sample.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
