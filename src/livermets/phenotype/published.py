"""The NE-phenotype model built from the paper's published features (``--phenotype-model paper``).

On first use, :func:`paper_model` takes the paper's published feature table (:func:`livermets.data.paper_features`:
the mirror folder, the data home, or a download), trains the patient-grouped protocol (LR, seed 0; the 5 fold models
of one repeat of the nested patient-grouped CV, as ``livermets phenotype train --published``) on its development rows
and keeps the model folder in the model home, ``<home>/models/ne-paper`` (``livermets.fetch.home``). Its
``config.json`` holds the patient-grouped CV AUC of those fold models and, under ``paper_model``, what it was built
from: the table's SHA-256 and the livermets and scikit-learn versions. A folder built from another table or by
another version is built again.

The grouped CV AUC of this model is near chance (0.585 on the 36 patients of its development rows): it shows the
pipeline end to end and is no clinical predictor. ``livermets analyze`` uses it only when asked
(``--phenotype-model paper``).

Examples
--------
>>> folder = paper_model()  # doctest: +SKIP
>>> read_model_config(folder)["cv_performance"]["auc"]  # doctest: +SKIP
0.58...
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from livermets.phenotype.model_config import read_model_config

__all__ = ["PAPER_MODEL", "paper_model", "paper_model_dir", "paper_model_key"]

PAPER_MODEL = "paper"
"""The value of ``--phenotype-model`` that selects this model."""
FOLDER_NAME = "ne-paper"
PROTOCOL, MODEL, SEED = "grouped", "LR", 0
log = logging.getLogger(__name__)


def paper_model_dir() -> Path:
    """Where the model is kept: ``<home>/models/ne-paper``."""
    from livermets.fetch import home

    return home() / "models" / FOLDER_NAME


def paper_model_key(table: Path) -> dict[str, Any]:
    """What the model is built from: the table's SHA-256, the versions of livermets and scikit-learn (which wrote
    its fold files), protocol, model and seed."""
    from importlib.metadata import version

    from livermets import __version__
    from livermets.fetch import sha256sum

    return {"data_sha256": sha256sum(table), "livermets_version": __version__,
            "scikit_learn_version": version("scikit-learn"), "protocol": PROTOCOL, "model": MODEL, "seed": SEED}


def _current(folder: Path, key: dict[str, Any]) -> bool:
    """``folder`` holds a model built from ``key`` (a missing or unreadable folder is not current)."""
    from livermets.errors import UserInputError

    if not (folder / "config.json").is_file():
        return False
    try:
        return bool(read_model_config(folder).get("paper_model") == key)
    except UserInputError:
        return False


def paper_model(n_jobs: int = -1, progress: bool = True) -> Path:
    """The model folder of the paper's features, built (and the table fetched) on first use; see the module.

    Raises
    ------
    UserInputError
        The published table is neither local nor downloadable (one line saying how to get it offline).
    """
    from livermets.data import paper_features

    table = paper_features(progress)
    key = paper_model_key(table)
    folder = paper_model_dir()
    if _current(folder, key):
        return folder
    _build(table, key, folder, n_jobs)
    return folder


def _build(table: Path, key: dict[str, Any], folder: Path, n_jobs: int) -> None:
    from livermets.atomic import remove_partials, staged_folder
    from livermets.featuretable import read_feature_table
    from livermets.phenotype.persistence import save_model_folder
    from livermets.phenotype.training import train_model

    log.info("building the NE model of the paper's published features (patient-grouped protocol, %s, seed %d) "
             "into %s; once, then reused", MODEL, SEED, folder)
    started = time.perf_counter()
    frame = read_feature_table(table, targets=["NE_Score", "NE_Class"])
    models, config = train_model(frame, protocol=PROTOCOL, model=MODEL, n_jobs=n_jobs, seed=SEED)
    config["paper_model"] = key
    remove_partials(folder.parent)
    with staged_folder(folder, overwrite=True) as tmp:
        save_model_folder(tmp, models, config)
    cv = config["cv_performance"]
    log.info("NE model built in %.0f s: patient-grouped CV AUC %.2f on %d patients (near chance: no clinical "
             "predictor)", time.perf_counter() - started, cv["auc"], cv["n_patients"])
