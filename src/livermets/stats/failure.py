"""Failure analysis of a classifier's test predictions (the paper's Figure 5).

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"NE_Score": [0.3, -0.1, 0.05], "NE_Class": [1, 0, 1]})
>>> failure_analysis(t, [1, 1, 1])["incorrect"]["n"]
1
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from livermets.errors import UserInputError
from livermets.phenotype.metrics import binary_metrics
from livermets.stats.burden import SAMPLE_TYPE_COLUMN


def _describe(scores: np.ndarray) -> dict[str, Any]:
    if scores.size == 0:
        return {"n": 0}
    return {
        "n": int(scores.size),
        "ne_score_mean": float(scores.mean()),
        "ne_score_median": float(np.median(scores)),
        "range": [float(scores.min()), float(scores.max())],
        "n_near_boundary_0.1": int((np.abs(scores) < 0.1).sum()),
    }


def failure_analysis(frame: pd.DataFrame, predicted: ArrayLike, probability: ArrayLike | None = None) -> dict[str, Any]:
    """NE-score summaries of correctly and incorrectly classified series, and metrics per ``sample_type``."""
    classes = np.asarray(predicted).astype(int)
    if classes.size != len(frame):
        raise UserInputError(f"failure analysis: {classes.size} predictions for {len(frame)} rows")
    truth = frame["NE_Class"].to_numpy().astype(int)
    scores = frame["NE_Score"].to_numpy(dtype=float)
    correct = classes == truth
    result: dict[str, Any] = {
        "n": int(classes.size),
        "correct": _describe(scores[correct]),
        "incorrect": _describe(scores[~correct]),
        "incorrect_truth_negative": int((~correct & (truth == 0)).sum()),
        "incorrect_truth_positive": int((~correct & (truth == 1)).sum()),
    }
    prob = np.asarray(probability, dtype=float) if probability is not None else classes.astype(float)
    if SAMPLE_TYPE_COLUMN in frame.columns:
        by_type: dict[str, Any] = {}
        for sample_type in sorted(frame[SAMPLE_TYPE_COLUMN].astype(str).unique()):
            mask = frame[SAMPLE_TYPE_COLUMN].astype(str).to_numpy() == sample_type
            metrics = binary_metrics(truth[mask], classes[mask], prob[mask])
            by_type[sample_type.lower()] = {
                "n": int(mask.sum()),
                "accuracy": metrics["accuracy"],
                "auc": metrics["auc"],
            }
        result["by_sample_type"] = by_type
    else:
        result["by_sample_type"] = None
        result["note"] = "no 'sample_type' column: biopsy/cfDNA split not available"
    return result
