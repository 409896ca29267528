"""The statistics and caveats of the cohort report of ``run`` (``cohort_report.html``, ``cohort_stats.json``).

Statistics: total lesion volume against the predicted NE probability and, where the manifest has it, the NE score,
at the patient level (:mod:`livermets.stats.clustered`): each patient's value is the mean over its series that have
both values; Spearman rho and p (``scipy.stats.spearmanr``) over those patient means; a 95% CI from a patient-level
cluster bootstrap (seeded). n is given as patients, studies and series.

Caveats, the cohort's share of what each series report says: the segmentation model(s) used, with the shipped
model's warning; the phenotype model's patient-grouped cross-validated ROC AUC; how many NE predictions lie outside
the training range or have disagreeing fold models; and how many analysed series have no NE probability, and why.

Examples
--------
>>> import pandas as pd
>>> s = pd.DataFrame({"series_id": ["a1", "a2", "b1", "c1", "d1"], "study_id": ["a", "a", "b", "c", "d"],
...                   "patient_id": ["A", "A", "B", "C", "D"], "total_lesion_volume_ml": [1.0, 3.0, 2.0, 5.0, 4.0],
...                   "ne_probability": [0.1, 0.3, 0.25, 0.4, 0.5], "ne_score_known": [None] * 5})
>>> panel = burden_statistics(s, n_boot=100)[0]
>>> panel["n_patients"], panel["n_studies"], panel["n_series"], round(panel["rho"], 3)
(4, 4, 5, 0.738)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from livermets.phenotype.caveats import FOLD_DISAGREEMENT
from livermets.segmentation.default_model import SHIPPED_MODEL_WARNING
from livermets.stats.clustered import N_BOOT, SEED, clustered_spearman, spearman_sentence, unit_counts

VOLUME_COLUMN = "total_lesion_volume_ml"
PANELS = (("ne_probability", "predicted NE probability"), ("ne_score_known", "NE score (manifest)"))
NE_REASON_COLUMN = "ne_reason"
"""Column of ``summary.csv`` giving why a series has no NE probability (read by :func:`gate_reason` when present)."""
AGGREGATION = ("one value per patient: the mean over the patient's series that have both values; Spearman rho and p "
               "over the patient means; 95% CI from {n_boot} patient-level bootstrap samples (seed {seed})")


def burden_statistics(summary: pd.DataFrame, n_boot: int = N_BOOT, seed: int = SEED) -> list[dict[str, Any]]:
    """Per panel (NE probability, then the manifest NE score when any series has one): the patient-level Spearman.

    Each dict: ``column, name``, :func:`livermets.stats.clustered.clustered_spearman`'s keys, ``n_patients,
    n_studies, n_series`` of the series used, and ``sentence`` (rho, CI, p and n, for the report).
    """
    volume = pd.to_numeric(summary[VOLUME_COLUMN], errors="coerce").astype(float)
    panels = []
    for column, name in PANELS:
        if column == "ne_score_known" and not pd.to_numeric(summary[column], errors="coerce").notna().any():
            continue
        values = pd.to_numeric(summary[column], errors="coerce").astype(float)
        ok = np.isfinite(volume) & np.isfinite(values)
        units = unit_counts(summary[ok], "patient_id", "study_id", "series_id")
        result = clustered_spearman(volume[ok], values[ok], summary.loc[ok, "patient_id"].astype(str), n_boot, seed)
        panels.append({"column": column, "name": name, **result, **units.to_dict(),
                       "sentence": spearman_sentence(result, units)})
    return panels


def gate_reason(row: Mapping[Any, Any], report: Mapping[str, Any]) -> str | None:
    """Why a series analysed with a phenotype model has no NE probability (``None`` when it has one).

    The reason is the summary's :data:`NE_REASON_COLUMN` when present, otherwise the report's features section.
    """
    probability = row.get("ne_probability")
    if probability is not None and pd.notna(pd.to_numeric(pd.Series([probability]), errors="coerce").iloc[0]):
        return None
    reason = row.get(NE_REASON_COLUMN)
    if isinstance(reason, str) and reason:
        return reason
    features = report.get("features") or {}
    if features.get("status") not in (None, "ok"):
        return f"no radiomics features ({features.get('reason') or features.get('status')})"
    return "no NE probability"


def series_reports(jobs: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """``report.json`` of every finished job, by series id."""
    reports = {}
    for job in jobs:
        path = Path(job.out) / "report.json"
        if path.is_file():
            reports[job.series_id] = json.loads(path.read_text(encoding="utf-8"))
    return reports


def _segmentation(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    models = Counter(str(r["segmentation"].get("model_name") or r["segmentation"].get("model"))
                     for r in reports.values())
    shipped = sum(bool(r["segmentation"].get("shipped_default")) for r in reports.values())
    return {"models": dict(models), "n_shipped": shipped, "warning": SHIPPED_MODEL_WARNING if shipped else None}


def _predictions(predictions: pd.DataFrame) -> dict[str, Any]:
    flags = predictions["flags"].fillna("").astype(str).str.split(";") if not predictions.empty else pd.Series([])
    return {"n": len(predictions), "n_out_of_range": int(sum("out_of_range" in f for f in flags)),
            "n_fold_disagreement": int(sum("fold_disagreement" in f for f in flags)),
            "fold_disagreement_rule": f"fold probabilities spanning {FOLD_DISAGREEMENT} or more (max - min)"}


def _gated(summary: pd.DataFrame, reports: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    reasons = [gate_reason(row, reports.get(str(row["series_id"]), {})) for row in summary.to_dict("records")]
    gated = [reason for reason in reasons if reason is not None]
    n = len(summary)
    return {"n_series": n, "n_gated": len(gated), "share": len(gated) / n if n else float("nan"),
            "reasons": dict(Counter(gated).most_common())}


def cohort_caveats(tables: Mapping[str, pd.DataFrame], reports: Mapping[str, Mapping[str, Any]],
                   phenotype_model: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the cohort report must say beside its numbers.

    Parameters
    ----------
    tables
        :func:`livermets.analyze.cohort_tables.collect_tables` (``summary`` and ``predictions`` are used).
    reports
        :func:`series_reports` of the analysed series.
    phenotype_model
        ``model, classifier, protocol, cv_performance`` of the run's phenotype model; ``None`` without one.
    """
    summary = tables["summary"]
    return {"segmentation": _segmentation(reports),
            "phenotype_model": dict(phenotype_model) if phenotype_model is not None else None,
            "predictions": _predictions(tables["predictions"]) if phenotype_model is not None else None,
            "gated": _gated(summary, reports) if phenotype_model is not None else None,
            "units": (unit_counts(summary, "patient_id", "study_id", "series_id").to_dict() if not summary.empty
                      else {"n_patients": 0, "n_studies": 0, "n_series": 0})}
