"""Binary classification metrics, for one prediction vector or vectorised over many bootstrap samples.

A metric whose denominator is zero in a sample (one class only, no predicted positives, ...) is NaN there, never an
exception; callers count those NaNs and report them.

Examples
--------
>>> import numpy as np
>>> m = binary_metrics(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]), np.array([0.9, 0.4, 0.3, 0.1]))
>>> round(m["sensitivity"], 2), round(m["specificity"], 2), round(m["auc"], 2)
(0.5, 1.0, 1.0)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

METRICS: tuple[str, ...] = ("accuracy", "ppv", "npv", "sensitivity", "specificity", "f1", "auc")
"""Metric names in the column order of the paper's Table 4."""


def _ratio(numerator: NDArray[np.float64], denominator: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def metrics_matrix(truth: ArrayLike, predicted: ArrayLike, probability: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """All :data:`METRICS` for each row of ``(n_samples, n_items)`` arrays of labels, classes and probabilities.

    AUC is the Mann-Whitney statistic from mid-ranks, identical to ``sklearn.metrics.roc_auc_score`` (ties
    count one half).
    """
    y = np.atleast_2d(np.asarray(truth)).astype(bool)
    c = np.atleast_2d(np.asarray(predicted)).astype(bool)
    p = np.atleast_2d(np.asarray(probability, dtype=float))
    tp = (y & c).sum(axis=1).astype(float)
    tn = (~y & ~c).sum(axis=1).astype(float)
    fp = (~y & c).sum(axis=1).astype(float)
    fn = (y & ~c).sum(axis=1).astype(float)
    n_pos = tp + fn
    n_neg = tn + fp
    ranks = rankdata(p, axis=1)
    rank_sum_pos = np.where(y, ranks, 0.0).sum(axis=1)
    auc = _ratio(rank_sum_pos - n_pos * (n_pos + 1) / 2, n_pos * n_neg)
    return {
        "accuracy": (tp + tn) / y.shape[1],
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "sensitivity": _ratio(tp, n_pos),
        "specificity": _ratio(tn, n_neg),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "auc": auc,
    }


def binary_metrics(truth: ArrayLike, predicted: ArrayLike, probability: ArrayLike) -> dict[str, float]:
    """:data:`METRICS` for one set of predictions (NaN where undefined)."""
    return {name: float(values[0]) for name, values in metrics_matrix(truth, predicted, probability).items()}
