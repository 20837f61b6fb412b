"""profile.json + profile.md + profile.png, each written atomically into the output folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeprune.io import atomic_file, check_writable_dir, write_json


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if v < 10 else f"{v:.1f}"


def _mb(v: Any) -> str:
    return "-" if not v else f"{v / 2**20:.1f}"


def _label(r: dict[str, Any]) -> str:
    extra = []
    if r.get("unit") == "gpu":
        extra.append("gpu")
    if r.get("xnnpack") is False:
        extra.append("no-xnnpack")
    if r.get("runner") not in (None, "host") and r["kind"] == "measured":
        extra.append(r["runner"])
    return r["target"] + (f" ({', '.join(extra)})" if extra else "")


def results_table(report: dict[str, Any]) -> list[str]:
    lines = ["| target | kind | mean ms | p50 | p90 | p99 | std | instructions/inference | peak RSS MiB | threads |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lat = r.get("latency_ms") or {}
        inst = f"{r['instructions']:,}" if r.get("instructions") else "-"
        lines.append(f"| {_label(r)} | {r['kind']} | {_ms(lat.get('mean'))} | {_ms(lat.get('p50'))} | "
                     f"{_ms(lat.get('p90'))} | {_ms(lat.get('p99'))} | {_ms(lat.get('std'))} | {inst} | "
                     f"{_mb(r.get('peak_memory_bytes'))} | {r.get('threads', '-')} |")
        if r.get("gpu_latency_ms"):
            lines.append(f"| {r['target']} (gpu) | predicted | {_ms(r['gpu_latency_ms']['mean'])} | - | - | - | - | - | - | - |")
    return lines


def predicted_vs_measured(report: dict[str, Any]) -> list[str]:
    pred = {r["target"]: r for r in report["results"] if r["kind"] == "predicted"}
    rows = [r for r in report["results"] if r["kind"] == "measured" and r["target"] in pred
            and r.get("unit", "cpu") == "cpu"]
    if not rows:
        return []
    lines = ["| target | measured mean ms | predicted ms (efficiency) | predicted / measured | fitted efficiency |",
             "|---|---|---|---|---|"]
    for r in rows:
        p = pred[r["target"]]
        ratio = p["latency_ms"]["mean"] / r["latency_ms"]["mean"]
        lines.append(f"| {_label(r)} | {_ms(r['latency_ms']['mean'])} | {_ms(p['latency_ms']['mean'])} "
                     f"({p['efficiency']:.2f}, {p['efficiency_source']}) | {ratio:.2f} | "
                     f"{r.get('efficiency_fit', float('nan')):.3f} |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    out = [f"# Profile: {Path(report['artifact']).name}", "",
           f"- format: {report['format']}, file: {report['file_bytes']:,} bytes, batch {report['batch']}, "
           f"seq_len {report['seq_len']}, threads {report['threads']}, warm-up {report['warmup']}, runs {report['runs']}",
           f"- load time (first measured run): {_ms(report.get('load_ms'))} ms",
           f"- machine: {report['machine']['platform']}", ""]
    if report.get("costs"):
        c = report["costs"]
        out += [f"- roofline inputs: {c['flops'] / 1e9:.3f} GFLOP, {c['bytes'] / 2**20:.1f} MiB touched, "
                f"{c['ops']} ops", ""]
    out += ["## Results", "", *results_table(report), ""]
    pvm = predicted_vs_measured(report)
    if pvm:
        out += ["## Predicted next to measured", "", *pvm, ""]
    if report.get("comparison"):
        base = report["baseline"]
        out += [f"## Against the baseline {Path(base['artifact']).name}", "",
                "| target | kind | this | baseline | speed-up / ratio |", "|---|---|---|---|---|"]
        for row in report["comparison"]:
            if row["kind"] == "file":
                out.append(f"| file | size | {row['file_bytes']:,} B | {row['baseline_file_bytes']:,} B | "
                           f"{row['size_ratio']:.2f}x |")
            elif "instructions" in row:
                out.append(f"| {row['target']} | emulated | {row['instructions']:,} instr | "
                           f"{row['baseline_instructions']:,} instr | {row['instruction_ratio']:.2f}x |")
            else:
                name = row["target"] + (" (gpu)" if row["unit"] == "gpu" else "") + \
                    (" (no-xnnpack)" if row.get("xnnpack") is False else "")
                out.append(f"| {name} | {row['kind']} | {_ms(row['latency_ms'])} ms | "
                           f"{_ms(row['baseline_latency_ms'])} ms | {row['speedup']:.2f}x |")
        out.append("")
    out += ["Emulated rows are instruction counts of one single-thread inference under qemu-aarch64 with the "
            "target's CPU model; emulated time is never reported as a latency. Predicted rows are roofline "
            "estimates (see efficiency).", ""]
    return "\n".join(out)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def bars(rep: dict[str, Any]) -> dict[str, float]:
        out = {}
        for r in rep["results"]:
            if r.get("latency_ms"):
                out[f"{_label(r)}\n{r['kind']}"] = r["latency_ms"]["mean"]
            if r.get("gpu_latency_ms"):
                out[f"{r['target']} (gpu)\npredicted"] = r["gpu_latency_ms"]["mean"]
        return out

    this = bars(report)
    base = bars(report["baseline"]) if report.get("baseline") else {}
    names = list(this) + [k for k in base if k not in this]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names)), 4.0))
    w = 0.4 if base else 0.7
    xs = range(len(names))
    ax.bar([x - (w / 2 if base else 0) for x in xs], [this.get(n, 0) for n in names], w,
           label=Path(report["artifact"]).name)
    if base:
        ax.bar([x + w / 2 for x in xs], [base.get(n, 0) for n in names], w,
               label=f"baseline {Path(report['baseline']['artifact']).name}")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, fontsize=7)
    ax.set_ylabel("latency per inference (ms, log)")
    ax.set_yscale("log")
    ax.set_title(f"batch {report['batch']}, seq_len {report['seq_len']}, threads {report['threads']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def write_report(report: dict[str, Any], out: str | os.PathLike[str]) -> dict[str, str]:
    out = check_writable_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / "profile.json"), "markdown": str(out / "profile.md"), "plot": str(out / "profile.png")}
    with atomic_file(files["markdown"]) as tmp:
        tmp.write_text(markdown(report))
    with atomic_file(files["plot"]) as tmp:
        plot(report, tmp)
    write_json(files["json"], {**report, "files": files})
    return files
