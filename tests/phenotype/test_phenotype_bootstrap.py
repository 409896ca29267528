"""Bootstrap and metric properties: one series per study, seed determinism, paper draw order, NaN handling."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from livermets.phenotype.bootstrap import bootstrap_metrics, study_bootstrap_indices
from livermets.phenotype.metrics import metrics_matrix

CSV = ("nih_mip_msclc", "Final_ResampledClassificationData.csv")


def test_each_sample_has_one_series_per_test_study(shared_data):
    test = pd.read_csv(shared_data(*CSV)).query("Group == 'test'")
    studies = test["unique_scandate"].to_numpy()
    for draw in ("paper", "fast"):
        idx = study_bootstrap_indices(studies, n_boot=200, seed=822, draw=draw)
        assert idx.shape == (200, 26)
        picked = studies[idx]
        assert all(sorted(row) == sorted(np.unique(studies)) for row in picked)


def test_paper_draw_equals_notebook_loop_and_is_deterministic():
    studies = np.array(["s2", "s1", "s2", "s3", "s3", "s3", "s1", "s4"])
    files = [f"f{i}" for i in range(studies.size)]
    np.random.seed(822)  # noqa: NPY002 - reproduces the notebook's legacy stream
    expected = []
    for _ in range(30):
        row = []
        for study in np.unique(studies):
            series = [f for f, s in zip(files, studies, strict=True) if s == study]
            row.append(files.index(np.random.choice(series, size=1, replace=False).item()))  # noqa: NPY002
        expected.append(row)
    got = study_bootstrap_indices(studies, n_boot=30, seed=822, draw="paper")
    assert (got == np.array(expected)).all()
    assert (got == study_bootstrap_indices(studies, n_boot=30, seed=822)).all()
    assert not (got == study_bootstrap_indices(studies, n_boot=30, seed=823)).all()
    fast = study_bootstrap_indices(studies, 30, 5, draw="fast")
    assert (fast == study_bootstrap_indices(studies, 30, 5, draw="fast")).all()


def test_vectorised_metrics_equal_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=(20, 30))
    p = rng.random((20, 30)).round(1)  # ties on purpose
    c = (p >= 0.5).astype(int)
    got = metrics_matrix(y, c, p)
    for i in range(20):
        assert np.isclose(got["auc"][i], roc_auc_score(y[i], p[i]), rtol=0, atol=1e-12)
        assert np.isclose(got["ppv"][i], precision_score(y[i], c[i]))
        assert np.isclose(got["sensitivity"][i], recall_score(y[i], c[i]))
        assert np.isclose(got["f1"][i], f1_score(y[i], c[i]))


def test_undefined_metrics_are_nan_and_counted():
    y = np.array([1, 1, 1, 0])
    idx = np.array([[0, 1, 2], [0, 1, 3]])  # first sample: positives only
    result = bootstrap_metrics(y, np.array([1, 1, 1, 1]), np.array([0.9, 0.8, 0.7, 0.6]), idx)
    assert np.isnan(result.samples["auc"][0]) and np.isnan(result.samples["specificity"][0])
    assert np.isnan(result.samples["npv"][0])  # no predicted negatives
    assert result.undefined["auc"] == 1
    summary = result.summary().set_index("metric")
    assert summary.loc["auc", "n_undefined"] == 1 and summary.loc["auc", "mean"] == 1.0
