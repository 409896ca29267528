"""Ensembles of the cross-validation fold models (soft and hard vote), used by ``phenotype train``/``predict``.

Soft vote: mean positive-class probability of the fold models, class = probability >= threshold (default 0.5).
Hard vote: majority of the fold models' classes (ties go to the positive class, as ``mean >= 0.5``). Note that the
paper's notebook does not average its fold models: its ``VotingClassifier(...).fit`` refits every member on all
train+val rows (see :mod:`livermets.phenotype.notebooks`).

Examples
--------
>>> import numpy as np
>>> from sklearn.dummy import DummyClassifier
>>> X, y = np.zeros((4, 1)), np.array([0, 1, 1, 1])
>>> ens = FoldEnsemble([DummyClassifier(strategy="prior").fit(X, y)] * 3)
>>> ens.predict_proba(X).round(2).tolist(), ens.predict(X).tolist()
([0.75, 0.75, 0.75, 0.75], [1, 1, 1, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


class FoldEnsemble:
    """Combine fitted fold models by soft or hard vote.

    Parameters
    ----------
    estimators
        Fitted classifiers (or pipelines) with ``predict_proba``.
    threshold
        Decision threshold on the mean probability (soft vote) and on each fold model's probability (hard vote).
    """

    def __init__(self, estimators: Sequence[Any], threshold: float = 0.5) -> None:
        if not estimators:
            raise ValueError("FoldEnsemble needs at least one fitted estimator")
        self.estimators = list(estimators)
        self.threshold = threshold

    def fold_probabilities(self, X: Any) -> NDArray[np.float64]:
        """Positive-class probability of every fold model, shape ``(n_folds, n_rows)``."""
        return np.vstack([np.asarray(model.predict_proba(X))[:, 1] for model in self.estimators])

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """Soft-vote probability (mean over fold models)."""
        return self.fold_probabilities(X).mean(axis=0)

    def predict(self, X: Any, vote: str = "soft") -> NDArray[np.int64]:
        """Class by ``"soft"`` (mean probability >= threshold) or ``"hard"`` (majority of fold classes) vote."""
        folds = self.fold_probabilities(X)
        if vote == "soft":
            return (folds.mean(axis=0) >= self.threshold).astype(np.int64)
        if vote == "hard":
            return ((folds >= self.threshold).mean(axis=0) >= 0.5).astype(np.int64)
        raise ValueError(f"unknown vote {vote!r} (soft or hard)")
