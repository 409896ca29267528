"""Per-lesion radiomics and their aggregation to series level."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics_synthetic import make_series

from livermets import cli
from livermets.featuretable import RADIOMICS_COLUMNS
from livermets.lesions.components import lesion_table
from livermets.radiomics.aggregate import aggregate_lesions
from livermets.radiomics.extractor import extract_roi, make_extractor
from livermets.radiomics.per_lesion import ERROR_COLUMN, extract_lesions


def _two_lesions_and_a_speck() -> tuple[sitk.Image, sitk.Image]:
    image, label = make_series((16, 56, 56), n_lesions=2, seed=21)
    array = sitk.GetArrayFromImage(label)
    array[1, 2, 2] = 2  # a one-voxel lesion PyRadiomics cannot describe
    speck = sitk.GetImageFromArray(array)
    speck.CopyInformation(image)
    return image, speck


def test_one_row_per_connected_lesion() -> None:
    image, label = _two_lesions_and_a_speck()
    rows = pd.DataFrame(extract_lesions(image, label, make_extractor()))
    reference = lesion_table(label, image)
    assert rows["lesion_id"].tolist() == reference["lesion_id"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(rows[reference.columns], reference)
    speck = rows["voxel_count"] == 1
    assert speck.sum() == 1
    assert rows.loc[speck, ERROR_COLUMN].str.contains("single voxel").all()
    assert rows.loc[speck, RADIOMICS_COLUMNS].isna().all(axis=None)
    assert np.isfinite(rows.loc[~speck, RADIOMICS_COLUMNS].to_numpy(float)).all()
    assert rows.loc[~speck, ERROR_COLUMN].isna().all()


def test_uncropped_lesion_equals_series_extraction_of_that_lesion() -> None:
    image, label = make_series((16, 56, 56), n_lesions=1, seed=4)
    extractor = make_extractor()
    whole = extract_roi(image, sitk.Cast(label == 2, sitk.sitkUInt8), extractor)
    uncropped = extract_lesions(image, label, extractor, crop=False)
    cropped = extract_lesions(image, label, extractor, crop=True)
    assert len(uncropped) == len(cropped) == 1
    assert {c: uncropped[0][c] for c in RADIOMICS_COLUMNS} == {c: whole[c] for c in RADIOMICS_COLUMNS}
    # The crop moves PyRadiomics' 1 mm grid to the crop corner: same lesion, slightly different voxelisation.
    assert cropped[0]["original_shape_MeshVolume"] == pytest.approx(whole["original_shape_MeshVolume"], rel=0.1)
    assert cropped[0]["original_firstorder_Mean"] == pytest.approx(whole["original_firstorder_Mean"], abs=5)


def test_aggregation_matches_an_independent_computation() -> None:
    rng = np.random.default_rng(7)
    n = 9
    lesions = pd.DataFrame({
        "File": ["a"] * 4 + ["b"] * 2 + ["c"] * 3,
        "unique_scandate": ["A"] * 4 + ["B"] * 2 + ["C"] * 3,
        "unique_pt": ["p"] * 9,
        "lesion_id": [1, 2, 3, 4, 1, 2, 1, 2, 3],
        "voxel_count": rng.integers(2, 500, n),
        "volume_ml": rng.random(n),
        "original_firstorder_Mean": rng.normal(40, 20, n),
        "original_shape_Sphericity": rng.random(n),
    })
    lesions.loc[2, "original_firstorder_Mean"] = np.nan  # a lesion without features
    lesions.loc[2, "original_shape_Sphericity"] = np.nan
    lesions.loc[2, "voxel_count"] = 10_000  # largest, but unusable
    out = aggregate_lesions(lesions).set_index("File")
    usable = lesions.dropna(subset=["original_firstorder_Mean"])
    for file, group in lesions.groupby("File"):
        ok = usable[usable["File"] == file]
        biggest = ok.loc[ok["voxel_count"].idxmax()]
        assert out.loc[file, "lesion_count"] == len(group)
        assert out.loc[file, "lesions_with_features"] == len(ok)
        assert out.loc[file, "total_volume_ml"] == pytest.approx(group["volume_ml"].sum())
        for feature in ("original_firstorder_Mean", "original_shape_Sphericity"):
            assert out.loc[file, f"largest_{feature}"] == biggest[feature]
            assert out.loc[file, f"vwmean_{feature}"] == pytest.approx(np.average(ok[feature],
                                                                                  weights=ok["voxel_count"]))


def test_per_lesion_cli_and_aggregate(small_cohort: Callable[..., Path], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = small_cohort(3)
    per_lesion, series = tmp_path / "lesions.csv", tmp_path / "series.csv"
    for argv in (["radiomics", "extract", "--manifest", str(manifest), "--out", str(per_lesion), "--per-lesion",
                  "--workers", "1"],
                 ["radiomics", "aggregate", "--lesions", str(per_lesion), "--out", str(series)]):
        monkeypatch.setattr(sys, "argv", ["livermets", *argv])
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
        assert not exit_info.value.code
    lesions = pd.read_csv(per_lesion)
    expected = sum(len(lesion_table(sitk.ReadImage(str(p)))) for p in sorted((manifest.parent / "labels").glob("*")))
    assert len(lesions) == expected
    table = pd.read_csv(series)
    assert table["lesion_count"].sum() == expected
    assert len(table) == 3 and {"largest_original_glcm_Contrast", "vwmean_original_glcm_Contrast"} <= set(table)
