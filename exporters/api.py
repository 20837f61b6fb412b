"""``export()``: one verb for every format; the exporter modules only build and verify their artifact."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeprune.bundle import bundle_kind, write_manifest
from edgeprune.errors import NumericMismatchError
from edgeprune.io import atomic_dir, write_json
from edgeprune.rundir import PrunedRun, open_run
from . import exporter_for
from .base import Exporter, ExportConfig, ExportResult
from .prepared import prepare

VERIFICATION_JSON = "verification.json"
REPORT_JSON = "export_report.json"


def check_data(config: ExportConfig, run: PrunedRun) -> None:
    """Before any work: the data that verification (dev) or int8 calibration (train) reads must load."""
    from edgeprune.data.glue import get_task, load_split
    from edgeprune.errors import ConfigError

    if not (config.verify or config.dtype == "int8"):
        return
    if config.data_dir is None:
        raise ConfigError("data_dir (--data) is required for verification and int8 calibration: the data the model "
                          "was trained on (a CSV/TSV/JSONL file, a folder with train.*, or a GLUE folder); "
                          "or skip verification with --no-verify")
    task = config.task or run.task
    if not task:
        raise ConfigError("no task known for this checkpoint; pass --task (needed for verification and int8 "
                          "calibration)")
    spec = get_task(task)
    for split in (("dev",) if config.verify else ()) + (("train",) if config.dtype == "int8" else ()):
        load_split(spec, split, config.data_dir, limit=1)


def failure_message(config: ExportConfig, verification: dict[str, Any]) -> str:
    """One line: what failed, by how much, on what data, and what to try (quantized artifacts)."""
    v = verification
    what = f"{config.format} {config.mode} {config.dtype} artifact failed verification against PyTorch"
    data = ""
    if "metric_torch" in v:
        data = (f" ({v.get('metric')} {v['metric_torch']:.4f} torch vs {v['metric_artifact']:.4f} artifact on "
                f"{v.get('num_examples')} {v.get('task') or ''} dev examples)")
    hints = []
    if config.dtype.startswith("int8"):
        if getattr(config.options, "int8_embeddings", False):
            hints.append("--float-embeddings (int8 embedding tables cost accuracy on some models)")
        if config.dtype == "int8-dynamic":
            hints.append("--dtype int8 (static, calibrated)")
        else:
            hints.append(f"more --calib-examples (now {config.calib_examples})")
        hints.append("--dtype fp16")
    hint = f"; try {', or '.join(hints)}" if hints else ""
    return f"{what}: {v.get('reason', 'no verification record')}{data}; nothing was written{hint}"


def export(run_dir: str | os.PathLike[str], config: ExportConfig, out: str | os.PathLike[str]) -> ExportResult:
    """Export a compress run (or a dense checkpoint) into a verified bundle directory at ``out``.

    Nothing is left at ``out`` unless the artifact was built and verified. An earlier bundle there is
    replaced (the CLI asks for ``--overwrite`` first); a folder that holds anything else is refused.
    """
    from edgeprune.outputs import output_dir

    run = open_run(run_dir)
    exporter: Exporter = exporter_for(config.options)(config)
    exporter.check_config(run)
    check_data(config, run)
    output_dir(out, "export bundle", bundle_kind, overwrite=True)
    out = Path(out)
    from edgeprune.quiet import StageClock, stage

    with StageClock() as clock, atomic_dir(out) as tmp:
        stage(f"[export] {config.format} {config.dtype} {config.mode} from {run.root}")
        prepared = prepare(run, config.task or run.task)
        report = exporter.build(prepared, tmp)
        report["phases_s"] = clock.phases()  # where the time went, stage by stage (issue 16: export time)
        stage(f"[export] writing the bundle to {out}")
        verification = report.get("verification", {})
        write_json(tmp / VERIFICATION_JSON, verification)
        write_json(tmp / REPORT_JSON, {k: v for k, v in report.items() if k not in ("manifest", "card")})
        if config.verify and not verification.get("passed", False):
            raise NumericMismatchError(failure_message(config, verification))
        fields = {
            "format": config.format,
            "artifact": report["artifact"],
            "dtype": config.dtype,
            "mode": config.mode,
            "seq_len": config.seq_len,
            "task": config.task or run.task,
            "compression": run.info.get("compression", {}),
            "metrics": run.info.get("metrics", {}),  # compress's dense/pruned metrics: `check --max-accuracy-drop`
            "verification": VERIFICATION_JSON,
            **report.get("manifest", {}),
        }
        from edgeprune.modelcard import write_model_card

        v, card = verification, report.get("card", {})
        write_model_card(tmp, model=str(run.root), task=fields["task"], labels=fields.get("labels"),
                         metrics={v.get("metric", "main"): v["metric_artifact"]} if "metric_artifact" in v else None,
                         kind=f"{config.format} {config.dtype} {fields['mode']} bundle",
                         library=card.get("library", config.format),
                         extra_tags=(config.format, config.dtype, *card.get("tags", ())), notes=card.get("notes"),
                         compression={k: c["compression"] for k, c in fields["compression"].items()
                                      if isinstance(c, dict) and "compression" in c} or None)
        write_manifest(tmp, fields)
    return ExportResult(Path(out), Path(out) / report["artifact"], verification, report)
