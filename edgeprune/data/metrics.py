"""Official GLUE metrics via scikit-learn and scipy."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .glue import TaskSpec


def compute_metrics(spec: TaskSpec, predictions: Sequence[float] | np.ndarray,
                    labels: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Metrics for one task. ``predictions`` are logits ([N, C]), class ids ([N]) or scores (STS-B).

    The returned dict always holds ``"main"``: the task's main metric as a fraction.
    """
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    preds = np.asarray(predictions)
    y = np.asarray(labels)
    if spec.is_regression:
        preds = preds.reshape(-1).astype(np.float64)
        y = y.reshape(-1).astype(np.float64)
        pearson = float(pearsonr(preds, y)[0]) if np.std(preds) > 0 else 0.0
        spearman = float(spearmanr(preds, y)[0]) if np.std(preds) > 0 else 0.0
        out = {"pearson": pearson, "spearman": spearman, "combined": (pearson + spearman) / 2}
    else:
        if preds.ndim == 2:
            preds = preds.argmax(axis=-1)
        preds = preds.astype(np.int64)
        y = y.astype(np.int64)
        out = {"accuracy": float(accuracy_score(y, preds))}
        if spec.metric == "f1":
            f1 = float(f1_score(y, preds, zero_division=0.0))
            out = {"f1": f1, "accuracy": out["accuracy"], "combined": (f1 + out["accuracy"]) / 2}
        elif spec.metric == "matthews_corr":
            out = {"matthews_corr": float(matthews_corrcoef(y, preds)), **out}
    out["main"] = out[spec.metric]
    return out
