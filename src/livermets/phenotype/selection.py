"""LASSO feature selection as a scikit-learn selector.

The paper fits ``Lasso(alpha=0.35)`` on the *unscaled* 108 features with the continuous ``NE_Score`` as target and
keeps the features with non-zero coefficients. :class:`LassoSelector` does that as a ``SelectorMixin`` so that it can
sit in a :class:`~sklearn.pipeline.Pipeline`; its regression target is passed as the ``score`` fit parameter
(metadata routing) or, when absent, the pipeline's ``y``.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(60, 5)); score = 2 * X[:, 1] + 0.01 * rng.normal(size=60)
>>> LassoSelector(alpha=0.1).fit(X, score).get_support().tolist()
[False, True, False, False, False]
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import SelectorMixin
from sklearn.linear_model import Lasso
from sklearn.utils.validation import check_is_fitted, validate_data

PAPER_ALPHA = 0.35


class LassoSelector(SelectorMixin, BaseEstimator):
    """Keep the features with a non-zero LASSO coefficient.

    Parameters
    ----------
    alpha
        LASSO penalty (paper: 0.35 on unscaled features).
    max_iter
        Coordinate-descent iterations (scikit-learn's default 1000, as in the paper).
    min_features
        If the penalty removes every feature, keep this many with the largest absolute correlation to the target
        (so that a downstream classifier always gets input); 0 allows an empty selection.
    """

    def __init__(self, alpha: float = PAPER_ALPHA, max_iter: int = 1000, min_features: int = 1) -> None:
        self.alpha = alpha
        self.max_iter = max_iter
        self.min_features = min_features

    def fit(self, X: ArrayLike, y: ArrayLike, score: ArrayLike | None = None) -> LassoSelector:
        """Fit the LASSO on ``score`` if given, else on ``y``."""
        features = validate_data(self, X, reset=True, dtype=np.float64)
        target = np.asarray(score if score is not None else y, dtype=float)
        with warnings.catch_warnings():
            # The paper's unscaled fit does not converge in 1000 iterations; reproduce it, do not shout about it.
            warnings.simplefilter("ignore", ConvergenceWarning)
            lasso = Lasso(alpha=self.alpha, max_iter=self.max_iter).fit(features, target)
        self.coef_: NDArray[np.float64] = np.asarray(lasso.coef_, dtype=float)
        mask = self.coef_ != 0
        self.fallback_used_ = False
        if mask.sum() < self.min_features:
            centred = features - features.mean(axis=0)
            spread = np.sqrt((centred**2).sum(axis=0) * ((target - target.mean()) ** 2).sum())
            correlation = np.abs(centred.T @ (target - target.mean())) / np.where(spread > 0, spread, np.inf)
            mask = np.zeros_like(mask)
            mask[np.argsort(-correlation, kind="stable")[: self.min_features]] = True
            self.fallback_used_ = True
        self.support_: NDArray[np.bool_] = mask
        return self

    def _get_support_mask(self) -> NDArray[np.bool_]:
        check_is_fitted(self, "support_")
        return self.support_

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


class FixedSelector(SelectorMixin, BaseEstimator):
    """Keep a fixed, named set of columns (a selection made once outside the folds, as in the paper).

    Parameters
    ----------
    features
        Names of the columns to keep; ``fit`` needs a DataFrame holding them.
    """

    def __init__(self, features: list[str] | None = None) -> None:
        self.features = features

    def fit(self, X: Any, y: Any = None) -> FixedSelector:
        validate_data(self, X, reset=True, dtype=np.float64)
        names = list(getattr(self, "feature_names_in_", []))
        wanted = list(self.features or [])
        missing = [f for f in wanted if f not in names]
        if missing:
            raise ValueError(f"FixedSelector: feature {missing[0]!r} not among the input columns")
        self.support_: NDArray[np.bool_] = np.isin(np.asarray(names), wanted)
        return self

    def _get_support_mask(self) -> NDArray[np.bool_]:
        check_is_fitted(self, "support_")
        return self.support_
