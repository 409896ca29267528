"""Positive-class weight search of the paper's notebook 2 (Supplementary Table 2).

Each weight in ``np.arange(0.05, 10.05, 0.05)`` (200 values, negative class weight 1) is fitted once on the
``train`` rows and scored on the ``val`` rows; "AUC" is the weight with the best validation AUC, "F1" the weight
with the best validation F1 (the first one on ties). Candidates run in parallel on all cores.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from numpy.typing import NDArray
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score, roc_auc_score
from threadpoolctl import threadpool_limits

from livermets.phenotype.cv import validated_inputs
from livermets.phenotype.models import make_classifier
from livermets.progress import track


def paper_weight_grid() -> NDArray[np.float64]:
    """``np.arange(0.05, 10.05, 0.05)`` rounded to 2 decimals (200 weights)."""
    return np.round(np.arange(0.05, 10.05, 0.05), 2)


def _evaluate(name: str, weight: float, X_train: Any, y_train: Any, X_val: Any, y_val: Any) -> tuple[float, float]:
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"), validated_inputs():
        warnings.simplefilter("ignore")  # see cv.fit_quietly: expected solver/parameter warnings of the recipe
        model = make_classifier(name, weighting=weight, stage="search").fit(X_train, y_train)
        probabilities = np.asarray(model.predict_proba(X_val))
        # A forest's predict is the argmax of its predict_proba (one pass over the trees instead of two).
        predicted = (
            model.classes_.take(np.argmax(probabilities, axis=1), axis=0)
            if isinstance(model, RandomForestClassifier)
            else model.predict(X_val)
        )
    return float(roc_auc_score(y_val, probabilities[:, 1])), float(f1_score(y_val, predicted, zero_division=0.0))


def search_positive_weight(
    name: str,
    X_train: pd.DataFrame,
    y_train: NDArray[np.int64],
    X_val: pd.DataFrame,
    y_val: NDArray[np.int64],
    grid: NDArray[np.float64] | None = None,
    n_jobs: int = -1,
) -> pd.DataFrame:
    """Validation AUC and F1 of every candidate weight; columns ``weight, val_auc, val_f1``."""
    weights = paper_weight_grid() if grid is None else np.asarray(grid, dtype=float)
    jobs = (delayed(_evaluate)(name, float(w), X_train, y_train, X_val, y_val) for w in weights)
    runner = Parallel(n_jobs=n_jobs, return_as="generator")
    scores = list(track(runner(jobs), f"{name} weight search", total=len(weights)))
    return pd.DataFrame({"weight": weights, "val_auc": [s[0] for s in scores], "val_f1": [s[1] for s in scores]})


def best_weights(search: pd.DataFrame) -> dict[str, float]:
    """The weight with the best validation AUC and the one with the best validation F1 (first on ties)."""
    return {
        "AUC": float(search["weight"].iloc[int(np.argmax(search["val_auc"].to_numpy()))]),
        "F1": float(search["weight"].iloc[int(np.argmax(search["val_f1"].to_numpy()))]),
    }
