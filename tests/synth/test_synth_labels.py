"""Label maps: LiTS values, lesions inside the liver, per-lesion truth consistent with the labels, size classes."""

from __future__ import annotations

from pathlib import Path

import cc3d
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from livermets.imaging.io import read_image, read_label
from livermets.synth.burden import KINDS, BurdenModel, sample_counts, sample_diameters
from livermets.synth.cohort import CohortConfig, draw_study, plan_studies
from livermets.synth.phantom import render_study
from livermets.synth.sizes import REAL_PIXEL_MM, SIZES


def _series(cohort: Path) -> pd.DataFrame:
    return pd.read_csv(cohort / "manifest.csv")


def test_label_values_are_lits_and_geometry_matches_image(tiny_cohort: Path) -> None:
    for row in _series(tiny_cohort).itertuples():
        label = read_label(tiny_cohort / row.label)  # raises on values outside {0, 1, 2}
        image = read_image(tiny_cohort / row.image)
        assert label.GetPixelID() == sitk.sitkUInt8 and image.GetPixelID() == sitk.sitkInt16
        assert label.GetSize() == image.GetSize() and label.GetSpacing() == image.GetSpacing()
        assert label.GetOrigin() == image.GetOrigin()
        values = set(np.unique(sitk.GetArrayViewFromImage(label)).tolist())
        assert {0, 1} <= values <= {0, 1, 2}


def test_every_lesion_lies_in_the_liver(tiny_cohort: Path) -> None:
    checked = 0
    for row in _series(tiny_cohort).itertuples():
        label = sitk.GetArrayFromImage(read_label(tiny_cohort / row.label))
        components, n = cc3d.connected_components(label == 2, connectivity=26, return_N=True)
        liver_region = ndimage.binary_dilation(label == 1, structure=np.ones((3, 3, 3), bool))
        for index in range(1, n + 1):
            assert liver_region[components == index].any(), f"{row.series_id}: lesion {index} not touching liver"
            checked += 1
        # The organ (liver + lesions) is essentially one piece: thin tips may detach on the coarse tiny grid only.
        organ = cc3d.connected_components(label > 0, connectivity=26)
        sizes = np.bincount(organ.ravel())[1:]
        assert sizes.max() >= 0.95 * sizes.sum()
    assert checked > 0


def test_manifest_lesion_counts_and_lesion_table_match_the_labels(tiny_cohort: Path) -> None:
    manifest = _series(tiny_cohort)
    lesions = pd.read_csv(tiny_cohort / "lesions.csv")
    assert set(lesions["kind"]) <= set(KINDS)
    assert lesions["diameter_mm"].between(3.0, 60.0).all()
    for row in manifest.itertuples():
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_cohort / row.label)))
        voxel_ml = np.prod(sitk.ReadImage(str(tiny_cohort / row.label)).GetSpacing()) / 1000.0
        n_components = cc3d.connected_components(label == 2, connectivity=26, return_N=True)[1]
        assert row.n_lesions == n_components
        assert row.lesion_volume_ml == pytest.approx((label == 2).sum() * voxel_ml, abs=1e-3)
        assert row.n_lesions <= row.n_lesions_truth
        mine = lesions[lesions["series_id"] == row.series_id]
        assert len(mine) == row.n_lesions_truth
        assert int(mine["voxels"].sum()) == int((label == 2).sum())


@pytest.mark.parametrize("size", ["tiny", "small", "demo"])
def test_size_classes_have_documented_grids_and_visible_lesions(size: str) -> None:
    spec = SIZES[size]
    config = CohortConfig(patients=1, seed=21, size=size)
    plan = plan_studies(config)[0]
    truth, anatomy, rng = draw_study(config, plan)
    rendered = render_study(anatomy, truth.draw, spec, rng)
    soft, cap = rendered.images["SOFT"], rendered.images["CAP"]
    assert soft.GetSize() == (spec.matrix, spec.matrix, spec.thin_slices)
    assert cap.GetSize() == (spec.matrix, spec.matrix, spec.thin_slices // spec.thick_factor)
    low, high = (p * 512 / spec.matrix for p in REAL_PIXEL_MM)
    assert low - 1e-6 <= soft.GetSpacing()[0] <= high + 1e-6
    assert soft.GetSpacing()[2] == spec.thin_mm and cap.GetSpacing()[2] == spec.thin_mm * spec.thick_factor
    liver_ml = rendered.series_stats["SOFT"]["liver_ml"]
    assert 600.0 <= liver_ml <= 2500.0  # adult livers are ~1-2 l
    # Every lesion clearly larger than a voxel shows up in the label map at its centre (it may share the voxels with
    # an overlapping lesion, so its own voxel count can be 0).
    label = sitk.GetArrayFromImage(rendered.labels["SOFT"])
    big = [lesion for lesion, d in zip(rendered.lesions, truth.draw.diameters_mm, strict=True)
           if d >= 3.0 * soft.GetSpacing()[0]]
    for lesion in big:
        point = (lesion["centroid_x_mm"], lesion["centroid_y_mm"], lesion["centroid_z_mm"])
        i, j, k = soft.TransformPhysicalPointToIndex(point)
        assert label[k, j, i] == 2, f"lesion {lesion['lesion_index']} ({lesion['diameter_mm']} mm) not labelled"
    assert rendered.series_stats["SOFT"]["n_components"] >= (1 if big else 0)


def test_lesion_count_and_size_distribution_match_the_paper_cohort() -> None:
    # Paper Table 1: lesions per scan median 10, range 1-148 (scans with lesions); 27 % of scans without lesions.
    model = BurdenModel()
    rng = np.random.default_rng(0)
    counts = sample_counts(rng, 4000, model)
    diameters = sample_diameters(rng, counts, model)
    share_zero = float(np.mean(counts == 0))
    se = np.sqrt(model.p_no_lesion * (1 - model.p_no_lesion) / counts.size)
    assert abs(share_zero - model.p_no_lesion) < 3 * se
    assert 8 <= np.median(counts[counts > 0]) <= 12
    assert counts.max() <= 150 and counts.max() >= 100
    assert diameters.min() >= 3.0 and diameters.max() <= 60.0
    assert 5.0 <= np.median(diameters) <= 15.0
