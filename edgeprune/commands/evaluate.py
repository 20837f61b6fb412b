"""``edgeprune eval``: official GLUE metrics of a checkpoint on one split."""
from __future__ import annotations

from pathlib import Path

import click

from .dataopts import DATA_HELP, TASK_HELP, data_options, resolve_task


def infer_task(model: str):
    """The task recorded in a finetune run (config.json) or a compress run (compression.json), if any."""
    from ..io import read_json

    root = Path(model)
    for name in ("config.json", "compression.json"):
        path = root / name
        if path.is_file() and (root / "model").is_dir():
            try:
                task = read_json(path).get("task")
            except (OSError, ValueError, AttributeError):
                continue
            if task:
                return task  # a GLUE key, or a file task's dict
    return None


@click.command("eval", short_help="Evaluate a checkpoint on a GLUE task.")
@click.option("--model", required=True, help="Model folder, finetune/compress run folder, or alias.")
@click.option("--task", default=None, help=TASK_HELP + " Default: the task recorded in a run folder.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help=DATA_HELP + " Omitted with a GLUE task: the datasets hub.")
@data_options
@click.option("--split", type=click.Choice(["dev", "train"]), default="dev", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--max-seq-len", type=click.IntRange(1, 512), default=128, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N examples.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None, help="Write the metrics as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an --out file that exists.")
def command(model: str, task: str | None, data_dir: Path | None, split: str, batch_size: int, max_seq_len: int,
            limit: int | None, out_file: Path | None, overwrite: bool, text_column: str | None,
            text_pair_column: str | None, label_column: str | None, dev_fraction: float | None) -> None:
    """Evaluate MODEL on TASK and print the official metrics."""
    from ..errors import ConfigError
    from ..io import write_json
    from ..outputs import output_file
    from ..training import task_metrics

    recorded = infer_task(model)
    if task is None and recorded is None and data_dir is None:
        raise ConfigError(f"cannot tell the task of {model}; pass --task (e.g. --task mrpc) or --data")
    spec = resolve_task(task, data_dir, text_column=text_column, text_pair_column=text_pair_column,
                        label_column=label_column, dev_fraction=dev_fraction, model=model, recorded=recorded)
    output_file(out_file, overwrite=overwrite, flag="--out", example="metrics.json")
    report = task_metrics(model, spec, data_dir, split=split, batch_size=batch_size, max_seq_len=max_seq_len,
                          limit=limit, progress=True)
    report["model"] = str(model)
    if out_file is not None:
        write_json(out_file, report)
    names = [k for k in ("accuracy", "f1", "matthews_corr", "pearson", "spearman") if k in report]
    click.echo(f"{report['task']} {split} ({report['num_examples']} examples): "
               + ", ".join(f"{k} {report[k]:.4f}" for k in names) + f"; main {report['metric']} = {report['main']:.4f}")
