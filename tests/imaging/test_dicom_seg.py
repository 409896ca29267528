"""DICOM SEG writing and reading: frames on the right source slices, exact round trips, UID-less series, errors."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from livermets.errors import UserInputError
from livermets.imaging import dicom_seg, geometry, io
from livermets.imaging.dicom_seg import load_source_series, read_dicom_seg, write_dicom_seg

LIVER_TOTALSEG = 5


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "livermets", *args], capture_output=True, text=True, timeout=300)


def _frames(path: Path) -> list[tuple[int, str, np.ndarray]]:
    """(segment number, referenced SOP Instance UID, Image Position (Patient)) of every frame, read with pydicom."""
    ds = pydicom.dcmread(path)
    out = []
    for group in ds.PerFrameFunctionalGroupsSequence:
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = str(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        position = np.asarray(group.PlanePositionSequence[0].ImagePositionPatient, float)
        out.append((number, uid, position))
    return out


def _assert_frames_on_their_slices(seg_path: Path, folder: Path, label: sitk.Image) -> None:
    """Every frame references the instance at slice k, carries its position, and holds label slice k."""
    uids = load_source_series(folder).sop_instance_uids
    array = sitk.GetArrayFromImage(label)
    pixels = pydicom.dcmread(seg_path).pixel_array.reshape(-1, *array.shape[1:])
    for index, (number, uid, position) in enumerate(_frames(seg_path)):
        k = uids.index(uid)
        assert np.allclose(position, label.TransformIndexToPhysicalPoint((0, 0, k)), atol=1e-3)
        expected = array[k] > 0 if number == 1 else array[k] == 2
        assert np.array_equal(pixels[index] > 0, expected)


@pytest.fixture(scope="module")
def real_label(shared_data) -> tuple[Path, sitk.Image]:
    """TotalSegmentator's liver on the real DICOM series, plus a synthetic lesion inside the liver."""
    folder = shared_data("totalsegmentator", "example_ct_dicom")
    ct = io.read_image(folder)
    seg = io.read_label(shared_data("totalsegmentator", "example_seg_dicom.nii.gz"), allowed=None)
    # The NIfTI stores y flipped relative to the LPS DICOM read; its header is right, so reorienting (an exact axis
    # flip, no interpolation) puts it on the series grid. The liver mask then lands on soft tissue.
    assert not geometry.same_geometry(seg, ct)
    seg = geometry.reorient_like(seg, ct)
    assert geometry.same_geometry(seg, ct)
    liver = sitk.GetArrayFromImage(seg) == LIVER_TOTALSEG
    hu = sitk.GetArrayFromImage(ct)
    assert 30 < hu[liver].mean() < 150 and hu[np.flip(liver, axis=1)].mean() < hu[liver].mean() - 30
    array = liver.astype(np.uint8)
    z, y, x = (int(np.median(axis)) for axis in np.nonzero(liver))
    box = (slice(z - 2, z + 3), slice(y - 6, y + 6), slice(x - 6, x + 6))
    array[box] = np.where(array[box] == 1, 2, array[box])
    assert (array == 2).sum() > 100
    return folder, io.label_image(array, ct)


def test_real_series_round_trip_lands_on_the_source_slices(real_label, tmp_path: Path, caplog):
    folder, label = real_label
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    with caplog.at_level(logging.WARNING):
        path = write_dicom_seg(label, folder, tmp_path / "seg.dcm", model_name="unit-test")
    assert "no SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID" in caplog.text  # the example has blank UIDs
    _assert_frames_on_their_slices(path, folder, label)
    back = read_dicom_seg(path, folder)
    assert geometry.same_geometry(back, label) and back.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(label))
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()} == digests  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["seg.dcm"]


def test_segments_codes_and_algorithm(real_label, tmp_path: Path):
    folder, label = real_label
    seg = hd.seg.segread(write_dicom_seg(label, folder, tmp_path / "seg.dcm", model_name="unit-test",
                                         software_version="9.9"))
    assert seg.SegmentationType == "BINARY" and seg.Modality == "SEG" and seg.ContentQualification == "RESEARCH"
    liver, lesion = seg.get_segment_description(1), seg.get_segment_description(2)
    assert liver.segment_label == "Liver" and liver.segmented_property_type.value == "10200004"
    assert liver.segmented_property_category.value == "91723000"  # CID 7150 Anatomical Structure
    assert lesion.segmented_property_type.value == "14799000"
    assert lesion.segmented_property_category.value == "49755003"
    for description in (liver, lesion):
        assert description.algorithm_type.value == "AUTOMATIC"
        algorithm = description.algorithm_identification[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("unit-test", "9.9")
        assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"  # Artificial Intelligence
    # The liver segment includes the lesions.
    array = sitk.GetArrayFromImage(label)
    uids = load_source_series(folder).sop_instance_uids
    masks = seg.get_pixels_by_source_instance(uids, segment_numbers=[1, 2], assert_missing_frames_are_empty=True)
    assert np.array_equal(masks[..., 0] > 0, array > 0) and np.array_equal(masks[..., 1] > 0, array == 2)


def test_generated_source_uids_are_deterministic_but_seg_uids_are_new(real_label, tmp_path: Path):
    folder, label = real_label
    first, second = load_source_series(folder), load_source_series(folder)
    assert first.sop_instance_uids == second.sop_instance_uids
    assert len(set(first.sop_instance_uids)) == 20
    assert set(first.generated) == {"SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"}
    a = pydicom.dcmread(write_dicom_seg(label, folder, tmp_path / "a.dcm"))
    b = pydicom.dcmread(write_dicom_seg(label, folder, tmp_path / "b.dcm"))
    assert a.StudyInstanceUID == b.StudyInstanceUID == first.datasets[0].StudyInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.SeriesInstanceUID != b.SeriesInstanceUID
    assert [f[1] for f in _frames(tmp_path / "a.dcm")] == [f[1] for f in _frames(tmp_path / "b.dcm")]


def _write_synthetic_series(folder: Path, rows: int = 28, columns: int = 32, slices: int = 8) -> list[str]:
    """An oblique CT series (rotated 30 degrees in-plane, slices stacked towards the feet) in shuffled file order.

    Returns the SOP Instance UIDs ordered along the slice normal (SimpleITK's slice order).
    """
    folder.mkdir(parents=True)
    angle = np.deg2rad(30)
    row_dir = np.array([np.cos(angle), np.sin(angle), 0.0])
    col_dir = np.array([np.sin(angle), -np.cos(angle), 0.0])  # normal = row x col = (0, 0, -1)
    normal = np.cross(row_dir, col_dir)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    uids = [generate_uid() for _ in range(slices)]
    rng = np.random.default_rng(0)
    for k in rng.permutation(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = uids[k]
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uids[k]
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "Test^Synthetic", "SYN001"
        ds.InstanceNumber = slices - int(k)  # reversed: the writer must not rely on instance numbers
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*row_dir, *col_dir)]
        ds.ImagePositionPatient = [round(float(v), 4) for v in np.array([10.0, -20.0, 30.0]) + 2.5 * k * normal]
        ds.PixelSpacing = [0.9, 0.7]  # row spacing (y), column spacing (x)
        ds.SliceThickness = 2.5
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = rng.integers(-100, 100, (rows, columns)).astype(np.int16).tobytes()
        ds.save_as(folder / f"img_{rng.integers(1_000_000):06d}_{k}.dcm", enforce_file_format=True)
    return uids


def _blob_label(reference: sitk.Image, lesion: bool = True) -> sitk.Image:
    z, y, x = np.ogrid[: reference.GetSize()[2], : reference.GetSize()[1], : reference.GetSize()[0]]
    array = (((z - 3) / 3) ** 2 + ((y - 12) / 8) ** 2 + ((x - 18) / 10) ** 2 <= 1).astype(np.uint8)
    if lesion:
        array[(z >= 2) & (z <= 4) & (abs(y - 13) <= 2) & (abs(x - 20) <= 3)] = 2
    return io.label_image(array, reference)


def test_synthetic_oblique_series_round_trip_keeps_its_own_uids(tmp_path: Path, caplog):
    folder = tmp_path / "series"
    uids = _write_synthetic_series(folder)
    ct = io.read_image(folder)
    assert ct.GetSize() == (32, 28, 8) and np.allclose(ct.GetSpacing(), (0.7, 0.9, 2.5))
    assert ct.GetDirection()[8] < -0.99  # slices run towards -z: a flipped, oblique grid
    label = _blob_label(ct)
    with caplog.at_level(logging.WARNING):
        path = write_dicom_seg(label, folder, tmp_path / "seg.dcm")
    assert "generated" not in caplog.text
    assert load_source_series(folder).sop_instance_uids == uids  # SimpleITK's order is the order along the normal
    referenced = {f[1] for f in _frames(path)}
    assert referenced <= set(uids) and len(referenced) >= 5
    _assert_frames_on_their_slices(path, folder, label)
    seg = pydicom.dcmread(path)
    assert seg.PatientID == "SYN001"  # the SEG carries the source's patient and study
    assert seg.StudyInstanceUID == pydicom.dcmread(next(folder.iterdir())).StudyInstanceUID
    assert np.array_equal(sitk.GetArrayFromImage(read_dicom_seg(path, folder)), sitk.GetArrayFromImage(label))


def test_reading_a_seg_against_a_reidentified_copy_places_frames_by_position(tmp_path: Path, caplog):
    folder = tmp_path / "series"
    _write_synthetic_series(folder)
    label = _blob_label(io.read_image(folder))
    path = write_dicom_seg(label, folder, tmp_path / "seg.dcm")
    copy = tmp_path / "copy"
    copy.mkdir()
    series_uid = generate_uid()
    for source in folder.iterdir():
        ds = pydicom.dcmread(source)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = series_uid
        ds.save_as(copy / source.name)
    with caplog.at_level(logging.INFO):
        back = read_dicom_seg(path, copy)
    assert "placing its frames by position" in caplog.text
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(label))
    for source in copy.iterdir():  # a series 1 mm away along the normal: the frames fit no slice
        ds = pydicom.dcmread(source)
        ds.ImagePositionPatient = [float(v) for v in np.add(ds.ImagePositionPatient, (0.0, 0.0, 1.0))]
        ds.save_as(source)
    with pytest.raises(UserInputError, match=r"seg\.dcm: frame \d+ at .* lies on no slice of .*copy"):
        read_dicom_seg(path, copy)


def test_empty_lesion_segment_and_empty_label_give_valid_files(tmp_path: Path):
    folder = tmp_path / "series"
    _write_synthetic_series(folder)
    ct = io.read_image(folder)
    no_lesion = _blob_label(ct, lesion=False)
    path = write_dicom_seg(no_lesion, folder, tmp_path / "no_lesion.dcm")
    seg = hd.seg.segread(path)
    assert seg.segment_numbers == [1, 2] and {f[0] for f in _frames(path)} == {1}  # described, no frames
    assert np.array_equal(sitk.GetArrayFromImage(read_dicom_seg(path, folder)), sitk.GetArrayFromImage(no_lesion))

    empty = io.label_image(np.zeros((8, 28, 32), np.uint8), ct)
    path = write_dicom_seg(empty, folder, tmp_path / "empty.dcm")
    assert int(pydicom.dcmread(path).NumberOfFrames) == 16  # nothing to omit: every frame of both segments
    assert not sitk.GetArrayFromImage(read_dicom_seg(path, folder)).any()

    full = write_dicom_seg(_blob_label(ct), folder, tmp_path / "full.dcm", omit_empty_frames=False)
    assert int(pydicom.dcmread(full).NumberOfFrames) == 16


def test_label_that_does_not_fit_the_series_is_a_user_error(tmp_path: Path):
    folder = tmp_path / "series"
    _write_synthetic_series(folder)
    ct = io.read_image(folder)
    label = _blob_label(ct)
    smaller = sitk.RegionOfInterest(label, (32, 28, 7), (0, 0, 0))
    with pytest.raises(UserInputError, match=r"series: label grid does not match the DICOM series \(label size"):
        write_dicom_seg(smaller, folder, tmp_path / "seg.dcm")
    shifted = sitk.Image(label)
    shifted.SetOrigin(tuple(np.add(label.GetOrigin(), (0.0, 0.0, 1.0))))
    with pytest.raises(UserInputError, match=r"series: .*slice 0 lies at"):
        write_dicom_seg(shifted, folder, tmp_path / "seg.dcm")
    stretched = sitk.Image(label)
    stretched.SetSpacing((0.9, 0.7, 2.5))
    with pytest.raises(UserInputError, match="pixel spacing"):
        write_dicom_seg(stretched, folder, tmp_path / "seg.dcm")
    array = sitk.GetArrayFromImage(label)
    array[0, 0, 0] = 3
    with pytest.raises(UserInputError, match=r"series: label values \[3\]"):
        write_dicom_seg(io.label_image(array, ct), folder, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


def test_folder_without_dicom_and_file_that_is_not_a_seg(tmp_path: Path):
    empty = tmp_path / "nodicom"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    label = sitk.Image(4, 4, 2, sitk.sitkUInt8)
    with pytest.raises(UserInputError, match="nodicom: no DICOM series"):
        write_dicom_seg(label, empty, tmp_path / "seg.dcm")
    folder = tmp_path / "series"
    _write_synthetic_series(folder)
    with pytest.raises(UserInputError, match="not a readable DICOM Segmentation"):
        read_dicom_seg(next(folder.iterdir()), folder)
    with pytest.raises(UserInputError, match="does not exist"):
        read_dicom_seg(tmp_path / "missing.dcm", folder)


def test_missing_type2_attributes_and_sop_class_are_filled_in_memory(tmp_path: Path):
    folder = tmp_path / "series"
    _write_synthetic_series(folder)
    stripped = tmp_path / "stripped"
    shutil.copytree(folder, stripped)
    for path in stripped.iterdir():
        ds = pydicom.dcmread(path)
        del ds.PatientName, ds.PatientID
        ds.SOPClassUID = ""
        ds.save_as(path)
    source = load_source_series(stripped)
    assert source.generated == ()
    assert all(ds.SOPClassUID == CTImageStorage and ds.PatientID == "" for ds in source.datasets)
    label = _blob_label(io.read_image(stripped))
    path = write_dicom_seg(label, stripped, tmp_path / "seg.dcm")
    assert np.array_equal(sitk.GetArrayFromImage(read_dicom_seg(path, stripped)), sitk.GetArrayFromImage(label))
    assert dicom_seg.LIVER_SEGMENT == 1 and dicom_seg.LESION_SEGMENT == 2


def test_cli_seg_to_nifti_writes_the_label_map_and_fails_in_one_line(tmp_path: Path):
    folder = tmp_path / "series"
    _write_synthetic_series(folder)
    label = _blob_label(io.read_image(folder))
    seg = write_dicom_seg(label, folder, tmp_path / "seg.dcm")
    out = tmp_path / "label.nii.gz"
    result = run("imaging", "seg-to-nifti", str(seg), "--series", str(folder), "--out", str(out))
    assert result.returncode == 0, result.stderr
    back = io.read_label(out)
    assert geometry.same_geometry(back, label)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(label))
    bad = run("imaging", "seg-to-nifti", str(next(folder.iterdir())), "--series", str(folder), "--out", str(out))
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "not a readable DICOM Segmentation" in lines[0]
