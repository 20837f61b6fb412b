"""``edgeprune finetune``: dense fine-tuning of a BERT-family model on a GLUE task or your own data."""
from __future__ import annotations

from pathlib import Path

import click

from .dataopts import DATA_HELP, TASK_HELP, data_options, pop_data_flags, resolve_task


@click.command("finetune", short_help="Fine-tune a dense model on a GLUE task or your own data.")
@click.option("--model", required=True, help="Model folder (save_pretrained form), Hub id (org/name) or alias: "
              "minilm-l6.")
@click.option("--task", default=None, help=TASK_HELP)
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help=DATA_HELP + " Omitted with a GLUE --task: the datasets hub.")
@data_options
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run directory to write.")
@click.option("--epochs", type=float, default=None, help="Training epochs [3].")
@click.option("--lr", type=float, default=None, help="Peak learning rate of AdamW [2e-5].")
@click.option("--batch-size", type=int, default=None, help="Training batch size per process [32].")
@click.option("--max-seq-len", type=int, default=None, help="Truncate inputs to this many tokens [128].")
@click.option("--warmup-ratio", type=float, default=None, help="Fraction of steps of linear warmup [0.1].")
@click.option("--weight-decay", type=float, default=None, help="AdamW weight decay [0.01].")
@click.option("--seed", type=int, default=None, help="Random seed [42].")
@click.option("--max-steps", type=int, default=None, help="Stop after this many steps (overrides --epochs).")
@click.option("--train-limit", type=int, default=None, help="Use only the first N training examples.")
@click.option("--eval-limit", type=int, default=None, help="Evaluate on the first N dev examples only.")
@click.option("--save-steps", type=int, default=None, help="Checkpoint every N steps [every epoch].")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
def command(model: str, task: str | None, data_dir: Path | None, out_dir: Path, resume: bool, overwrite: bool,
            **flags: object) -> None:
    """Fine-tune MODEL on TASK; writes OUT/config.json, checkpoints/, model/ and metrics.json (last)."""
    from ..errors import ConfigError
    from ..training import TrainConfig, saved_config

    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pass one of them")
    dflags = pop_data_flags(flags)
    if task is None and data_dir is None:
        raise ConfigError("--task or --data is required (a GLUE task, or your own CSV/TSV/JSONL file)")
    spec = resolve_task(task, data_dir, model=model, **dflags)
    given = {_FLAG_TO_FIELD[k]: v for k, v in flags.items() if v is not None}
    base = saved_config(out_dir) if resume else None
    cfg = TrainConfig.from_dict({**(base.to_dict() if base else {}), **given})
    from ..training import finetune

    from ..quiet import to_stderr

    with to_stderr():  # library prints (Trainer's metric dicts) are logs: stderr; the result line is stdout
        report = finetune(model, spec, data_dir, out_dir, cfg, resume=resume, overwrite=overwrite)
    from ..data.glue import task_key
    from ..distributed import is_main
    from ..modelcard import labels_of, write_model_card

    if is_main():
        write_model_card(out_dir / "model", model=model, task=task_key(spec), labels=labels_of(out_dir / "model"),
                         metrics=report, kind="fine-tuned")
    others = ", ".join(f"{k} {report[k]:.4f}" for k in ("accuracy", "f1", "matthews_corr", "pearson", "spearman")
                       if k in report and k != report["metric"])
    click.echo(f"{spec.name} dev {report['metric']} = {report['main']:.4f}" + (f" ({others})" if others else "")
               + f" on {report['num_examples']} examples; run in {out_dir}")


_FLAG_TO_FIELD = {"epochs": "epochs", "lr": "lr", "batch_size": "batch_size", "max_seq_len": "max_seq_len",
                  "warmup_ratio": "warmup_ratio", "weight_decay": "weight_decay", "seed": "seed",
                  "max_steps": "max_steps", "train_limit": "train_limit", "eval_limit": "eval_limit",
                  "save_steps": "save_steps"}
