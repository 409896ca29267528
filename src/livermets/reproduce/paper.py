"""Run the paper's notebooks 1-4 on a feature table: LASSO, weight search, 5-fold models, soft-vote, bootstrap.

Notebook 1: LASSO on train+val. Notebook 2: positive-class weight search (train vs val). Notebook 3: 5-fold
row-level ShuffleSplit CV on train+val, fold models kept. Notebook 4: test-set soft vote, 1000 study-level bootstrap
samples (paper's draw order, seed 822). All fold fits of all models run in one joblib pool.
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
from livermets.phenotype.cv import CVResult, check_two_classes, fit_fold, paper_splits
from livermets.phenotype.ensemble import FoldEnsemble
from livermets.phenotype.models import MODEL_NAMES, Weighting, balanced_positive_weight, make_classifier
from livermets.phenotype.selection import PAPER_ALPHA, LassoSelector
from livermets.phenotype.weights import best_weights, search_positive_weight
from livermets.progress import track

log = logging.getLogger(__name__)


@dataclass
class PaperData:
    """The feature table split as in the notebooks: train+val (``Group != test``) and test."""

    frame: pd.DataFrame
    trainval: pd.DataFrame
    test: pd.DataFrame

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
    return PaperData(frame=frame, trainval=trainval, test=test)


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
    """CV folds, test soft/hard-vote predictions and bootstrap metrics of one :class:`ModelSpec`."""

    spec: ModelSpec
    cv: CVResult
    test_probability: NDArray[np.float64]
    test_fold_probability: NDArray[np.float64]
    test_soft: NDArray[np.int64]
    test_hard: NDArray[np.int64]
    bootstrap: BootstrapResult
    bootstrap_hard: BootstrapResult


def run_models(
    data: PaperData,
    features: list[str],
    specs: list[ModelSpec],
    indices: NDArray[np.intp],
    n_jobs: int = -1,
) -> list[ModelRun]:
    """Notebooks 3-4 for every spec; all (spec, fold) fits share one joblib pool."""
    X = data.trainval[features]
    y = data.y_trainval
    splits = paper_splits(len(X))
    jobs = [
        delayed(fit_fold)(make_classifier(spec.name, weighting=spec.weighting), X, y, tr, va)
        for spec in specs
        for tr, va in splits
    ]
    runner = Parallel(n_jobs=n_jobs, return_as="generator")
    results = list(track(runner(jobs), "fitting fold models", total=len(jobs)))
    X_test = data.test[features]
    runs = []
    for k, spec in enumerate(specs):
        chunk = results[k * len(splits) : (k + 1) * len(splits)]
        folds = pd.DataFrame([s for _, s in chunk], columns=["train_f1", "val_f1", "train_auc", "val_auc"])
        folds.insert(0, "fold", np.arange(1, len(splits) + 1))
        cv = CVResult(estimators=[m for m, _ in chunk], folds=folds)
        ensemble = FoldEnsemble(cv.estimators)
        fold_probability = ensemble.fold_probabilities(X_test)
        probability = fold_probability.mean(axis=0)
        soft = (probability >= 0.5).astype(np.int64)
        hard = ((fold_probability >= 0.5).mean(axis=0) >= 0.5).astype(np.int64)
        runs.append(
            ModelRun(
                spec=spec,
                cv=cv,
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
