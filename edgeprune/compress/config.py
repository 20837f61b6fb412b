"""What one ``compress`` run depends on: the versioned, strictly loaded :class:`CompressConfig`, the named
recipes, and the :class:`Plan` resolved from it once (task, block, cut kind, stage targets, per-phase
training settings) so that no phase re-parses a setting.

``config_version`` 2 is the first versioned layout; a config saved without one (version 1, the same
fields) still loads, so ``--resume`` continues runs started before.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import TYPE_CHECKING, Any

from edgeprune.errors import ConfigError
from edgeprune.prune.blocks import BlockSpec, Side, parse_block
from edgeprune.prune.group_lasso import PAPER_EPS, PAPER_MILESTONES, PAPER_PENALTY
from edgeprune.prune.masks import SCOPES
from edgeprune.prune.presets import block_preset
from edgeprune.prune.schedule import SCHEDULES

if TYPE_CHECKING:  # pragma: no cover
    from edgeprune.data import TaskSpec
    from edgeprune.training import TrainConfig

CONFIG_VERSION = 2  # 1: unversioned (same fields)
METHODS = ("reweighted-group-lasso", "group-lasso", "magnitude-block", "magnitude-unstructured")
REGULARIZED = ("reweighted-group-lasso", "group-lasso")
SCORES = ("weight", "activation", "obs")
REG_FORMS = ("proximal", "loss")
RECIPE_NAMES = ("edgeprune", "paper")
DEFAULT_BLOCK = "128x1"
CUTS = ("oneshot", "gradual", "layerwise")  # how the cut phase chooses masks (see Plan.cut)
TRAINED_PHASES = ("finetune", "regularize", "retrain", "stage")


@dataclass(frozen=True)
class Plan:
    """The settings of a config resolved once: what every phase reads instead of re-parsing strings."""

    task: TaskSpec
    task_key: Any  # the GLUE key, or a file task's dict (what compression.json records)
    block: BlockSpec
    balanced: bool
    keep: float  # fraction of the prunable elements kept at the target
    cut: str  # oneshot: one hard prune; gradual: masks tighten in retraining; layerwise: staged/refitted cuts
    stage_targets: tuple[float, ...]  # compressions cut in turn (layerwise), ending at the target


@dataclass(frozen=True)
class CompressConfig:
    """Everything one ``compress`` run depends on (saved with the run; ``--resume`` must match)."""

    model: str
    task: str
    data_dir: str | None
    out: str
    compression: float = 5.0  # dense prunable weights / kept
    block: str | None = None  # RxC; None: the preset's, else 128x1
    block_preset: str | None = None  # ort | tflite | paper | rows
    balanced: bool | None = None  # None: on for column-segment shapes
    method: str = "reweighted-group-lasso"
    scope: str = "uniform"
    layers: str = "all"  # preset, roles or regexes
    penalty: float = PAPER_PENALTY
    eps: float = PAPER_EPS
    reweight_every: int | None = None  # also reweight every N steps
    milestones: tuple[int, ...] = PAPER_MILESTONES
    epochs_finetune: float = 3.0
    epochs_reg: float = 3.0
    epochs_retrain: float = 3.0
    distill: bool = False
    distill_alpha: float = 0.5
    distill_temperature: float = 2.0
    distill_hidden: float = 0.0  # weight of the per-layer hidden-state MSE to the teacher (0 = logits only)
    lr: float = 2e-5
    finetune_lr: float = 5e-5
    batch_size: int = 32
    max_seq_len: int = 128
    train_limit: int | None = None
    eval_limit: int | None = None
    seed: int = 42
    save_steps: int | None = None
    keep_checkpoints: bool = False
    score: str = "weight"  # weight: the paper's group norm; activation: norm of W * input RMS (calibrated)
    calib_examples: int | None = 64  # None: 256, or the whole training set when it is smaller
    eval_after_prune: bool = True  # dev metrics right after hard pruning, before retraining (diagnostic)
    regularized_from: str | None = None  # reuse the regularized stage of this earlier run (same settings)
    keep_regularized: bool = False  # keep compress_state/regularize/model so later runs can reuse it
    prune_schedule: str = "oneshot"  # oneshot: the paper's single hard prune; gradual: cubic ramp in retraining
    prune_ramp: float = 0.5  # gradual: fraction of the retraining steps over which masks tighten to the target
    prune_every: int | None = None  # gradual: steps between mask updates (None: about 10 updates per ramp)
    recipe: str | None = None  # the named recipe these settings came from (edgeprune | paper), for reports
    reg_form: str = "proximal"  # proximal: group soft-threshold after each AdamW step; loss: penalty in the loss
    retrain_lr: float | None = None  # lr of masked retraining / distillation (None: ``lr``)
    reconstruct: bool = False  # layer-wise least-squares refit of the kept weights after every cut
    damp: float = 0.01  # reconstruction damping, a fraction of mean(diag H)
    stages: str = "none"  # none | auto (2x, 3x, ... up to the target) | comma list of compressions
    stage_steps: int = 150  # distillation steps after each intermediate cut
    freeze_word_embeddings: bool = False  # no gradient for the token table in every phase (1.7x faster steps)
    allocation: str = "uniform"  # uniform: the same kept fraction per matrix; sensitivity: from measured damage
    units: bool = False  # prune whole attention heads and FFN units (the shape every runtime turns into speed)
    augment: int = 0  # teacher-labelled perturbed copies per training example, added where the teacher is distilled
    augment_rate: float = 0.15  # fraction of the words each perturbation changes
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # free-form notes (benchmark settings)

    def __post_init__(self) -> None:
        self.task_spec  # noqa: B018 - resolves (and so validates) the task once
        if self.method not in METHODS:
            raise ConfigError(f"unknown --method {self.method!r}; choose one of: {', '.join(METHODS)}")
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown --scope {self.scope!r}; choose one of: {', '.join(SCOPES)}")
        if not (isinstance(self.compression, (int, float)) and 1 < self.compression < 1e6):
            raise ConfigError(f"target compression {self.compression!r} must be > 1x (e.g. 5x or sparsity 0.8)")
        if self.block is not None and self.block_preset is not None:
            raise ConfigError("give either --block or --block-preset, not both")
        self.block_spec  # noqa: B018 - parses the block (or preset) once
        for name in ("penalty", "eps", "lr", "finetune_lr", "distill_temperature"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0):
                raise ConfigError(f"invalid {name}={v!r}: must be a positive number")
        for name in ("epochs_finetune", "epochs_reg", "epochs_retrain"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0):
                raise ConfigError(f"invalid {name}={v!r}: must be >= 0 epochs")
        if self.recipe is not None and self.recipe not in RECIPE_NAMES:
            raise ConfigError(f"unknown --recipe {self.recipe!r}; choose one of: {', '.join(RECIPE_NAMES)}")
        if self.allocation not in ("uniform", "sensitivity"):
            raise ConfigError(f"unknown --allocation {self.allocation!r}; choose uniform or sensitivity")
        if self.allocation == "sensitivity" and not (self.reconstruct or self.stages != "none" or self.score == "obs"):
            raise ConfigError("--allocation sensitivity measures reconstruction damage per matrix; "
                              "use it with --reconstruct or --stages")
        if self.reg_form not in REG_FORMS:
            raise ConfigError(f"unknown --reg-form {self.reg_form!r}; choose one of: {', '.join(REG_FORMS)}")
        if self.retrain_lr is not None and not (isinstance(self.retrain_lr, (int, float)) and 0 < self.retrain_lr < 1):
            raise ConfigError(f"invalid retrain_lr={self.retrain_lr!r}: must be in (0, 1)")
        if not (isinstance(self.damp, (int, float)) and self.damp >= 0):
            raise ConfigError(f"invalid --damp {self.damp!r}: must be >= 0")
        if not isinstance(self.stage_steps, int) or self.stage_steps < 0:
            raise ConfigError(f"invalid --stage-steps {self.stage_steps!r}: must be a non-negative integer")
        self.stage_targets()  # validates --stages against the target
        if (self.reconstruct or self.stages != "none") and self.prune_schedule == "gradual":
            raise ConfigError("--prune-schedule gradual cannot be combined with --reconstruct or --stages; "
                              "staged cuts are the reconstructed form of gradual pruning")
        if (self.reconstruct or self.stages != "none") and self.scope != "uniform":
            raise ConfigError("--reconstruct and --stages cut layer by layer and need --scope uniform")
        if self.score not in SCORES:
            raise ConfigError(f"unknown --score {self.score!r}; choose one of: {', '.join(SCORES)}")
        if not (isinstance(self.distill_hidden, (int, float)) and self.distill_hidden >= 0):
            raise ConfigError(f"invalid distill_hidden={self.distill_hidden!r}: must be >= 0")
        if self.distill_hidden > 0 and not self.distill:
            raise ConfigError("--distill-hidden needs --distill (it distils from the dense teacher)")
        if self.units:
            if self.block is not None or self.block_preset is not None:
                raise ConfigError("--units prunes whole heads and FFN units; it takes no --block or --block-preset")
            if self.method != "magnitude-block":
                raise ConfigError(f"--units needs --method magnitude-block (got {self.method}): heads and units are "
                                  "ranked and refitted by the staged cut")
            if not (self.reconstruct or self.stages != "none" or self.score == "obs"):
                raise ConfigError("--units cuts layer by layer; use it with --reconstruct or --stages")
            if self.layers != "all":
                raise ConfigError("--units prunes every encoder layer's heads and FFN units; it takes no --layers")
        if not isinstance(self.augment, int) or self.augment < 0:
            raise ConfigError(f"invalid --augment {self.augment!r}: a non-negative number of copies per example")
        if self.augment > 0 and not self.distill:
            raise ConfigError("--augment adds teacher-labelled text for distillation; it needs --distill")
        if not (isinstance(self.augment_rate, (int, float)) and 0 < self.augment_rate <= 1):
            raise ConfigError(f"invalid --augment-rate {self.augment_rate!r}: a fraction of the words in (0, 1]")
        if not 0 <= self.distill_alpha <= 1:
            raise ConfigError(f"invalid distill_alpha={self.distill_alpha}: must be in [0, 1]")
        if self.regularized_from is not None and self.method not in REGULARIZED:
            raise ConfigError(f"--regularized-from only applies to {' and '.join(REGULARIZED)}; "
                              f"--method {self.method} has no regularized stage")
        if self.prune_schedule not in SCHEDULES:
            raise ConfigError(f"unknown --prune-schedule {self.prune_schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if not (isinstance(self.prune_ramp, (int, float)) and 0 < self.prune_ramp <= 1):
            raise ConfigError(f"invalid --prune-ramp {self.prune_ramp!r}: a fraction of the retraining steps in (0, 1]")
        if self.prune_every is not None and self.prune_every < 1:
            raise ConfigError("--prune-every must be a positive number of steps")
        if self.prune_schedule == "gradual" and self.retrain_epochs <= 0:
            raise ConfigError("--prune-schedule gradual prunes during retraining; give --epochs-retrain > 0")
        if self.reweight_every is not None and self.reweight_every < 1:
            raise ConfigError("--reweight-every must be a positive number of steps")
        for name in ("batch_size", "max_seq_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"invalid {name}: must be positive")
        for name in ("train_limit", "eval_limit", "save_steps"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"invalid {name}={v}: must be a positive integer")

    @cached_property
    def task_spec(self) -> TaskSpec:
        from edgeprune.data import get_task

        return get_task(self.task)

    @cached_property
    def block_spec(self) -> tuple[BlockSpec, bool]:
        """(block spec, balanced) after presets and method defaults."""
        if self.block_preset is not None:
            block_preset(self.block_preset)
        if self.block is not None:
            parse_block(self.block)
        if self.method == "magnitude-unstructured":
            return BlockSpec(Side(1), Side(1)), False
        if self.block_preset is not None:
            pre = block_preset(self.block_preset)
            spec, bal = parse_block(pre.block), pre.balanced
        else:
            spec = parse_block(self.block or DEFAULT_BLOCK)
            bal = spec.is_column_segment
        if self.balanced is not None:
            bal = self.balanced
        return spec, bal

    def resolved_block(self) -> tuple[BlockSpec, bool]:
        """(block spec, balanced) after presets and method defaults."""
        return self.block_spec

    @cached_property
    def plan(self) -> Plan:
        from edgeprune.data.glue import task_key

        spec, balanced = self.block_spec
        layerwise = self.reconstruct or self.stages != "none" or self.score == "obs"
        cut = "layerwise" if layerwise else self.prune_schedule
        return Plan(self.task_spec, task_key(self.task_spec), spec, balanced, 1.0 / self.compression, cut,
                    tuple(self.stage_targets()))

    def training(self, phase: str, max_steps: int = -1) -> TrainConfig:
        """The ``TrainConfig`` of one training phase (finetune, regularize, retrain or stage)."""
        from edgeprune.training import TrainConfig

        epochs, lr = {"finetune": (self.epochs_finetune, self.finetune_lr), "regularize": (self.epochs_reg, self.lr),
                      "retrain": (max(self.retrain_epochs, 1e-9), self.retrain_lr_),
                      "stage": (1.0, self.retrain_lr_)}[phase]
        if phase == "stage":
            max_steps = self.stage_steps
        return TrainConfig(epochs=float(epochs), lr=lr, batch_size=self.batch_size, eval_batch_size=64,
                           max_seq_len=self.max_seq_len, warmup_ratio=0.1, weight_decay=0.01, seed=self.seed,
                           max_steps=max_steps, train_limit=self.train_limit, eval_limit=self.eval_limit,
                           save_steps=self.save_steps, save_total_limit=1, logging_steps=10,
                           freeze_word_embeddings=self.freeze_word_embeddings)

    def stage_targets(self) -> list[float]:
        """The compressions cut in turn: ``[target]`` without stages; checked to rise to the target."""
        from edgeprune.prune.schedule import staged_targets

        if self.stages in ("none", "", None):
            return [float(self.compression)]
        if self.stages == "auto":
            return staged_targets(float(self.compression))
        try:
            vals = [float(x.rstrip("x")) for x in str(self.stages).split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--stages {self.stages!r}: give none, auto or a list like 2,3,4,5") from None
        if not vals or any(v <= 1 for v in vals) or any(b <= a for a, b in zip(vals, vals[1:])):
            raise ConfigError(f"--stages {self.stages!r}: compressions must be > 1x and strictly increasing")
        if abs(vals[-1] - float(self.compression)) > 1e-9:
            if vals[-1] > self.compression:
                raise ConfigError(f"--stages {self.stages!r} goes past the target {self.compression:g}x; "
                                  "the last stage must be the target")
            vals.append(float(self.compression))
        return vals

    @property
    def retrain_lr_(self) -> float:
        return self.retrain_lr if self.retrain_lr is not None else self.lr

    @property
    def retrain_epochs(self) -> float:
        return self.epochs_retrain if self.method in REGULARIZED else self.epochs_reg + self.epochs_retrain

    def to_dict(self) -> dict[str, Any]:
        """The saved form (``compress_state/config.json``, ``compression.json["config"]``), versioned."""
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        d["config_version"] = CONFIG_VERSION
        return d

    @classmethod
    def for_recipe(cls, name: str, **settings: Any) -> CompressConfig:
        """A config from a named recipe's settings, overridden by ``settings`` (None values ignored)."""
        if name not in RECIPES:
            raise ConfigError(f"unknown --recipe {name!r}; choose one of: {', '.join(RECIPES)}")
        given = yield_units({k: v for k, v in settings.items() if v is not None})
        return cls(**{**RECIPES[name], "recipe": name, **given})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompressConfig:
        """Strict: an unknown key raises (a typo must not silently fall back to a default); a saved
        config without ``config_version`` (version 1) loads as it is."""
        d = dict(d)
        version = d.pop("config_version", 1)
        if not isinstance(version, int) or not 1 <= version <= CONFIG_VERSION:
            raise ConfigError(f"compress config version {version!r} is not one this edgeprune reads "
                              f"(1..{CONFIG_VERSION}); it was written by a newer edgeprune")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown compress setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        if "milestones" in d:
            d["milestones"] = tuple(d["milestones"])
        return cls(**d)


STRUCTURE_FLAGS = ("block", "block_preset", "layers", "method")  # an explicit one means: not whole heads/units


def yield_units(given: dict[str, Any]) -> dict[str, Any]:
    """A recipe's ``units`` is a default that yields to an explicit structure: settings naming a block, a
    block preset, layers or a method (without ``units`` itself) get ``units=False``."""
    if "units" not in given and any(k in given for k in STRUCTURE_FLAGS):
        return {**given, "units": False}
    return given


# Named recipes: settings a run starts from (explicit flags override them).
RECIPES: dict[str, dict[str, Any]] = {
    # the paper (Li et al. 2020): fine-tune, reweighted group Lasso (here as a working proximal step),
    # one hard prune by block norm, masked retraining; lr 2e-5, 3 + 3 epochs
    "paper": dict(method="reweighted-group-lasso", score="weight", reg_form="proximal", reconstruct=False,
                  stages="none", distill=False, lr=2e-5, epochs_reg=3.0, epochs_retrain=3.0),
    # ours (bench/results/compress.md): no regularized stage; activation-ranked cuts in stages
    # (2x, 3x, ... to the target), each refitted layer by layer by least squares, with per-matrix kept
    # fractions from the measured reconstruction damage (STS-B staged to 5x: 2x -0.8 / 3x -4.9 / 5x -9.5
    # points against -3.8 / -11.7 / -18.4 with the same fraction everywhere), and followed by
    # logit + hidden-state distillation from the dense teacher
    # pruning whole heads and FFN units (--units; SST-2 and CoLA: better at every ratio than 128x1 column
    # segments with the same budget, and what onnxruntime / LiteRT int8 turn into speed: bench/results/
    # compress.md, frontier.md)
    "edgeprune": dict(method="magnitude-block", score="activation", reconstruct=True, stages="auto",
                      allocation="sensitivity", units=True,
                      stage_steps=150, distill=True, distill_alpha=0.5, distill_hidden=1.0, lr=5e-5,
                      epochs_reg=0.0, epochs_retrain=2.0, calib_examples=None, freeze_word_embeddings=True),
}


