"""Imaging I/O on real data: DICOM vs NIfTI geometry, label checks, formats, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from livermets.errors import UserInputError
from livermets.imaging import dicom, geometry, io

LIVER_TOTALSEG = 5


def test_dicom_series_reads_onto_the_grid_of_its_nifti_segmentation(shared_data):
    ct = io.read_image(shared_data("totalsegmentator", "example_ct_dicom"))
    seg = io.read_label(shared_data("totalsegmentator", "example_seg_dicom.nii.gz"), allowed=None)
    # The DICOM is read in LPS, the NIfTI is stored with y flipped: same voxel centres, different axis order.
    assert ct.GetSize() == seg.GetSize() == (512, 512, 20)
    assert np.allclose(ct.GetSpacing(), seg.GetSpacing(), atol=1e-4)
    reoriented = geometry.reorient_like(ct, seg)
    assert geometry.same_geometry(reoriented, seg)
    # Independent check that the grids coincide voxel for voxel: the flip is exact (no interpolation) ...
    assert np.array_equal(sitk.GetArrayFromImage(reoriented), np.flip(sitk.GetArrayFromImage(ct), axis=1))
    # ... and the model-made liver mask lands on liver tissue (soft tissue HU), not on air or fat.
    ct_values = sitk.GetArrayFromImage(reoriented)
    liver = sitk.GetArrayFromImage(seg) == LIVER_TOTALSEG
    assert liver.sum() == 366_708  # SOURCE.md
    assert 30 < ct_values[liver].mean() < 150
    assert ct_values[~liver].mean() < -300


def test_dicom_tags_and_hu(shared_data):
    folder = shared_data("totalsegmentator", "example_ct_dicom")
    series = dicom.list_series(folder)
    assert len(series) == 1 and series[0].n_slices == 20
    info = io.image_info(io.read_image(folder))
    assert info["modality"] == "CT"
    assert info["min"] >= -1100 and info["max"] > 500  # rescale applied: HU, not raw unsigned values


def test_nifti_ct_and_segmentation_share_geometry(shared_data):
    ct = io.read_image(shared_data("totalsegmentator", "example_ct_sm.nii.gz"))
    seg = io.read_label(shared_data("totalsegmentator", "example_seg.nii.gz"), allowed=None)
    geometry.check_same_geometry(ct, seg)
    liver = sitk.GetArrayFromImage(seg) == LIVER_TOTALSEG
    assert liver.sum() == 38_634  # SOURCE.md


def test_lits_tiny_loads_with_its_documented_header_spacing(shared_data):
    ct = io.read_image(shared_data("lits_tiny", "volume.nii.gz"))
    label = io.read_label(shared_data("lits_tiny", "segmentation.nii.gz"))
    geometry.check_same_geometry(ct, label)
    assert ct.GetSize() == (64, 64, 33)
    # The header keeps the pre-downsampling spacing (SOURCE.md): 0.664 mm for a 64-voxel-wide abdomen.
    assert ct.GetSpacing()[0] == pytest.approx(0.664, abs=1e-3)
    counts = np.bincount(sitk.GetArrayFromImage(label).ravel(), minlength=3)
    assert counts[1] == 6165 and counts[2] == 210


def test_geometry_mismatch_names_both_files_and_the_property(shared_data):
    ct = io.read_image(shared_data("totalsegmentator", "example_ct_dicom"))
    seg = io.read_label(shared_data("totalsegmentator", "example_seg_dicom.nii.gz"), allowed=None)
    with pytest.raises(UserInputError, match=r"ct\.dcm.*seg\.nii.*origin.*direction"):
        geometry.check_same_geometry(ct, seg, "ct.dcm", "seg.nii.gz")


def test_nearest_neighbour_resampling_keeps_labels(tmp_path: Path):
    ref = sitk.Image(20, 20, 10, sitk.sitkInt16)
    ref.SetSpacing((1.0, 1.0, 2.0))
    label_array = np.zeros((5, 10, 10), np.uint8)
    label_array[1:4, 2:8, 2:8] = 1
    label_array[2, 4:6, 4:6] = 2
    label = sitk.GetImageFromArray(label_array)
    label.SetSpacing((2.0, 2.0, 4.0))
    out = geometry.resample_label_to(label, ref)
    assert geometry.same_geometry(out, ref)
    values = set(np.unique(sitk.GetArrayFromImage(out)).tolist())
    assert values == {0, 1, 2}
    # Twice the resolution in each axis: each voxel becomes 8, so volumes in voxels scale by exactly 8.
    counts = np.bincount(sitk.GetArrayFromImage(out).ravel(), minlength=3)
    assert counts[2] == 8 * 4 and counts[1] == 8 * (3 * 36 - 4)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_round_trip_formats_keep_geometry_and_values(tmp_path: Path, suffix: str):
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.integers(-1000, 1500, size=(6, 7, 8)).astype(np.int16))
    image.SetSpacing((0.8, 0.9, 5.0))
    image.SetOrigin((-10.0, 20.0, 30.5))
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    path = io.write_image(image, tmp_path / f"ct{suffix}")
    back = io.read_image(path)
    assert geometry.same_geometry(image, back)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert [p.name for p in tmp_path.iterdir()] == [f"ct{suffix}"]  # no temporary left behind


def test_write_label_from_array_takes_reference_geometry(tmp_path: Path):
    ref = sitk.Image(8, 7, 6, sitk.sitkInt16)
    ref.SetSpacing((0.7, 0.7, 1.0))
    ref.SetOrigin((1.0, 2.0, 3.0))
    array = np.zeros((6, 7, 8), np.uint8)
    array[2, 3, 4] = 2
    back = io.read_label(io.write_label(array, tmp_path / "lab.nii.gz", reference=ref))
    assert geometry.same_geometry(back, ref)
    assert back.GetPixelID() == sitk.sitkUInt8
    assert sitk.GetArrayFromImage(back)[2, 3, 4] == 2


def test_bad_inputs_raise_one_clear_line(tmp_path: Path):
    with pytest.raises(UserInputError, match="does not exist"):
        io.read_image(tmp_path / "missing.nii.gz")
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"not an image at all")
    with pytest.raises(UserInputError, match="corrupt.nii.gz: cannot read image"):
        io.read_image(corrupt)
    empty_dir = tmp_path / "nodicom"
    empty_dir.mkdir()
    (empty_dir / "readme.txt").write_text("x")
    with pytest.raises(UserInputError, match="no DICOM series"):
        io.read_image(empty_dir)
    lab = sitk.GetImageFromArray(np.array([[[0, 1, 3]]], np.uint8))
    sitk.WriteImage(lab, str(tmp_path / "lab3.nii.gz"))
    with pytest.raises(UserInputError, match=r"unexpected label values \[3\]"):
        io.read_label(tmp_path / "lab3.nii.gz")
    frac = sitk.GetImageFromArray(np.array([[[0.0, 0.5, 1.0]]], np.float32))
    sitk.WriteImage(frac, str(tmp_path / "frac.nii.gz"))
    with pytest.raises(UserInputError, match="non-integer"):
        io.read_label(tmp_path / "frac.nii.gz")


def test_folder_with_two_series_takes_the_larger_or_the_chosen_uid(shared_data, tmp_path: Path, caplog):
    import pydicom
    from pydicom.uid import generate_uid

    files = sorted(shared_data("totalsegmentator", "example_ct_dicom").iterdir())
    uids = {"big": generate_uid(), "small": generate_uid()}
    for i, source in enumerate(files):
        ds = pydicom.dcmread(source)
        ds.SeriesInstanceUID = uids["big"] if i < 12 else uids["small"]
        ds.save_as(tmp_path / f"slice{i:02d}.dcm")
    found = dicom.list_series(tmp_path)
    assert [(s.uid, s.n_slices) for s in found] == [(uids["big"], 12), (uids["small"], 8)]
    with caplog.at_level("WARNING"):
        image = io.read_image(tmp_path)
    assert image.GetSize() == (512, 512, 12) and "holds 2 series" in caplog.text
    assert io.read_image(tmp_path, series_uid=uids["small"]).GetSize() == (512, 512, 8)
    with pytest.raises(UserInputError, match="no series with uid 1.2.3"):
        io.read_image(tmp_path, series_uid="1.2.3")
