"""``compress()``: check the inputs once, then run the phases in order over one :class:`RunState`.

Each phase is a function of the state that skips what a resumed run finished before; a new phase
(a reconstruction pass, another kind of cut) is one more function in ``PHASES`` or ``CUT_PHASES``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from edgeprune.distributed import barrier, init as init_distributed
from edgeprune.errors import ConfigError
from edgeprune.io import read_json
from edgeprune.rundir import COMPRESSION_JSON, STATE_DIR, RunWriter, settings_diff

from .config import CompressConfig
from .cut import cut, cut_to_target, matrices, unit_layout
from .dense import dense, finetuned_for_task
from .regularize import regularize, reusable_regularized
from .retrain import retrain
from .state import RunState

PHASES: tuple[Callable[[RunState], None], ...] = (dense, regularize, cut, retrain)
# settings a resumed run may change (where it writes, what it keeps, notes)
RESUME_FREE = ("out", "extra", "keep_checkpoints", "data_dir", "keep_regularized", "config_version")


def run_kind(out: Path) -> Literal["finished", "partial"] | None:
    """For the overwrite rule (:mod:`edgeprune.outputs`): a finished or unfinished compress run, or neither."""
    if (out / COMPRESSION_JSON).is_file():
        return "finished"
    return "partial" if (out / STATE_DIR).is_dir() else None


def _resume_key(cfg: CompressConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    for k in RESUME_FREE:
        d.pop(k)
    return d


def _start(run: RunWriter, cfg: CompressConfig, resume: bool, replace: bool) -> None:
    """Check a resume against the saved config, then create the state folder (``replace``: the earlier run goes)."""
    if resume:
        old = run.read("config.json")
        if old is not None:
            old_key, new_key = _resume_key(CompressConfig.from_dict(old)), _resume_key(cfg)
            diff = settings_diff(old_key, new_key, new_key)
            if diff:
                raise ConfigError(f"--resume needs the settings of the interrupted run ({'; '.join(diff)})")
    barrier()  # every rank has checked the directory before rank 0 creates the state in it
    run.start(cfg.to_dict(), replace=replace)
    barrier()


def compress(cfg: CompressConfig, resume: bool = False, overwrite: bool = False,
             _callbacks: dict[str, Iterable[Any]] | None = None) -> dict[str, Any]:
    """Run (or resume) the whole pipeline; return the ``compression.json`` record.

    ``overwrite`` replaces a run already in ``cfg.out`` (removed once the inputs are checked).
    ``_callbacks`` (testing) maps a phase name to extra Trainer callbacks.
    """
    from edgeprune.data import load_split
    from edgeprune.models import load_model
    from edgeprune.outputs import output_dir

    init_distributed()
    spec = cfg.plan.task
    run = RunWriter(cfg.out)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pass one of them")
    existing = output_dir(run.root, "compress run", run_kind, overwrite=overwrite, resume=resume)
    if resume and existing == "finished":
        return read_json(run.root / COMPRESSION_JSON)
    # --- validate everything cheap before any training
    model_dir, is_ft = finetuned_for_task(cfg.model, spec)
    train = load_split(spec, "train", cfg.data_dir, limit=cfg.train_limit, seed=cfg.seed)
    dev = load_split(spec, "dev", cfg.data_dir, limit=cfg.eval_limit)
    probe, _ = load_model(model_dir, num_labels=spec.num_labels)
    mats = matrices(probe, cfg)
    cut_names = unit_layout(mats).cut if cfg.units else list(mats.params)  # --units: partners follow the cut
    cut_to_target(cfg, {n: mats.params[n] for n in cut_names}, mats.tilings)  # an unreachable target raises now
    del probe, mats
    reused = reusable_regularized(cfg) if cfg.regularized_from is not None else None
    if not is_ft and cfg.epochs_finetune <= 0:
        raise ConfigError(f"{cfg.model} is not fine-tuned on {spec.name}; give --epochs-finetune > 0")
    _start(run, cfg, resume, replace=overwrite and existing != "new")
    st = RunState(cfg, run, resume, train, dev, model_dir, is_ft, reused, callbacks=dict(_callbacks or {}),
                  phases=dict(run.read("phases.json") or {}))
    for phase in PHASES:
        phase(st)
    from .report import report

    return report(st)
