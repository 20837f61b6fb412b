"""``compress``: dense fine-tune -> (reweighted) group-Lasso training -> hard prune -> masked retraining.

The paper's pipeline (Li et al. 2020, see shared/docs/paper.md) plus its baselines in the same
code. Run directory (``edgeprune.rundir`` contract)::

    RUN_DIR/
      compress_state/       per-phase state; resume continues from the last Trainer checkpoint
        config.json         the CompressConfig (a resume must match it)
        finetune/           dense fine-tune (a ``finetune`` run dir), when the model was not fine-tuned
        dense_metrics.json  dev metrics of the dense model
        regularize/         Trainer checkpoints, then model/ + done.json
        masks.safetensors, prune.json
        retrain/            Trainer checkpoints, then done.json
      model/                pruned checkpoint (save_pretrained + tokenizer + masks.safetensors), atomic
      kept_ratios.png       per-layer kept ratios
      compression.json      written last: its presence marks a finished run

Methods without a regularizer (magnitude-*) retrain for ``epochs_reg + epochs_retrain`` epochs,
so every method gets the same training budget after the dense fine-tune.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Literal

from .distributed import barrier, init as init_distributed, is_main
from .errors import ConfigError, ModelError
from .io import atomic_dir, read_json, write_json
from .prune.blocks import BlockSpec, Side, parse_block
from .prune.group_lasso import PAPER_EPS, PAPER_MILESTONES, PAPER_PENALTY
from .prune.masks import SCOPES
from .prune.presets import LAYER_PRESETS, block_preset
from .prune.schedule import SCHEDULES
from .rundir import COMPRESSION_JSON, MASKS_FILE, MODEL_DIR, settings_diff

METHODS = ("reweighted-group-lasso", "group-lasso", "magnitude-block", "magnitude-unstructured")
REGULARIZED = ("reweighted-group-lasso", "group-lasso")
SCORES = ("weight", "activation", "obs")
REG_FORMS = ("proximal", "loss")
RECIPE_NAMES = ("edgeprune", "paper")
DEFAULT_BLOCK = "128x1"
STATE = "compress_state"
PLOT = "kept_ratios.png"


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
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # free-form notes (benchmark settings)

    def __post_init__(self) -> None:
        from .data import get_task

        get_task(self.task)
        if self.method not in METHODS:
            raise ConfigError(f"unknown --method {self.method!r}; choose one of: {', '.join(METHODS)}")
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown --scope {self.scope!r}; choose one of: {', '.join(SCOPES)}")
        if not (isinstance(self.compression, (int, float)) and 1 < self.compression < 1e6):
            raise ConfigError(f"target compression {self.compression!r} must be > 1x (e.g. 5x or sparsity 0.8)")
        if self.block is not None and self.block_preset is not None:
            raise ConfigError("give either --block or --block-preset, not both")
        if self.block is not None:
            parse_block(self.block)
        if self.block_preset is not None:
            block_preset(self.block_preset)
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

    def resolved_block(self) -> tuple[BlockSpec, bool]:
        """(block spec, balanced) after presets and method defaults."""
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

    def stage_targets(self) -> list[float]:
        """The compressions cut in turn: ``[target]`` without stages; checked to rise to the target."""
        from .prune.schedule import staged_targets

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
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def for_recipe(cls, name: str, **settings: Any) -> CompressConfig:
        """A config from a named recipe's settings, overridden by ``settings`` (None values ignored)."""
        if name not in RECIPES:
            raise ConfigError(f"unknown --recipe {name!r}; choose one of: {', '.join(RECIPES)}")
        given = {k: v for k, v in settings.items() if v is not None}
        return cls(**{**RECIPES[name], "recipe": name, **given})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompressConfig:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "milestones" in d:
            d["milestones"] = tuple(d["milestones"])
        return cls(**d)


# Named recipes: settings a run starts from (explicit flags override them).
RECIPES: dict[str, dict[str, Any]] = {
    # the paper (Li et al. 2020): fine-tune, reweighted group Lasso (here as a working proximal step),
    # one hard prune by block norm, masked retraining; lr 2e-5, 3 + 3 epochs
    "paper": dict(method="reweighted-group-lasso", score="weight", reg_form="proximal", reconstruct=False,
                  stages="none", distill=False, lr=2e-5, epochs_reg=3.0, epochs_retrain=3.0),
    # ours (bench/results/compress.md): no regularized stage; activation-ranked cuts in stages
    # (2x, 3x, ... to the target), each refitted layer by layer by least squares and followed by
    # logit + hidden-state distillation from the dense teacher
    "edgeprune": dict(method="magnitude-block", score="activation", reconstruct=True, stages="auto",
                      stage_steps=150, distill=True, distill_alpha=0.5, distill_hidden=1.0, lr=5e-5,
                      epochs_reg=0.0, epochs_retrain=2.0, calib_examples=None, freeze_word_embeddings=True),
}


def _resume_key(cfg: CompressConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    for k in ("out", "extra", "keep_checkpoints", "data_dir", "keep_regularized"):
        d.pop(k)
    return d


# ------------------------------------------------------------------------------------------ helpers


def _say(msg: str) -> None:
    if is_main():
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(msg, highlight=False)


def finetuned_for_task(model_arg: str, task: str) -> tuple[Path, bool]:
    """(model folder, whether it is already fine-tuned on ``task``).

    Fine-tuned means: the right number of labels and either an ``edgeprune_task`` marker in its
    config, or a finetune/compress run around it that names the task.
    """
    from .data import get_task
    from .data.glue import task_key
    from .models import head_names_task, resolve_model_path
    from .training import model_dir_of

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
    for run in (path.parent,):
        for name in ("metrics.json", COMPRESSION_JSON):
            f = run / name
            if f.is_file():
                try:
                    t = read_json(f).get("task")
                except Exception:
                    continue
                if t is not None and get_task(t) == spec:
                    return path, True
    return path, False


def _train_cfg(cfg: CompressConfig, epochs: float, lr: float, max_steps: int = -1):
    from .training import TrainConfig

    return TrainConfig(epochs=float(epochs), lr=lr, batch_size=cfg.batch_size, eval_batch_size=64,
                       max_seq_len=cfg.max_seq_len, warmup_ratio=0.1, weight_decay=0.01, seed=cfg.seed,
                       max_steps=max_steps, train_limit=cfg.train_limit, eval_limit=cfg.eval_limit,
                       save_steps=cfg.save_steps, save_total_limit=1, logging_steps=10,
                       freeze_word_embeddings=cfg.freeze_word_embeddings)


def _metrics_from_eval(d: dict[str, Any]) -> dict[str, Any]:
    skip = ("runtime", "samples_per_second", "steps_per_second", "epoch")
    return {k.removeprefix("eval_"): v for k, v in d.items() if k.removeprefix("eval_") not in skip}


def run_kind(out: Path) -> Literal["finished", "partial"] | None:
    """For the overwrite rule (:mod:`edgeprune.outputs`): a finished or unfinished compress run, or neither."""
    if (out / COMPRESSION_JSON).is_file():
        return "finished"
    return "partial" if (out / STATE).is_dir() else None


def _prepare(cfg: CompressConfig, resume: bool, replace: bool) -> Path:
    """The state folder of the run; ``replace``: the earlier run in ``out`` goes first (--overwrite)."""
    out = Path(cfg.out)
    state = out / STATE
    if replace and is_main():
        shutil.rmtree(out)
    if resume and (state / "config.json").is_file():
        old = read_json(state / "config.json")
        old_key = _resume_key(CompressConfig.from_dict(old))
        new_key = _resume_key(cfg)
        diff = settings_diff(old_key, new_key, new_key)
        if diff:
            raise ConfigError(f"--resume needs the settings of the interrupted run ({'; '.join(diff)})")
    barrier()  # every rank has checked the directory before rank 0 creates the state in it
    if is_main():
        state.mkdir(parents=True, exist_ok=True)
        write_json(state / "config.json", cfg.to_dict())
    barrier()
    return state


# settings the regularized stage depends on: a reused stage must agree on all of them
REG_KEYS = ("model", "task", "method", "block", "block_preset", "balanced", "layers", "penalty", "eps", "reg_form",
            "reweight_every", "milestones", "epochs_reg", "lr", "batch_size", "max_seq_len", "train_limit", "seed")


def reusable_regularized(cfg: CompressConfig) -> tuple[Path, float]:
    """(regularized model folder, its stage's wall seconds) of ``cfg.regularized_from``, checked to match ``cfg``.

    The regularizer does not depend on the target, so one regularized stage serves a whole sweep of
    targets (as the authors pruned one regularized model at several ratios)."""
    src = Path(str(cfg.regularized_from))
    reg = src / STATE / "regularize"
    model = reg / MODEL_DIR
    if not ((reg / "done.json").is_file() and (model / "config.json").is_file()):
        raise ConfigError(f"--regularized-from {src}: no finished regularized stage kept there (it needs "
                          f"{model}; run that compress with --keep-regularized)")
    diff = settings_diff(read_json(src / STATE / "config.json"), cfg.to_dict(), REG_KEYS)
    if diff:
        raise ConfigError(f"--regularized-from {src} was regularized with other settings ({'; '.join(diff)}); "
                          "use the same ones or drop --regularized-from")
    phases = read_json(src / STATE / "phases.json") if (src / STATE / "phases.json").is_file() else {}
    return model, float(phases.get("regularize", 0.0))


def _last_ckpt(phase_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    ck = phase_dir / "checkpoints"
    return get_last_checkpoint(str(ck)) if ck.is_dir() else None


def _prunable(model, cfg: CompressConfig):
    """(param name -> Parameter, tilings, roles, layer idx) of the matrices to prune."""
    from .arch import get_arch, prunable_linears
    from .prune.blocks import tiling_for
    from .prune.presets import layer_patterns

    arch = get_arch(model.config.model_type)
    mods = prunable_linears(model, layer_patterns(model.config.model_type, cfg.layers))
    if not mods:
        raise ConfigError(f"--layers {cfg.layers!r} matches no linear layer of this {model.config.model_type} model; "
                          f"use a preset ({', '.join(LAYER_PRESETS)}) or regexes over module names")
    spec, _ = cfg.resolved_block()
    params, tilings, roles, layers = {}, {}, {}, {}
    for mname, mod in mods.items():
        pname = f"{mname}.weight"
        params[pname] = mod.weight
        tilings[pname] = tiling_for(tuple(mod.weight.shape), spec)
        roles[pname] = arch.role_of(mname)
        layers[pname] = arch.layer_of(mname)
    return params, tilings, roles, layers


def _hard_prune(cfg: CompressConfig, params, tilings, input_rms=None):
    from .prune.masks import magnitude_scores, prune_groups

    _, balanced = cfg.resolved_block()
    weights = {n: p.detach() for n, p in params.items()}
    return prune_groups(magnitude_scores(weights, tilings, input_rms), tilings, 1.0 / cfg.compression,
                        scope=cfg.scope, balanced=balanced)


def input_rms(model, tok, params: dict[str, Any], examples, max_seq_len: int, batch_size: int = 16):
    """RMS of every input feature of each pruned linear over ``examples`` (forward hooks, eval mode)."""
    import torch

    mods = dict(model.named_modules())
    acc: dict[str, Any] = {}
    count: dict[str, int] = {}
    hooks = []
    for n in params:
        def hook(_mod, inp, _out, n=n):
            x = inp[0].detach().float().reshape(-1, inp[0].shape[-1])
            acc[n] = acc.get(n, 0) + (x * x).sum(0)
            count[n] = count.get(n, 0) + x.shape[0]
        hooks.append(mods[n.removesuffix(".weight")].register_forward_hook(hook))
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for i in range(0, len(examples), batch_size):
                chunk = examples[i:i + batch_size]
                pairs = chunk[0].text_b is not None
                b = tok([e.text_a for e in chunk], [e.text_b for e in chunk] if pairs else None, truncation=True,
                        max_length=max_seq_len, padding=True, return_tensors="pt")
                model(**{k: v.to(device) for k, v in b.items()})
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return {n: (acc[n] / count[n]).sqrt().cpu() for n in params}


def _kept_energy(params, tilings, cfg: CompressConfig) -> float:
    """Fraction of the pruned matrices' squared weight that a hard prune at the target would keep."""
    from .prune.group_lasso import kept_energy

    _, balanced = cfg.resolved_block()
    tot = kept = 0.0
    for n, p in params.items():
        e = float(p.detach().double().pow(2).sum())
        tot += e
        kept += e * kept_energy(p.detach(), tilings[n], 1.0 / cfg.compression, balanced)
    return kept / tot if tot else 1.0


def _zero_groups(params, tilings) -> int:
    from .prune.blocks import group_sq_norms

    return int(sum(int((group_sq_norms(p.detach(), tilings[n]) == 0).sum()) for n, p in params.items()))


def _total_steps(state: Path, stage_log) -> int:
    """Optimizer steps over every training phase of the run (fine-tune, regularize, stages, retrain)."""
    total = 0
    for f in (state / "finetune" / "metrics.json",):
        if f.is_file():
            total += int(read_json(f).get("train", {}).get("global_step", 0))
    for name in ("regularize", "retrain"):
        f = state / name / "done.json"
        if f.is_file():
            total += int(read_json(f).get("steps", 0))
    for e in stage_log or []:
        total += int(e.get("steps", 0))
    return total


def _chooser(cfg: CompressConfig, tilings, keep: float | dict[str, float], prev: dict[str, Any] | None):
    """The mask rule of one cut: rank the groups of a matrix (weight norm, activation-weighted norm or
    OBS saliency, from the calibration Gram matrix ``H``), never revive a group cut before, keep ``keep``."""
    import torch

    from .prune.blocks import group_mask_of
    from .prune.masks import group_scores, prune_groups
    from .prune.reconstruct import obs_group_scores

    _, balanced = cfg.resolved_block()

    def choose(name: str, w, H, n_tokens: int):
        t = tilings[name]
        if cfg.score == "obs":
            sc = obs_group_scores(w, H, t, damp=cfg.damp).float()
        elif cfg.score == "activation":
            rms = (torch.diagonal(H) / max(n_tokens, 1)).clamp_min(0).sqrt().float()
            sc = group_scores(w.float() * rms[None, :].to(w.device), t)
        else:
            sc = group_scores(w, t)
        if prev is not None:
            sc = torch.where(group_mask_of(prev[name], t).to(sc.device), sc, torch.full_like(sc, -1.0))
        k = keep[name] if isinstance(keep, dict) else keep
        return prune_groups({name: sc}, {name: t}, k, scope="uniform", balanced=balanced).masks[name]

    return choose


def _staged_cuts(cfg: CompressConfig, model, tok, spec, train, dense_dir, state: Path, resume: bool, cbs):
    """Cut to each stage target in turn: rank, cut and refit layer by layer on a calibration sample, then
    (between stages) distil from the dense teacher with the masks fixed. Every stage's model is kept, so a
    staged run to 5x also yields its 2x, 3x, ... models, and a resumed run continues at the next stage."""
    import torch

    from .calibrate import calibration_batches, cut_and_reconstruct
    from .compress_trainer import MaskCallback, PruneTrainer
    from .data.glue import seeded_subset
    from .models import load_model
    from .rundir import load_masks, save_masks
    from .training import evaluate, make_trainer

    n_calib = min(256, len(train)) if cfg.calib_examples is None else cfg.calib_examples
    if n_calib > len(train):
        raise ConfigError(f"--calib-examples {cfg.calib_examples} is larger than the training set "
                          f"({len(train)} examples); give at most {len(train)}")
    teacher, _ = load_model(dense_dir, num_labels=spec.num_labels)
    batches = calibration_batches(tok, seeded_subset(train, n_calib, cfg.seed + 1), cfg.max_seq_len)
    targets = cfg.stage_targets()
    masks = None
    log: list[dict[str, Any]] = []
    for si, c in enumerate(targets):
        final = si == len(targets) - 1
        sdir = state / "stages" / f"{c:g}x"
        if (sdir / "done.json").is_file() and (sdir / MODEL_DIR / MASKS_FILE).is_file():
            model, tok = load_model(sdir / MODEL_DIR, num_labels=spec.num_labels)
            saved = load_masks(sdir / MODEL_DIR / MASKS_FILE)
            masks = {n: m.bool() for n, m in saved.items()}
            log.append(read_json(sdir / "done.json"))
            _say(f"[3/4] stage {si + 1}/{len(targets)} ({c:g}x) already done")
            continue
        t0 = time.perf_counter()
        params, tilings, _, layers = _prunable(model, cfg)
        _say(f"[3/4] stage {si + 1}/{len(targets)}: cut to {c:g}x by {cfg.score} rank"
             f"{', least-squares refit' if cfg.reconstruct else ''} on {n_calib} calibration examples")
        keep: float | dict[str, float] = 1.0 / c
        alloc_table = None
        if cfg.allocation == "sensitivity":
            from .calibrate import input_grams, sensitivity_allocation

            prev = masks
            keep, alloc_table = sensitivity_allocation(
                {n: p.detach() for n, p in params.items()}, input_grams(teacher, batches, list(params)),
                lambda n, w, H, cnt, r: _chooser(cfg, tilings, r, prev)(n, w, H, cnt), 1.0 / c, damp=cfg.damp)
        masks, recs = cut_and_reconstruct(model, teacher, batches, list(params), lambda n: layers[n],
                                          _chooser(cfg, tilings, keep, masks), reconstruct=cfg.reconstruct,
                                          damp=cfg.damp)
        kept = sum(int(m.sum()) for m in masks.values())
        entry: dict[str, Any] = {
            "target": c, "compression": sum(m.numel() for m in masks.values()) / max(kept, 1),
            "cut_s": round(time.perf_counter() - t0, 1),
            "output_error_cut": sum(r.damage_cut for r in recs) / len(recs),
            "output_error_refit": (sum(r.damage_refit for r in recs) / len(recs)) if cfg.reconstruct else None,
            "matrices": [vars(r) for r in recs], "allocation": cfg.allocation,
            "allocation_damage": alloc_table}
        if cfg.eval_after_prune:
            entry["metrics_after_cut"] = evaluate((model, tok), spec, cfg.data_dir, max_seq_len=cfg.max_seq_len,
                                                  limit=cfg.eval_limit)
            _say(f"      {c:g}x after the cut: {spec.metric} {entry['metrics_after_cut']['main']:.4f}")
        if not final and cfg.stage_steps > 0:
            t1 = time.perf_counter()
            mask_cb = MaskCallback(params, masks)
            trainer = make_trainer(model, tok, spec, train, None,
                                   _train_cfg(cfg, 1.0, cfg.retrain_lr_, max_steps=cfg.stage_steps), sdir,
                                   trainer_cls=PruneTrainer, callbacks=[mask_cb, *cbs.get("stage", ())],
                                   teacher=teacher if cfg.distill else None, distill_alpha=cfg.distill_alpha,
                                   distill_temperature=cfg.distill_temperature, distill_hidden=cfg.distill_hidden)
            trainer.train(resume_from_checkpoint=_last_ckpt(sdir) if resume else None)
            mask_cb.apply()
            model = trainer.model
            entry["steps"] = int(trainer.state.global_step)
            entry["distill_s"] = round(time.perf_counter() - t1, 1)
            entry["metrics_after_distill"] = evaluate((model, tok), spec, cfg.data_dir, max_seq_len=cfg.max_seq_len,
                                                      limit=cfg.eval_limit)
            _say(f"      {c:g}x after {cfg.stage_steps} distillation steps: {spec.metric} "
                 f"{entry['metrics_after_distill']['main']:.4f}")
            del trainer
        with torch.no_grad():
            for n, p in _prunable(model, cfg)[0].items():
                p.mul_(masks[n].to(p.dtype))
        if is_main():
            with atomic_dir(sdir / MODEL_DIR) as tmp:
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
                save_masks(masks, Path(tmp) / MASKS_FILE)
            write_json(sdir / "done.json", entry)
        barrier()
        log.append(entry)
    return model, masks, log


# ----------------------------------------------------------------------------------------- pipeline


def compress(cfg: CompressConfig, resume: bool = False, overwrite: bool = False,
             _callbacks: dict[str, Iterable[Any]] | None = None) -> dict[str, Any]:
    """Run (or resume) the whole pipeline; return the ``compression.json`` record.

    ``overwrite`` replaces a run already in ``cfg.out`` (removed once the inputs are checked).
    ``_callbacks`` (testing) maps a phase name to extra Trainer callbacks.
    """
    import torch
    from transformers import set_seed

    from .data import get_task, load_split
    from .data.glue import task_key
    from .models import load_model
    from .outputs import output_dir
    from .training import evaluate, finetune, make_trainer

    cbs = _callbacks or {}
    init_distributed()
    spec = get_task(cfg.task)
    key = task_key(spec)
    out = Path(cfg.out)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pass one of them")
    existing = output_dir(out, "compress run", run_kind, overwrite=overwrite, resume=resume)
    if resume and existing == "finished":
        return read_json(out / COMPRESSION_JSON)
    # --- validate everything cheap before any training
    model_dir, is_ft = finetuned_for_task(cfg.model, cfg.task)
    train = load_split(spec, "train", cfg.data_dir, limit=cfg.train_limit, seed=cfg.seed)
    dev = load_split(spec, "dev", cfg.data_dir, limit=cfg.eval_limit)
    probe, _ = load_model(model_dir, num_labels=spec.num_labels)
    params, tilings, _, _ = _prunable(probe, cfg)
    _hard_prune(cfg, params, tilings)  # raises on an unreachable target before hours of training
    del probe, params
    reused = reusable_regularized(cfg) if cfg.regularized_from is not None else None
    if not is_ft and cfg.epochs_finetune <= 0:
        raise ConfigError(f"{cfg.model} is not fine-tuned on {spec.name}; give --epochs-finetune > 0")
    state = _prepare(cfg, resume, replace=overwrite and existing != "new")
    phases: dict[str, float] = {}
    if (state / "phases.json").is_file():
        phases.update(read_json(state / "phases.json"))

    def mark(name: str, t0: float) -> None:
        phases[name] = round(phases.get(name, 0.0) + time.perf_counter() - t0, 2)
        if is_main():
            write_json(state / "phases.json", phases)

    # --- phase 1: dense fine-tune
    t0 = time.perf_counter()
    if is_ft:
        dense_dir = model_dir
        _say(f"[1/4] dense model {model_dir} is already fine-tuned on {spec.name}: skipping fine-tuning")
        if not (state / "dense_metrics.json").is_file():
            dm = evaluate(str(dense_dir), spec, cfg.data_dir, max_seq_len=cfg.max_seq_len, limit=cfg.eval_limit)
            if is_main():
                write_json(state / "dense_metrics.json", dm)
        barrier()
    else:
        _say(f"[1/4] dense fine-tuning {cfg.model} on {spec.name} ({cfg.epochs_finetune:g} epochs)")
        ft_dir = state / "finetune"
        dm = finetune(cfg.model, spec, cfg.data_dir, ft_dir, _train_cfg(cfg, cfg.epochs_finetune, cfg.finetune_lr),
                      resume=(ft_dir / "config.json").is_file(), callbacks=cbs.get("finetune", ()))
        dense_dir = ft_dir / MODEL_DIR
        if is_main():
            write_json(state / "dense_metrics.json", dm)
        barrier()
    dense_metrics = read_json(state / "dense_metrics.json")
    mark("finetune" if not is_ft else "dense_eval", t0)

    # --- phase 2: regularized training
    set_seed(cfg.seed)
    reg_dir = state / "regularize"
    model, tok = load_model(dense_dir, num_labels=spec.num_labels)
    if reused is not None:
        _say(f"[2/4] reusing the regularized stage of {cfg.regularized_from}")
        model, tok = load_model(reused[0], num_labels=spec.num_labels)
        phases["regularize_reused"] = reused[1]
    elif cfg.method in REGULARIZED and cfg.epochs_reg > 0:
        t0 = time.perf_counter()
        if (reg_dir / "done.json").is_file():
            _say("[2/4] group-Lasso training already done")
            model, tok = load_model(reg_dir / MODEL_DIR, num_labels=spec.num_labels)
        else:
            from .compress_trainer import ProximalCallback, PruneTrainer, ReweightCallback
            from .prune.group_lasso import GroupLassoRegularizer

            _say(f"[2/4] {cfg.method} training ({cfg.epochs_reg:g} epochs, lambda {cfg.penalty:g})")
            params, tilings, _, _ = _prunable(model, cfg)
            reg = GroupLassoRegularizer(params, tilings, cfg.penalty, reweighted=cfg.method == "reweighted-group-lasso",
                                        eps=cfg.eps)
            last = _last_ckpt(reg_dir) if resume else None
            r_start = float(reg().detach())
            e_start = _kept_energy(params, tilings, cfg)
            rw = ReweightCallback(reg, cfg.milestones if reg.reweighted else (),
                                  cfg.reweight_every if reg.reweighted else None, resume_from=last)
            extra_cbs = [ProximalCallback(reg)] if cfg.reg_form == "proximal" else []
            trainer = make_trainer(model, tok, spec, train, dev, _train_cfg(cfg, cfg.epochs_reg, cfg.lr), reg_dir,
                                   trainer_cls=PruneTrainer, callbacks=[rw, *extra_cbs, *cbs.get("regularize", ())],
                                   regularizer=reg if cfg.reg_form == "loss" else None)
            trainer.train(resume_from_checkpoint=last)
            model = trainer.model
            reg_metrics = evaluate((model, tok), spec, cfg.data_dir, max_seq_len=cfg.max_seq_len, limit=cfg.eval_limit)
            reg_record = {"reweighted_at_steps": rw.history, "final_reg": float(reg().detach()), "form": cfg.reg_form,
                          "R_start": r_start, "R_end": float(reg().detach()),
                          "kept_energy_at_target_start": e_start, "kept_energy_at_target_end":
                              _kept_energy(params, tilings, cfg),
                          "zero_groups": _zero_groups(params, tilings), "metrics": reg_metrics,
                          "steps": trainer.state.global_step}
            _say(f"      regularized: R {r_start:.4g} -> {reg_record['R_end']:.4g}, kept energy at "
                 f"{cfg.compression:g}x {e_start:.3f} -> {reg_record['kept_energy_at_target_end']:.3f}, "
                 f"{spec.metric} {reg_metrics['main']:.4f} before the cut")
            if is_main():
                with atomic_dir(reg_dir / MODEL_DIR) as tmp:
                    model.save_pretrained(tmp)
                    tok.save_pretrained(tmp)
                write_json(reg_dir / "done.json", reg_record)
            barrier()
            del trainer
        mark("regularize", t0)

    # --- phase 3: hard prune (gradual: only the calibration; masks tighten during retraining)
    t0 = time.perf_counter()
    gradual = cfg.prune_schedule == "gradual"
    params, tilings, roles, layers = _prunable(model, cfg)
    masks_path = state / MASKS_FILE
    layerwise = cfg.reconstruct or cfg.stages != "none" or cfg.score == "obs"
    rms = input_rms(model, tok, params, train[:cfg.calib_examples or 64], cfg.max_seq_len) \
        if cfg.score == "activation" and not masks_path.is_file() and not layerwise else None
    prune_metrics = None
    stage_log = None
    if layerwise:
        model, masks, stage_log = _staged_cuts(cfg, model, tok, spec, train, dense_dir, state, resume, cbs)
        params, tilings, roles, layers = _prunable(model, cfg)
        prune_metrics = stage_log[-1].get("metrics_after_cut")
        if is_main():
            from .rundir import save_masks

            save_masks(masks, masks_path)
    elif masks_path.is_file():  # resumed: the masks chosen before are authoritative
        from .rundir import load_masks

        saved = load_masks(masks_path)
        masks = {n: saved[n].bool() for n in params}
    elif gradual:
        masks = None
        _say(f"[3/4] gradual pruning: masks tighten to {cfg.compression:g}x over the first {cfg.prune_ramp:g} "
             f"of retraining (block {cfg.resolved_block()[0]}, {cfg.scope})")
    else:
        masks = _hard_prune(cfg, params, tilings, rms).masks
        if is_main():
            from .rundir import save_masks

            save_masks(masks, masks_path)
    if masks is not None:
        with torch.no_grad():
            for n, m in masks.items():
                params[n].mul_(m.to(params[n].dtype))
        achieved = sum(m.numel() for m in masks.values()) / max(sum(int(m.sum()) for m in masks.values()), 1)
        _say(f"[3/4] hard-pruned {len(masks)} matrices to {achieved:.3f}x (target {cfg.compression:g}x, "
             f"block {cfg.resolved_block()[0]}, {cfg.scope}{', balanced' if cfg.resolved_block()[1] else ''})")
        if cfg.eval_after_prune and not layerwise:
            if (state / "prune.json").is_file():
                prune_metrics = read_json(state / "prune.json").get("metrics_before_retrain")
            else:
                prune_metrics = evaluate((model, tok), spec, cfg.data_dir, max_seq_len=cfg.max_seq_len,
                                         limit=cfg.eval_limit)
                if is_main():
                    write_json(state / "prune.json", {"compression": achieved, "metrics_before_retrain": prune_metrics})
                _say(f"      before retraining: {spec.metric} {prune_metrics['main']:.4f}")
    mark("prune", t0)

    # --- phase 4: masked retraining (+ optional distillation)
    t0 = time.perf_counter()
    rt_dir = state / "retrain"
    epochs = cfg.retrain_epochs
    final_dir = out / MODEL_DIR
    if (rt_dir / "done.json").is_file() and (final_dir / "config.json").is_file():
        _say("[4/4] masked retraining already done")
        model, tok = load_model(final_dir, num_labels=spec.num_labels)
        pruned_metrics = read_json(rt_dir / "done.json")["metrics"]
    else:
        from .compress_trainer import GradualMaskCallback, MaskCallback, PruneTrainer

        teacher = None
        if cfg.distill:
            teacher, _ = load_model(dense_dir, num_labels=spec.num_labels)
        _say(f"[4/4] masked retraining ({epochs:g} epochs{', distilling from the dense model' if cfg.distill else ''}"
             f"{', pruning gradually' if masks is None else ''})")
        last = _last_ckpt(rt_dir) if resume else None
        if masks is None:
            mask_cb = GradualMaskCallback(params, tilings, 1.0 / cfg.compression, cfg.scope, cfg.resolved_block()[1],
                                          cfg.prune_ramp, cfg.prune_every, rms, resume_from=last)
        else:
            mask_cb = MaskCallback(params, masks)
        trainer = make_trainer(model, tok, spec, train, dev, _train_cfg(cfg, max(epochs, 1e-9), cfg.retrain_lr_), rt_dir,
                               trainer_cls=PruneTrainer, callbacks=[mask_cb, *cbs.get("retrain", ())],
                               teacher=teacher, distill_alpha=cfg.distill_alpha,
                               distill_temperature=cfg.distill_temperature, distill_hidden=cfg.distill_hidden)
        if epochs > 0:
            trainer.train(resume_from_checkpoint=last)
        mask_cb.apply()
        if masks is None:
            masks = {n: m.bool().cpu() for n, m in mask_cb.masks.items()}
            if is_main():
                from .rundir import save_masks

                save_masks(masks, masks_path)
                write_json(state / "schedule.json", {"updates": mask_cb.history, "ramp_steps": mask_cb.ramp_steps})
        pruned_metrics = _metrics_from_eval(trainer.evaluate())
        model = trainer.model
        model.config.edgeprune_task = key
        if is_main():
            from .rundir import save_masks

            with atomic_dir(final_dir) as tmp:
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
                save_masks(masks, Path(tmp) / MASKS_FILE)
            write_json(rt_dir / "done.json", {"metrics": pruned_metrics, "epochs": epochs,
                                              "steps": int(trainer.state.global_step) if epochs > 0 else 0})
        barrier()
        del trainer
    mark("retrain", t0)

    # --- report: compression.json last
    from .arch import get_arch
    from .prune.blocks import group_mask_of
    from .prune.report import compression_figures, layer_records, plot_kept_ratios

    for n, m in masks.items():  # the invariant the exporters rely on
        if bool((params[n].detach()[~m.to(params[n].device)] != 0).any()):
            raise RuntimeError(f"pruned weights of {n} are not zero after retraining")
    gms = {n: group_mask_of(m, tilings[n]) for n, m in masks.items()}
    recs = layer_records(masks, tilings, roles, layers, gms)
    figs = compression_figures(model, masks, get_arch(model.config.model_type).layer_regex)
    spec_b, balanced = cfg.resolved_block()
    bj = spec_b.to_json()  # [R, C] with null for "all"; null when unstructured; the string for all/N
    block_json = bj if bj is None or all(isinstance(x, (int, type(None))) for x in bj) else str(spec_b)
    record = {
        "kind": "edgeprune.compress",
        "task": key,
        "model": str(cfg.model),
        "method": cfg.method,
        "block": block_json,
        "block_str": str(spec_b),
        "block_preset": cfg.block_preset,
        "balanced": balanced,
        "padding": "last partial block padded with zeros for norms (recorded per layer)",
        "scope": cfg.scope,
        "distill": cfg.distill,
        "target_compression": cfg.compression,
        "compression": figs,
        "metrics": {"dense": dense_metrics, "pruned": pruned_metrics, "pruned_before_retrain": prune_metrics,
                    "metric": spec.metric},
        "layers": recs,
        "phases": phases,
        "regularized_from": cfg.regularized_from,
        "prune_schedule": cfg.prune_schedule,
        "recipe": cfg.recipe,
        "regularize": read_json(reg_dir / "done.json") if (reg_dir / "done.json").is_file() else None,
        "stages": stage_log,
        "steps": _total_steps(state, stage_log),
        "schedule": read_json(state / "schedule.json") if (state / "schedule.json").is_file() else None,
        "config": cfg.to_dict(),
        "num_train_examples": len(train),
        "num_eval_examples": len(dev),
    }
    if is_main():
        plot_kept_ratios(recs, out / PLOT, f"{spec.name} {cfg.method} {spec_b} "
                                           f"{figs['prunable_encoder']['compression']:.2f}x")
        write_json(out / COMPRESSION_JSON, record)
        if not cfg.keep_checkpoints:
            import shutil

            for d in (state / "finetune" / "checkpoints", reg_dir / "checkpoints", rt_dir / "checkpoints",
                      *sorted((state / "stages").glob("*/checkpoints")),
                      *(() if cfg.keep_regularized else (reg_dir / MODEL_DIR,))):
                shutil.rmtree(d, ignore_errors=True)
    _say(f"done: {spec.metric} dense {dense_metrics.get('main', float('nan')):.4f} -> pruned "
         f"{pruned_metrics.get('main', float('nan')):.4f} at {figs['prunable_encoder']['compression']:.2f}x "
         f"(prunable encoder), {figs['whole_model']['compression']:.2f}x whole model -> {out}")
    return record

