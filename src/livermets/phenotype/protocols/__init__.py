"""The two phenotype protocols, one module each, both with ``evaluate()`` and ``train()``.

- :mod:`~livermets.phenotype.protocols.grouped` (the default, for new work): patient-grouped nested CV with
  everything fitted inside the training folds, permutation test and cluster bootstrap
  (:mod:`livermets.phenotype.grouped`);
- :mod:`~livermets.phenotype.protocols.paper`: the published notebooks 1-4 (:mod:`livermets.phenotype.notebooks`),
  LASSO and LR on the pinned OpenBLAS kernel (:mod:`livermets.phenotype.pinned`).

``evaluate(features, model, ...)`` reads a feature table and returns an :class:`Evaluation`;
``train(dev, model, n_jobs, seed)`` fits the fold models on the development rows of a validated table and returns a
:class:`FoldEnsemble`. :func:`evaluate_to_folder` (``phenotype evaluate``) writes an evaluation to a folder;
:func:`livermets.phenotype.training.train_to_folder` (``phenotype train``) stores a fold ensemble. Importing this
package imports neither numpy nor scikit-learn: a protocol module is imported when it is used.

Examples
--------
>>> from livermets.phenotype.protocols import protocol_module
>>> protocol_module("paper").__name__
'livermets.phenotype.protocols.paper'
>>> evaluate_to_folder("features.csv", "results/grouped", protocol="grouped", model="LR")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from livermets.errors import UserInputError

if TYPE_CHECKING:
    import pandas as pd

PROTOCOLS = ("grouped", "paper")
"""Protocol names: ``grouped`` (default) and ``paper``."""


@dataclass
class Evaluation:
    """What ``evaluate()`` of a protocol returns: the summary (``summary.json``) and out-of-fold predictions.

    ``summary`` has at least ``protocol, model, cv_auc, cv_auc_low95, cv_auc_high95, permutation_p`` (``None``
    without a permutation test); ``oof`` holds one row per development series (``None`` for the paper protocol,
    whose row-level folds give no per-patient out-of-fold prediction).
    """

    summary: dict[str, Any]
    oof: pd.DataFrame | None = None


@dataclass
class FoldEnsemble:
    """What ``train()`` of a protocol returns: the fold models and what the model folder stores beside them.

    ``input_kind`` is ``"dataframe"`` (the models take the feature columns by name) or ``"array"``;
    ``cv_performance`` the patient-grouped out-of-fold AUC of the fold models (``None`` for the paper protocol).
    """

    models: list[Any]
    threshold: float
    selected_per_fold: list[list[str]]
    input_kind: str
    cv_performance: dict[str, Any] | None = None


def check_protocol(protocol: str) -> str:
    """Return ``protocol`` if it names a protocol; otherwise raise a one-line :class:`UserInputError`."""
    if protocol not in PROTOCOLS:
        raise UserInputError(f"unknown protocol {protocol!r}; choose grouped or paper")
    return protocol


def protocol_module(protocol: str) -> ModuleType:
    """The module of ``protocol`` (``grouped`` or ``paper``), with its ``evaluate()`` and ``train()``."""
    return importlib.import_module(f"{__name__}.{check_protocol(protocol)}")


def evaluate_to_folder(
    features: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    protocol: str = "grouped",
    model: str = "LR",
    n_permutations: int = 200,
    n_repeats: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
    n_jobs: int = -1,
) -> dict[str, Any]:
    """Evaluate ``protocol`` on a feature table; write ``summary.json`` (+ ``oof_predictions.csv``, reliability plot).

    ``n_permutations``, ``n_repeats`` and ``seed`` apply to the grouped protocol only (the paper protocol's splits
    and bootstrap draws are the notebooks'). Returns the summary as written (with ``provenance``).
    """
    from livermets.atomic import write_csv, write_json
    from livermets.phenotype.models import check_model_name
    from livermets.provenance import provenance

    name = check_model_name(model)
    module = protocol_module(protocol)
    evaluation: Evaluation
    if protocol == "grouped":
        from livermets.phenotype.grouped import GroupedConfig

        config = GroupedConfig(model=name, n_permutations=n_permutations, n_repeats=n_repeats, n_boot=n_boot,
                               seed=seed, n_jobs=n_jobs)
        evaluation = module.evaluate(features, config)
    else:
        evaluation = module.evaluate(features, name, n_boot=n_boot, n_jobs=n_jobs)
    out = Path(out_dir)
    if evaluation.oof is not None:
        from livermets.phenotype.plots import plot_reliability

        write_csv(out / "oof_predictions.csv", evaluation.oof)
        oof = evaluation.oof
        plot_reliability(oof["probability"].to_numpy(), oof["NE_Class"].to_numpy(), out / "reliability.png")
    summary = evaluation.summary
    summary["provenance"] = provenance(
        {"protocol": protocol, "model": name, "features": str(features)}, "livermets phenotype evaluate"
    )
    write_json(out / "summary.json", summary)
    return summary
