"""Cohort summary of per-scan lesion metrics: the paper's Table 3 with patient-level bootstrap CIs.

For each group of scans (e.g. ``dataset`` = LiTS / mSCLC, or ``split``) :func:`table3` reports

- ``median_dice_lesion``: median per-scan lesion Dice over scans whose reference has at least one lesion (the
  paper's "Median DICE"); scans where reference and prediction are both lesion-free (Dice 1.0 by convention) are
  counted in ``n_scans_lesion_both_empty`` and left out of the median, as are other lesion-free references.
- ``mean_dice_lesion``: the mean of the same per-scan values.
- ``dice_per_case_lesion``: mean per-scan lesion Dice over *all* scans, both-empty scans counting 1.0 (exactly the
  LiTS evaluation script's "Dice per case").
- ``global_dice_lesion``: ``2 sum|P & R| / (sum|P| + sum|R|)`` over all scans of the group (LiTS "Dice global").
- ``sensitivity`` / ``ppv``: pooled over lesions, ``sum tp / sum n_ref`` and ``sum tp / (sum tp + sum fp)``;
  ``sensitivity_mean_per_scan`` / ``ppv_mean_per_scan``: means of the per-scan values where defined.
- ``fp_per_scan_mean``, ``fp_per_scan_min``, ``fp_per_scan_max``.
- ``median_dice_liver``; counts of scans, patients, reference and predicted lesions, missing predictions counted as
  empty (``n_missing_predictions``) and left out of every metric (``n_missing_left_out``).
- ``<metric>_ci_low`` / ``_ci_high``: 95% percentile intervals from ``n_boot`` bootstrap samples that draw
  *patients* with replacement (all scans of a drawn patient enter the sample), with a fixed ``seed``.
- With size strata: ``n_ref_<stratum>``, ``sensitivity_<stratum>`` and ``fp_per_scan_<stratum>``.

Examples
--------
>>> import pandas as pd
>>> per_scan = pd.DataFrame({"series_id": ["a", "b"], "patient_id": ["p1", "p2"], "dataset": ["lits", "lits"],
...     "dice_lesion": [0.8, 0.6], "dice_liver": [0.95, 0.9], "lesion_both_empty": [False, False],
...     "n_ref": [4, 6], "n_pred": [4, 5], "tp": [3, 4], "fn": [1, 2], "fp": [1, 1],
...     "sensitivity": [0.75, 4 / 6], "ppv": [0.75, 0.8], "ref_lesion_voxels": [100, 100],
...     "pred_lesion_voxels": [100, 100], "lesion_intersection_voxels": [80, 60], "missing_prediction": [False, False]})
>>> row = table3(per_scan, group_by="dataset", n_boot=200).iloc[0]
>>> float(round(row["sensitivity"], 3)), float(round(row["median_dice_lesion"], 2)), float(row["fp_per_scan_mean"])
(0.7, 0.7, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from livermets.errors import ParameterError, UserInputError

BOOTSTRAPPED = ("median_dice_lesion", "global_dice_lesion", "sensitivity", "ppv", "fp_per_scan_mean")

_SUM_COLUMNS = ("tp", "n_ref", "fp", "lesion_intersection_voxels", "ref_lesion_voxels", "pred_lesion_voxels")


def default_group_column(columns: Sequence[str]) -> str | None:
    """``dataset`` if present, else ``split``, else ``None`` (one group for the whole cohort)."""
    for name in ("dataset", "split"):
        if name in columns:
            return name
    return None


def _ratio(numerator: Any, denominator: Any) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _weighted_medians(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Median of ``values`` repeated ``weights[b]`` times, for each row ``b`` of integer ``weights``."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    cumulative = np.cumsum(weights[:, order], axis=1)
    totals = cumulative[:, -1] if cumulative.shape[1] else np.zeros(len(weights))
    medians = np.full(len(weights), np.nan)
    for b in np.flatnonzero(totals > 0):
        low = np.searchsorted(cumulative[b], (totals[b] - 1) // 2, side="right")
        high = np.searchsorted(cumulative[b], totals[b] // 2, side="right")
        medians[b] = 0.5 * (sorted_values[low] + sorted_values[high])
    return medians


def _group_metrics(frame: pd.DataFrame, strata: Sequence[str]) -> dict[str, Any]:
    has_ref = frame["n_ref"].to_numpy() > 0
    dice_lesion = frame["dice_lesion"].to_numpy(dtype=float)
    sums = {c: float(frame[c].sum()) for c in _SUM_COLUMNS}
    fp = frame["fp"].to_numpy()
    ppv_defined = (frame["tp"] + frame["fp"]).to_numpy() > 0
    metrics: dict[str, Any] = {
        "n_scans": len(frame),
        "n_patients": int(frame["patient_id"].nunique()),
        "n_scans_with_lesions": int(has_ref.sum()),
        "n_scans_lesion_both_empty": int(frame["lesion_both_empty"].sum()),
        "n_missing_predictions": int(frame["missing_prediction"].sum()),
        "n_ref_lesions": int(sums["n_ref"]),
        "n_pred_lesions": int(frame["n_pred"].sum()),
        "tp": int(sums["tp"]),
        "fn": int(frame["fn"].sum()),
        "fp": int(sums["fp"]),
        "median_dice_lesion": float(np.median(dice_lesion[has_ref])) if has_ref.any() else float("nan"),
        "mean_dice_lesion": float(np.mean(dice_lesion[has_ref])) if has_ref.any() else float("nan"),
        "dice_per_case_lesion": float(dice_lesion.mean()),
        "global_dice_lesion": float(_ratio(2 * sums["lesion_intersection_voxels"],
                                           sums["ref_lesion_voxels"] + sums["pred_lesion_voxels"])),
        "sensitivity": float(_ratio(sums["tp"], sums["n_ref"])),
        "ppv": float(_ratio(sums["tp"], sums["tp"] + sums["fp"])),
        "sensitivity_mean_per_scan": float(frame.loc[has_ref, "sensitivity"].mean()) if has_ref.any()
        else float("nan"),
        "ppv_mean_per_scan": float(frame.loc[ppv_defined, "ppv"].mean()) if ppv_defined.any() else float("nan"),
        "fp_per_scan_mean": float(fp.mean()),
        "fp_per_scan_min": int(fp.min()),
        "fp_per_scan_max": int(fp.max()),
        "median_dice_liver": float(frame["dice_liver"].median()) if "dice_liver" in frame else float("nan"),
    }
    for name in strata:
        n_ref_s = float(frame[f"n_ref_{name}"].sum())
        metrics[f"n_ref_{name}"] = int(n_ref_s)
        metrics[f"sensitivity_{name}"] = float(_ratio(frame[f"tp_{name}"].sum(), n_ref_s))
        metrics[f"fp_per_scan_{name}"] = float(frame[f"fp_{name}"].sum() / len(frame))
    return metrics


def bootstrap_cis(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> dict[str, float]:
    """Patient-level bootstrap percentile CIs of :data:`BOOTSTRAPPED` metrics for one group of scans."""
    if n_boot <= 0 or len(frame) == 0:
        return {}
    rng = np.random.default_rng(seed)
    patients, patient_of_scan = np.unique(frame["patient_id"].astype(str).to_numpy(), return_inverse=True)
    # Each bootstrap sample is a vector of how often each patient was drawn; every metric is a weighted sum.
    draws = rng.integers(0, len(patients), size=(n_boot, len(patients)))
    patient_weights = np.stack([np.bincount(row, minlength=len(patients)) for row in draws])
    scan_weights = patient_weights[:, patient_of_scan]
    sums = {c: scan_weights @ frame[c].to_numpy(dtype=float) for c in _SUM_COLUMNS}
    n_scans = scan_weights.sum(axis=1)
    has_ref = frame["n_ref"].to_numpy() > 0
    samples = {
        "median_dice_lesion": _weighted_medians(frame["dice_lesion"].to_numpy(dtype=float)[has_ref],
                                                scan_weights[:, has_ref]),
        "global_dice_lesion": _ratio(2 * sums["lesion_intersection_voxels"],
                                     sums["ref_lesion_voxels"] + sums["pred_lesion_voxels"]),
        "sensitivity": _ratio(sums["tp"], sums["n_ref"]),
        "ppv": _ratio(sums["tp"], sums["tp"] + sums["fp"]),
        "fp_per_scan_mean": _ratio(sums["fp"], n_scans),
    }
    alpha = (1 - confidence) / 2
    cis: dict[str, float] = {}
    for name, values in samples.items():
        finite = values[np.isfinite(values)]
        low, high = np.quantile(finite, [alpha, 1 - alpha]) if finite.size else (np.nan, np.nan)
        cis[f"{name}_ci_low"] = float(low)
        cis[f"{name}_ci_high"] = float(high)
    return cis


def table3(per_scan: pd.DataFrame, group_by: str | None = None, n_boot: int = 1000, seed: int = 0,
           strata: Sequence[str] = ()) -> pd.DataFrame:
    """One row per group of scans with the Table 3 metrics and bootstrap CIs.

    Parameters
    ----------
    per_scan
        Per-scan metrics (``evaluate_scan(...).row`` rows) joined with the manifest's ``patient_id`` and the
        grouping column. Rows without metrics (an empty ``tp``: series whose prediction is missing, left out of the
        metrics) are only counted, in ``n_missing_left_out``.
    group_by
        Manifest column to group by; ``None`` gives a single group ``all``. With several groups a final ``all``
        row pools every scan.
    n_boot, seed
        Bootstrap samples (0 disables CIs) and the random seed.
    strata
        Size-stratum names present as ``n_ref_<name>``/``tp_<name>``/``fp_<name>`` columns.
    """
    if group_by is not None and group_by not in per_scan.columns:
        raise ParameterError("{group_by}: column {value!r} not in the manifest (columns: {columns})", value=group_by,
                             columns=list(per_scan.columns))
    left_out = per_scan["tp"].isna() if "tp" in per_scan else pd.Series(False, index=per_scan.index)
    evaluated = per_scan[~left_out]
    if evaluated.empty:
        raise UserInputError("no scan could be evaluated")
    keys = _group_keys(per_scan, group_by)
    parts = [(name, keys == name) for name in sorted(keys[~left_out].unique())]
    if len(parts) > 1:
        parts.append(("all", pd.Series(True, index=per_scan.index)))
    rows = []
    for offset, (name, members) in enumerate(parts):
        frame = per_scan[members & ~left_out]
        row: dict[str, Any] = {"group_by": group_by or "", "group": name}
        row.update(_group_metrics(frame, strata))
        row["n_missing_left_out"] = int((members & left_out).sum())
        row.update(bootstrap_cis(frame, n_boot=n_boot, seed=seed + offset))
        rows.append(row)
    return pd.DataFrame(rows)


def _group_keys(per_scan: pd.DataFrame, group_by: str | None) -> pd.Series:
    """The group of each scan: its ``group_by`` value as text (``<missing>`` when empty), or ``all``."""
    if group_by is None:
        return pd.Series("all", index=per_scan.index)
    return per_scan[group_by].astype("string").fillna("<missing>").astype(str)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def table3_markdown(table: pd.DataFrame, title: str = "") -> str:
    """Render :func:`table3` like the paper's Table 3: metrics as rows, groups as columns, CIs in brackets."""
    groups = table["group"].tolist()
    lines = [f"**{title}**", ""] if title else []
    lines.append("| Metric | " + " | ".join(groups) + " |")
    lines.append("|---|" + "---|" * len(groups))

    def with_ci(name: str) -> list[str]:
        cells = []
        for _, r in table.iterrows():
            cell = _fmt(r[name])
            if f"{name}_ci_low" in r and np.isfinite(r[f"{name}_ci_low"]):
                cell += f" [{_fmt(r[f'{name}_ci_low'])}, {_fmt(r[f'{name}_ci_high'])}]"
            cells.append(cell)
        return cells

    rows: list[tuple[str, list[str]]] = [
        ("Median lesion Dice (scans with lesions)", with_ci("median_dice_lesion")),
        ("Sensitivity (pooled over lesions)", with_ci("sensitivity")),
        ("PPV (pooled over lesions)", with_ci("ppv")),
        ("FP/scan, mean (min-max)", [f"{_fmt(r['fp_per_scan_mean'], 2)} ({r['fp_per_scan_min']}-{r['fp_per_scan_max']})"
                                    for _, r in table.iterrows()]),
        ("Global lesion Dice", with_ci("global_dice_lesion")),
        ("Mean lesion Dice (scans with lesions)", with_ci("mean_dice_lesion")),
        ("Lesion Dice per case (all scans, LiTS)", with_ci("dice_per_case_lesion")),
        ("Sensitivity, mean per scan", with_ci("sensitivity_mean_per_scan")),
        ("PPV, mean per scan", with_ci("ppv_mean_per_scan")),
        ("Median liver Dice", with_ci("median_dice_liver")),
    ]
    for column in table.columns:
        if column.startswith("sensitivity_") and column[len("sensitivity_"):] not in ("mean_per_scan",) \
                and not column.endswith(("_ci_low", "_ci_high")):
            stratum = column[len("sensitivity_"):]
            rows.append((f"Sensitivity, lesions {stratum} (n)",
                         [f"{_fmt(r[column])} ({r[f'n_ref_{stratum}']})" for _, r in table.iterrows()]))
    count_rows = [("Scans", "n_scans"), ("Patients", "n_patients"), ("Scans with reference lesions",
                  "n_scans_with_lesions"), ("Scans lesion-free in both (Dice 1.0, not in median)",
                  "n_scans_lesion_both_empty"), ("Reference lesions", "n_ref_lesions"),
                  ("Predicted lesions", "n_pred_lesions"), ("TP / FN / FP", None),
                  ("Missing predictions counted as empty (all FN)", "n_missing_predictions"),
                  ("Missing predictions left out of the metrics", "n_missing_left_out")]
    for label, count_column in count_rows:
        if count_column is None:
            rows.append((label, [f"{r['tp']} / {r['fn']} / {r['fp']}" for _, r in table.iterrows()]))
        else:
            rows.append((label, [str(r[count_column]) for _, r in table.iterrows()]))
    for label, cells in rows:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
