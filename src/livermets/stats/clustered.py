"""Statistics over a cohort whose CT series are clustered: series within studies within patients.

Two reconstructions of one study, or two studies of one patient, are not independent observations: a test that
counts them as such reports too small a p-value and too narrow a confidence interval. Every p-value and CI livermets
computes on a cohort therefore takes **one value per patient**:

- the patient's value is the mean over its rows (:func:`patient_means`): over its series in the cohort report of
  ``run``, over its studies (one series per study) in ``stats burden``;
- the p-value is the test's own (``scipy.stats``) on those patient values;
- the 95% CI is a patient-level cluster bootstrap: patients drawn with replacement (``numpy.random.default_rng(seed)``),
  the statistic recomputed on their values, the 2.5 and 97.5 percentiles taken.

Patients are sorted by id before the draw, so the table's row order does not change a CI, and duplicating series
(new series ids, same patient) changes neither p-values nor CIs. Every result states its n as patients, studies and
series (:class:`Units`).

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"patient": ["a", "a", "b", "c", "d"], "x": [1.0, 3.0, 2.0, 5.0, 4.0],
...                   "y": [0.1, 0.3, 0.25, 0.4, 0.5]})
>>> patient_means(t, ["x", "y"], "patient")["x"].tolist()
[2.0, 2.0, 5.0, 4.0]
>>> round(clustered_spearman(t["x"], t["y"], t["patient"], n_boot=200)["rho"], 3)
0.738
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

N_BOOT = 2000
"""Patient-level bootstrap samples of a confidence interval."""
SEED = 0
"""Seed of the patient-level bootstrap."""


@dataclass(frozen=True)
class Units:
    """How many patients, studies and series a statistic rests on (the statistic's n is the patients)."""

    patients: int
    studies: int
    series: int

    def text(self) -> str:
        """``"6 patients (12 studies, 20 series)"``."""
        return (f"{self.patients} patient{'s' * (self.patients != 1)} ({self.studies} stud"
                f"{'ies' if self.studies != 1 else 'y'}, {self.series} series)")

    def to_dict(self) -> dict[str, int]:
        return {"n_patients": self.patients, "n_studies": self.studies, "n_series": self.series}


def unit_counts(frame: pd.DataFrame, patient: str, study: str, series: str | None = None) -> Units:
    """Distinct patients and studies of ``frame``, and its series (distinct ``series`` ids, or rows)."""
    n_series = int(frame[series].nunique()) if series is not None else len(frame)
    return Units(int(frame[patient].nunique()), int(frame[study].nunique()), n_series)


def patient_means(frame: pd.DataFrame, columns: Sequence[str], patient: str) -> pd.DataFrame:
    """One row per patient (sorted by id as text): the mean of each column over the patient's rows.

    Only rows where every column is finite count, so each patient's values come from the same rows.
    """
    values = frame[list(columns)].apply(pd.to_numeric, errors="coerce").astype(float)
    keep = np.isfinite(values.to_numpy()).all(axis=1)
    ids = frame.loc[keep, patient].astype(str)
    return values[keep].groupby(ids.to_numpy(), sort=True).mean()


def bootstrap_spearman(x: NDArray[np.float64], y: NDArray[np.float64], n_boot: int = N_BOOT,
                       seed: int = SEED) -> NDArray[np.float64]:
    """Spearman rho of ``n_boot`` resamples (with replacement) of the pairs ``(x[i], y[i])``.

    The draw is ``default_rng(seed).integers(0, n, (n_boot, n))``; a resample where x or y is constant gives NaN.
    """
    n = x.size
    index = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    rx = stats.rankdata(x[index], axis=1)
    ry = stats.rankdata(y[index], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(axis=1) / denominator
    return np.where(denominator > 0, rho, np.nan)


def clustered_spearman(x: ArrayLike, y: ArrayLike, patients: ArrayLike, n_boot: int = N_BOOT,
                       seed: int = SEED) -> dict[str, Any]:
    """Spearman rho and p over patient means of ``x`` and ``y``, with a patient-level bootstrap 95% CI.

    Rows where ``x`` or ``y`` is not finite are left out first. With fewer than 3 patients rho, p and the CI are
    NaN. Returns ``rho, p, low95, high95, n_patients, n_boot, n_undefined`` (resamples with a constant variable,
    left out of the percentiles) and ``seed``.
    """
    frame = pd.DataFrame({"x": np.asarray(x, dtype=float), "y": np.asarray(y, dtype=float),
                          "patient": np.asarray(patients, dtype=object)})
    table = patient_means(frame, ["x", "y"], "patient")
    out: dict[str, Any] = {"rho": float("nan"), "p": float("nan"), "low95": float("nan"), "high95": float("nan"),
                           "n_patients": len(table), "n_boot": int(n_boot), "n_undefined": 0, "seed": int(seed)}
    if len(table) < 3:
        return out
    xs, ys = table["x"].to_numpy(), table["y"].to_numpy()
    result = stats.spearmanr(xs, ys)
    samples = bootstrap_spearman(xs, ys, n_boot, seed)
    defined = samples[np.isfinite(samples)]
    out.update(rho=float(result.statistic), p=float(result.pvalue), n_undefined=int(samples.size - defined.size))
    if defined.size:
        out.update(low95=float(np.percentile(defined, 2.5)), high95=float(np.percentile(defined, 97.5)))
    return out


def majority_class(classes: pd.Series, patients: pd.Series) -> pd.Series:
    """Per patient (sorted by id as text): the class (0/1) most of its rows have; NaN for a tie.

    Examples
    --------
    >>> majority_class(pd.Series([1, 1, 0, 0, 1, 0]), pd.Series(["a", "a", "a", "b", "b", "c"])).tolist()
    [1.0, nan, 0.0]
    """
    share = pd.to_numeric(classes, errors="coerce").groupby(patients.astype(str).to_numpy(), sort=True).mean()
    return share.map(lambda s: 1.0 if s > 0.5 else (0.0 if s < 0.5 else float("nan")))


def spearman_sentence(result: dict[str, Any], units: Units) -> str:
    """``"Spearman ρ = 0.45 (95% CI 0.10 to 0.80), p = 0.048; n = 6 patients (12 studies, 20 series)"``."""
    from livermets.figures import format_p  # matplotlib: only when a sentence is wanted

    if not np.isfinite(result["rho"]):
        return f"Spearman ρ not computed (fewer than 3 patients); n = {units.text()}"
    ci = (f" (95% CI {result['low95']:.2f} to {result['high95']:.2f})" if np.isfinite(result["low95"])
          else "")
    return f"Spearman ρ = {result['rho']:.2f}{ci}, {format_p(result['p'])}; n = {units.text()}"
