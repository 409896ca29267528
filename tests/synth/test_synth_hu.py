"""HU per tissue, measured on rendered images inside masks built from the patient's analytic shapes.

The masks come from the shape functions alone (eroded by 1.5 voxels to avoid partial volume), not from the renderer's
compositing, and the expected ranges are textbook portal-venous-phase values (and the real CT in
shared/data/totalsegmentator for fat noise), not the generator's own parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from livermets.synth.cohort import CohortConfig, draw_study, plan_studies
from livermets.synth.phantom import make_grid, render_study
from livermets.synth.shapes import ellipse_sd, ellipsoid_sd, rotated_ellipsoid_sd
from livermets.synth.sizes import SIZES

EXPECTED_HU = {  # (low, high) for the mean HU of the tissue
    "fat": (-120.0, -80.0),
    "muscle": (35.0, 65.0),
    "liver": (55.0, 125.0),
    "spleen": (95.0, 130.0),
    "kidney": (80.0, 205.0),  # whole kidney: cortex 150-200, medulla, renal sinus fat
    "lung": (-900.0, -780.0),
    "air": (-1024.0, -980.0),
    "posterior_vertebra": (300.0, 1200.0),
    "aorta": (110.0, 200.0),  # portal venous phase, incl. study-to-study contrast timing
}


def _tissue_masks(anatomy, grid, label: np.ndarray) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    x, y, z = grid.coords()
    shape = label.shape
    m = 1.5 * grid.pixel_mm
    a = anatomy
    body = a.body_sd(x, y, z)
    cavity = body + a.fat_mm + a.muscle_mm
    below_ribs = z < float(np.min(a.ribs[:, 2])) - 15.0
    heart = ellipsoid_sd(x, y, z, *a.heart)
    mediastinum = ellipse_sd(x, y, (0.0, a.vertebra_y - 10.0), a.vertebra_r + 30.0, a.vertebra_r + 40.0)
    near_liver = ndimage.binary_dilation(label > 0, iterations=2)
    masks = {
        "fat": (body < -m) & (body > -a.fat_mm + m) & below_ribs,
        "muscle": (body < -a.fat_mm - m) & (body > -a.fat_mm - a.muscle_mm + m) & below_ribs & (y < 0),
        "air": body > 30.0,
        "spleen": (rotated_ellipsoid_sd(x, y, z, *a.spleen) < -m) & (z < a.diaphragm_z(x, y) - 2.5 - m)
        & (cavity < -2.0 - m) & (ellipsoid_sd(x, y, z, *a.stomach[:2]) > m) & ~near_liver,
        "kidney": rotated_ellipsoid_sd(x, y, z, *a.kidneys[1]) < -m,
        "lung": (z > a.diaphragm_z(x, y) + 5.0 + m) & (cavity < -m - 7.0) & (mediastinum > 3.0 + m) & (heart > m)
        & (a.retroperitoneum_sd(x, y, z) > m),
        "liver": ndimage.binary_erosion(label == 1, iterations=1),
        "posterior_vertebra": ellipse_sd(x, y, (0.0, a.canal_y + 24.0), 5.0, 14.0) < -m,
        "aorta": (ellipse_sd(x, y, a.aorta[:2], a.aorta[2], a.aorta[2]) < -m) & (heart > m),
    }
    return {k: np.broadcast_to(v, shape) for k, v in masks.items()}


@pytest.fixture(scope="module")
def small_studies() -> list[tuple[object, object, object, object]]:
    config = CohortConfig(patients=3, seed=3, size="small")
    studies = []
    for plan in [p for p in plan_studies(config) if p.study_index == 1]:
        truth, anatomy, rng = draw_study(config, plan)
        rendered = render_study(anatomy, truth.draw, SIZES["small"], rng)
        studies.append((anatomy, rendered, make_grid(anatomy, SIZES["small"], rendered.shift), truth))
    return studies


def test_tissue_hu_ranges(small_studies) -> None:  # type: ignore[no-untyped-def]
    measured: dict[str, list[float]] = {k: [] for k in EXPECTED_HU}
    for anatomy, rendered, grid, _ in small_studies:
        image = sitk.GetArrayFromImage(rendered.images["SOFT"]).astype(np.float64)
        label = sitk.GetArrayFromImage(rendered.labels["SOFT"])
        for tissue, mask in _tissue_masks(anatomy, grid, label).items():
            if mask.sum() >= 30:
                measured[tissue].append(float(image[mask].mean()))
    for tissue, (low, high) in EXPECTED_HU.items():
        assert measured[tissue], f"no voxels measured for {tissue}"
        for value in measured[tissue]:
            assert low <= value <= high, f"{tissue}: mean {value:.1f} HU outside [{low}, {high}]"


def test_noise_level_is_ct_like_and_lower_in_thick_slices(small_studies) -> None:  # type: ignore[no-untyped-def]
    # Real CT (shared/data/totalsegmentator, 3 mm voxels): subcutaneous fat SD 17 HU, liver SD 13 HU.
    for anatomy, rendered, grid, _ in small_studies:
        label = sitk.GetArrayFromImage(rendered.labels["SOFT"])
        fat = _tissue_masks(anatomy, grid, label)["fat"]
        thin = sitk.GetArrayFromImage(rendered.images["SOFT"]).astype(np.float64)
        sd_thin = float(thin[fat].std())
        assert 8.0 <= sd_thin <= 25.0
        # Thick slab k contains thin slices 2k and 2k+1: fat in both -> fat in the slab.
        k = SIZES["small"].thick_factor
        fat_thick = fat.reshape(-1, k, *fat.shape[1:]).all(axis=1)
        thick = sitk.GetArrayFromImage(rendered.images["CAP"]).astype(np.float64)
        assert float(thick[fat_thick].std()) < sd_thin


def test_lesions_differ_from_liver_by_kind(small_studies) -> None:  # type: ignore[no-untyped-def]
    # Hypo-attenuating lesions (the majority) are darker than the surrounding parenchyma.
    seen = 0
    for _, rendered, _, _ in small_studies:
        image = sitk.GetArrayFromImage(rendered.images["SOFT"]).astype(np.float64)
        label = sitk.GetArrayFromImage(rendered.labels["SOFT"])
        if (label == 2).sum() < 50:
            continue
        kinds = [lesion["kind"] for lesion in rendered.lesions]
        liver_mean = image[ndimage.binary_erosion(label == 1, iterations=1)].mean()
        if kinds.count("hypo") / len(kinds) > 0.6:
            assert image[label == 2].mean() < liver_mean - 10.0
            seen += 1
    assert seen >= 1
