"""``compress``: dense fine-tune -> (reweighted) group-Lasso training -> cut -> masked retraining.

The paper's pipeline (Li et al. 2020, see docs/paper.md) plus its baselines and our staged,
reconstructed cuts in the same code, as phases over one run state:

* ``config``: the versioned :class:`CompressConfig`, the recipes and the :class:`Plan` resolved once;
* ``dense``, ``regularize``, ``cut``, ``retrain``, ``report``: the phases, in that order (``pipeline``);
* ``trainer``: the ``transformers.Trainer`` loss and callbacks the training phases share.

The run folder's layout, its reader and its one writer are ``edgeprune.rundir``. Methods without a
regularizer (magnitude-*) retrain for ``epochs_reg + epochs_retrain`` epochs, so every method gets the
same training budget after the dense fine-tune.
"""
from __future__ import annotations

from typing import Any

from edgeprune.rundir import STATE_DIR as STATE

from .config import CONFIG_VERSION, METHODS, RECIPES, REGULARIZED, CompressConfig, Plan
from .dense import finetuned_for_task
from .pipeline import compress, run_kind


def __getattr__(name: str):
    if name == "input_rms":  # calibration needs torch: imported on use, so ``import edgeprune.compress`` stays light
        from edgeprune.calibrate import input_rms

        return input_rms
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CONFIG_VERSION", "METHODS", "RECIPES", "REGULARIZED", "STATE", "CompressConfig", "Plan", "compress",
           "finetuned_for_task", "input_rms", "run_kind"]
