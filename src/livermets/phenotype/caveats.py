"""When an NE prediction deserves less trust than its number suggests: flags per row and sentences for people.

Two checks, made on every prediction (``phenotype predict``, ``analyze``, ``run``):

- ``out_of_range``: some input features lie outside the range seen in training; ``max_outside_range`` says how far,
  as a multiple of that feature's training range (0.5 = half the range beyond its minimum or maximum);
- ``fold_disagreement``: the fold models' probabilities span at least :data:`FOLD_DISAGREEMENT` (max - min).

Examples
--------
>>> row = {"n_features_outside_training_range": 2, "max_outside_range": 0.8, "fold_probability_min": 0.05,
...        "fold_probability_max": 0.6}
>>> prediction_flags(row)
['out_of_range', 'fold_disagreement']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

FOLD_DISAGREEMENT = 0.3
"""Fold-probability spread (max - min) from which the fold models are said to disagree."""


def outside_range(values: NDArray[np.float64], low: NDArray[np.float64],
                  high: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Per row: the number of features outside ``[low, high]`` and the largest excess in units of ``high - low``.

    Examples
    --------
    >>> count, excess = outside_range(np.array([[0.5, 3.0], [1.0, 1.0]]), np.array([0.0, 0.0]), np.array([1.0, 2.0]))
    >>> count.tolist(), excess.round(2).tolist()
    ([1, 0], [0.5, 0.0])
    """
    width = np.where(high > low, high - low, 1.0)
    excess = np.maximum(np.maximum(low - values, values - high), 0.0) / width
    return (excess > 0).sum(axis=1).astype(np.int64), excess.max(axis=1, initial=0.0)


def prediction_flags(row: Mapping[Any, Any]) -> list[str]:
    """Flag codes of one prediction row (``out_of_range``, ``fold_disagreement``)."""
    flags = []
    if int(row["n_features_outside_training_range"]) > 0:
        flags.append("out_of_range")
    if float(row["fold_probability_max"]) - float(row["fold_probability_min"]) >= FOLD_DISAGREEMENT:
        flags.append("fold_disagreement")
    return flags


def caveat_sentences(row: Mapping[Any, Any]) -> list[str]:
    """One sentence per flag of a prediction row, for logs and reports."""
    sentences = []
    flags = prediction_flags(row)
    if "out_of_range" in flags:
        sentences.append(
            f"{int(row['n_features_outside_training_range'])} feature(s) lie outside the range the phenotype model "
            f"was trained on (up to {float(row['max_outside_range']):.2g} times that range beyond it): the "
            "probability is an extrapolation.")
    if "fold_disagreement" in flags:
        sentences.append(f"The phenotype model's folds disagree (probabilities {float(row['fold_probability_min']):.2f}"
                         f"–{float(row['fold_probability_max']):.2f}).")
    return sentences
