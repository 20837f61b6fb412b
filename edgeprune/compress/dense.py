"""Phase 1, the dense model: fine-tune it on the task unless it already is, and record its dev metrics."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.distributed import barrier
from edgeprune.errors import ModelError
from edgeprune.io import read_json
from edgeprune.rundir import COMPRESSION_JSON, MODEL_DIR

from .state import RunState, say

if TYPE_CHECKING:  # pragma: no cover
    from edgeprune.data import TaskSpec

DENSE_METRICS = "dense_metrics.json"


def finetuned_for_task(model_arg: str, task: TaskSpec | str | dict) -> tuple[Path, bool]:
    """(model folder, whether it is already fine-tuned on ``task``).

    Fine-tuned means: the right number of labels and either an ``edgeprune_task`` marker in its
    config, or a finetune/compress run around it that names the task.
    """
    from edgeprune.data import get_task
    from edgeprune.data.glue import task_key
    from edgeprune.models import head_names_task, resolve_model_path
    from edgeprune.training import METRICS_JSON, model_dir_of

    spec = get_task(task)
    raw = Path(str(model_arg))
    path = model_dir_of(raw) if raw.is_dir() else resolve_model_path(model_arg)
    path = resolve_model_path(path)
    try:
        cfg = read_json(path / "config.json")
    except Exception as e:
        raise ModelError(f"{path / 'config.json'} is not valid JSON ({e})") from None
    n_labels = cfg.get("num_labels") or len(cfg.get("id2label") or {}) or 2
    if n_labels != spec.num_labels:
        return path, False
    if cfg.get("edgeprune_task") == task_key(spec) or head_names_task(cfg, spec):
        return path, True
    for name in (METRICS_JSON, COMPRESSION_JSON):  # a finetune or compress run around the model
        f = path.parent / name
        if f.is_file():
            try:
                t = read_json(f).get("task")
            except Exception:
                continue
            if t is not None and get_task(t) == spec:
                return path, True
    return path, False


def dense(st: RunState) -> None:
    """Sets ``st.dense_dir`` and ``st.dense_metrics``."""
    from edgeprune.training import finetune, task_metrics

    cfg, spec, t0 = st.cfg, st.plan.task, time.perf_counter()
    if st.is_finetuned:
        st.dense_dir = st.model_dir
        say(f"[1/4] dense model {st.model_dir} is already fine-tuned on {spec.name}: skipping fine-tuning")
        if st.run.read(DENSE_METRICS) is None:
            st.run.write(DENSE_METRICS, task_metrics(str(st.dense_dir), spec, cfg.data_dir,
                                                     max_seq_len=cfg.max_seq_len, limit=cfg.eval_limit))
        barrier()
    else:
        say(f"[1/4] dense fine-tuning {cfg.model} on {spec.name} ({cfg.epochs_finetune:g} epochs)")
        ft_dir = st.run.phase_dir("finetune")
        dm = finetune(cfg.model, spec, cfg.data_dir, ft_dir, cfg.training("finetune"),
                      resume=(ft_dir / "config.json").is_file(), callbacks=st.phase_callbacks("finetune"))
        st.dense_dir = ft_dir / MODEL_DIR
        st.run.write(DENSE_METRICS, dm)
        barrier()
    st.dense_metrics = st.run.read(DENSE_METRICS)
    st.mark("dense_eval" if st.is_finetuned else "finetune", t0)
