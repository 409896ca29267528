"""A small synthetic CT and label map for the report tests: an ellipsoid liver with three spherical lesions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from livermets.analyze.figures import axial_montage, coronal_view
from livermets.figures import save_figure
from livermets.lesions.components import lesion_table

SHAPE = (40, 64, 64)
SPACING = (1.5, 1.5, 2.5)
"""SimpleITK order (x, y, z) in mm: anisotropic on purpose."""
LESIONS = (((20, 30, 22), 6.0), ((14, 36, 38), 4.0), ((26, 24, 34), 3.0))
"""(centre (z, y, x) in voxels, radius in mm) of the three lesions, largest first."""


def make_case(n_lesions: int = 3, liver: bool = True) -> tuple[sitk.Image, sitk.Image]:
    """CT (int16 HU) and label map (uint8 0/1/2) in LPS: body -> 0 HU disc, liver 60 HU, lesions 10 HU."""
    z, y, x = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    sx, sy, sz = SPACING
    body = ((x - 32) * sx / 44.0) ** 2 + ((y - 32) * sy / 36.0) ** 2 <= 1.0
    liver_mask = ((z - 20) * sz / 38.0) ** 2 + ((y - 30) * sy / 26.0) ** 2 + ((x - 26) * sx / 30.0) ** 2 <= 1.0
    label = np.zeros(SHAPE, np.uint8)
    ct = np.where(body, 0, -1000).astype(np.int16)
    if liver:
        label[liver_mask] = 1
        ct[liver_mask] = 60
        for (cz, cy, cx), radius in LESIONS[:n_lesions]:
            sphere = ((z - cz) * sz) ** 2 + ((y - cy) * sy) ** 2 + ((x - cx) * sx) ** 2 <= radius**2
            label[sphere] = 2
            ct[sphere] = 10
    rng = np.random.default_rng(0)
    ct = (ct + rng.normal(0, 8, SHAPE) * body).astype(np.int16)
    return _image(ct), _image(label)


def _image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin((-48.0, -40.0, -100.0))
    return image


def flipped(image: sitk.Image, axes: tuple[bool, bool, bool]) -> sitk.Image:
    """The same physical image stored with the given axes (x, y, z) reversed (e.g. RAS-like: x and y)."""
    return sitk.Flip(image, list(axes), flipAboutOrigin=False)


def write_figures(folder: Path, ct: sitk.Image, label: sitk.Image,
                  lesion_probability: dict[int, float] | None = None) -> dict[str, str]:
    """Montage and coronal PNGs of the case in ``folder``; returns ``report["figures"]``."""
    save_figure(axial_montage(ct, label, lesion_probability), folder / "montage.png")
    save_figure(coronal_view(ct, label, lesion_probability), folder / "coronal.png")
    return {"montage": "montage.png", "coronal": "coronal.png"}


def make_report(ct: sitk.Image, label: sitk.Image, figures: dict[str, str], phenotype: bool = True,
                per_lesion: bool = False, description: str = "ABDOMEN PORTAL VENOUS 2.5 mm") -> dict[str, Any]:
    """A report.json mapping (schema livermets.report/1) for the case, with one QC flag and no identifier."""
    table = lesion_table(label, ct)
    voxel_ml = float(np.prod(label.GetSpacing())) / 1000.0
    liver_ml = float(np.count_nonzero(sitk.GetArrayViewFromImage(label))) * voxel_ml
    lesion_ml = float(table["volume_ml"].sum())
    probabilities = {1: 0.12, 2: 0.81, 3: 0.47}
    columns = ("volume_ml", "longest_axial_diameter_mm", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
               "hu_mean", "hu_std")
    lesions: list[dict[str, Any]] = []
    for row in table.to_dict("records"):
        lesion_id = int(row["lesion_id"])
        lesions.append({"lesion_id": lesion_id, **{key: float(row[key]) for key in columns}, "liver_segment": None,
                        "ne_probability": probabilities.get(lesion_id) if per_lesion else None})
    flag = {"code": "liver_volume", "message": "liver volume 95 mL outside the plausible range 800-3500 mL"}
    return {
        "schema": "livermets.report/1",
        "research_use_only": True,
        "series_id": "synthetic_01",
        "created": "2026-12-01T12:00:00+00:00",
        "input": {"path": "/data/synthetic_01.nii.gz", "format": "nifti", "size": list(ct.GetSize()),
                  "spacing": list(ct.GetSpacing()), "origin": list(ct.GetOrigin()),
                  "direction": list(ct.GetDirection()), "modality": None, "series_description": description,
                  "slice_thickness": None, "n_dicom_files": None, "hu_min": -1030.0, "hu_max": 95.0,
                  "identifiers": None},
        "segmentation": {"model": "/models/default", "model_name": "default", "shipped_default": True, "tta": False,
                         "device": "cpu", "seconds": 3.2, "lesion_threshold": 0.35},
        "burden": {"liver_volume_ml": liver_ml, "lesion_count": len(lesions), "total_lesion_volume_ml": lesion_ml,
                   "lesion_fraction_of_liver": lesion_ml / liver_ml if liver_ml else None,
                   "largest_diameter_mm": float(table["longest_axial_diameter_mm"].max()) if lesions else None},
        "lesions": lesions,
        "qc": {"name": "synthetic_01", "liver_ml": liver_ml, "lesion_ml": lesion_ml, "n_lesions": len(lesions),
               "flags": [flag], "flag_codes": [flag["code"]]},
        "warnings": [flag["message"]],  # as analyze writes it: every flag's message is also a warning
        "features": {"status": "ok" if lesions else "no lesion", "reason": None if lesions else "no lesion found",
                     "n_features": 108 if lesions else None},
        "phenotype": _phenotype() if phenotype else None,
        "per_lesion_phenotype": {"exploratory": True, "note": "Lesion-level use of a patient-level model."}
        if per_lesion else None,
        "figures": figures,
        "files": {"label": "label.nii.gz", "dicom_seg": None, "lesions": "lesions.csv", "summary": "summary.csv",
                  "features": "features.csv" if lesions else None, "report_html": "report.html"},
        "provenance": {"command": "livermets analyze", "parameters": {"tta": False, "per_lesion": per_lesion},
                       "versions": {"livermets": "0.1.0", "python": "3.11.2", "numpy": "2.4.6"},
                       "platform": "Linux", "created_utc": "2026-12-01T12:00:00+00:00"},
    }


def _phenotype() -> dict[str, Any]:
    return {"model": "/models/ne_lr", "protocol": "grouped", "classifier": "LR", "probability": 0.63,
            "predicted_class": 1, "label": "NE-high", "threshold": 0.5, "fold_probability_min": 0.52,
            "fold_probability_max": 0.71, "fold_probability_std": 0.07, "n_features_outside_training_range": 2,
            "cv_performance": {"protocol": "grouped", "auc": 0.58, "n_rows": 180, "n_patients": 50, "n_folds": 5},
            "note": "Research use only: an exploratory radiomics estimate, not a diagnosis."}
