"""Paper protocol on the real published feature table: LASSO, Table 4 (LR), notebook fold AUCs.

The LR numbers come from ``paper_protocol``, which computes LASSO and LR on the pinned OpenBLAS kernel (in a child
process when this one runs another kernel), so these tests hold whatever kernel OpenBLAS picks here.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.ensemble import VotingClassifier
from threadpoolctl import threadpool_limits

from livermets.phenotype.notebooks import load_paper_data
from livermets.phenotype.protocols.paper import paper_protocol
from livermets.reproduce import paper_values

CSV = ("nih_mip_msclc", "Final_ResampledClassificationData.csv")


@pytest.fixture(scope="module")
def data(shared_data):
    return load_paper_data(shared_data(*CSV))


@pytest.fixture(scope="module")
def reference(shared_paper):
    return json.loads(shared_paper("reference_values.json").read_text())


@pytest.fixture(scope="module")
def lr_protocol(data):
    return paper_protocol(data, models=("LR",), n_jobs=1)


@pytest.fixture(scope="module")
def lr_run(lr_protocol):
    assert lr_protocol.blas_kernel == "Haswell"
    return lr_protocol.run("LR")


@pytest.mark.blas_kernel  # LASSO and LR on the pinned kernel: rerun under every kernel
def test_lasso_selects_figure4_features(lr_protocol, reference):
    assert lr_protocol.selected == reference["lasso_selected_features_figure4"]
    top5 = lr_protocol.lasso_table.sort_values("abs_rank")["feature"].head(5).tolist()
    assert top5 == reference["lasso_top5_by_abs_coefficient"]


def test_embedded_paper_values_match_reference(reference):
    for model, metrics in paper_values.TABLE4.items():
        for metric, values in metrics.items():
            assert list(values) == reference["table4_test_unweighted_softvote"][model][metric]
    assert paper_values.FIGURE4_FEATURES == reference["lasso_selected_features_figure4"]


def test_lr_test_predictions_are_the_notebooks_voting_classifier(data):
    # Notebook 3 builds VotingClassifier(fold models, voting="soft") and calls .fit(X_trainval, y_trainval),
    # which clones and refits every member on all train+val rows; recompute that with scikit-learn itself. Both
    # are computed in this process (where="process"), on the same kernel, whichever it is.
    lr_run = paper_protocol(data, models=("LR",), n_jobs=1, n_boot=10, where="process").run("LR")
    X = data.trainval[lr_run.refit.feature_names_in_]
    members = [(f"m{k}", model) for k, model in enumerate(lr_run.cv.estimators, start=1)]
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newton-cg line-search warnings are part of the recipe
        voting = VotingClassifier(members, voting="soft").fit(X, data.y_trainval)
    X_test = data.test[lr_run.refit.feature_names_in_]
    assert np.allclose(lr_run.test_probability, voting.predict_proba(X_test)[:, 1], rtol=0, atol=1e-12)
    assert np.array_equal(lr_run.test_soft, voting.predict(X_test))
    # ...and not the mean of the CV fold models (livermets' earlier, wrong reading of the notebook).
    assert not np.allclose(lr_run.test_probability, lr_run.test_fold_probability.mean(axis=0), atol=1e-3)


@pytest.mark.blas_kernel  # LASSO and LR on the pinned kernel: rerun under every kernel
def test_lr_table4_matches_paper(lr_run, reference):
    summary = lr_run.bootstrap.summary().set_index("metric")
    paper = reference["table4_test_unweighted_softvote"]["LR"]
    for metric, (mean, low, high) in paper.items():
        assert abs(summary.loc[metric, "mean"] - mean) <= 0.01, metric
        assert abs(summary.loc[metric, "low95"] - low) <= 0.01, metric
        assert abs(summary.loc[metric, "high95"] - high) <= 0.01, metric
    assert lr_run.bootstrap.n_boot == 1000


@pytest.mark.blas_kernel  # LASSO and LR on the pinned kernel: rerun under every kernel
def test_lr_fold_auc_matches_notebook_on_well_conditioned_folds(lr_run):
    ours = lr_run.cv.folds["val_auc"].to_numpy()
    printed = np.array(paper_values.NOTEBOOK3_LR_FOLD_AUC)
    assert ours[[0, 2]] == pytest.approx(printed[[0, 2]], abs=1e-5)
    assert abs(ours.mean() - 0.55) <= 0.01  # Supplementary Table 2: LR unweighted CV AUC 0.55
