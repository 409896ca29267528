"""ROC curves on bootstrap samples, vectorised: TPR at a fixed FPR grid for every sample at once.

Examples
--------
>>> import numpy as np
>>> y = np.array([[0, 0, 1, 1]]); p = np.array([[0.1, 0.4, 0.35, 0.8]])
>>> grid, tpr = bootstrap_roc(y, p, n_grid=5)
>>> tpr.round(2).tolist()
[[0.5, 0.5, 1.0, 1.0, 1.0]]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def bootstrap_roc(
    truth: ArrayLike, probability: ArrayLike, n_grid: int = 101
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """TPR of each sample (row) at FPR values ``linspace(0, 1, n_grid)``: the ROC step curve's upper envelope.

    Thresholds are all probabilities occurring in the input plus +inf. Rows with one class only give NaN.
    """
    y = np.atleast_2d(np.asarray(truth)).astype(bool)
    p = np.atleast_2d(np.asarray(probability, dtype=float))
    thresholds = np.concatenate([[np.inf], np.unique(p)[::-1]])
    above = p[:, :, None] >= thresholds[None, None, :]  # (samples, items, thresholds)
    n_pos = y.sum(axis=1, keepdims=True).astype(float)
    n_neg = (~y).sum(axis=1, keepdims=True).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = (above & y[:, :, None]).sum(axis=1) / n_pos
        fpr = (above & ~y[:, :, None]).sum(axis=1) / n_neg
    grid = np.linspace(0.0, 1.0, n_grid)
    reachable = fpr[:, :, None] <= grid[None, None, :] + 1e-12  # (samples, thresholds, grid)
    envelope = np.where(reachable, tpr[:, :, None], 0.0).max(axis=1)
    envelope[(n_pos[:, 0] == 0) | (n_neg[:, 0] == 0)] = np.nan
    return grid, envelope
