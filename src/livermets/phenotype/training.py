"""Train a fold ensemble on a feature table and store it; predict new series with it.

The fold models come from ``train()`` of the protocol (:mod:`livermets.phenotype.protocols`): ``paper`` fits
LASSO (alpha 0.35, unscaled) on the development rows, then the paper's classifier on the selected features in 5
ShuffleSplit folds, threshold 0.5; ``grouped`` fits one repeat of the nested patient-grouped CV of
:mod:`livermets.phenotype.grouped`, each fold model a full pipeline (scaling, LASSO, classifier), threshold the mean
of the training-fold thresholds. This module validates the table and stores the models with their configuration.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from livermets.featuretable import FEATURE_COLUMNS, table_source, validate_feature_table
from livermets.phenotype.caveats import outside_range, prediction_flags
from livermets.phenotype.cv import check_two_classes
from livermets.phenotype.models import check_model_name
from livermets.phenotype.persistence import load_model_folder, save_model_folder
from livermets.phenotype.protocols import protocol_module
from livermets.provenance import provenance


def _development_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[frame["Group"] != "test"] if "Group" in frame.columns else frame


def train_model(
    frame: pd.DataFrame, protocol: str = "grouped", model: str = "LR", n_jobs: int = -1, seed: int = 0
) -> tuple[list[Any], dict[str, Any]]:
    """Fit the fold models; returns them and the JSON-ready config (features, ranges, threshold, versions)."""
    module = protocol_module(protocol)
    name = check_model_name(model)
    dev = _development_rows(frame)
    y = dev["NE_Class"].to_numpy().astype(np.int64)
    check_two_classes(y, f"{table_source(frame)}: column 'NE_Class' in the training rows")
    ensemble = module.train(dev, name, n_jobs=n_jobs, seed=seed)
    X = dev[FEATURE_COLUMNS]
    ranges = {c: [float(X[c].min()), float(X[c].max())] for c in FEATURE_COLUMNS}
    config_json = {
        "protocol": protocol,
        "model": name,
        "input_features": FEATURE_COLUMNS,
        "input_kind": ensemble.input_kind,
        "selected_features_per_fold": ensemble.selected_per_fold,
        "threshold": ensemble.threshold,
        "training_ranges": ranges,
        "n_training_rows": int(len(dev)),
        "n_training_patients": int(dev["unique_pt"].nunique()),
        "cv_performance": ensemble.cv_performance,
        "provenance": provenance({"protocol": protocol, "model": name, "seed": seed}, "livermets phenotype train"),
    }
    return ensemble.models, config_json


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
