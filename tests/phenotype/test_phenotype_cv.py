"""A CV fold's scores and test probabilities: the forest's one-pass prediction equals scikit-learn's own calls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score

from livermets.phenotype.cv import fit_fold, fit_fold_and_predict


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(120, 6)) * [1, 10, 100, 1e3, 1e4, 1e5], columns=[f"f{k}" for k in range(6)])
    y = ((X["f0"] + X["f1"] / 10 + rng.normal(size=120)) > 0).to_numpy().astype(np.int64)
    return X.iloc[:90], y[:90], X.iloc[90:]


@pytest.mark.parametrize("estimator", [RandomForestClassifier(n_estimators=50, min_samples_leaf=2, random_state=200),
                                       LogisticRegression(max_iter=1000)])
def test_fold_scores_and_test_probabilities_equal_separate_sklearn_calls(table, estimator):
    X, y, X_test = table
    train, val = np.arange(0, 70), np.arange(70, 90)
    model, scores, test = fit_fold_and_predict(estimator, X, y, train, val, X_test)
    reference = clone(estimator).fit(X.iloc[train], y[train])  # the same seed: the same model
    expected = []
    for rows in (train, val):
        probability = reference.predict_proba(X.iloc[rows])[:, 1]
        expected.append((f1_score(y[rows], reference.predict(X.iloc[rows])), roc_auc_score(y[rows], probability)))
    assert scores == [expected[0][0], expected[1][0], expected[0][1], expected[1][1]]
    assert np.array_equal(test, reference.predict_proba(X_test)[:, 1])  # bit for bit
    assert np.array_equal(model.predict_proba(X_test), reference.predict_proba(X_test))
    assert fit_fold(estimator, X, y, train, val)[1] == scores
