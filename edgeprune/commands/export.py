"""``edgeprune export``: a compress run (or a dense checkpoint) -> a verified ONNX / TFLite / Hugging Face bundle."""
from __future__ import annotations

from pathlib import Path

import click

from .dataopts import data_options, resolve_task


def _seq_len(value: str) -> int | None:
    from edgeprune.errors import ConfigError

    if value.lower() == "dynamic":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--seq-len must be a number or 'dynamic', got {value!r}") from None


def _recorded_task(run_dir: Path):
    """The task a compress run (compression.json) or a checkpoint (config.json edgeprune_task) was made for."""
    from edgeprune.io import read_json

    for path, key in ((run_dir / "compression.json", "task"), (run_dir / "config.json", "edgeprune_task")):
        if path.is_file():
            try:
                task = read_json(path).get(key)
            except (OSError, ValueError, AttributeError):
                continue
            if task:
                return task
    return None


def _options(fmt: str, **flags):
    """The typed options of ``--format``, from the flags named like its fields (an unknown format fails here,
    before any data is read). ``--opset`` given to a format without one is refused; other flags of another
    format are ignored, as they always were."""
    import dataclasses

    from edgeprune.errors import ConfigError
    from edgeprune.exporters import get_exporter

    options_type = get_exporter(fmt).options_type
    fields = {f.name for f in dataclasses.fields(options_type)}
    if flags.get("opset") is not None and "opset" not in fields:
        raise ConfigError("--opset applies to ONNX exports only")
    return options_type(**{k: v for k, v in flags.items() if k in fields})


@click.command("export", short_help="Export a checkpoint to ONNX, TFLite or a shrunk HF checkpoint, verified.")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="onnx", show_default=True,
              help="Artifact format: onnx, tflite or hf (a Hugging Face checkpoint, pruned heads and FFN units removed).")
@click.option("--dtype", default="fp32", show_default=True, help="fp32, fp16, int8 (static, calibrated) or int8-dynamic.")
@click.option("--mode", default="packed", show_default=True,
              help="packed (ai.edgeprune ops), structured (whole rows/units removed, rest packed) or dense.")
@click.option("--seq-len", default="128", show_default=True, help="Fixed sequence length, or 'dynamic'.")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Fixed batch size (default: dynamic).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Data for verification (dev) and int8 calibration (train): your CSV/TSV/JSONL file or folder, "
                   "or a GLUE folder. Required unless --no-verify with a float dtype.")
@click.option("--task", default=None, help="GLUE task, classification or regression (default: the run's task).")
@data_options
@click.option("--verify-examples", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--calib-examples", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--no-verify", is_flag=True, help="Skip the comparison against PyTorch (not recommended).")
@click.option("--tflite-formulation", type=click.Choice(["timed", "fewest-macs"]), default="timed", show_default=True,
              help="TFLite packed: each pruned layer's formulation, the fastest 'timed' here in LiteRT (varies with "
                   "load) or the one with the 'fewest-macs' (the same structure on every machine).")
@click.option("--tflite-retime", is_flag=True,
              help="TFLite packed, timed: time every formulation afresh instead of reusing the latencies earlier "
                   "exports cached on this machine ($EDGEPRUNE_CACHE_DIR, default ~/.cache/edgeprune).")
@click.option("--tflite-segment-input", is_flag=True,
              help="TFLite: give a model without segment ids (DistilBERT) an unused token_type_ids input, so that "
                   "MediaPipe's BERT text-classifier metadata can describe it.")
@click.option("--int8-embeddings/--float-embeddings", default=True, show_default=True,
              help="ONNX int8: also store the embedding tables as int8 (they are over half of a pruned file).")
@click.option("--int8-layer-choice", "int8_choice", default="model", show_default=True,
              help="ONNX int8: per packed layer, packed int8 op or the standard int8 MatMul, chosen by the cost "
                   "'model' or 'measure'd here in onnxruntime.")
@click.option("--int8-threads", type=click.IntRange(min=1, max=256), default=1, show_default=True,
              help="ONNX int8 with --int8-layer-choice measure: threads to time the layers at (the target's).")
@click.option("--opset", type=int, default=None, help="ONNX only: opset version, 17-21 [17].")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Bundle folder to write.")
@click.option("--overwrite", is_flag=True, help="Replace a bundle already in --out (once the new one is verified).")
def command(run_dir: Path, fmt: str, dtype: str, mode: str, seq_len: str, batch: int | None, data_dir: Path | None,
            task: str | None, verify_examples: int, calib_examples: int, no_verify: bool,
            tflite_formulation: str, tflite_retime: bool, tflite_segment_input: bool,
            int8_embeddings: bool, int8_choice: str, int8_threads: int, out_dir: Path, overwrite: bool,
            text_column: str | None, text_pair_column: str | None, label_column: str | None,
            dev_fraction: float | None, opset: int | None) -> None:
    """Export RUN_DIR (a compress run, or a model folder with --mode dense) into a verified bundle at --out."""
    import dataclasses

    from edgeprune.data.glue import task_key, task_name
    from edgeprune.errors import ConfigError
    from edgeprune.exporters.api import export
    from edgeprune.exporters.base import ExportConfig
    from edgeprune.bundle import bundle_kind
    from edgeprune.outputs import output_dir
    from edgeprune.rundir import open_run

    config = ExportConfig(format=fmt, dtype=dtype, mode=mode, seq_len=_seq_len(seq_len), batch=batch,
                          data_dir=str(data_dir) if data_dir else None, verify_examples=verify_examples,
                          calib_examples=calib_examples, verify=not no_verify,
                          options=_options(fmt, opset=opset, int8_embeddings=int8_embeddings, int8_choice=int8_choice,
                                           int8_threads=int8_threads,
                                           formulation=tflite_formulation, retime=tflite_retime,
                                           segment_input=tflite_segment_input))
    open_run(run_dir)  # not a run / model folder: that message first
    output_dir(out_dir, "export bundle", bundle_kind, overwrite=overwrite)
    if data_dir is None and (config.verify or config.dtype == "int8"):
        raise ConfigError("--data is required for verification and int8 calibration (the data the model was "
                          "trained on); or pass --no-verify")
    spec = resolve_task(task, data_dir, text_column=text_column, text_pair_column=text_pair_column,
                        label_column=label_column, dev_fraction=dev_fraction, recorded=_recorded_task(run_dir),
                        need_data=False)
    config = dataclasses.replace(config, task=task_key(spec) if spec is not None else None)
    from edgeprune.quiet import to_stderr

    with to_stderr():  # library prints (Trainer's metric dicts) are logs: stderr; the result line is stdout
        res = export(run_dir, config, out_dir)
    v, rep = res.verification, res.report
    sizes = rep.get("sizes", {})
    click.echo(f"wrote {res.artifact} ({sizes.get('file_bytes', res.artifact.stat().st_size) / 1e6:.2f} MB"
               + (f"; ideal {sizes['ideal_bytes'] / 1e6:.2f} MB, dense {sizes['dense_file_bytes'] / 1e6:.2f} MB"
                  if "ideal_bytes" in sizes else "") + ")")
    if v.get("skipped"):
        click.echo("verification skipped (--no-verify)")
    else:
        click.echo(f"verified on {v.get('num_examples')} {task_name(v.get('task'))} dev examples: max abs diff "
                   f"{v.get('max_abs_diff', float('nan')):.2e}, {v.get('metric')} torch {v.get('metric_torch', 0):.4f} "
                   f"/ artifact {v.get('metric_artifact', 0):.4f}")
    if "parameters" in rep:
        p = rep["parameters"]
        click.echo(f"parameters {p['before']:,} -> {p['after']:,} ({p['ratio']:.1%})")
    if rep.get("int8_fallback_layers"):
        click.echo(f"{len(rep['int8_fallback_layers'])} packed layers run as the standard int8 MatMul (packed int8 "
                   "not faster; see export_report.json layers[].int8_reason)")
    if rep.get("fallback_layers"):
        click.echo(f"{len(rep['fallback_layers'])} layers use the dense-rebuild fallback (PackedDenseMatMul)")
