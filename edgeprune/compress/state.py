"""The small state the phases of one ``compress`` run pass along: inputs checked once, the model as it
moves through the phases, and what each phase recorded for the report."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from edgeprune.distributed import is_main
from edgeprune.rundir import RunWriter

from .config import CompressConfig, Plan


AUGMENT_JSON = "augment.json"


def say(msg: str) -> None:
    """A progress line on stderr (rank 0 only)."""
    if is_main():
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(msg, highlight=False)


@dataclass
class RunState:
    cfg: CompressConfig
    run: RunWriter
    resume: bool
    train: list[Any]  # training examples
    dev: list[Any]  # dev examples
    model_dir: Path  # the model given, resolved
    is_finetuned: bool  # already fine-tuned on the task: no dense fine-tune
    reused: tuple[Path, float] | None  # (regularized model, its seconds) of --regularized-from
    callbacks: dict[str, Iterable[Any]] = field(default_factory=dict)  # phase -> extra Trainer callbacks (tests)
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds per phase (phases.json)
    dense_dir: Path | None = None
    dense_metrics: dict[str, Any] | None = None
    model: Any = None
    tok: Any = None
    masks: dict[str, Any] | None = None  # None until a cut chose them (gradual: after retraining)
    rms: dict[str, Any] | None = None  # calibrated input RMS per matrix (gradual, activation score)
    prune_metrics: dict[str, Any] | None = None
    stage_log: list[dict[str, Any]] | None = None
    pruned_metrics: dict[str, Any] | None = None
    _distill_train: list[Any] | None = None

    def distill_examples(self, teacher: Any) -> list[Any]:
        """What the distillation phases train on: the training examples plus ``--augment`` teacher-labelled
        perturbed copies of each (built once, saved as ``augment.json`` so a resumed run trains on the same)."""
        if self.cfg.augment <= 0:
            return self.train
        if self._distill_train is None:
            from edgeprune.data.augment import augment, teacher_label
            from edgeprune.data.glue import GlueExample

            saved = self.run.read(AUGMENT_JSON)
            if saved is not None and saved.get("copies") == self.cfg.augment and saved.get("n") == len(self.train):
                extra = [GlueExample(a, b, y) for a, b, y in saved["examples"]]
            else:
                say(f"      labelling {self.cfg.augment} perturbed copies of {len(self.train)} examples by the teacher")
                extra = teacher_label(teacher, self.tok, augment(self.train, self.cfg.augment, self.cfg.seed + 2,
                                                                 self.cfg.augment_rate),
                                      self.plan.task.is_regression, self.cfg.max_seq_len)
                self.run.write(AUGMENT_JSON, {"copies": self.cfg.augment, "n": len(self.train),
                                              "rate": self.cfg.augment_rate,
                                              "examples": [[e.text_a, e.text_b, e.label] for e in extra]})
            self._distill_train = list(self.train) + extra
        return self._distill_train

    def training_data(self, teacher: Any, tcfg: Any, epochs: float | None = None) -> tuple[list[Any], Any]:
        """(examples, TrainConfig) of one training phase: with a teacher and ``--augment``, the augmented set,
        whole (no ``train_limit`` cut), and for ``epochs`` the steps of that many epochs over the real training
        set: augmentation changes what the steps see, not how many there are."""
        import math
        from dataclasses import replace

        if teacher is None or self.cfg.augment <= 0:
            return self.train, tcfg
        steps = tcfg.max_steps if epochs is None else max(1, math.ceil(epochs * len(self.train) /
                                                                       self.cfg.batch_size))
        return self.distill_examples(teacher), replace(tcfg, train_limit=None, max_steps=steps)

    @property
    def plan(self) -> Plan:
        return self.cfg.plan

    def mark(self, name: str, t0: float) -> None:
        """Add the seconds since ``t0`` to phase ``name`` and save the table (a resumed run keeps counting)."""
        self.phases[name] = round(self.phases.get(name, 0.0) + time.perf_counter() - t0, 2)
        self.run.write("phases.json", self.phases)

    def phase_callbacks(self, name: str) -> list[Any]:
        return list(self.callbacks.get(name, ()))
