"""profile.json + profile.md + profile.png, each written atomically into the output folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeprune.io import atomic_file, check_writable_dir, write_json
from edgeprune.tables import Column, Table, markdown_lines


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


def _kind(r: dict[str, Any]) -> str:
    """measured / predicted (estimate) / emulated, and a GPU row whose delegation was not complete."""
    if r["kind"] == "predicted":
        return "predicted (estimate)"
    if r.get("unit") == "gpu" and r["kind"] == "measured" and not r.get("latency_ms"):
        status = (r.get("delegation") or {}).get("status", "unknown")
        return f"measured, delegation {status}: not a GPU latency"
    return r["kind"]


def results_table(report: dict[str, Any]) -> Table:
    cols = [Column("target"), Column("kind"), *(Column(n, right=True) for n in (
        "mean ms", "p50", "p90", "p99", "std", "instructions/inference", "peak RSS MiB", "threads"))]
    rows = []
    for r in report["results"]:
        lat = r.get("latency_ms") or r.get("mixed_latency_ms") or {}
        inst = f"{r['instructions']:,}" if r.get("instructions") else "-"
        rows.append([_label(r), _kind(r), *(_ms(lat.get(k)) for k in ("mean", "p50", "p90", "p99", "std")), inst,
                     _mb(r.get("peak_memory_bytes")), str(r.get("threads", "-"))])
        if r.get("gpu_latency_ms"):
            rows.append([f"{r['target']} (gpu)", "predicted (estimate)", _ms(r["gpu_latency_ms"]["mean"]),
                         *["-"] * 7])
    return Table(cols, rows, title="Results")


def measured_on(report: dict[str, Any]) -> list[str]:
    """One line per device a measurement ran on (host with its CPU and architecture, ssh, adb)."""
    out = []
    for r in report["results"]:
        if r["kind"] != "measured":
            continue
        d = r.get("device") or {}
        if not isinstance(d, dict):
            d = {"dest": d}
        where = {"host": "this machine", "ssh": f"ssh {d.get('dest', '?')}", "adb": f"adb {d.get('serial', '?')}"}
        text = f"{r['target']}: {where.get(r.get('runner') or '', r.get('runner') or '?')}"
        hw = ", ".join(str(x) for x in (d.get("machine"), d.get("cpu")) if x)
        text += f" ({hw})" if hw else ""
        if d.get("host_key"):
            text += f"; host key: {d['host_key']}"
        if r.get("delegation"):
            dd = r["delegation"]
            nodes = (f", {dd['nodes_delegated']}/{dd['nodes_total']} nodes" if dd.get("nodes_total") else "")
            kern = f", {dd['delegate_kernels']} delegate kernels" if dd.get("delegate_kernels") is not None else ""
            text += f"; GPU delegation {dd.get('status')}{nodes}{kern}"
        if text not in out:
            out.append(text)
    return out


def comparison_lines(report: dict[str, Any]) -> list[str]:
    """The printed comparison: both numbers of each pair, the speed-up, and what else differs."""
    lines = []
    for row in report.get("comparison") or []:
        note = f"  [differs: {'; '.join(row['differs'])}]" if row.get("differs") else ""
        if row.get("speedup"):
            kind = "predicted (estimate)" if row["kind"] == "predicted" else row["kind"]
            unit = " gpu" if row.get("unit") == "gpu" else ""
            xnn = " no-xnnpack" if row.get("xnnpack") is False else ""
            lines.append(f"{row['target']}{unit}{xnn} {kind}: {_ms(row['latency_ms'])} ms vs baseline "
                         f"{_ms(row['baseline_latency_ms'])} ms: {row['speedup']:.2f}x faster{note}")
        elif row.get("instruction_ratio"):
            lines.append(f"{row['target']} emulated: {row['instructions']:,} vs {row['baseline_instructions']:,} "
                         f"instructions: {row['instruction_ratio']:.2f}x fewer{note}")
    return lines


def predicted_vs_measured(report: dict[str, Any]) -> Table | None:
    pred = {r["target"]: r for r in report["results"] if r["kind"] == "predicted"}
    rows = [r for r in report["results"] if r["kind"] == "measured" and r["target"] in pred
            and r.get("unit", "cpu") == "cpu"]
    if not rows:
        return None
    cols = [Column("target"), *(Column(n, right=True) for n in (
        "measured mean ms", "predicted ms (efficiency)", "predicted / measured", "fitted efficiency"))]
    out = []
    for r in rows:
        p = pred[r["target"]]
        ratio = p["latency_ms"]["mean"] / r["latency_ms"]["mean"]
        out.append([_label(r), _ms(r["latency_ms"]["mean"]),
                    f"{_ms(p['latency_ms']['mean'])} ({p['efficiency']:.2f}, {p['efficiency_source']})",
                    f"{ratio:.2f}", f"{r.get('efficiency_fit', float('nan')):.3f}"])
    return Table(cols, out, title="Predicted next to measured")


def comparison_table(report: dict[str, Any]) -> Table:
    """Pruned next to the baseline: latency, instruction count and file size, and what else differs."""
    rows = []
    for row in report["comparison"]:
        d = "; ".join(row.get("differs") or []) or "-"
        if row["kind"] == "file":
            rows.append(["file", "size", f"{row['file_bytes']:,} B", f"{row['baseline_file_bytes']:,} B",
                         f"{row['size_ratio']:.2f}x", d])
        elif "instructions" in row:
            rows.append([row["target"], "emulated", f"{row['instructions']:,} instr",
                         f"{row['baseline_instructions']:,} instr", f"{row['instruction_ratio']:.2f}x", d])
        elif row.get("speedup") is not None:
            name = row["target"] + (" (gpu)" if row["unit"] == "gpu" else "") + \
                (" (no-xnnpack)" if row.get("xnnpack") is False else "")
            kind = "predicted (estimate)" if row["kind"] == "predicted" else row["kind"]
            rows.append([name, kind, f"{_ms(row['latency_ms'])} ms", f"{_ms(row['baseline_latency_ms'])} ms",
                         f"{row['speedup']:.2f}x", d])
    cols = [Column("target"), Column("kind"), *(Column(n, right=True) for n in ("this", "baseline",
                                                                                 "speed-up / ratio")),
            Column("differs")]
    return Table(cols, rows)


def markdown(report: dict[str, Any]) -> str:
    inputs = ", ".join(f"{k} {v}" for k, v in (report.get("inputs") or {}).items()) or "-"
    where = measured_on(report)
    out = [f"# Profile: {Path(report['artifact']).name}", "",
           f"- format: {report['format']}, dtype {report.get('dtype', '-')}, file: {report['file_bytes']:,} bytes, "
           f"batch {report['batch']}, seq_len {report['seq_len']}, threads {report['threads']}, "
           f"warm-up {report['warmup']}, runs {report['runs']}",
           f"- inputs fed (read from the artifact): {inputs}",
           f"- load time (first measured run): {_ms(report.get('load_ms'))} ms",
           f"- this machine: {report['machine']['platform']}"
           + (f", {report['machine']['cpu']}" if report["machine"].get("cpu") else ""),
           "- measured on: " + ("; ".join(where) if where else "nothing: every latency below is an estimate"), ""]
    if report.get("predict_only"):
        out += [f"{report['predict_only']} was predicted only (an estimate); nothing ran on a "
                f"{report['predict_only']}.", ""]
    if report.get("costs"):
        c = report["costs"]
        out += [f"- roofline inputs: {c['flops'] / 1e9:.3f} GFLOP, {c['bytes'] / 2**20:.1f} MiB touched, "
                f"{c['ops']} ops", ""]
    for table in (results_table(report), predicted_vs_measured(report)):
        if table is not None:
            out += [f"## {table.title}", "", *markdown_lines(table), ""]
    if report.get("comparison"):
        base = report["baseline"]
        out += [f"## Against the baseline {Path(base['artifact']).name}", ""]
        diff = report["comparison"][-1].get("differs") if report["comparison"] else None
        if diff:
            out += [f"Not like for like: {'; '.join(diff)}. The ratios below include those differences.", ""]
        out += [*markdown_lines(comparison_table(report)), ""]
    out += ["Emulated rows are instruction counts of one single-thread inference under qemu-aarch64 with the "
            "target's CPU model; emulated time is never reported as a latency. Predicted rows are roofline "
            "estimates (see efficiency), not measurements. A GPU row is a GPU latency only when benchmark_model "
            "reports the whole graph delegated; partial or failed delegation is shown as such.", ""]
    return "\n".join(out)


COLOURS = {"measured": "#1f77b4", "predicted": "#ff7f0e", "emulated": "#7f7f7f"}


def plot_bars(rep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Bar name -> {value, kind, spread (p10, p90) or None} for every row that has a latency."""
    out: dict[str, dict[str, Any]] = {}
    for r in rep["results"]:
        lat = r.get("latency_ms")
        if lat:
            kind = r["kind"]
            spread = (lat["p10"], lat["p90"]) if kind == "measured" and "p10" in lat and "p90" in lat else None
            name = f"{_label(r)}\n{'predicted' if kind == 'predicted' else kind}"
            out[name] = {"value": lat["mean"], "kind": kind, "spread": spread}
        if r.get("gpu_latency_ms"):
            out[f"{r['target']} (gpu)\npredicted"] = {"value": r["gpu_latency_ms"]["mean"], "kind": "predicted",
                                                       "spread": None}
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    this = plot_bars(report)
    base = plot_bars(report["baseline"]) if report.get("baseline") else {}
    names = list(this) + [k for k in base if k not in this]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names)), 4.4))
    w = 0.4 if base else 0.7
    series = [(this, -w / 2 if base else 0.0, None, 1.0)] + ([(base, w / 2, "//", 0.55)] if base else [])
    spread_drawn = False
    for bars, off, hatch, alpha in series:
        keep = [(x, bars[n]) for x, n in enumerate(names) if n in bars]
        if not keep:
            continue
        xs = [x + off for x, _ in keep]
        vals = [b["value"] for _, b in keep]
        rects = ax.bar(xs, vals, w, color=[COLOURS.get(b["kind"], "#7f7f7f") for _, b in keep], hatch=hatch,
                       alpha=alpha, edgecolor="black", linewidth=0.4)
        ax.bar_label(rects, labels=[_ms(v) for v in vals], fontsize=6, padding=1)
        for x, (_, b) in zip(xs, keep):
            if b["spread"]:
                lo, hi = b["spread"]
                ax.errorbar([x], [b["value"]], yerr=[[max(b["value"] - lo, 0)], [max(hi - b["value"], 0)]],
                            fmt="none", ecolor="black", capsize=3, linewidth=0.8)
                spread_drawn = True
    handles = [Patch(color=COLOURS["measured"], label="measured"),
               Patch(color=COLOURS["predicted"], label="predicted (estimate)")]
    if base:
        handles += [Patch(facecolor="white", edgecolor="black", label=Path(report["artifact"]).name),
                    Patch(facecolor="white", edgecolor="black", hatch="//",
                          label=f"baseline {Path(report['baseline']['artifact']).name}")]
    if spread_drawn:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="black", marker="|", linestyle="-", label="p10-p90 of the runs"))
    ax.set_xticks(list(range(len(names))))
    ax.set_xticklabels(names, fontsize=7)
    ax.set_ylabel("latency per inference (ms, log)")
    ax.set_yscale("log")
    measured = any(b["kind"] == "measured" for b in this.values())
    ax.set_title(f"batch {report['batch']}, seq_len {report['seq_len']}, threads {report['threads']}"
                 + ("" if measured else ": estimates only, nothing measured"), fontsize=9)
    ax.legend(handles=handles, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


FILES = {"json": "profile.json", "markdown": "profile.md", "plot": "profile.png"}


def write_report(report: dict[str, Any], out: str | os.PathLike[str]) -> dict[str, str]:
    out = check_writable_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: str(out / name) for k, name in FILES.items()}
    with atomic_file(files["markdown"]) as tmp:
        tmp.write_text(markdown(report))
    with atomic_file(files["plot"]) as tmp:
        plot(report, tmp)
    write_json(files["json"], {**report, "files": files})
    return files
