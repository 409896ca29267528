"""Tumour burden versus NE score and NE class (the paper's Figure 3), at the patient level by default.

The paper correlates the AI-predicted tumour volume with the NE score over "one series per patient per scan date"
without saying which series. :func:`one_series_per_study` makes the choice explicit: ``first`` (default) keeps the
first row of each study in table order — in the published table the lowest series number, usually the CAP
reconstruction; ``last`` keeps the last; ``largest`` the series with the largest tumour volume.

A patient's studies are correlated, so :func:`burden_statistics` tests by default one value per patient
(``level="patient"``, :mod:`livermets.stats.clustered`): the mean over its studies (one series per study) of the
tumour volume and of the NE score, and as its NE class the class most of its studies have (patients with as many
NE-positive as NE-negative studies are counted, ``n_tied_class``, and left out of the class comparison); the Spearman
95% CI is a patient-level cluster bootstrap. ``level="study"`` is the paper's Figure 3 analysis
(:func:`study_level_statistics`), which counts every study as an independent observation.

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"unique_scandate": ["a", "a", "b"], "original_shape_VoxelVolume": [1.0, 5.0, 2.0]})
>>> one_series_per_study(t, "largest")["original_shape_VoxelVolume"].tolist()
[5.0, 2.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from livermets.errors import ParameterError, UserInputError
from livermets.featuretable import TUMOUR_VOLUME_COLUMN
from livermets.stats.clustered import N_BOOT, SEED, Units, clustered_spearman, majority_class, patient_means

SERIES_CHOICES = ("first", "last", "largest")
LEVELS = ("patient", "study")
SAMPLE_TYPE_COLUMN = "sample_type"
"""Optional column (e.g. ``biopsy`` / ``cfdna``) naming where the NE score came from; absent from the published CSV."""
PATIENT_AGGREGATION = ("one value per patient: the mean over its studies (one series per study) of the tumour volume "
                       "and of the NE score; its NE class is the class most of its studies have (ties left out of "
                       "the class comparison); Spearman 95% CI from a patient-level cluster bootstrap")
STUDY_CLUSTERING_NOTE = ("ignores clustering: every study counts as an independent observation although a patient's "
                         "studies are correlated (the paper's Figure 3 analysis); use level 'patient' for inference")


def one_series_per_study(
    frame: pd.DataFrame, choice: str = "first", volume_column: str = TUMOUR_VOLUME_COLUMN
) -> pd.DataFrame:
    """Keep one series (row) per study (``unique_scandate``) by the stated ``choice``."""
    if choice not in SERIES_CHOICES:
        raise UserInputError(f"unknown series choice {choice!r}; use one of {', '.join(SERIES_CHOICES)}")
    if "unique_scandate" not in frame.columns:
        raise UserInputError("feature table: missing column 'unique_scandate'")
    grouped = frame.groupby("unique_scandate", sort=False)
    if choice == "first":
        return grouped.head(1)
    if choice == "last":
        return grouped.tail(1)
    return frame.loc[grouped[volume_column].idxmax()]


def _tests(subset: pd.DataFrame, volume_column: str) -> dict[str, Any]:
    volume = subset[volume_column].to_numpy(dtype=float)
    score = subset["NE_Score"].to_numpy(dtype=float)
    positive = subset["NE_Class"].to_numpy() == 1
    out: dict[str, Any] = {
        "n": int(len(subset)),
        "n_positive": int(positive.sum()),
        "n_negative": int((~positive).sum()),
    }
    if len(subset) >= 3:
        rho, p_value = stats.spearmanr(volume, score)
        out.update(spearman_rho=float(rho), spearman_p=float(p_value))
    else:
        out.update(spearman_rho=float("nan"), spearman_p=float("nan"))
    if positive.any() and (~positive).any():
        ranksum = stats.ranksums(volume[positive], volume[~positive])
        mwu = stats.mannwhitneyu(volume[positive], volume[~positive], alternative="two-sided")
        out.update(
            ranksum_stat=float(ranksum.statistic),
            ranksum_p=float(ranksum.pvalue),
            mannwhitney_u=float(mwu.statistic),
            mannwhitney_p=float(mwu.pvalue),
        )
    else:
        out.update(
            ranksum_stat=float("nan"), ranksum_p=float("nan"), mannwhitney_u=float("nan"), mannwhitney_p=float("nan")
        )
    return out


def study_level_statistics(
    frame: pd.DataFrame, choice: str = "first", volume_column: str = TUMOUR_VOLUME_COLUMN
) -> dict[str, Any]:
    """The paper's Figure 3: Spearman (volume vs NE score) and Wilcoxon rank-sum (volume by NE class) over studies.

    ``ranksum_stat`` is scipy's normal-approximation z (positive = NE-positive studies have larger volumes); the
    exact Mann-Whitney U and p are given too. Results are computed on one series per study (``choice``), overall and
    per sample type, each study counted as an independent observation (``reproduce paper`` writes this dict as
    published; :func:`burden_statistics` adds the patient level).
    """
    for column in (volume_column, "NE_Score", "NE_Class"):
        if column not in frame.columns:
            raise UserInputError(f"feature table: missing column {column!r}")
    studies = one_series_per_study(frame, choice, volume_column)
    result: dict[str, Any] = {
        "series_choice": choice,
        "volume_column": volume_column,
        "unit": "mm^3 (1 mm isotropic resampling)",
        "all": _tests(studies, volume_column),
    }
    if SAMPLE_TYPE_COLUMN in frame.columns:
        for sample_type, subset in studies.groupby(SAMPLE_TYPE_COLUMN, sort=True):
            result[str(sample_type).lower()] = _tests(subset, volume_column)
    else:
        result["note"] = "no 'sample_type' column: biopsy/cfDNA split not available"
    return result


def check_level(level: str) -> None:
    """Raise :class:`ParameterError` unless ``level`` is one of :data:`LEVELS`."""
    if level not in LEVELS:
        raise ParameterError.about("level", f"use one of {', '.join(LEVELS)}", repr(level))


def _require(frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    for column in columns:
        if column not in frame.columns:
            raise UserInputError(f"feature table: missing column {column!r}")


def patient_table(studies: pd.DataFrame, volume_column: str = TUMOUR_VOLUME_COLUMN) -> pd.DataFrame:
    """One row per patient (``unique_pt``, sorted): mean volume and NE score over its rows, majority NE class.

    ``studies`` is one series per study (:func:`one_series_per_study`); ``NE_Class`` is NaN for a patient with as
    many NE-positive as NE-negative studies; ``n_studies`` counts the patient's studies.
    """
    table = patient_means(studies, [volume_column, "NE_Score"], "unique_pt")
    table["NE_Class"] = majority_class(studies["NE_Class"], studies["unique_pt"]).reindex(table.index)
    table["n_studies"] = studies.groupby(studies["unique_pt"].astype(str).to_numpy())["unique_scandate"].nunique()
    return table.rename_axis("unique_pt").reset_index()


def _patient_tests(studies: pd.DataFrame, units: Units, volume_column: str, n_boot: int,
                   seed: int) -> dict[str, Any]:
    table = patient_table(studies, volume_column)
    volume = table[volume_column].to_numpy(dtype=float)
    positive, negative = (table["NE_Class"] == 1).to_numpy(), (table["NE_Class"] == 0).to_numpy()
    rho = clustered_spearman(studies[volume_column], studies["NE_Score"], studies["unique_pt"], n_boot, seed)
    out: dict[str, Any] = {"n": units.patients, **units.to_dict(), "n_positive": int(positive.sum()),
                           "n_negative": int(negative.sum()), "n_tied_class": int(table["NE_Class"].isna().sum()),
                           "spearman_rho": rho["rho"], "spearman_p": rho["p"], "spearman_low95": rho["low95"],
                           "spearman_high95": rho["high95"], "spearman_n_undefined": rho["n_undefined"]}
    nan = float("nan")
    out.update(ranksum_stat=nan, ranksum_p=nan, mannwhitney_u=nan, mannwhitney_p=nan)
    if positive.any() and negative.any():
        ranksum = stats.ranksums(volume[positive], volume[negative])
        mwu = stats.mannwhitneyu(volume[positive], volume[negative], alternative="two-sided")
        out.update(ranksum_stat=float(ranksum.statistic), ranksum_p=float(ranksum.pvalue),
                   mannwhitney_u=float(mwu.statistic), mannwhitney_p=float(mwu.pvalue))
    return out


def study_units(frame: pd.DataFrame, studies: pd.DataFrame) -> Units:
    """Patients and studies of ``studies``; the series of ``frame`` that belong to those studies."""
    series = frame["unique_scandate"].isin(set(studies["unique_scandate"]))
    return Units(int(studies["unique_pt"].nunique()), int(studies["unique_scandate"].nunique()), int(series.sum()))


def sample_type_subsets(studies: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``("all", studies)`` and, with a ``sample_type`` column, one subset per sample type (lower-case name)."""
    subsets = [("all", studies)]
    if SAMPLE_TYPE_COLUMN in studies.columns:
        subsets += [(str(k).lower(), v) for k, v in studies.groupby(SAMPLE_TYPE_COLUMN, sort=True)]
    return subsets


def burden_statistics(frame: pd.DataFrame, choice: str = "first", volume_column: str = TUMOUR_VOLUME_COLUMN,
                      level: str = "patient", n_boot: int = N_BOOT, seed: int = SEED) -> dict[str, Any]:
    """Tumour volume vs NE score (Spearman) and by NE class (Wilcoxon rank-sum), overall and per ``sample_type``.

    Parameters
    ----------
    frame
        Feature table with ``unique_scandate``, ``unique_pt``, the volume column, ``NE_Score`` and ``NE_Class``.
    choice
        Series kept per study (:func:`one_series_per_study`).
    level
        ``patient`` (default): one value per patient (see the module docstring); every subset gives ``n`` (=
        patients), ``n_patients``, ``n_studies``, ``n_series`` and a bootstrap CI of rho. ``study``: the paper's
        Figure 3 (:func:`study_level_statistics`), which ignores the clustering of studies within patients.
    n_boot, seed
        Patient-level bootstrap samples of the Spearman CI, and their seed.
    """
    check_level(level)
    _require(frame, (volume_column, "NE_Score", "NE_Class", "unique_pt"))
    studies = one_series_per_study(frame, choice, volume_column)
    if level == "study":
        result = study_level_statistics(frame, choice, volume_column)
        for name, subset in sample_type_subsets(studies):
            result[name].update(study_units(frame, subset).to_dict())
        return {"level": "study", "clustering": STUDY_CLUSTERING_NOTE, **result}
    result = {"level": "patient", "aggregation": PATIENT_AGGREGATION, "series_choice": choice,
              "volume_column": volume_column, "unit": "mm^3 (1 mm isotropic resampling)", "n_boot": int(n_boot),
              "seed": int(seed)}
    for name, subset in sample_type_subsets(studies):
        result[name] = _patient_tests(subset, study_units(frame, subset), volume_column, n_boot, seed)
    if SAMPLE_TYPE_COLUMN not in frame.columns:
        result["note"] = "no 'sample_type' column: biopsy/cfDNA split not available"
    return result


def volume_summary(frame: pd.DataFrame, volume_column: str = TUMOUR_VOLUME_COLUMN) -> dict[str, float]:
    """Median and range of the tumour volume (for reports)."""
    volume = frame[volume_column].to_numpy(dtype=float)
    return {"median": float(np.median(volume)), "min": float(volume.min()), "max": float(volume.max())}
