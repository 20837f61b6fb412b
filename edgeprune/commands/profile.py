"""``edgeprune profile``: latency, memory and size on the host, a Pi over SSH, a phone over adb, qemu."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("profile", help="Profile an .onnx/.tflite artifact or an export bundle: measured (host, --ssh, "
                               "--adb), emulated instruction counts (--emulate) and roofline predictions for "
                               "every target. Writes profile.json, profile.md and profile.png.")
@click.argument("artifact", type=click.Path(exists=True))
@click.option("--target", default=None,
              help="The device --ssh/--adb reaches (default rpi4 / phone). Without --ssh/--adb: predict for it only; "
                   "this machine is always recorded as host.")
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--batch", type=int, default=None, help="Default: the bundle manifest's, else 1.")
@click.option("--seq-len", type=int, default=None, help="Default: the bundle manifest's, else 128.")
@click.option("--warmup", type=int, default=5, show_default=True)
@click.option("--runs", type=int, default=20, show_default=True)
@click.option("--xnnpack/--no-xnnpack", default=None, help=".tflite: only with / without XNNPACK (default: both).")
@click.option("--emulate", multiple=True, help="Emulate a target's CPU under qemu-aarch64 (rpi4, rpi5); repeatable.")
@click.option("--ssh", default=None, help="Measure on user@host[:port] over SSH.")
@click.option("--identity", type=click.Path(dir_okay=False), default=None, help="SSH private key.")
@click.option("--remote-python", default="python3", show_default=True,
              help="Python on the SSH device that has onnxruntime / ai-edge-litert.")
@click.option("--known-hosts", type=click.Path(dir_okay=False), default=None,
              help="known_hosts file for --ssh (default: ssh's own configuration and known_hosts).")
@click.option("--accept-new-host-key", is_flag=True,
              help="--ssh: accept and pin a host key seen for the first time (a changed key is still refused).")
@click.option("--adb", default=None, help="Measure on the Android device with this serial.")
@click.option("--adb-binary", type=click.Path(dir_okay=False), default=None, help="adb executable (default: PATH).")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False), default=None,
              help="Android arm64 benchmark_model or onnxruntime_perf_test to push with --adb.")
@click.option("--use-gpu", is_flag=True, help="--adb: also run the TFLite GPU delegate.")
@click.option("--big-cores", is_flag=True, help="--adb: pin to the target's big cores (taskset).")
@click.option("--host/--no-host", "measure_host", default=None,
              help="Also measure on this machine, recorded as host (default: only when neither --ssh, --adb "
                   "nor a --target other than host is given).")
@click.option("--predict/--no-predict", default=True, show_default=True, help="Roofline predictions for every target.")
@click.option("--baseline", type=click.Path(exists=True), default=None,
              help="Dense artifact or bundle to profile the same way and compare against.")
@click.option("--allow-mismatch", is_flag=True,
              help="--baseline: compare even when the input shapes differ (the difference is labelled).")
@click.option("--calibrate", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A profile.json with measured runs: use their fitted efficiency in the predictions.")
@click.option("--targets-dir", type=click.Path(file_okay=False), default=None, help="Extra folder of target TOMLs.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds per run before giving up.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: the bundle folder, or ARTIFACT's folder/profile-<name>).")
@click.option("--overwrite", is_flag=True, help="Replace a profile (profile.json, .md, .png) in the output folder.")
def command(artifact: str, target: str | None, threads: int, batch: int | None, seq_len: int | None, warmup: int,
            runs: int, xnnpack: bool | None, emulate: tuple[str, ...], ssh: str | None, identity: str | None,
            remote_python: str, known_hosts: str | None, accept_new_host_key: bool, adb: str | None, adb_binary: str | None,
            benchmark_binary: str | None, use_gpu: bool, big_cores: bool, measure_host: bool | None, predict: bool,
            baseline: str | None, allow_mismatch: bool, calibrate: str | None, targets_dir: str | None, timeout: float,
            out: str | None, overwrite: bool) -> None:
    from edgeprune.outputs import output_file
    from edgeprune.profiling.api import ProfileConfig, profile
    from edgeprune.profiling.report import FILES, predicted_vs_measured, results_table
    from edgeprune.tables import print_table

    cfg = ProfileConfig(
        target=target, threads=threads, batch=batch, seq_len=seq_len, warmup=warmup, runs=runs,
        xnnpack="both" if xnnpack is None else ("on" if xnnpack else "off"), measure_host=measure_host,
        predict=predict, emulate=tuple(emulate), ssh=ssh, identity=identity, remote_python=remote_python,
        known_hosts=known_hosts, accept_new_host_key=accept_new_host_key, adb=adb, adb_binary=adb_binary, benchmark_binary=benchmark_binary,
        use_gpu=use_gpu, big_cores=big_cores, baseline=baseline, allow_mismatch=allow_mismatch, targets_dir=targets_dir, calibrate=calibrate,
        timeout_s=timeout)
    src = Path(artifact)
    dest = Path(out) if out else (src if src.is_dir() else src.parent / f"profile-{src.stem}")
    for name in FILES.values():
        output_file(dest / name, overwrite=overwrite, flag="--out", example=name)
    report = profile(artifact, out=dest, config=cfg)
    for table in (results_table(report), predicted_vs_measured(report)):
        if table is not None:
            print_table(table)
    if report.get("predict_only"):
        click.echo(f"{report['predict_only']}: predicted only (an estimate); nothing ran on a "
                   f"{report['predict_only']}: measure it with --ssh (or count instructions with --emulate)")
    if report.get("comparison"):
        from edgeprune.profiling.report import comparison_lines

        click.echo("\n".join(comparison_lines(report)))
    click.echo(f"wrote {report['files']['json']}, profile.md, profile.png")
