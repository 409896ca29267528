"""The paper's extraction: settings, schema, crop invariance, real CT and the real LiTS lesion."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics_synthetic import make_series

from livermets.featuretable import ALL_COLUMNS, DIAGNOSTICS_COLUMNS, RADIOMICS_COLUMNS
from livermets.radiomics.extractor import (
    IBSI_PHANTOM_PARAMS,
    PAPER_PARAMS,
    crop_margin,
    extract_roi,
    grid_hits_voxel_centres,
    make_extractor,
)
from livermets.radiomics.series import ExtractionOptions, SeriesTask, manifest_ids, run_series
from radiomics import featureextractor

PAPER_SETTINGS = {"resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline", "label": 1}


def _published(shared_data: Callable[..., Path]) -> pd.DataFrame:
    return pd.read_csv(shared_data("nih_mip_msclc", "Final_ResampledClassificationData.csv"))


def _direct_pyradiomics(image: sitk.Image, mask: sitk.Image) -> dict[str, object]:
    """An independent PyRadiomics call configured in code (not from our YAML) with the paper's settings."""
    import radiomics

    radiomics.setVerbosity(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(**PAPER_SETTINGS)
    extractor.disableAllImageTypes()
    extractor.enableImageTypeByName("Original")
    extractor.disableAllFeatures()
    for feature_class in ("shape", "firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm"):
        extractor.enableFeatureClassByName(feature_class)
    return dict(extractor.execute(image, mask, label=1))


def test_paper_params_reproduce_published_settings_string(shared_data: Callable[..., Path]) -> None:
    published = _published(shared_data)
    extractor = make_extractor(PAPER_PARAMS)
    assert published["diagnostics_Configuration_Settings"].nunique() == 1
    assert str(extractor.settings) == published["diagnostics_Configuration_Settings"].iloc[0]
    assert str(extractor.enabledImagetypes) == published["diagnostics_Configuration_EnabledImageTypes"].iloc[0]
    assert extractor.settings.get("binWidth", 25) == 25


def test_series_row_has_published_columns_in_order(tmp_path: Path, shared_data: Callable[..., Path]) -> None:
    image, label = make_series((14, 48, 48), n_lesions=2, seed=3)
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(label, str(tmp_path / "seg.nii.gz"))
    ids = manifest_ids({"image": str(tmp_path / "ct.nii.gz"), "study_id": "P1_20200101", "patient_id": "P1",
                        "ne_score": -0.2, "ne_class": 0, "split": "val"})
    task = SeriesTask("ct.nii.gz", "s1", str(tmp_path / "ct.nii.gz"), str(tmp_path / "seg.nii.gz"), ids)
    result = run_series(task, ExtractionOptions())
    assert result.failure is None
    row = result.rows[0]
    assert list(row) == ALL_COLUMNS == list(_published(shared_data).columns)
    assert (row["File"], row["unique_scandate"], row["unique_pt"]) == ("ct.nii.gz", "P1_20200101", "P1")
    assert (row["NE_Score"], row["NE_Status"], row["NE_Class"], row["Group"]) == (-0.2, "negative", 0, "val")
    assert all(np.isfinite(row[c]) for c in RADIOMICS_COLUMNS)


def test_num_lesions_follows_published_convention(tmp_path: Path, shared_data: Callable[..., Path]) -> None:
    # In all 227 published rows Num_Lesions == PyRadiomics' 26-connected VolumeNum + 1 (background counted).
    published = _published(shared_data)
    assert (published["Num_Lesions"] == published["diagnostics_Mask-original_VolumeNum"] + 1).all()
    image, label = make_series((14, 48, 48), n_lesions=2, seed=5)
    array = sitk.GetArrayFromImage(label)
    array[2:4, 2:4, 2:4] = 2  # a third, separate lesion (outside the liver does not matter for counting)
    lab = sitk.GetImageFromArray(array)
    lab.CopyInformation(image)
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(lab, str(tmp_path / "seg.nii.gz"))
    task = SeriesTask("ct.nii.gz", "s", str(tmp_path / "ct.nii.gz"), str(tmp_path / "seg.nii.gz"), {})
    row = run_series(task, ExtractionOptions()).rows[0]
    assert row["diagnostics_Mask-original_VolumeNum"] == 3
    assert row["Num_Lesions"] == 4
    plain = run_series(task, ExtractionOptions(lesion_count="components")).rows[0]
    assert plain["Num_Lesions"] == 3


@pytest.mark.parametrize("pixel_type", [sitk.sitkInt16, sitk.sitkFloat32])
def test_cropping_changes_no_value(pixel_type: int) -> None:
    # A lesion far from the borders of a larger scan: the crop removes most of the volume.
    image, label = make_series((40, 160, 160), n_lesions=1, seed=11)
    image = sitk.Cast(image, pixel_type)
    mask = sitk.Cast(label == 2, sitk.sitkUInt8)
    extractor = make_extractor()
    margin = crop_margin(image.GetSpacing(), extractor.settings)
    lesion_size_x = int((sitk.GetArrayViewFromImage(mask).any(axis=(0, 1))).sum())
    assert lesion_size_x + 2 * margin[0] < image.GetSize()[0]  # the crop really is smaller in x and y
    cropped = extract_roi(image, mask, extractor, crop=True)
    full = extract_roi(image, mask, extractor, crop=False)
    assert list(cropped) == list(full)
    different = [k for k in full if str(full[k]) != str(cropped[k])]
    assert different == []  # bit-identical features and diagnostics


def _direct_on_files(image_path: str, seg_path: str) -> dict[str, object]:
    seg = sitk.ReadImage(seg_path)
    return _direct_pyradiomics(sitk.ReadImage(image_path), sitk.Cast(seg == 5, sitk.sitkUInt8))


@pytest.mark.slow
def test_real_ct_liver_matches_direct_pyradiomics(shared_data: Callable[..., Path]) -> None:
    image_path = str(shared_data("totalsegmentator", "example_ct_sm.nii.gz"))
    seg_path = str(shared_data("totalsegmentator", "example_seg.nii.gz"))
    liver = sitk.Cast(sitk.ReadImage(seg_path) == 5, sitk.sitkUInt8)
    # The whole liver at 1 mm is ~1 M voxels (PyRadiomics' shape diameters take most of the time): run the direct
    # call in a second process while this one runs ours.
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        pending = pool.submit(_direct_on_files, image_path, seg_path)
        ours = extract_roi(sitk.ReadImage(image_path), liver, make_extractor())
        direct = pending.result()
    features = [k for k in ours if k.startswith("original_")]
    assert features == RADIOMICS_COLUMNS
    assert all(np.isfinite(ours[k]) for k in features)
    assert [k for k in ours if k.startswith("diagnostics_")] == DIAGNOSTICS_COLUMNS
    assert {k: ours[k] for k in features} == {k: float(direct[k]) for k in features}
    assert ours["original_firstorder_Mean"] == pytest.approx(45, abs=15)  # SOURCE.md: liver mean 45 HU


def test_real_lits_lesion_with_corrected_spacing(shared_data: Callable[..., Path], tmp_path: Path) -> None:
    volume = sitk.ReadImage(str(shared_data("lits_tiny", "volume.nii.gz")))
    label = sitk.ReadImage(str(shared_data("lits_tiny", "segmentation.nii.gz")))
    # SOURCE.md: the header keeps the 512-matrix spacing although the volume was downsampled to 64 in-plane.
    factor = 512 / volume.GetSize()[0]
    spacing = (volume.GetSpacing()[0] * factor, volume.GetSpacing()[1] * factor, volume.GetSpacing()[2])
    for img in (volume, label):
        img.SetSpacing(spacing)
    label = sitk.Cast(sitk.Round(label), sitk.sitkUInt8)
    sitk.WriteImage(volume, str(tmp_path / "lits.nii.gz"))
    sitk.WriteImage(label, str(tmp_path / "lits_seg.nii.gz"))
    task = SeriesTask("lits.nii.gz", "lits", str(tmp_path / "lits.nii.gz"), str(tmp_path / "lits_seg.nii.gz"), {})
    result = run_series(task, ExtractionOptions())
    assert result.failure is None, result.failure
    row = result.rows[0]
    assert result.lesion_voxels == 210  # SOURCE.md
    assert all(np.isfinite(row[c]) for c in RADIOMICS_COLUMNS)
    voxel_mm3 = float(np.prod(spacing))
    # 1 mm B-spline resampling of a ~5 mm grid changes the voxelised volume only moderately.
    assert row["original_shape_VoxelVolume"] == pytest.approx(210 * voxel_mm3, rel=0.25)


def test_grids_on_voxel_centres_are_detected() -> None:
    settings = make_extractor().settings
    assert grid_hits_voxel_centres((3.0, 3.0, 3.0), settings)  # 3 mm → 1 mm: every third sample on a centre
    assert grid_hits_voxel_centres((1.0, 1.0, 5.0), settings)
    assert not grid_hits_voxel_centres((0.8, 0.8, 2.5), settings)
    assert not grid_hits_voxel_centres((0.779296875, 0.779296875, 5.0), settings)  # the paper's first series
    assert not grid_hits_voxel_centres((3.0, 3.0, 3.0), make_extractor(IBSI_PHANTOM_PARAMS).settings)


def test_small_roi_on_a_3mm_real_ct_is_unchanged_by_crop(shared_data: Callable[..., Path]) -> None:
    # On this geometry a crop would move a few resampled voxels by 1 HU (last-bit coordinate differences at voxel
    # centres); extract_roi detects it and runs uncropped.
    image = sitk.ReadImage(str(shared_data("totalsegmentator", "example_ct_sm.nii.gz")))
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data("totalsegmentator", "example_seg.nii.gz"))))
    liver = seg == 5
    z, y, x = (int(np.mean(axis)) for axis in np.nonzero(liver))
    roi = np.zeros_like(liver)
    roi[:, y - 4 : y + 5, x - 5 : x + 6] = liver[:, y - 4 : y + 5, x - 5 : x + 6]
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    mask.CopyInformation(image)
    extractor = make_extractor()
    cropped, full = extract_roi(image, mask, extractor), extract_roi(image, mask, extractor, crop=False)
    assert [k for k in full if str(full[k]) != str(cropped[k])] == []
