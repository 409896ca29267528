"""Train a fold ensemble on a feature table and store it; predict new series with it.

``paper`` protocol: LASSO (alpha 0.35, unscaled) on the development rows, then the paper's classifier on the
selected features in 5 ShuffleSplit folds; threshold 0.5. ``grouped`` protocol: one repeat of the nested
patient-grouped CV of :mod:`livermets.phenotype.grouped`; each fold model is a full pipeline (scaling, LASSO,
classifier) and the threshold is the mean of the training-fold thresholds.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from livermets.errors import UserInputError
from livermets.featuretable import FEATURE_COLUMNS, table_source, validate_feature_table
from livermets.phenotype.caveats import outside_range, prediction_flags
from livermets.phenotype.cv import check_two_classes, paper_splits
from livermets.phenotype.grouped import GroupedConfig, out_of_fold
from livermets.phenotype.models import check_model_name, make_classifier
from livermets.phenotype.persistence import load_model_folder, save_model_folder
from livermets.phenotype.selection import LassoSelector
from livermets.provenance import provenance

PROTOCOLS = ("grouped", "paper")


def _development_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[frame["Group"] != "test"] if "Group" in frame.columns else frame


def _fit_paper_fold(pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray, rows: np.ndarray) -> Pipeline:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the recipe's newton-cg line-search warnings
        return clone(pipeline).fit(X.iloc[rows], y[rows])


def train_model(
    frame: pd.DataFrame, protocol: str = "grouped", model: str = "LR", n_jobs: int = -1, seed: int = 0
) -> tuple[list[Any], dict[str, Any]]:
    """Fit the fold models; returns them and the JSON-ready config (features, ranges, threshold, versions)."""
    if protocol not in PROTOCOLS:
        raise UserInputError(f"unknown protocol {protocol!r}; choose grouped or paper")
    name = check_model_name(model)
    dev = _development_rows(frame)
    y = dev["NE_Class"].to_numpy().astype(np.int64)
    check_two_classes(y, f"{table_source(frame)}: column 'NE_Class' in the training rows")
    X = dev[FEATURE_COLUMNS]
    if protocol == "paper":
        from livermets.phenotype.selection import FixedSelector

        selector = LassoSelector(min_features=1).fit(X, dev["NE_Score"].to_numpy(dtype=float))
        selected = [f for f, keep in zip(FEATURE_COLUMNS, selector.get_support(), strict=True) if keep]
        pipeline = Pipeline([("select", FixedSelector(selected)), ("clf", make_classifier(name))])
        fold_models = Parallel(n_jobs=n_jobs)(
            delayed(_fit_paper_fold)(pipeline, X, y, train) for train, _ in paper_splits(len(dev))
        )
        threshold, selected_per_fold, input_kind = 0.5, [selected] * len(fold_models), "dataframe"
        cv_performance = None  # the paper's row-level splits give no patient-grouped estimate
    else:
        config = GroupedConfig(model=name, seed=seed, n_jobs=n_jobs)
        result = out_of_fold(
            X.to_numpy(dtype=float),
            y,
            dev["NE_Score"].to_numpy(dtype=float),
            dev["unique_pt"].astype(str).to_numpy(),
            config,
            seed,
            n_jobs=n_jobs,
        )
        fold_models = result["models"]
        threshold = float(np.mean(result["thresholds"]))
        cv_performance = _grouped_cv_performance(dev, y, result, config.n_splits)
        selected_per_fold = [
            [f for f, keep in zip(FEATURE_COLUMNS, m.named_steps["select"].get_support(), strict=True) if keep]
            for m in fold_models
        ]
        input_kind = "array"
    ranges = {c: [float(X[c].min()), float(X[c].max())] for c in FEATURE_COLUMNS}
    config_json = {
        "protocol": protocol,
        "model": name,
        "input_features": FEATURE_COLUMNS,
        "input_kind": input_kind,
        "selected_features_per_fold": selected_per_fold,
        "threshold": threshold,
        "training_ranges": ranges,
        "n_training_rows": int(len(dev)),
        "n_training_patients": int(dev["unique_pt"].nunique()),
        "cv_performance": cv_performance,
        "provenance": provenance({"protocol": protocol, "model": name, "seed": seed}, "livermets phenotype train"),
    }
    return list(fold_models), config_json


def _grouped_cv_performance(
    dev: pd.DataFrame, y: np.ndarray, result: dict[str, Any], n_splits: int
) -> dict[str, Any]:
    """Out-of-fold ROC AUC of the fold models themselves (patient-grouped, one repeat), stored with the model."""
    probability = np.asarray(result["probability"], dtype=float)
    return {
        "protocol": "grouped",
        "metric": "roc_auc",
        "auc": float(roc_auc_score(y, probability)),
        "n_rows": int(y.size),
        "n_patients": int(dev["unique_pt"].nunique()),
        "n_folds": int(n_splits),
    }


def train_to_folder(frame: pd.DataFrame, out_dir: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """:func:`train_model` and save the folder; returns the config."""
    models, config = train_model(frame, **kwargs)
    save_model_folder(out_dir, models, config)
    return config


def predict_with_folder(model_dir: str | os.PathLike[str], frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Predict every row: soft-vote probability, class, spread over fold models, out-of-range features and flags.

    ``max_outside_range`` is the largest excess of a feature beyond its training range, in units of that range;
    ``flags`` lists ``out_of_range`` and ``fold_disagreement`` (see :mod:`livermets.phenotype.caveats`).

    The table needs the model's input feature columns only (no Group / NE columns; ids are copied when present).
    """
    config, models = load_model_folder(model_dir)
    features = list(config["input_features"])
    frame = validate_feature_table(frame, source, require_ids=False, features=features)
    X: Any = frame[features] if config.get("input_kind") == "dataframe" else frame[features].to_numpy(dtype=float)
    folds = np.vstack([np.asarray(m.predict_proba(X))[:, 1] for m in models])
    probability = folds.mean(axis=0)
    low = np.array([config["training_ranges"][c][0] for c in features])
    high = np.array([config["training_ranges"][c][1] for c in features])
    n_outside, excess = outside_range(frame[features].to_numpy(dtype=float), low, high)
    out = frame[[c for c in ("File", "unique_scandate", "unique_pt") if c in frame.columns]].copy()
    out["probability"] = probability
    out["predicted_class"] = (probability >= float(config["threshold"])).astype(int)
    out["fold_probability_min"] = folds.min(axis=0)
    out["fold_probability_max"] = folds.max(axis=0)
    out["fold_probability_std"] = folds.std(axis=0)
    out["n_features_outside_training_range"] = n_outside
    out["max_outside_range"] = excess
    out["flags"] = [";".join(prediction_flags(row)) for row in out.to_dict("records")]
    return out
