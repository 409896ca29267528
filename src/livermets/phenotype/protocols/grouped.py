"""The grouped protocol (the default for new work): patient-grouped nested CV, see :mod:`livermets.phenotype.grouped`.

:func:`evaluate` estimates performance (repeated outer CV, patient-level permutation test, cluster bootstrap, and
the test rows when the table has them); :func:`train` fits the model that ``phenotype train`` stores: one repeat of
the nested CV, each fold model a full pipeline (scaling, LASSO, classifier), the threshold the mean of the
training-fold thresholds.

Examples
--------
>>> from livermets.phenotype.protocols import grouped
>>> evaluation = grouped.evaluate("features.csv", GroupedConfig(model="LR", n_permutations=200))  # doctest: +SKIP
>>> evaluation.summary["cv_auc"], evaluation.summary["permutation_p"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from livermets.featuretable import FEATURE_COLUMNS, read_feature_table
from livermets.phenotype.grouped import GroupedConfig, evaluate_grouped, out_of_fold
from livermets.phenotype.protocols import Evaluation, FoldEnsemble


def evaluate(features: str | os.PathLike[str], config: GroupedConfig | None = None) -> Evaluation:
    """Run :func:`~livermets.phenotype.grouped.evaluate_grouped` with ``config`` (default: the documented protocol)
    on the feature table ``features``.

    Returns the summary and the repeat-averaged out-of-fold predictions of the development rows.
    """
    config = config or GroupedConfig()
    frame = read_feature_table(features, targets=["NE_Score", "NE_Class"])
    result = evaluate_grouped(frame, FEATURE_COLUMNS, config)
    return Evaluation(summary=result.summary, oof=result.oof)


def train(dev: pd.DataFrame, model: str = "LR", n_jobs: int = -1, seed: int = 0) -> FoldEnsemble:
    """Fit the fold models of one repeat of the nested patient-grouped CV on the development rows ``dev``.

    The stored ``cv_performance`` is the out-of-fold AUC of these fold models, each scoring its held-out patients.
    """
    y = dev["NE_Class"].to_numpy().astype(np.int64)
    config = GroupedConfig(model=model, seed=seed, n_jobs=n_jobs)
    result = out_of_fold(
        dev[FEATURE_COLUMNS].to_numpy(dtype=float),
        y,
        dev["NE_Score"].to_numpy(dtype=float),
        dev["unique_pt"].astype(str).to_numpy(),
        config,
        seed,
        n_jobs=n_jobs,
    )
    fold_models = result["models"]
    selected_per_fold = [
        [f for f, keep in zip(FEATURE_COLUMNS, m.named_steps["select"].get_support(), strict=True) if keep]
        for m in fold_models
    ]
    return FoldEnsemble(
        models=list(fold_models),
        threshold=float(np.mean(result["thresholds"])),
        selected_per_fold=selected_per_fold,
        input_kind="array",
        cv_performance=_cv_performance(dev, y, result, config.n_splits),
    )


def _cv_performance(dev: pd.DataFrame, y: NDArray[np.int64], result: dict[str, Any], n_splits: int) -> dict[str, Any]:
    """Out-of-fold ROC AUC of the fold models themselves (patient-grouped, one repeat), stored with the model."""
    probability = np.asarray(result["probability"], dtype=float)
    return {
        "protocol": "grouped",
        "metric": "roc_auc",
        "auc": float(roc_auc_score(y, probability)),
        "n_rows": int(y.size),
        "n_patients": int(dev["unique_pt"].nunique()),
        "n_folds": int(n_splits),
    }
