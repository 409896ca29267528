"""The rigorous protocol: patient-grouped nested CV with everything fitted inside the training folds.

One :class:`~sklearn.pipeline.Pipeline` per fit — ``StandardScaler`` → :class:`LassoSelector` (target NE_Score,
routed as metadata) → classifier with balanced class weights — so scaling, feature selection and class weighting
see training-fold rows only. Hyper-parameters (LASSO alpha, LR's C) are chosen by an inner patient-grouped CV
(``GridSearchCV``), the decision threshold by Youden's J on inner out-of-fold probabilities of the training fold.
Outer CV: ``StratifiedGroupKFold`` by patient, repeated with different seeds.

Permutation test: labels are permuted at the **patient** level — each patient receives the per-study
(NE_Score, NE_Class) sequence of another patient (cycled if its number of studies differs), and all series of a
study share their study's label. This keeps labels patient-consistent and within-patient correlated, as in the real
data (CV folds are patients, so patients are the exchangeable units); permuting series or studies independently
would destroy that structure and make the null distribution too narrow. The statistic is the pooled out-of-fold AUC
of one CV repeat with a fixed split seed, for the real and for every permuted labelling:
``p = (1 + #{AUC_perm >= AUC_obs}) / (1 + n_permutations)``.

Confidence intervals: patient-level cluster bootstrap (patients resampled with replacement, all their series kept).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from joblib import Parallel, delayed
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from livermets.errors import UserInputError
from livermets.featuretable import table_source
from livermets.phenotype.bootstrap import cluster_bootstrap_indices
from livermets.phenotype.cv import check_two_classes, grouped_splits
from livermets.phenotype.grouped_config import GroupedConfig
from livermets.phenotype.metrics import binary_metrics
from livermets.phenotype.models import BalancedXGBClassifier, check_model_name
from livermets.phenotype.selection import LassoSelector
from livermets.progress import track

log = logging.getLogger(__name__)


def build_pipeline(model: str, rf_trees: int = 300) -> Pipeline:
    """Scaler → LASSO selector (NE_Score routed as ``score``) → classifier with balanced class weights."""
    name = check_model_name(model)
    classifier: Any
    if name == "LR":
        classifier = LogisticRegression(class_weight="balanced", max_iter=5000, random_state=2024)
    elif name == "RF":
        classifier = RandomForestClassifier(
            n_estimators=rf_trees, min_samples_leaf=2, class_weight="balanced", random_state=200, n_jobs=1
        )
    else:
        classifier = BalancedXGBClassifier()
    with sklearn.config_context(enable_metadata_routing=True):
        selector = LassoSelector(alpha=0.01).set_fit_request(score=True)
    return Pipeline([("scale", StandardScaler()), ("select", selector), ("clf", classifier)])


def _grid(config: GroupedConfig) -> dict[str, list[float]]:
    grid: dict[str, list[float]] = {"select__alpha": list(config.alphas)}
    if check_model_name(config.model) == "LR":
        grid["clf__C"] = list(config.lr_cs)
    return grid


def _inner_cv(seed: int, n_splits: int) -> StratifiedGroupKFold:
    return StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def fit_nested(
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    score: NDArray[np.float64],
    groups: NDArray[Any],
    config: GroupedConfig,
    seed: int,
    choose_threshold: bool = True,
) -> tuple[Pipeline, float, dict[str, Any]]:
    """Inner grouped grid search on one training set; returns the refitted best pipeline and its threshold."""
    # Tiny matrices: multi-threaded BLAS only adds contention (4x slower measured on 2 cores), so use one thread.
    with (
        sklearn.config_context(enable_metadata_routing=True),
        warnings.catch_warnings(),
        threadpool_limits(limits=1, user_api="blas"),
    ):
        warnings.simplefilter("ignore")
        search = GridSearchCV(
            build_pipeline(config.model, config.rf_trees),
            _grid(config),
            cv=_inner_cv(seed, config.inner_splits),
            scoring="roc_auc",
            n_jobs=1,
            error_score=np.nan,
        )
        search.fit(X, y, groups=groups, score=score)
        threshold = 0.5
        if choose_threshold:
            inner = cross_val_predict(
                clone(search.best_estimator_),
                X,
                y,
                cv=_inner_cv(seed + 1, config.inner_splits),
                method="predict_proba",
                params={"groups": groups, "score": score},
            )[:, 1]
            fpr, tpr, thresholds = roc_curve(y, inner)
            best = int(np.argmax(tpr - fpr))
            threshold = float(min(thresholds[best], 1.0))
    return search.best_estimator_, threshold, dict(search.best_params_)


def _outer_fold(
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    score: NDArray[np.float64],
    groups: NDArray[Any],
    train: NDArray[np.intp],
    test: NDArray[np.intp],
    config: GroupedConfig,
    seed: int,
    choose_threshold: bool,
) -> tuple[NDArray[np.intp], NDArray[np.float64], float, dict[str, Any], Pipeline]:
    model, threshold, params = fit_nested(
        X[train], y[train], score[train], groups[train], config, seed, choose_threshold
    )
    return test, model.predict_proba(X[test])[:, 1], threshold, params, model


def out_of_fold(
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    score: NDArray[np.float64],
    groups: NDArray[Any],
    config: GroupedConfig,
    seed: int,
    choose_threshold: bool = True,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """One repeat of the outer grouped CV: out-of-fold probabilities, per-fold thresholds and fold models."""
    splits = grouped_splits(y, groups, n_splits=config.n_splits, seed=seed)
    results = Parallel(n_jobs=n_jobs)(
        delayed(_outer_fold)(X, y, score, groups, tr, te, config, seed, choose_threshold) for tr, te in splits
    )
    probability = np.full(y.size, np.nan)
    threshold_per_row = np.full(y.size, np.nan)
    for test, prob, threshold, _, _ in results:
        probability[test] = prob
        threshold_per_row[test] = threshold
    return {
        "splits": splits,
        "probability": probability,
        "threshold_per_row": threshold_per_row,
        "thresholds": [r[2] for r in results],
        "params": [r[3] for r in results],
        "models": [r[4] for r in results],
    }


def patient_permutation(
    groups: NDArray[Any],
    studies: NDArray[Any],
    y: NDArray[np.int64],
    score: NDArray[np.float64],
    rng: np.random.Generator,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Permute (NE_Class, NE_Score) at patient level, keeping every study's series on one label (see module doc)."""
    patients = pd.unique(pd.Series(groups))
    study_labels: dict[Any, list[tuple[Any, int, float]]] = {}
    for patient in patients:
        rows = np.flatnonzero(groups == patient)
        seen: dict[Any, tuple[int, float]] = {}
        for row in rows:
            seen.setdefault(studies[row], (int(y[row]), float(score[row])))
        study_labels[patient] = [(s, c, v) for s, (c, v) in seen.items()]
    donors = rng.permutation(len(patients))
    new_y = np.empty_like(y)
    new_score = np.empty_like(score)
    for patient, donor_index in zip(patients, donors, strict=True):
        donor = study_labels[patients[donor_index]]
        for k, (study, _, _) in enumerate(study_labels[patient]):
            _, label, value = donor[k % len(donor)]
            rows = (groups == patient) & (studies == study)
            new_y[rows] = label
            new_score[rows] = value
    return new_y, new_score


def _pooled_auc(y: NDArray[np.int64], probability: NDArray[np.float64]) -> float:
    return float(roc_auc_score(y, probability)) if np.unique(y).size == 2 else float("nan")


def _permutation_auc(
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    score: NDArray[np.float64],
    groups: NDArray[Any],
    studies: NDArray[Any],
    config: GroupedConfig,
    perm_seed: int,
) -> float:
    rng = np.random.default_rng(perm_seed)
    permuted_y, permuted_score = patient_permutation(groups, studies, y, score, rng)
    if np.unique(permuted_y).size < 2:
        return float("nan")
    result = out_of_fold(X, permuted_y, permuted_score, groups, config, config.seed, choose_threshold=False)
    return _pooled_auc(permuted_y, result["probability"])


def _cluster_ci(
    y: NDArray[np.int64], probability: NDArray[np.float64], groups: NDArray[Any], n_boot: int, seed: int
) -> tuple[float, float, int]:
    values = []
    undefined = 0
    for rows in cluster_bootstrap_indices(groups, n_boot, seed):
        if np.unique(y[rows]).size < 2:
            undefined += 1
            continue
        values.append(roc_auc_score(y[rows], probability[rows]))
    if not values:
        return float("nan"), float("nan"), undefined
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high), undefined


@dataclass
class GroupedResult:
    """Summary numbers, out-of-fold predictions of the development rows and the fold models of repeat 1."""

    summary: dict[str, Any]
    oof: pd.DataFrame
    fold_models: list[Pipeline]
    thresholds: list[float]
    permutation_aucs: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))


def _check_patients_per_class(dev: pd.DataFrame, config: GroupedConfig) -> None:
    """Nested grouped CV needs enough patients of each class for every outer and inner fold to see both classes."""
    needed = max(config.n_splits, -(-config.inner_splits * config.n_splits // (config.n_splits - 1)))
    patients = dev.groupby("NE_Class")["unique_pt"].nunique()
    scarce = {int(str(k)): int(v) for k, v in patients.items() if v < needed}
    if scarce:
        found = ", ".join(f"NE_Class {k}: {v}" for k, v in sorted(scarce.items()))
        raise UserInputError(
            f"{table_source(dev)}: grouped protocol with {config.n_splits} outer and {config.inner_splits} inner "
            f"folds needs at least {needed} patients of each class in the development rows (found {found})"
        )


def evaluate_grouped(frame: pd.DataFrame, features: list[str], config: GroupedConfig) -> GroupedResult:
    """Run the grouped protocol on ``frame`` (development rows = ``Group != 'test'`` when a Group column exists).

    Returns ``summary`` with ``protocol, model, cv_auc, cv_auc_low95, cv_auc_high95, permutation_p,
    n_permutations`` (+ ``test_auc`` and its CI when test rows exist), Brier score and threshold metrics.
    """
    model = config.model
    has_test = "Group" in frame.columns and (frame["Group"] == "test").any()
    dev = frame.loc[frame["Group"] != "test"] if "Group" in frame.columns else frame
    check_two_classes(dev["NE_Class"], f"{table_source(frame)}: column 'NE_Class' in the development rows")
    _check_patients_per_class(dev, config)
    X = dev[features].to_numpy(dtype=float)
    y = dev["NE_Class"].to_numpy().astype(np.int64)
    score = dev["NE_Score"].to_numpy(dtype=float)
    groups = dev["unique_pt"].astype(str).to_numpy()
    studies = dev["unique_scandate"].astype(str).to_numpy()

    repeats = []
    for repeat in track(range(config.n_repeats), f"grouped nested CV ({model})"):
        repeats.append(out_of_fold(X, y, score, groups, config, config.seed + repeat, n_jobs=config.n_jobs))
    repeat_aucs = np.array([_pooled_auc(y, r["probability"]) for r in repeats])
    mean_probability = np.mean([r["probability"] for r in repeats], axis=0)
    classes = np.mean([r["probability"] >= r["threshold_per_row"] for r in repeats], axis=0) >= 0.5
    low, high, undefined = _cluster_ci(y, mean_probability, groups, config.n_boot, config.seed)

    permutation_aucs = _permutation_aucs(X, y, score, groups, studies, config)
    observed = repeat_aucs[0]
    finite = permutation_aucs[~np.isnan(permutation_aucs)]
    p_value = float((1 + (finite >= observed).sum()) / (1 + finite.size)) if finite.size else float("nan")

    oof_metrics = binary_metrics(y, classes.astype(int), mean_probability)
    summary: dict[str, Any] = {
        "protocol": "grouped",
        "model": model,
        "n_rows": int(y.size),
        "n_patients": int(np.unique(groups).size),
        "n_splits": config.n_splits,
        "n_repeats": config.n_repeats,
        "cv_auc": float(np.nanmean(repeat_aucs)),
        "cv_auc_repeats": repeat_aucs.tolist(),
        "cv_auc_low95": low,
        "cv_auc_high95": high,
        "cv_auc_ci_method": f"patient cluster bootstrap ({config.n_boot}) of repeat-averaged out-of-fold probabilities",
        "cv_auc_ci_undefined": undefined,
        "permutation_statistic": float(observed),
        "permutation_p": p_value,
        "n_permutations": int(config.n_permutations),
        "permutation_unit": "patient",
        "brier": float(brier_score_loss(y, mean_probability)),
        "oof_metrics_at_fold_thresholds": oof_metrics,
        "thresholds_repeat1": repeats[0]["thresholds"],
        "best_params_repeat1": repeats[0]["params"],
        "selected_features_repeat1": [
            [f for f, keep in zip(features, m.named_steps["select"].get_support(), strict=True) if keep]
            for m in repeats[0]["models"]
        ],
    }
    if has_test:
        summary.update(_test_summary(frame.loc[frame["Group"] == "test"], features, repeats[0], config))
    oof = pd.DataFrame(
        {
            "File": dev["File"].to_numpy() if "File" in dev.columns else np.arange(y.size),
            "unique_pt": groups,
            "NE_Class": y,
            "probability": mean_probability,
            "predicted": classes.astype(int),
        }
    )
    return GroupedResult(
        summary=summary,
        oof=oof,
        fold_models=repeats[0]["models"],
        thresholds=repeats[0]["thresholds"],
        permutation_aucs=permutation_aucs,
    )


def _permutation_aucs(
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    score: NDArray[np.float64],
    groups: NDArray[Any],
    studies: NDArray[Any],
    config: GroupedConfig,
) -> NDArray[np.float64]:
    """Pooled out-of-fold AUC of every patient-level permutation (seeds ``seed + 10000 + k``), in parallel."""
    if not config.n_permutations:
        return np.empty(0)
    jobs = (
        delayed(_permutation_auc)(X, y, score, groups, studies, config, config.seed + 10_000 + k)
        for k in range(config.n_permutations)
    )
    runner = Parallel(n_jobs=config.n_jobs, return_as="generator")
    return np.array(list(track(runner(jobs), "permutation test", total=config.n_permutations)))


def _test_summary(
    test: pd.DataFrame, features: list[str], repeat: dict[str, Any], config: GroupedConfig
) -> dict[str, Any]:
    """The fold models of one repeat on the test rows: AUC with its cluster-bootstrap CI, metrics at the mean
    training-fold threshold, Brier score."""
    X_test = test[features].to_numpy(dtype=float)
    y_test = test["NE_Class"].to_numpy().astype(np.int64)
    test_probability = np.mean([m.predict_proba(X_test)[:, 1] for m in repeat["models"]], axis=0)
    threshold = float(np.mean(repeat["thresholds"]))
    t_low, t_high, t_undefined = _cluster_ci(
        y_test, test_probability, test["unique_pt"].astype(str).to_numpy(), config.n_boot, config.seed
    )
    return {
        "test_auc": _pooled_auc(y_test, test_probability),
        "test_auc_low95": t_low,
        "test_auc_high95": t_high,
        "test_auc_ci_undefined": t_undefined,
        "test_threshold": threshold,
        "test_metrics": binary_metrics(y_test, (test_probability >= threshold).astype(int), test_probability),
        "test_brier": float(brier_score_loss(y_test, test_probability)),
    }
