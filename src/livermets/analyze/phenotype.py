"""The NE-phenotype model as ``analyze`` uses it: loaded and checked before any work, applied to one series.

The model is a folder from ``livermets phenotype train``. ``analyze`` computes the paper's 108 features, so a model
trained on any other feature set is refused at once (one line naming its ``config.json``), not after segmentation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from livermets.analyze.gate import PhenotypeGate
from livermets.errors import UserInputError
from livermets.featuretable import FEATURE_COLUMNS
from livermets.phenotype.caveats import FOLD_DISAGREEMENT, caveat_sentences
from livermets.phenotype.persistence import load_model_folder
from livermets.phenotype.training import predict_with_folder

log = logging.getLogger(__name__)
PROBABILITY_DIGITS = 4
"""Decimals of the probabilities in the report (the models are not calibrated to better than that)."""

RESEARCH_NOTE = ("Research use only: the NE phenotype is predicted from image features by a model with limited "
                 "validation; it is not a diagnosis and must not guide treatment.")
WEAK_AUC = 0.7  # below this cross-validated ROC AUC the report calls the model weak
INTENDED_POPULATION = ("Adults with liver metastases of small cell lung cancer (SCLC), as in the cohort the paper's "
                       "features come from (50 patients, 227 CT series).")
INTENDED_INPUTS = ("A contrast-enhanced CT in Hounsfield units (slice thickness 1-5 mm) that covers the whole liver, "
                   "segmented into liver and lesions; the model reads the 107 PyRadiomics features of the lesion mask "
                   "(the paper's settings) and Num_Lesions.")
FOLD_DISAGREEMENT_RULE = (f"The fold models disagree when their probabilities span {FOLD_DISAGREEMENT:g} or more "
                          "(maximum minus minimum).")
PREDICTION_KEYS = ("probability", "predicted_class", "label", "fold_probability_min", "fold_probability_max",
                   "fold_probability_std")
"""The numbers of a prediction: all null when the probability is withheld."""


def calibration_text(config: dict[str, Any]) -> str:
    """What the probability is: the mean of the fold models' probabilities, with no calibration step."""
    threshold = float(config["threshold"])
    chosen = ("the mean of the thresholds chosen by Youden's J in the training folds" if config.get("protocol") ==
              "grouped" else "fixed")
    return ("Not calibrated: the probability is the mean of the fold models' predicted probabilities, with no "
            "calibration step, and its calibration has not been measured on patients outside the training table "
            "(livermets phenotype evaluate draws the reliability diagram of the out-of-fold probabilities on that "
            "table). "
            f"Read it as a score that ranks scans; class NE-high at probability >= {threshold:.2f} ({chosen}).")


def about(config: dict[str, Any]) -> dict[str, Any]:
    """The report's statement of what the NE probability is (``phenotype.about``)."""
    return {"intended_population": INTENDED_POPULATION, "inputs": INTENDED_INPUTS, "calibrated": False,
            "calibration": calibration_text(config), "fold_disagreement_rule": FOLD_DISAGREEMENT_RULE}


@dataclass(frozen=True)
class PhenotypeModel:
    """A phenotype model folder, checked to take exactly features that ``analyze`` computes."""

    path: Path
    config: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, path: str | Path) -> PhenotypeModel:
        """Read and check ``path`` (``config.json`` and fold models); raises :class:`UserInputError`."""
        folder = Path(path)
        config, _ = load_model_folder(folder)
        features = list(config.get("input_features", []))
        unknown = [f for f in features if f not in FEATURE_COLUMNS]
        if unknown or not features:
            raise UserInputError(
                f"{folder / 'config.json'}: the phenotype model takes features analyze does not compute "
                f"({', '.join(unknown[:3]) or 'none listed'}); it was trained on another feature table")
        return cls(folder, config)

    @property
    def cv_performance(self) -> dict[str, Any] | None:
        value = self.config.get("cv_performance")
        return dict(value) if isinstance(value, dict) else None

    def predict(self, rows: pd.DataFrame, source: str) -> pd.DataFrame:
        """:func:`livermets.phenotype.training.predict_with_folder` on feature rows in the published schema."""
        return predict_with_folder(self.path, rows, source)

    def summary(self, prediction: pd.Series, gate: PhenotypeGate) -> dict[str, Any]:
        """The report's ``phenotype`` section for one prediction row; the numbers are null when ``gate`` withholds
        them."""
        threshold = float(self.config["threshold"])
        probability = float(prediction["probability"])
        section = {
            "status": gate.status,
            "reason": gate.text() or None,
            "model": str(self.path),
            "protocol": self.config.get("protocol"),
            "classifier": self.config.get("model"),
            "probability": round(probability, PROBABILITY_DIGITS),
            "predicted_class": int(probability >= threshold),
            "label": "NE-high" if probability >= threshold else "NE-low",
            "threshold": round(threshold, PROBABILITY_DIGITS),
            **{key: round(float(prediction[key]), PROBABILITY_DIGITS)
               for key in ("fold_probability_min", "fold_probability_max", "fold_probability_std")},
            "n_features_outside_training_range": int(prediction["n_features_outside_training_range"]),
            "max_outside_range": round(float(prediction["max_outside_range"]), 2),
            "flags": [f for f in str(prediction["flags"]).split(";") if f],
            "cv_performance": self.cv_performance,
            "note": RESEARCH_NOTE,
            "gate": gate.to_dict(),
            "about": about(self.config),
        }
        if gate.withheld:
            section.update(dict.fromkeys(PREDICTION_KEYS))
        return section

    def not_predicted(self, status: str, reason: str | None, gate: PhenotypeGate) -> dict[str, Any]:
        """The ``phenotype`` section without a prediction: ``withheld`` by the segmentation checks, or
        ``not_computed`` (no features: ``reason``)."""
        return {"status": status, "reason": reason, "model": str(self.path),
                "protocol": self.config.get("protocol"), "classifier": self.config.get("model"),
                **dict.fromkeys(PREDICTION_KEYS), "threshold": round(float(self.config["threshold"]),
                                                                       PROBABILITY_DIGITS),
                "n_features_outside_training_range": None, "max_outside_range": None, "flags": [],
                "cv_performance": self.cv_performance, "note": RESEARCH_NOTE, "gate": gate.to_dict(),
                "about": about(self.config)}

    def warnings(self, summary: dict[str, Any]) -> list[str]:
        """Sentences for the report when this prediction deserves less trust than its number suggests."""
        out = []
        cv = summary["cv_performance"]
        if cv is None:
            out.append("The phenotype model carries no patient-grouped cross-validated performance (train it with "
                       "--protocol grouped); its reliability is unknown.")
        elif cv["auc"] < WEAK_AUC:
            out.append(f"The phenotype model's patient-grouped cross-validated ROC AUC is {cv['auc']:.2f}: "
                       "close to chance, so this probability says little.")
        out.extend(caveat_sentences(summary))
        return out
