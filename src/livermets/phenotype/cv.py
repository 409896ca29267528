"""Cross-validation protocols: the paper's row-level ShuffleSplit and the patient-grouped splitter.

``paper``: ``ShuffleSplit(n_splits=5, test_size=0.2, random_state=2024)`` over train+val rows, as in notebooks 2-3.
Rows of the same patient and study can land on both sides of a split, which inflates nothing in the paper's
test-set numbers but makes its CV numbers optimistic or noisy.

``grouped``: ``StratifiedGroupKFold`` by patient, so every patient's series are on one side of every split.

Examples
--------
>>> import numpy as np
>>> groups = np.repeat(np.arange(10), 3); y = np.repeat(np.arange(10) % 2, 3)
>>> splits = grouped_splits(y, groups, n_splits=5, seed=0)
>>> all(set(groups[tr]).isdisjoint(groups[te]) for tr, te in splits)
True
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from numpy.typing import ArrayLike, NDArray
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import ShuffleSplit, StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from livermets.errors import UserInputError

PAPER_CV_SEED = 2024
Split = tuple[NDArray[np.intp], NDArray[np.intp]]


def paper_splits(n_rows: int, n_splits: int = 5, seed: int = PAPER_CV_SEED) -> list[Split]:
    """The notebooks' row-level ``ShuffleSplit(5, test_size=0.2, random_state=2024)``."""
    splitter = ShuffleSplit(n_splits=n_splits, test_size=0.2, random_state=seed)
    return list(splitter.split(np.zeros((n_rows, 1))))


def grouped_splits(y: ArrayLike, groups: ArrayLike, n_splits: int = 5, seed: int = 0) -> list[Split]:
    """Patient-grouped, class-stratified K-fold (``StratifiedGroupKFold`` with shuffling)."""
    labels = np.asarray(y)
    group_ids = np.asarray(groups)
    n_groups = np.unique(group_ids).size
    if n_groups < n_splits:
        raise UserInputError(f"grouped CV: {n_groups} patients is fewer than {n_splits} folds")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((labels.size, 1)), labels, group_ids))


def check_two_classes(y: ArrayLike, where: str) -> None:
    """Raise a one-line UserInputError if ``y`` holds only one class."""
    values = np.unique(np.asarray(y))
    if values.size < 2:
        raise UserInputError(f"{where}: only one class ({values.tolist()}) — cannot train or score a classifier")


@dataclass
class CVResult:
    """Fold models and per-fold train/validation F1 and AUC (the paper's Supplementary Table 2 columns)."""

    estimators: list[Any]
    folds: pd.DataFrame

    def summary(self) -> dict[str, float]:
        """Mean, min and max of the validation F1 and AUC over folds."""
        out: dict[str, float] = {}
        for metric in ("f1", "auc"):
            values = self.folds[f"val_{metric}"].to_numpy(dtype=float)
            out[f"{metric}_mean"] = float(np.nanmean(values))
            out[f"{metric}_min"] = float(np.nanmin(values))
            out[f"{metric}_max"] = float(np.nanmax(values))
        return out


@contextmanager
def validated_inputs() -> Iterator[None]:
    """scikit-learn without its repeated input and parameter checks, for tables already validated on reading.

    A 1000-tree forest checks its input and parameters again for every tree; skipping those checks (inputs are
    finite, parameters fixed by the recipe) makes the paper's forests ~20 % faster with identical results.
    """
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        yield


def _score(
    model: Any, X: Any, y: NDArray[np.int64], probabilities: NDArray[np.float64] | None = None
) -> tuple[float, float]:
    """F1 and AUC of ``model`` on ``X``; ``probabilities``: its ``predict_proba(X)`` when already computed."""
    if probabilities is None:
        probabilities = np.asarray(model.predict_proba(X))
    probability = probabilities[:, 1]
    if isinstance(model, RandomForestClassifier):
        # RandomForestClassifier.predict is exactly this argmax of predict_proba: skip a second pass over 1000 trees.
        predicted = model.classes_.take(np.argmax(probabilities, axis=1), axis=0)
    else:
        predicted = model.predict(X)
    auc = float(roc_auc_score(y, probability)) if np.unique(y).size == 2 else float("nan")
    return float(f1_score(y, predicted, zero_division=0.0)), auc


def _predict_parts(model: Any, parts: list[pd.DataFrame]) -> list[NDArray[np.float64]] | list[None]:
    """``predict_proba`` of every part for a random forest, in one pass over its trees; ``None`` for other models.

    A forest's probability of a row is the mean of its trees' probabilities of that row alone, so predicting all
    rows at once gives the same values, bit for bit, as part by part, with one per-tree overhead instead of three.
    Other models keep their own calls (a linear model's matrix product could sum in another order).
    """
    if not isinstance(model, RandomForestClassifier):
        return [None] * len(parts)
    together = np.asarray(model.predict_proba(pd.concat(parts)), dtype=float)
    return list(np.split(together, np.cumsum([len(part) for part in parts])[:-1]))


def fit_quietly(estimator: Any, X: pd.DataFrame, y: NDArray[np.int64]) -> Any:
    """Fit a clone of ``estimator`` with one BLAS thread, the recipe's known warnings silenced, inputs trusted.

    ``X`` must come from a validated feature table (finite values): see :func:`validated_inputs`.
    """
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"), validated_inputs():
        # One BLAS thread: the matrices are tiny and threads only contend (1 vs 2 threads give identical LR
        # solutions here). The paper's newton-cg on unscaled features warns about failed line searches, and
        # XGBoost's gblinear about the unused tree_method; both are part of the reproduced recipe.
        warnings.simplefilter("ignore")
        return clone(estimator).fit(X, y)


def fit_fold(estimator: Any, X: pd.DataFrame, y: NDArray[np.int64], train: Any, val: Any) -> tuple[Any, list[float]]:
    """A fold model fitted on ``train`` and its ``[train_f1, val_f1, train_auc, val_auc]``."""
    model, scores, _ = fit_fold_and_predict(estimator, X, y, train, val, None)
    return model, scores


def fit_fold_and_predict(
    estimator: Any, X: pd.DataFrame, y: NDArray[np.int64], train: Any, val: Any, X_test: pd.DataFrame | None
) -> tuple[Any, list[float], NDArray[np.float64] | None]:
    """:func:`fit_fold` and the fold model's positive-class probabilities on ``X_test`` (``None`` without it)."""
    model = fit_quietly(estimator, X.iloc[train], y[train])
    parts = [X.iloc[train], X.iloc[val]] + ([] if X_test is None else [X_test])
    with validated_inputs():
        known = _predict_parts(model, parts)
        train_f1, train_auc = _score(model, parts[0], y[train], known[0])
        val_f1, val_auc = _score(model, parts[1], y[val], known[1])
        test = None
        if X_test is not None:
            test = known[2] if known[2] is not None else np.asarray(model.predict_proba(X_test), dtype=float)
    return model, [train_f1, val_f1, train_auc, val_auc], None if test is None else test[:, 1]


def cross_validate_folds(
    estimator: Any, X: pd.DataFrame, y: ArrayLike, splits: list[Split], n_jobs: int = 1
) -> CVResult:
    """Fit ``estimator`` on every training fold; score F1 and AUC on both sides (like ``cross_validate``).

    Folds run in parallel with joblib when ``n_jobs != 1``.
    """
    from joblib import Parallel, delayed

    labels = np.asarray(y).astype(np.int64)
    check_two_classes(labels, "cross-validation")
    results = Parallel(n_jobs=n_jobs)(delayed(fit_fold)(estimator, X, labels, tr, va) for tr, va in splits)
    frame = pd.DataFrame([scores for _, scores in results], columns=["train_f1", "val_f1", "train_auc", "val_auc"])
    frame.insert(0, "fold", np.arange(1, len(splits) + 1))
    return CVResult(estimators=[model for model, _ in results], folds=frame)
