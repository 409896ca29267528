"""Small synthetic cohorts for the radiomics tests (seeded numpy volumes written as NIfTI + a manifest).

Imported by name from the test modules (pytest puts this folder on sys.path); the fixture is re-exported by
``tests/radiomics/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

SPACING = (0.8, 0.8, 2.5)  # 1 mm resampling never lands exactly on these voxel centres


def make_series(shape_zyx: tuple[int, int, int], n_lesions: int, seed: int) -> tuple[sitk.Image, sitk.Image]:
    """Int16 CT-like volume (liver ellipsoid, textured lesions) and its LiTS label map."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape_zyx
    z, y, x = np.ogrid[:nz, :ny, :nx]
    ct = rng.normal(-100, 40, shape_zyx)
    liver = ((z - nz / 2) / (nz * 0.4)) ** 2 + ((y - ny / 2) / (ny * 0.35)) ** 2 + ((x - nx / 2) / (nx * 0.4)) ** 2 < 1
    ct[liver] = rng.normal(60, 15, int(liver.sum()))
    label = liver.astype(np.uint8)
    for i in range(n_lesions):
        cz = nz / 2 + (i - n_lesions / 2) * 2
        cy = ny / 2 + (-1) ** i * ny * 0.12
        cx = nx / 2 + (i - n_lesions / 2) * nx * 0.12
        radius_mm = 4.0 + 2.0 * i
        sphere = (((z - cz) * SPACING[2]) ** 2 + ((y - cy) * SPACING[1]) ** 2
                  + ((x - cx) * SPACING[0]) ** 2) < radius_mm**2
        sphere &= liver
        ct[sphere] = rng.normal(20 + 10 * i, 25, int(sphere.sum()))
        label[sphere] = 2
    image = sitk.GetImageFromArray(np.round(ct).astype(np.int16))
    image.SetSpacing(SPACING)
    image.SetOrigin((-25.3, -31.7, 12.1))
    lab = sitk.GetImageFromArray(label)
    lab.CopyInformation(image)
    return image, lab


def write_cohort(root: Path, n_series: int, shape_zyx: tuple[int, int, int] = (16, 56, 56),
                 seed: int = 0) -> Path:
    """Write ``n_series`` series (2 per study, 1 study per patient) and return the manifest path."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_series):
        series_id = f"P{i // 2:03d}_S{i % 2}"
        image, label = make_series(shape_zyx, n_lesions=1 + i % 3, seed=seed + i)
        sitk.WriteImage(image, str(root / "images" / f"{series_id}.nii.gz"))
        sitk.WriteImage(label, str(root / "labels" / f"{series_id}.nii.gz"))
        score = 0.5 if i % 4 < 3 else -0.3
        split = "test" if i // 2 == (n_series - 1) // 2 and n_series > 2 else "train"  # whole patients
        rows.append({"series_id": series_id, "study_id": f"P{i // 2:03d}_20200101", "patient_id": f"P{i // 2:03d}",
                     "image": f"images/{series_id}.nii.gz", "label": f"labels/{series_id}.nii.gz",
                     "ne_score": score, "ne_class": int(score > 0), "split": split})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.fixture()
def small_cohort(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``small_cohort(n)`` writes a cohort of ``n`` series under tmp_path and returns its manifest."""

    def make(n_series: int = 4, **kwargs: object) -> Path:
        return write_cohort(tmp_path / "cohort", n_series, **kwargs)  # type: ignore[arg-type]

    return make
