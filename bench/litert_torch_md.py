"""Render bench/results/NAME.json (written by ``bench.litert_torch_ab``) as bench/results/NAME.md.

    python -m bench.litert_torch_md [--name litert_torch_ab]
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from bench.common import RESULTS, cell, md_table


def _ops(rec: dict[str, Any], top: int = 8) -> str:
    ops = rec.get("ops") or {}
    return ", ".join(f"{k} {v}" for k, v in list(ops.items())[:top]) or "-"


def _side_rows(name: str, res: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for dt, r in res.items():
        if not isinstance(r, dict) or "tf" not in r:
            continue
        for side, label in (("tf", "TF (hand-written)"), ("lt", "litert-torch"),
                            ("lt_fc", "litert-torch, int8 recipe without BATCH_MATMUL")):
            if side not in r:
                continue
            s = r[side]
            v = s.get("verification") or {}
            rows.append([name, dt, label, "yes" if s.get("ok") else f"no: {s.get('error', '')[:120]}",
                         {True: "pass", False: f"FAIL: {str(v.get('reason'))[:110]}"}.get(v.get("passed"), "-"), cell(v.get("max_abs_diff"), ".2e"),
                         cell(v.get("metric_diff_points"), ".2f"), cell(s.get("file_bytes"), ",.0f"),
                         s.get("num_ops", "-"), _ops(s)])
    return rows


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = ["# litert-torch vs the hand-written TF path (edgeprune issue 17, item 6)", "",
             f"Written by `python -m bench.litert_torch_ab`. Task {res['task']}, batch 1. "
             f"Machine: {m.get('cpu')}, {m.get('cores')} cores, load average {m.get('loadavg_start')} at start, "
             f"{m.get('loadavg_end')} at the end.", ""]
    if res.get("conditions"):
        lines += [f"Conditions: {res['conditions']}", ""]
    lt = res["versions"].get("litert_torch_venv", [])
    pv = res["versions"].get("project_venv", {})
    lines += [f"Versions: project venv {', '.join(f'{k} {v}' for k, v in pv.items())}; "
              f"litert-torch venv {', '.join(lt)}.", ""]
    model = res.get("model", {})
    p = model.get("prune", {})
    lines += ["## Verification and ops", "",
              f"Main model: {model.get('description')} ({cell(p.get('actual_compression'), '.2f')}x linear "
              f"compression, block {model.get('block')}, seq {model.get('seq_len')}).", ""]
    head = ["model", "dtype", "artifact", "converted", "verified", "max abs diff", "metric diff (points)", "bytes",
            "ops", "top ops"]
    rows = _side_rows("main", res.get("main", {}))
    for arch, r in (res.get("arch_check") or {}).items():
        rows += _side_rows(f"tiny {arch}", r)
    lines += md_table(head, rows) + [""]
    t = res.get("timing")
    if t:
        lines += ["## Latency (LiteRT interpreter, XNNPACK, 1 thread, interleaved A/B, one process per timing)", "",
                  f"{t['rounds']} rounds x {t['runs_per_process']} invokes per process; each value is one process's "
                  "median; median and [min, max] over rounds.", ""]
        rows = []
        for dt, s in t["dtypes"].items():
            rows.append([dt, f"{s['tf']['median_ms']:.2f} [{s['tf']['min_ms']:.2f}, {s['tf']['max_ms']:.2f}]",
                         f"{s['lt']['median_ms']:.2f} [{s['lt']['min_ms']:.2f}, {s['lt']['max_ms']:.2f}]",
                         f"{s['ratio_lt_over_tf_median']:.3f}",
                         "{median:.3f} [{min:.3f}, {max:.3f}]".format(**s["ratio_lt_over_tf_paired"]),
                         "yes" if s["within_10pct"] else "no"])
        lines += md_table(["dtype", "TF ms", "litert-torch ms", "ratio lt/tf (medians)", "paired ratio per round",
                           "within 10%"], rows) + [""]
        if t.get("errors"):
            lines += ["Timing errors: " + "; ".join(t["errors"]), ""]
    d = res.get("decision")
    if d:
        lines += ["## Decision (the issue's 10% rule)", "", d["summary"], ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="render a litert_torch_ab result as Markdown")
    ap.add_argument("--name", default="litert_torch_ab", help="results file stem (litert_torch_arch, ...)")
    a = ap.parse_args()
    res = json.loads((RESULTS / f"{a.name}.json").read_text())
    (RESULTS / f"{a.name}.md").write_text(render(res))


if __name__ == "__main__":
    main()
