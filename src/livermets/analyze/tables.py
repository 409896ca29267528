"""The tables of an ``analyze`` report: lesions (``lesions.csv``), tumour burden and the one-row ``summary.csv``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.lesions.components import LESION_VALUE, LIVER_VALUE

LESION_COLUMNS = ["lesion_id", "volume_ml", "longest_axial_diameter_mm", "centroid_x_mm", "centroid_y_mm",
                  "centroid_z_mm", "hu_mean", "hu_std", "liver_segment", "ne_probability"]
"""Columns of ``lesions.csv``; ``liver_segment`` (Couinaud) stays empty: no segment model is included."""

SUMMARY_COLUMNS = ["series_id", "liver_volume_ml", "lesion_count", "total_lesion_volume_ml",
                   "lesion_fraction_of_liver", "largest_diameter_mm", "ne_probability", "ne_class", "ne_status",
                   "ne_reason", "qc_flags", "n_warnings"]
"""``ne_status``: ``given``, ``forced`` (written although the quality checks withhold it), ``withheld`` (empty
probability; ``ne_reason`` says why), ``not_computed`` (no features) or empty (no phenotype model)."""


def _number(value: Any, digits: int) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def burden(label: sitk.Image, lesions: pd.DataFrame) -> dict[str, Any]:
    """Liver volume (labels 1 and 2: the liver with its lesions), lesion count, total lesion volume and fraction.

    Examples
    --------
    >>> lab = np.zeros((4, 10, 10), np.uint8); lab[1:3, 2:8, 2:8] = 1; lab[1:3, 4:6, 4:6] = 2
    >>> image = sitk.GetImageFromArray(lab); image.SetSpacing((10.0, 10.0, 10.0))
    >>> from livermets.lesions.components import lesion_table
    >>> b = burden(image, lesion_table(image))
    >>> b["liver_volume_ml"], b["total_lesion_volume_ml"], b["lesion_fraction_of_liver"]
    (72.0, 8.0, 0.1111)
    """
    counts = np.bincount(sitk.GetArrayViewFromImage(label).ravel(), minlength=3)
    voxel_ml = float(np.prod(label.GetSpacing())) / 1000.0
    liver_ml = float(counts[LIVER_VALUE] + counts[LESION_VALUE]) * voxel_ml
    lesion_ml = float(counts[LESION_VALUE]) * voxel_ml
    largest = float(lesions["longest_axial_diameter_mm"].max()) if len(lesions) else None
    return {
        "liver_volume_ml": round(liver_ml, 2),
        "lesion_count": int(len(lesions)),
        "total_lesion_volume_ml": round(lesion_ml, 3),
        "lesion_fraction_of_liver": round(lesion_ml / liver_ml, 4) if liver_ml > 0 else None,
        "largest_diameter_mm": _number(largest, 1),
    }


def lesion_records(lesions: pd.DataFrame, probability: dict[int, float] | None) -> list[dict[str, Any]]:
    """``lesions.csv`` rows (:data:`LESION_COLUMNS`) from :func:`livermets.lesions.components.lesion_table`."""
    records = []
    for row in lesions.to_dict("records"):
        lesion_id = int(row["lesion_id"])
        records.append({
            "lesion_id": lesion_id,
            "volume_ml": _number(row["volume_ml"], 3),
            "longest_axial_diameter_mm": _number(row["longest_axial_diameter_mm"], 1),
            "centroid_x_mm": _number(row["centroid_x_mm"], 1),
            "centroid_y_mm": _number(row["centroid_y_mm"], 1),
            "centroid_z_mm": _number(row["centroid_z_mm"], 1),
            "hu_mean": _number(row["hu_mean"], 1),
            "hu_std": _number(row["hu_std"], 1),
            "liver_segment": None,
            "ne_probability": _number((probability or {}).get(lesion_id), 4),
        })
    return records


def summary_row(report: dict[str, Any]) -> dict[str, Any]:
    """The one-row ``summary.csv`` of a report (:data:`SUMMARY_COLUMNS`); ``run`` stacks them into a cohort table."""
    phenotype = report["phenotype"] or {}
    return {
        "series_id": report["series_id"],
        **{key: report["burden"][key] for key in ("liver_volume_ml", "lesion_count", "total_lesion_volume_ml",
                                                  "lesion_fraction_of_liver", "largest_diameter_mm")},
        "ne_probability": phenotype.get("probability"),
        "ne_class": phenotype.get("predicted_class"),
        "ne_status": phenotype.get("status"),
        "ne_reason": phenotype.get("reason"),
        "qc_flags": ";".join(report["qc"]["flag_codes"]),
        "n_warnings": len(report["warnings"]),
    }
