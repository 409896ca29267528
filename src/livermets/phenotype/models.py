"""The paper's three classifiers (LR, RF, XGBoost) and its class-weighting variants.

Parameters are those of the published notebooks (see ``../shared/data/nih_mip_msclc/SOURCE.md``): notebook 3 for
the final 5-fold models, notebook 2 for the class-weight search.

Examples
--------
>>> make_classifier("LR").get_params()["C"]
3
>>> make_classifier("RF", weighting=2.0, stage="search").get_params()["class_weight"]
{0: 1, 1: 2.0}
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from livermets.errors import UserInputError
from livermets.phenotype.grouped_config import MODEL_NAMES as MODEL_NAMES
from livermets.phenotype.grouped_config import check_model_name as check_model_name

Weighting = None | str | float
"""``None`` (unweighted), ``"balanced"`` (the paper's BAL) or a positive-class weight (negative class weight 1)."""



def make_classifier(name: str, weighting: Weighting = None, stage: str = "final", n_jobs: int = 1) -> Any:
    """An unfitted classifier with the paper's parameters.

    Parameters
    ----------
    name
        ``LR``, ``RF`` or ``XGB``.
    weighting
        See :data:`Weighting`. For XGB, ``"balanced"`` gives :class:`BalancedXGBClassifier`, which sets
        ``scale_pos_weight = n_neg / n_pos`` from the data it is fitted on.
    stage
        ``"final"`` = notebook 3 (LR ``C=3, max_iter=10000``); ``"search"`` = notebook 2's weight search
        (LR ``C=0.5, max_iter=1000``). RF and XGB are the same in both.
    n_jobs
        Threads for the random forest.
    """
    name = check_model_name(name)
    if stage not in ("final", "search"):
        raise UserInputError(f"unknown stage {stage!r} (final or search)")
    if isinstance(weighting, str) and weighting != "balanced":
        raise UserInputError(f"unknown class weighting {weighting!r} (none, 'balanced' or a positive number)")
    if isinstance(weighting, int | float) and not weighting > 0:
        raise UserInputError(f"positive-class weight must be > 0, got {weighting}")
    class_weight: Any = None
    if weighting == "balanced":
        class_weight = "balanced"
    elif weighting is not None:
        class_weight = {0: 1, 1: float(weighting)}
    if name == "LR":
        c_value, max_iter = (3, 10000) if stage == "final" else (0.5, 1000)
        return LogisticRegression(
            random_state=2024, C=c_value, solver="newton-cg", max_iter=max_iter, class_weight=class_weight
        )
    if name == "RF":
        return RandomForestClassifier(
            n_estimators=1000,
            random_state=200,
            criterion="gini",
            min_samples_leaf=2,
            class_weight=class_weight,
            n_jobs=n_jobs,
        )
    if weighting == "balanced":
        return BalancedXGBClassifier()
    from xgboost import XGBClassifier  # imported on use: processes fitting only LR or RF skip its import time

    kwargs: dict[str, Any] = {"tree_method": "hist", "seed": 100, "booster": "gblinear", "n_jobs": 1}
    if weighting is not None:
        kwargs["scale_pos_weight"] = float(weighting)
    return XGBClassifier(**kwargs)


def balanced_positive_weight(y: ArrayLike) -> float:
    """``n_negative / n_positive`` (XGBoost's documented 'balanced' ``scale_pos_weight``)."""
    labels = np.asarray(y)
    n_pos = int((labels == 1).sum())
    if n_pos == 0:
        raise UserInputError("class weighting: no positive samples in the training data")
    return float((labels == 0).sum()) / n_pos


class BalancedXGBClassifier(ClassifierMixin, BaseEstimator):
    """The paper's XGBoost with ``scale_pos_weight = n_neg / n_pos`` computed on the data it is fitted on.

    Computing the weight inside ``fit`` keeps it a training-fold quantity in cross-validation.
    """

    def fit(self, X: ArrayLike, y: ArrayLike) -> BalancedXGBClassifier:
        self.scale_pos_weight_ = balanced_positive_weight(y)
        self.estimator_ = make_classifier("XGB", weighting=self.scale_pos_weight_)
        self.estimator_.fit(X, y)
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def predict_proba(self, X: ArrayLike) -> Any:
        return self.estimator_.predict_proba(X)

    def predict(self, X: ArrayLike) -> Any:
        return self.estimator_.predict(X)


def weighted_clone(estimator: Any, weighting: Weighting) -> Any:
    """A fresh copy of ``estimator`` with its class weighting replaced (LR/RF ``class_weight``)."""
    fresh = clone(estimator)
    if weighting is None:
        return fresh
    if "class_weight" in fresh.get_params():
        fresh.set_params(class_weight="balanced" if weighting == "balanced" else {0: 1, 1: float(weighting)})
    return fresh
