"""Run the paper's notebooks 1-4 on a feature table: LASSO, weight search, 5-fold models, soft-vote, bootstrap.

Notebook 1: LASSO on train+val. Notebook 2: positive-class weight search (train vs val). Notebook 3: 5-fold
row-level ShuffleSplit CV on train+val (the CV scores of Supplementary Table 2), then the test "soft vote".
Notebook 4: 1000 study-level bootstrap samples of the test predictions (paper's draw order, seed 822).

The notebook's soft vote is ``VotingClassifier([fold models], voting="soft").fit(X_trainval, y_trainval)``, and
``VotingClassifier.fit`` clones its members and refits every clone on all train+val rows: the five members are
then one model (same parameters, same seed, same rows) refitted on train+val, and the CV fold models never reach
the test set. :func:`run_models` computes exactly that (one refit, its probability and ``argmax`` class); the mean of
the CV fold models is kept as ``test_fold_probability`` for diagnostics. All fits run in one joblib pool.

LASSO and LR are fitted on unscaled features, and LR's ill-conditioned ``newton-cg`` solution depends on the OpenBLAS
kernel. The functions here compute in this process, on its kernel;
:func:`livermets.phenotype.protocols.paper.paper_protocol` (used by ``reproduce paper`` and ``phenotype evaluate
--protocol paper``) runs them with LASSO and every LR fit on the kernel pinned by :mod:`livermets.phenotype.pinned`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from numpy.typing import NDArray

from livermets.featuretable import FEATURE_COLUMNS, TARGET_COLUMNS, feature_group, read_feature_table
from livermets.phenotype.bootstrap import BootstrapResult, bootstrap_metrics, study_bootstrap_indices
from livermets.phenotype.cv import (
    CVResult,
    check_two_classes,
    fit_fold_and_predict,
    fit_quietly,
    paper_splits,
    validated_inputs,
)
from livermets.phenotype.models import MODEL_NAMES, Weighting, balanced_positive_weight, make_classifier
from livermets.phenotype.selection import PAPER_ALPHA, LassoSelector
from livermets.phenotype.weights import best_weights, search_positive_weight
from livermets.progress import track

log = logging.getLogger(__name__)


@dataclass
class PaperData:
    """The feature table split as in the notebooks: train+val (``Group != test``) and test; ``source`` names it."""

    frame: pd.DataFrame
    trainval: pd.DataFrame
    test: pd.DataFrame
    source: str = "feature table"

    @property
    def y_trainval(self) -> NDArray[np.int64]:
        return self.trainval["NE_Class"].to_numpy().astype(np.int64)

    @property
    def y_test(self) -> NDArray[np.int64]:
        return self.test["NE_Class"].to_numpy().astype(np.int64)


def load_paper_data(path: str | os.PathLike[str]) -> PaperData:
    """Read and validate the table; require both classes in train+val and in test."""
    frame = read_feature_table(path, targets=TARGET_COLUMNS)
    is_test = (frame["Group"] == "test").to_numpy()
    trainval, test = frame.loc[~is_test], frame.loc[is_test]
    for name, part in (("train+val", trainval), ("test", test)):
        if len(part) == 0:
            from livermets.errors import UserInputError

            raise UserInputError(f"{path}: column 'Group' has no {name} rows")
        check_two_classes(part["NE_Class"], f"{path}: column 'NE_Class' in the {name} split")
    train = frame.loc[frame["Group"] == "train"]
    check_two_classes(train["NE_Class"], f"{path}: column 'NE_Class' in the train split")
    return PaperData(frame=frame, trainval=trainval, test=test, source=str(path))


def lasso_selection(data: PaperData, alpha: float = PAPER_ALPHA) -> tuple[list[str], pd.DataFrame]:
    """Notebook 1: unscaled LASSO on NE_Score over train+val; returns selected names and a coefficient table."""
    selector = LassoSelector(alpha=alpha, min_features=0).fit(
        data.trainval[FEATURE_COLUMNS], data.trainval["NE_Score"].to_numpy(dtype=float)
    )
    table = pd.DataFrame({"feature": FEATURE_COLUMNS, "coefficient": selector.coef_})
    table = table.loc[table["coefficient"] != 0].reset_index(drop=True)
    table["group"] = [feature_group(name) for name in table["feature"]]
    table["abs_rank"] = table["coefficient"].abs().rank(ascending=False, method="first").astype(int)
    return table["feature"].tolist(), table


@dataclass
class ModelSpec:
    """One model configuration: name, weighting label (``none``/``AUC``/``F1``/``BAL``) and the weighting."""

    name: str
    label: str = "none"
    weighting: Weighting = None


@dataclass
class ModelRun:
    """CV folds, test soft/hard-vote predictions and bootstrap metrics of one :class:`ModelSpec`.

    ``test_probability``/``test_soft``/``test_hard`` are the notebook's voting ensemble, i.e. the model refitted on
    all train+val rows (``refit``); ``test_fold_probability`` holds the CV fold models' test probabilities
    (``(n_folds, n_test)``), which the notebook computes but does not use for Table 4.
    """

    spec: ModelSpec
    cv: CVResult
    refit: Any
    test_probability: NDArray[np.float64]
    test_fold_probability: NDArray[np.float64]
    test_soft: NDArray[np.int64]
    test_hard: NDArray[np.int64]
    bootstrap: BootstrapResult
    bootstrap_hard: BootstrapResult


def _fold_job(
    estimator: Any, X: pd.DataFrame, y: NDArray[np.int64], train: Any, val: Any, X_test: pd.DataFrame
) -> tuple[Any, list[float], NDArray[np.float64]]:
    """One CV fold: fitted model, train/val F1 and AUC, and its test-set probabilities (computed in the worker)."""
    model, scores, test = fit_fold_and_predict(estimator, X, y, train, val, X_test)
    assert test is not None
    return model, scores, test


def _refit_job(
    estimator: Any, X: pd.DataFrame, y: NDArray[np.int64], X_test: pd.DataFrame
) -> tuple[Any, NDArray[np.float64]]:
    """The train+val refit and its ``predict_proba`` on the test rows (both columns)."""
    model = fit_quietly(estimator, X, y)
    with validated_inputs():
        return model, np.asarray(model.predict_proba(X_test), dtype=float)


def run_models(
    data: PaperData,
    features: list[str],
    specs: list[ModelSpec],
    indices: NDArray[np.intp],
    n_jobs: int = -1,
) -> list[ModelRun]:
    """Notebooks 3-4 for every spec in this process (its OpenBLAS kernel); all fits share one joblib pool.

    Every spec gets 5 CV fold fits and the train+val refit; test-set probabilities are computed in the workers.
    """
    X = data.trainval[features]
    y = data.y_trainval
    X_test = data.test[features]
    splits = paper_splits(len(X))
    jobs = []
    for spec in specs:
        jobs += [
            delayed(_fold_job)(make_classifier(spec.name, weighting=spec.weighting), X, y, tr, va, X_test)
            for tr, va in splits
        ]
        jobs.append(delayed(_refit_job)(make_classifier(spec.name, weighting=spec.weighting), X, y, X_test))
    runner = Parallel(n_jobs=n_jobs, return_as="generator")
    results = list(track(runner(jobs), "fitting fold models", total=len(jobs)))
    runs = []
    per_spec = len(splits) + 1
    for k, spec in enumerate(specs):
        chunk = results[k * per_spec : k * per_spec + len(splits)]
        refit, both = results[k * per_spec + len(splits)]
        folds = pd.DataFrame([s for _, s, _ in chunk], columns=["train_f1", "val_f1", "train_auc", "val_auc"])
        folds.insert(0, "fold", np.arange(1, len(splits) + 1))
        cv = CVResult(estimators=[m for m, _, _ in chunk], folds=folds)
        fold_probability = np.vstack([p for _, _, p in chunk])
        # The notebook's VotingClassifier (soft and hard) over five identical refits: its probability is the
        # refit's, its class the argmax of [1 - p, p] (a tie goes to class 0, as np.argmax).
        probability = both[:, 1]
        soft = np.argmax(both, axis=1).astype(np.int64)
        hard = soft.copy()
        runs.append(
            ModelRun(
                spec=spec,
                cv=cv,
                refit=refit,
                test_probability=probability,
                test_fold_probability=fold_probability,
                test_soft=soft,
                test_hard=hard,
                bootstrap=bootstrap_metrics(data.y_test, soft, probability, indices),
                # Hard votes have no probability; AUC of a hard vote is the AUC of its 0/1 classes.
                bootstrap_hard=bootstrap_metrics(data.y_test, hard, hard.astype(float), indices),
            )
        )
    return runs


def weight_search(
    data: PaperData, features: list[str], models: tuple[str, ...] = MODEL_NAMES, grid: Any = None, n_jobs: int = -1
) -> tuple[pd.DataFrame, list[ModelSpec]]:
    """Notebook 2: validation AUC/F1 per weight; returns the search table and the AUC/BAL/F1 specs."""
    train = data.frame.loc[data.frame["Group"] == "train"]
    val = data.frame.loc[data.frame["Group"] == "val"]
    check_two_classes(val["NE_Class"], "column 'NE_Class' in the val split")
    tables, specs = [], []
    for name in models:
        search = search_positive_weight(
            name,
            train[features],
            train["NE_Class"].to_numpy(),
            val[features],
            val["NE_Class"].to_numpy(),
            grid=grid,
            n_jobs=n_jobs,
        )
        search.insert(0, "model", name)
        tables.append(search)
        best = best_weights(search)
        # BAL: class_weight='balanced' for LR/RF; XGB gets scale_pos_weight = n_neg/n_pos of train+val (0.321).
        balanced: Weighting = balanced_positive_weight(data.y_trainval) if name == "XGB" else "balanced"
        specs += [
            ModelSpec(name, "AUC", best["AUC"]),
            ModelSpec(name, "BAL", balanced),
            ModelSpec(name, "F1", best["F1"]),
        ]
    return pd.concat(tables, ignore_index=True), specs


def paper_indices(data: PaperData, n_boot: int = 1000, seed: int = 822) -> NDArray[np.intp]:
    """The notebook-4 bootstrap samples (one series per test study), as row positions of ``data.test``."""
    return study_bootstrap_indices(data.test["unique_scandate"].to_numpy(), n_boot=n_boot, seed=seed, draw="paper")
