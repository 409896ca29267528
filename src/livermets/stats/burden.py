"""Tumour burden versus NE score and NE class (the paper's Figure 3).

The paper correlates the AI-predicted tumour volume with the NE score over "one series per patient per scan date"
without saying which series. :func:`one_series_per_study` makes the choice explicit: ``first`` (default) keeps the
first row of each study in table order — in the published table the lowest series number, usually the CAP
reconstruction; ``last`` keeps the last; ``largest`` the series with the largest tumour volume.

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

from livermets.errors import UserInputError
from livermets.featuretable import TUMOUR_VOLUME_COLUMN

SERIES_CHOICES = ("first", "last", "largest")
SAMPLE_TYPE_COLUMN = "sample_type"
"""Optional column (e.g. ``biopsy`` / ``cfdna``) naming where the NE score came from; absent from the published CSV."""


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


def burden_statistics(
    frame: pd.DataFrame, choice: str = "first", volume_column: str = TUMOUR_VOLUME_COLUMN
) -> dict[str, Any]:
    """Spearman (volume vs NE score) and Wilcoxon rank-sum (volume by NE class), overall and per sample type.

    ``ranksum_stat`` is scipy's normal-approximation z (positive = NE-positive studies have larger volumes); the
    exact Mann-Whitney U and p are given too. Results are computed on one series per study (``choice``).
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


def volume_summary(frame: pd.DataFrame, volume_column: str = TUMOUR_VOLUME_COLUMN) -> dict[str, float]:
    """Median and range of the tumour volume (for reports)."""
    volume = frame[volume_column].to_numpy(dtype=float)
    return {"median": float(np.median(volume)), "min": float(volume.min()), "max": float(volume.max())}
