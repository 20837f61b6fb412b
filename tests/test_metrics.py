"""Official GLUE metrics against values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgeprune.data import compute_metrics, get_task


def test_accuracy_from_class_ids():
    m = compute_metrics(get_task("sst2"), [1, 0, 1, 1], [1, 0, 0, 1])
    assert m["accuracy"] == pytest.approx(0.75)  # 3 of 4 right
    assert m["main"] == m["accuracy"]


def test_logits_are_argmaxed():
    logits = np.array([[0.1, 0.9], [2.0, 1.0], [-1.0, 3.0]])
    m = compute_metrics(get_task("rte"), logits, [1, 1, 1])
    assert m["accuracy"] == pytest.approx(2 / 3)  # predictions 1, 0, 1


def test_mrpc_f1_and_accuracy():
    # preds 1 1 1 0 0, labels 1 1 0 0 1: TP=2 FP=1 FN=1 TN=1 -> P=2/3, R=2/3, F1=2/3, acc=3/5
    m = compute_metrics(get_task("mrpc"), [1, 1, 1, 0, 0], [1, 1, 0, 0, 1])
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["combined"] == pytest.approx((2 / 3 + 0.6) / 2)
    assert m["main"] == m["f1"]


def test_qqp_f1_with_perfect_recall():
    # TP=2 FP=1 FN=0 -> P=2/3, R=1, F1 = 2PR/(P+R) = 0.8
    m = compute_metrics(get_task("qqp"), [1, 0, 1, 1], [1, 0, 0, 1])
    assert m["f1"] == pytest.approx(0.8)


def test_cola_matthews():
    # TP=1 FP=1 TN=2 FN=0 -> (1*2 - 1*0) / sqrt(2*1*3*2) = 2/sqrt(12)
    m = compute_metrics(get_task("cola"), [1, 1, 0, 0], [1, 0, 0, 0])
    assert m["matthews_corr"] == pytest.approx(2 / math.sqrt(12))
    assert m["main"] == m["matthews_corr"]
    assert m["accuracy"] == pytest.approx(0.75)


def test_cola_matthews_is_zero_for_constant_predictions():
    assert compute_metrics(get_task("cola"), [1, 1, 1, 1], [1, 0, 1, 0])["matthews_corr"] == 0.0


def test_stsb_pearson_spearman():
    # p = 1 2 3, y = 1 2 4: centred p = -1 0 1, y = -4/3 -1/3 5/3; cov sum 3, |p|^2 2, |y|^2 14/3
    m = compute_metrics(get_task("stsb"), np.array([[1.0], [2.0], [3.0]]), [1.0, 2.0, 4.0])
    assert m["pearson"] == pytest.approx(3 / math.sqrt(2 * 14 / 3))
    assert m["spearman"] == pytest.approx(1.0)  # same ranking
    assert m["main"] == m["pearson"]
    assert m["combined"] == pytest.approx((m["pearson"] + 1.0) / 2)


def test_stsb_constant_predictions_give_zero_not_nan():
    m = compute_metrics(get_task("stsb"), [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert m["pearson"] == 0.0 and m["spearman"] == 0.0


def test_mnli_three_classes():
    logits = np.array([[3, 0, 0], [0, 3, 0], [0, 0, 3], [0, 3, 0]], dtype=float)
    m = compute_metrics(get_task("mnli-mm"), logits, [0, 1, 2, 2])
    assert m["accuracy"] == pytest.approx(0.75)
    assert set(m) == {"accuracy", "main"}
