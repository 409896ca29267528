"""Model folders without pickle: scikit-learn parts as skops files, XGBoost as its JSON, metadata as JSON.

Layout of ``MODEL_DIR``::

    config.json           protocol, model, input features, selected features, training ranges, threshold, versions
    fold_1.skops ...      one fitted pipeline/classifier per fold (skops; loaded with an explicit type allow-list)
    fold_1.xgb.json ...   the XGBoost booster of a fold when the model is XGB (the skops file then holds the rest)
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from livermets.atomic import atomic_path, write_json
from livermets.errors import UserInputError
from livermets.phenotype.model_config import read_model_config as _read_config
from livermets.phenotype.models import BalancedXGBClassifier

FORMAT_VERSION = 1
# Types a livermets model folder may contain; anything else in a .skops file is refused.
ALLOWED_TYPES = {
    "livermets.phenotype.selection.LassoSelector",
    "livermets.phenotype.selection.FixedSelector",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._metadata_requests.MetadataRequest",
    "sklearn.utils._metadata_requests.MethodMetadataRequest",
    "sklearn.utils._metadata_requests.MetadataRouter",
    "builtins.slice",
    "collections.OrderedDict",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.int64",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
}


def _split_xgb(model: Any) -> tuple[Any, XGBClassifier | None]:
    """Separate an XGBoost classifier (saved as JSON) from the scikit-learn part (saved with skops)."""
    if isinstance(model, Pipeline):
        head, last = model.steps[:-1], model.steps[-1][1]
        booster = last.estimator_ if isinstance(last, BalancedXGBClassifier) else last
        if isinstance(booster, XGBClassifier):
            return Pipeline(head) if head else None, booster
        return model, None
    if isinstance(model, BalancedXGBClassifier):
        return None, model.estimator_
    if isinstance(model, XGBClassifier):
        return None, model
    return model, None


def _without_routing_requests(model: Any) -> Any:
    """A copy without metadata-routing requests (fit-time only; their back-references defeat skops)."""
    fitted = copy.deepcopy(model)
    steps = [step for _, step in fitted.steps] if isinstance(fitted, Pipeline) else [fitted]
    for step in steps:
        if "_metadata_request" in vars(step):
            del step._metadata_request
    return fitted


def save_model_folder(out_dir: str | os.PathLike[str], fold_models: list[Any], config: dict[str, Any]) -> Path:
    """Write fold models and ``config.json`` (config must be JSON-ready) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for k, model in enumerate(fold_models, start=1):
        sk_part, xgb_part = _split_xgb(_without_routing_requests(model))
        entry: dict[str, str | None] = {"skops": None, "xgboost": None}
        if sk_part is not None:
            with atomic_path(out / f"fold_{k}.skops") as tmp:
                sio.dump(sk_part, tmp)
            entry["skops"] = f"fold_{k}.skops"
        if xgb_part is not None:
            with atomic_path(out / f"fold_{k}.xgb.json") as tmp:
                xgb_part.save_model(str(tmp))
            entry["xgboost"] = f"fold_{k}.xgb.json"
        parts.append(entry)
    write_json(out / "config.json", {**config, "format_version": FORMAT_VERSION, "folds": parts})
    return out


def _qualified(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _check_model_types(model: Any, path: Path) -> None:
    """skops trusts every scikit-learn type by default; a livermets folder may only hold the ones we write."""
    parts = [step for _, step in model.steps] if isinstance(model, Pipeline) else [model]
    for part in [model, *parts]:
        if _qualified(part) not in ALLOWED_TYPES:
            raise UserInputError(f"{path}: refuses to load untrusted type {_qualified(part)}")


class LoadedFoldModel:
    """A fold model rebuilt from a model folder: optional scikit-learn part, then optional XGBoost booster."""

    def __init__(self, sk_part: Any, xgb_part: XGBClassifier | None) -> None:
        self.sk_part = sk_part
        self.xgb_part = xgb_part

    def predict_proba(self, X: Any) -> Any:
        if self.xgb_part is None:
            return self.sk_part.predict_proba(X)
        features = self.sk_part.transform(X) if self.sk_part is not None else X
        return self.xgb_part.predict_proba(np.asarray(features))


def load_model_folder(model_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], list[LoadedFoldModel]]:
    """Read ``config.json`` and the fold models; refuses skops files containing types outside the allow-list.

    Nothing in the folder is unpickled: skops files are loaded with an explicit list of trusted types and XGBoost
    boosters from their JSON. Every problem (missing or damaged file, bad JSON, an untrusted type, a file name
    outside the folder) is one :class:`UserInputError` naming the file.
    """
    folder = Path(model_dir)
    config = _read_config(folder)
    models = []
    for k, entry in enumerate(config["folds"], start=1):
        if not isinstance(entry, dict):
            raise UserInputError(f"{folder / 'config.json'}: fold {k} entry is not an object")
        sk_part = _load_skops(folder, entry.get("skops"), k)
        xgb_part = _load_xgboost(folder, entry.get("xgboost"), k)
        models.append(LoadedFoldModel(sk_part, xgb_part))
    if not models:
        raise UserInputError(f"model folder {folder}: no fold models listed in config.json")
    return config, models


def _fold_file(folder: Path, name: object, k: int) -> Path:
    """The fold file ``name`` inside ``folder`` (a plain file name, nothing outside the folder)."""
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise UserInputError(f"{folder / 'config.json'}: fold {k} file name {name!r} is not a file in the folder")
    path = folder / name
    if not path.is_file():
        raise UserInputError(f"model folder {folder}: fold {k} file {name} missing")
    return path


def _load_skops(folder: Path, name: object, k: int) -> Any:
    if not name:
        return None
    path = _fold_file(folder, name, k)
    try:
        untrusted = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # zipfile, JSON and skops errors all mean "not a skops file we wrote"
        raise UserInputError(f"{path}: not a readable skops file ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})") from None
    refused = sorted(untrusted - ALLOWED_TYPES)
    if refused:
        raise UserInputError(f"{path}: refuses to load untrusted type {refused[0]}")
    try:
        sk_part = sio.load(path, trusted=sorted(untrusted))
    except Exception as exc:
        raise UserInputError(f"{path}: cannot load the fold model ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})") from None
    _check_model_types(sk_part, path)
    return sk_part


def _load_xgboost(folder: Path, name: object, k: int) -> XGBClassifier | None:
    if not name:
        return None
    path = _fold_file(folder, name, k)
    try:  # only XGBoost's JSON model format is accepted (never a pickle, never its legacy binary format)
        json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise UserInputError(f"{path}: not an XGBoost JSON model") from None
    booster = XGBClassifier()
    try:
        booster.load_model(str(path))
    except Exception as exc:  # xgboost.core.XGBoostError: a JSON file that is not a booster
        reason = " ".join(str(exc).split())[:200]
        raise UserInputError(f"{path}: not an XGBoost JSON model ({reason})") from None
    return booster
