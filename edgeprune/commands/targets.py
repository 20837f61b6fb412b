"""``edgeprune targets``: the device targets, their peaks and where the figures come from."""
from __future__ import annotations

import json

import click


@click.command("targets", help="List the device targets (built-in TOMLs plus --targets-dir / $EDGEPRUNE_TARGETS).")
@click.option("--targets-dir", type=click.Path(file_okay=False), default=None,
              help="Extra folder of target TOML files (a file named like a built-in overrides it).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--sources", is_flag=True, help="Also print the sources of each target's figures.")
def command(targets_dir: str | None, as_json: bool, sources: bool) -> None:
    from edgeprune.targets import load_targets

    targets = load_targets(targets_dir)
    if as_json:
        click.echo(json.dumps({n: {**t.summary(), "sources": t.sources} for n, t in targets.items()}, indent=2))
        return
    from edgeprune.tables import Column, Table, print_table

    cols = [Column("name"), Column("cpu"), *(Column(n, right=True) for n in (
        "cores", "GHz", "FP32 GFLOP/s", "FP16", "INT8 GOP/s", "GB/s", "eff.")), Column("qemu"), Column("gpu")]
    rows = []
    for t in targets.values():
        s = t.summary()
        rows.append([t.name, t.cpu_model, str(t.cores), f"{t.clock_ghz:g}", f"{s['peak_gflops']['fp32']:.1f}",
                     f"{s['peak_gflops']['fp16']:.1f}", f"{s['peak_gflops']['int8']:.1f}", f"{t.bandwidth_gbs:g}",
                     f"{t.efficiency:g}", t.qemu_cpu or "-", t.gpu.model if t.gpu else "-"])
    print_table(Table(cols, rows, title="edgeprune targets"))
    if sources:
        for t in targets.values():
            click.echo(f"\n{t.name} ({t.path}):")
            for k, v in t.sources.items():
                click.echo(f"  {k}: {v}")
