"""``livermets cohort import``: LiTS, MSD Task03_Liver, 3D-IRCADb-01 and DICOM SEG layouts written here in miniature.

Every expected label map is computed with numpy from the arrays and masks the test wrote; geometry is compared with
the CT the test wrote; the manifest must pass ``livermets cohort validate``. Bad input must give one ``error:``
line, exit code 2 and no output folder (not even a hidden partial one).
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from cli_helpers import one_error_line, run_cli
from livermets.imaging import io

SHAPE = (8, 24, 24)  # (z, y, x)
SPACING = (0.8, 0.7, 2.5)
ORIGIN = (-40.0, 12.5, 100.0)
PATIENT_NAME = "Doe^Jane"


# ---------------------------------------------------------------------------------------------------- synthetic data
def _ellipsoid(centre: tuple[float, float, float], radii: tuple[float, float, float]) -> np.ndarray:
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    return (((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((x - centre[2]) / radii[2]) ** 2) <= 1


def _masks(seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A liver and two tumours, the second partly outside the liver (it must still be 2)."""
    shift = seed % 3
    liver = _ellipsoid((3.5, 12 + shift, 11), (3.5, 8, 8))
    inside = _ellipsoid((3, 12 + shift, 9), (1.5, 2.5, 2.5))
    straddling = _ellipsoid((4, 12, 19 + shift), (1.5, 2.5, 3))
    assert inside.any() and (straddling & ~liver).any() and (straddling & liver).any()
    return liver, [inside, straddling]


def _lits_label(liver: np.ndarray, tumours: list[np.ndarray]) -> np.ndarray:
    label = liver.astype(np.uint8)
    for tumour in tumours:
        label[tumour] = 2
    return label


def _hu(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-200, 300, SHAPE).astype(np.int16)


def _nifti(array: np.ndarray, path: Path, direction: tuple[float, ...] | None = None,
           spacing: tuple[float, float, float] = SPACING) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(ORIGIN)
    if direction is not None:
        image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return image


ROTATED = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # x and y axes rotated by 90 degrees


def _write_series(folder: Path, array: np.ndarray, *, name: Callable[[int], str], patient_id: str = "IRCAD",
                  study_uid: str | None = None, series_uid: str | None = None, frame_uid: str | None = None,
                  intercept: float = 0.0) -> list[Dataset]:
    """A DICOM series, slice k at ORIGIN + k * z-spacing along +z, in shuffled file order; returns the datasets."""
    folder.mkdir(parents=True)
    study_uid, series_uid, frame_uid = (study_uid or generate_uid(), series_uid or generate_uid(),
                                        frame_uid or generate_uid())
    datasets = []
    for k in range(array.shape[0]):
        ds = Dataset()
        uid = generate_uid()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CTImageStorage, uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality, ds.PatientName, ds.PatientID = "CT", PATIENT_NAME, patient_id
        ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber, ds.StudyID = "", "", "", ""
        ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = "20200101", "120000", ""
        ds.PatientIdentityRemoved = "YES"
        ds.SeriesNumber, ds.InstanceNumber = 1, array.shape[0] - k
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * SPACING[2]]
        ds.PixelSpacing = [SPACING[1], SPACING[0]]  # row spacing (y), column spacing (x)
        ds.SliceThickness = SPACING[2]
        ds.Rows, ds.Columns = array.shape[1], array.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        bits = array.dtype.itemsize * 8
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
        ds.PixelRepresentation = int(np.issubdtype(array.dtype, np.signedinteger))
        ds.RescaleIntercept, ds.RescaleSlope = intercept, 1
        ds.PixelData = np.ascontiguousarray(array[k]).tobytes()
        datasets.append(ds)
    for k in np.random.default_rng(len(str(folder))).permutation(array.shape[0]):  # file names do not give order
        datasets[k].save_as(folder / name(int(k)), enforce_file_format=True)
    return datasets


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _import(
    monkeypatch: pytest.MonkeyPatch, fmt: str, src: Path, out: Path, *extra: object, quiet: bool = False
) -> int:
    """``livermets [-q] cohort import --format FMT SRC --out OUT EXTRA...``; its exit code."""
    return run_cli(monkeypatch, *(["-q"] if quiet else []), "cohort", "import", "--format", fmt, src, "--out", out,
                   *extra)


def _check_cohort(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], out: Path,
                  expected: dict[str, tuple[np.ndarray, np.ndarray | None, sitk.Image]]) -> pd.DataFrame:
    """Images, labels and geometry as expected (series id -> HU array, label array, reference grid); validate ok."""
    frame = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["series_id", "study_id", "patient_id", "image", "label", "split"]
    assert sorted(frame["series_id"]) == sorted(expected)
    for row in frame.itertuples():
        hu, label, reference = expected[row.series_id]
        assert row.image == f"images/{row.series_id}.nii.gz"
        image = io.read_image(out / row.image)
        assert image.GetSize() == reference.GetSize()
        assert np.allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-6)
        assert np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-5)
        assert np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)
        assert np.array_equal(sitk.GetArrayFromImage(image), hu)
        if label is None:
            assert row.label == ""
            continue
        assert row.label == f"labels/{row.series_id}.nii.gz"
        written = sitk.ReadImage(str(out / row.label))
        assert written.GetPixelID() == sitk.sitkUInt8
        # Exactly the CT's grid: the header fields are bit-identical to the imported image's.
        assert written.GetSize() == image.GetSize() and written.GetSpacing() == image.GetSpacing()
        assert written.GetOrigin() == image.GetOrigin() and written.GetDirection() == image.GetDirection()
        assert np.array_equal(sitk.GetArrayFromImage(written), label)
    capsys.readouterr()
    assert run_cli(monkeypatch, "cohort", "validate", out / "manifest.csv") == 0, capsys.readouterr().err
    assert "ok" in capsys.readouterr().out
    return frame


def _no_output(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


# ---------------------------------------------------------------------------------------------------------- LiTS
def _lits(src: Path) -> dict[str, tuple[np.ndarray, np.ndarray, sitk.Image]]:
    expected = {}
    for number, batch, suffix, label_type in ((0, "Training Batch 1", ".nii", np.uint8),
                                              (1, "Training Batch 1", ".nii", np.uint8),
                                              (12, "Training Batch 2", ".nii.gz", np.float32)):
        hu, (liver, tumours) = _hu(number), _masks(number)
        label = _lits_label(liver, tumours)
        ct = _nifti(hu, src / batch / f"volume-{number}{suffix}", ROTATED if number == 12 else None)
        _nifti(label.astype(label_type), src / batch / f"segmentation-{number}{suffix}",
               ROTATED if number == 12 else None)
        expected[f"lits_{number}"] = (hu, label, ct)
    (src / "Training Batch 1" / "._volume-0.nii").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork
    _nifti(_hu(9), src / "test-volume-9.nii")  # LiTS test set: no label, not imported
    return expected


def test_lits_import_writes_labels_on_the_ct_grid_and_a_valid_manifest(tmp_path, monkeypatch, capsys):
    src, out = tmp_path / "LiTS", tmp_path / "cohort"
    expected = _lits(src)
    assert _import(monkeypatch, "lits", src, out, "--patient-regex", r"lits_(\d)") == 0, capsys.readouterr().err
    assert "3 series (3 labelled), 2 patients" in capsys.readouterr().out
    assert _files(out) == {"images", "labels", "manifest.csv", "import.json"} | {
        f"{kind}/lits_{n}.nii.gz" for kind in ("images", "labels") for n in (0, 1, 12)}
    frame = _check_cohort(monkeypatch, capsys, out, expected)
    assert dict(zip(frame["series_id"], frame["patient_id"], strict=True)) == {"lits_0": "0", "lits_1": "1",
                                                                               "lits_12": "1"}
    assert set(frame["split"]) == {"train"} and list(frame["study_id"]) == list(frame["series_id"])
    record = json.loads((out / "import.json").read_text())
    assert record["format"] == "lits" and record["source"] == str(src.resolve())
    assert record["counts"] == {"series": 3, "patients": 2, "labelled": 3, "unlabelled": 0, "by_split": {"train": 3}}
    assert record["provenance"]["parameters"]["patient_regex"] == r"lits_(\d)"
    assert "SimpleITK" in record["provenance"]["versions"]
    assert record["series"][2] == {"series_id": "lits_12", "source": "Training Batch 2/volume-12.nii.gz",
                                   "label_source": "Training Batch 2/segmentation-12.nii.gz"}


def test_real_lits_sample_imports_unchanged(shared_data, tmp_path, monkeypatch, capsys):
    volume, segmentation = shared_data("lits_tiny", "volume.nii.gz"), shared_data("lits_tiny", "segmentation.nii.gz")
    src, out = tmp_path / "LiTS", tmp_path / "cohort"
    src.mkdir()
    (src / "volume-7.nii.gz").symlink_to(volume)
    (src / "segmentation-7.nii.gz").symlink_to(segmentation)
    assert _import(monkeypatch, "lits", src, out) == 0, capsys.readouterr().err
    ct = io.read_image(volume)
    _check_cohort(monkeypatch, capsys, out, {"lits_7": (sitk.GetArrayFromImage(ct),
                                                        sitk.GetArrayFromImage(io.read_label(segmentation)), ct)})


# ----------------------------------------------------------------------------------------------------------- MSD
def _msd(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None, sitk.Image]]:
    src = root / "Task03_Liver"
    expected: dict[str, tuple[np.ndarray, np.ndarray | None, sitk.Image]] = {}
    for number in (0, 3):
        hu, (liver, tumours) = _hu(number), _masks(number)
        label = _lits_label(liver, tumours)
        ct = _nifti(hu, src / "imagesTr" / f"liver_{number}.nii.gz")
        _nifti(label, src / "labelsTr" / f"liver_{number}.nii.gz")
        expected[f"liver_{number}"] = (hu, label, ct)
    ct = _nifti(_hu(7), src / "imagesTs" / "liver_7.nii.gz")
    expected["liver_7"] = (_hu(7), None, ct)
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (src / folder / "._liver_0.nii.gz").write_bytes(b"\x00\x05\x16\x07")
    (src / "dataset.json").write_text(json.dumps({
        "name": "Liver", "reference": "Radboud University Medical Center", "licence": "CC-BY-SA 4.0",
        "labels": {"0": "background", "1": "liver", "2": "cancer"}, "numTraining": 2, "numTest": 1}))
    return expected


def test_msd_import_keeps_test_images_without_labels(tmp_path, monkeypatch, capsys):
    src, out = tmp_path / "data", tmp_path / "cohort"
    expected = _msd(src)
    assert _import(monkeypatch, "msd", src, out) == 0, capsys.readouterr().err  # the folder above the task
    frame = _check_cohort(monkeypatch, capsys, out, expected)
    assert dict(zip(frame["series_id"], frame["split"], strict=True)) == {"liver_0": "train", "liver_3": "train",
                                                                          "liver_7": "test"}
    assert list(frame["patient_id"]) == list(frame["series_id"])
    record = json.loads((out / "import.json").read_text())
    assert record["counts"]["by_split"] == {"test": 1, "train": 2} and record["counts"]["unlabelled"] == 1
    assert record["dataset_json"]["licence"] == "CC-BY-SA 4.0"
    assert not (out / "labels" / "liver_7.nii.gz").exists()


# ---------------------------------------------------------------------------------------------------------- IRCAD
def _ircad(src: Path) -> dict[str, tuple[np.ndarray, np.ndarray, sitk.Image]]:
    expected = {}
    for number, tumour_names in ((1, ("livertumor01", "livertumor02")), (2, ("livertumors",))):
        folder = src / f"3Dircadb1.{number}"
        stored = np.random.default_rng(number).integers(0, 1200, SHAPE).astype(np.int16)
        image_name: Callable[[int], str] = lambda k: f"image_{k}"  # noqa: E731 - IRCAD files have no extension
        _write_series(folder / "PATIENT_DICOM", stored, name=image_name, intercept=-1024)
        liver, tumours = _masks(number)
        if len(tumour_names) == 1:
            tumours = [tumours[0] | tumours[1]]
        masks = folder / "MASKS_DICOM"
        _write_series(masks / "liver", liver.astype(np.uint8) * 255, name=image_name)
        for tumour_name, tumour in zip(tumour_names, tumours, strict=True):
            _write_series(masks / tumour_name, tumour.astype(np.uint8) * 255, name=image_name)
        # Not liver or liver tumour: ignored, although these lie outside the liver.
        _write_series(masks / "artery", _ellipsoid((4, 3, 3), (2, 2, 2)).astype(np.uint8) * 255, name=image_name)
        _write_series(masks / "liverkyst", _ellipsoid((4, 20, 20), (2, 2, 2)).astype(np.uint8) * 255,
                      name=image_name)
        reference = sitk.GetImageFromArray(stored)
        reference.SetSpacing(SPACING)
        reference.SetOrigin(ORIGIN)
        expected[f"3Dircadb1_{number}"] = (stored - 1024, _lits_label(liver, tumours), reference)
    return expected


def test_ircad_import_merges_liver_and_tumour_masks(tmp_path, monkeypatch, capsys):
    src, out = tmp_path / "3Dircadb1", tmp_path / "cohort"
    expected = _ircad(src)
    assert _import(monkeypatch, "ircad", src, out) == 0, capsys.readouterr().err
    frame = _check_cohort(monkeypatch, capsys, out, expected)
    assert list(frame["patient_id"]) == ["3Dircadb1_1", "3Dircadb1_2"]
    record = json.loads((out / "import.json").read_text())
    assert record["series"][0]["tumour_masks"] == ["3Dircadb1.1/MASKS_DICOM/livertumor01",
                                                   "3Dircadb1.1/MASKS_DICOM/livertumor02"]
    assert record["series"][1]["tumour_masks"] == ["3Dircadb1.2/MASKS_DICOM/livertumors"]


# ------------------------------------------------------------------------------------------------------ DICOM SEG
SEGMENTS = (  # label, category, type; masks in this order
    ("Liver", codes.SCT.AnatomicalStructure, codes.SCT.Liver),
    ("Liver_Remnant", codes.SCT.AnatomicalStructure, codes.SCT.Liver),
    ("Hepatic", codes.SCT.AnatomicalStructure, codes.SCT.HepaticVein),
    ("Portal", codes.SCT.AnatomicalStructure, codes.SCT.PortalVein),
    ("Tumor_1", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm),
    ("Seg6", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.NeoplasmSecondary),
)


def _seg_masks(seed: int) -> list[np.ndarray]:
    liver, (inside, straddling) = _masks(seed)
    remnant = _ellipsoid((3.5, 6, 5), (2, 4, 4))  # partly outside the liver: ignored by default
    hepatic = _ellipsoid((4, 20, 4), (2, 2, 2))
    portal = _ellipsoid((2, 12, 11), (1, 1, 1))  # inside the liver: it stays liver
    assert (remnant & ~liver).any() and (hepatic & ~liver).any()
    return [liver, remnant, hepatic, portal, inside, straddling]


def _dicom_seg(src: Path) -> dict[str, tuple[np.ndarray, list[np.ndarray], sitk.Image]]:
    """Two patients in the NBIA layout; patient 1002 also has a second CT series without a SEG."""
    expected = {}
    for patient, seed in (("CRLM-CT-1001", 1), ("CRLM-CT-1002", 2)):
        study = generate_uid()
        hu = _hu(seed + 10)
        ct_folder = src / patient / "10-01-2000-NA-CT ABDOMEN" / "2.000000-CT-12345"
        datasets = _write_series(ct_folder, hu, name=lambda k: f"1-{k + 1:02d}.dcm", patient_id=patient,
                                 study_uid=study)
        if patient == "CRLM-CT-1002":
            _write_series(src / patient / "10-01-2000-NA-CT ABDOMEN" / "3.000000-DELAYED-23456", hu,
                          name=lambda k: f"1-{k + 1:02d}.dcm", patient_id=patient, study_uid=study)
        masks = _seg_masks(seed)
        descriptions = [hd.seg.SegmentDescription(
            segment_number=i + 1, segment_label=label, segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
            for i, (label, category, kind) in enumerate(SEGMENTS)]
        seg = hd.seg.Segmentation(
            source_images=datasets, pixel_array=np.stack(masks, axis=-1).astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
            series_instance_uid=generate_uid(), series_number=300, sop_instance_uid=generate_uid(),
            instance_number=1, manufacturer="test", manufacturer_model_name="test", software_versions="1",
            device_serial_number="1")
        seg.PatientIdentityRemoved = "YES"
        seg_folder = src / patient / "10-01-2000-NA-CT ABDOMEN" / "300.000000-Segmentation-34567"
        seg_folder.mkdir(parents=True)
        seg.save_as(seg_folder / "1-1.dcm")
        reference = sitk.GetImageFromArray(hu)
        reference.SetSpacing(SPACING)
        reference.SetOrigin(ORIGIN)
        expected[patient] = (hu, masks, reference)
    (src / "LICENSE.txt").write_text("CC BY 4.0\n")  # not DICOM: skipped
    return expected


def _seg_label(masks: list[np.ndarray], remnant_is_liver: bool = False) -> np.ndarray:
    liver, remnant, _hepatic, _portal, *tumours = masks
    return _lits_label(liver | remnant if remnant_is_liver else liver, tumours)


def _secrets_absent(out: Path, text: str) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
            assert b"Doe" not in data and b"Jane" not in data, path
    assert "Doe" not in text and "Jane" not in text


def test_dicom_seg_import_maps_segments_and_keeps_names_out(tmp_path, monkeypatch, capsys, caplog):
    src, out = tmp_path / "Colorectal-Liver-Metastases", tmp_path / "cohort"
    cases = _dicom_seg(src)
    assert _import(monkeypatch, "dicom-seg", src, out) == 0, capsys.readouterr().err
    printed = capsys.readouterr()
    frame = pd.read_csv(out / "manifest.csv", dtype=str)
    ids = dict(zip(frame["patient_id"], frame["series_id"], strict=True))
    assert set(ids) == set(cases) and all(ids[p].startswith(f"{p}_") for p in cases)
    _check_cohort(monkeypatch, capsys, out, {ids[p]: (hu, _seg_label(masks), ref)
                                             for p, (hu, masks, ref) in cases.items()})
    assert frame["study_id"].str.match(r"CRLM-CT-100\d_[0-9a-f]{8}$").all()
    record = json.loads((out / "import.json").read_text())
    assert record["dicom"] == {"seg_files": 2, "image_series_without_seg": 1, "skipped_files": 1,
                               "seg_not_marked_deidentified": 0}
    assert record["series"][0]["segments"] == {"1 Liver": 1, "2 Liver_Remnant": 0, "3 Hepatic": 0, "4 Portal": 0,
                                               "5 Tumor_1": 2, "6 Seg6": 2}
    _secrets_absent(out, printed.out + printed.err + caplog.text)

    # The mapping is configurable: the remnant counted as liver (the portal vein stays ignored).
    again = tmp_path / "again"
    assert _import(monkeypatch, "dicom-seg", src, again, "--segment-map", "liver_remnant=1",
                   "--patient-regex", r"CT-(?P<patient>\d+)") == 0, capsys.readouterr().err
    frame = pd.read_csv(again / "manifest.csv", dtype=str)
    assert sorted(frame["patient_id"]) == ["1001", "1002"]
    _check_cohort(monkeypatch, capsys, again, {
        sid: (cases[f"CRLM-CT-{p}"][0], _seg_label(cases[f"CRLM-CT-{p}"][1], remnant_is_liver=True),
              cases[f"CRLM-CT-{p}"][2]) for sid, p in zip(frame["series_id"], frame["patient_id"], strict=True)})


def test_fractional_seg_counts_from_one_half(tmp_path):
    from livermets.imaging.dicom_seg import read_dicom_seg

    folder = tmp_path / "ct"
    datasets = _write_series(folder, _hu(3), name=lambda k: f"{k}.dcm")
    liver = _ellipsoid((3.5, 12, 12), (3.5, 9, 9))
    fraction = np.where(liver, 0.8, 0.0) - 0.5 * _ellipsoid((3.5, 12, 12), (2, 4, 4))  # 0.3 in the core: not liver
    tumour = 0.6 * _ellipsoid((3, 10, 16), (1.5, 3, 3))
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=label, segmented_property_category=category,
        segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="test", family=codes.DCM.ArtificialIntelligence, version="1"))
        for i, (label, category, kind) in enumerate((SEGMENTS[0], SEGMENTS[4]))]
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=np.stack([fraction, tumour], axis=-1).astype(np.float32),
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL, segment_descriptions=descriptions,
        series_instance_uid=generate_uid(), series_number=300, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="test", manufacturer_model_name="test", software_versions="1", device_serial_number="1")
    seg.save_as(tmp_path / "seg.dcm")
    expected = (fraction >= 0.5).astype(np.uint8)
    expected[tumour >= 0.5] = 2
    assert 0 < (expected == 1).sum() < liver.sum()
    assert np.array_equal(sitk.GetArrayFromImage(read_dicom_seg(tmp_path / "seg.dcm", folder)), expected)


# ---------------------------------------------------------------------------------------------------- bad input
def _lits_without_segmentation(src: Path) -> str:
    _lits(src)
    (src / "Training Batch 2" / "segmentation-12.nii.gz").unlink()
    return r"volume-12\.nii\.gz: no segmentation-12\.nii\[\.gz\] for this volume"


def _lits_geometry_mismatch(src: Path) -> str:
    _lits(src)  # lits_0 and lits_1 are written before lits_12 fails
    _nifti(_lits_label(*_masks(12)), src / "Training Batch 2" / "segmentation-12.nii.gz", ROTATED, (0.8, 0.7, 3.0))
    return r"geometry mismatch between .*volume-12\.nii\.gz and .*segmentation-12\.nii\.gz: spacing"


def _msd_without_label(src: Path) -> str:
    _msd(src)
    (src / "Task03_Liver" / "labelsTr" / "liver_3.nii.gz").unlink()
    return r"imagesTr/liver_3\.nii\.gz: no labelsTr/liver_3\.nii\.gz for this training image"


def _msd_other_task(src: Path) -> str:
    _msd(src)
    (src / "Task03_Liver" / "dataset.json").write_text(json.dumps({"labels": {"0": "bg", "1": "vessel",
                                                                              "2": "tumour"}}))
    return r"dataset\.json: labels .* are not 1 liver, 2 cancer"


def _ircad_without_liver(src: Path) -> str:
    _ircad(src)
    for path in (src / "3Dircadb1.2" / "MASKS_DICOM" / "liver").iterdir():
        path.unlink()
    (src / "3Dircadb1.2" / "MASKS_DICOM" / "liver").rmdir()
    return r"3Dircadb1\.2/MASKS_DICOM: no 'liver' mask folder"


def _ircad_zipped(src: Path) -> str:
    folder = src / "3Dircadb1.4"
    folder.mkdir(parents=True)
    (folder / "PATIENT_DICOM.zip").write_bytes(b"PK")
    return r"PATIENT_DICOM\.zip: unzip this archive into PATIENT_DICOM/ first"


def _seg_without_its_series(src: Path) -> str:
    _dicom_seg(src)
    ct = src / "CRLM-CT-1002" / "10-01-2000-NA-CT ABDOMEN" / "2.000000-CT-12345"
    for path in ct.iterdir():
        path.unlink()
    ct.rmdir()
    return r"Segmentation-34567/1-1\.dcm: references CT series [\d.]+, which is not in "


BAD_INPUTS: dict[str, tuple[str, Callable[[Path], str]]] = {
    "lits-no-segmentation": ("lits", _lits_without_segmentation),
    "lits-geometry": ("lits", _lits_geometry_mismatch),
    "msd-no-label": ("msd", _msd_without_label),
    "msd-other-task": ("msd", _msd_other_task),
    "ircad-no-liver": ("ircad", _ircad_without_liver),
    "ircad-zipped": ("ircad", _ircad_zipped),
    "seg-missing-series": ("dicom-seg", _seg_without_its_series),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_dataset_gives_one_line_and_no_output(case, tmp_path, monkeypatch, capsys):
    fmt, make = BAD_INPUTS[case]
    src, out = tmp_path / "src", tmp_path / "cohort"
    src.mkdir()
    pattern = make(src)
    # Found while writing, after the progress lines of the cases before it: those are silenced with -q.
    line = one_error_line(_import(monkeypatch, fmt, src, out, quiet=case == "lits-geometry"), capsys)
    assert re.search(pattern, line), line
    _no_output(out)


@pytest.mark.parametrize("fmt", ["lits", "msd", "ircad", "dicom-seg"])
def test_missing_or_empty_source(fmt, tmp_path, monkeypatch, capsys):
    out = tmp_path / "new" / "cohort"
    line = one_error_line(_import(monkeypatch, fmt, tmp_path / "nowhere", out), capsys)
    assert "nowhere: dataset folder does not exist" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("nothing here")
    line = one_error_line(_import(monkeypatch, fmt, empty, out), capsys)
    assert "empty: no " in line and "found" in line, line
    assert not (tmp_path / "new").exists()


def test_bad_options_and_existing_output(tmp_path, monkeypatch, capsys):
    src, out = tmp_path / "LiTS", tmp_path / "cohort"
    _lits(src)
    assert "--format: unknown format 'nifti'" in one_error_line(_import(monkeypatch, "nifti", src, out), capsys)
    line = one_error_line(_import(monkeypatch, "lits", src, out, "--patient-regex", "lits_("), capsys)
    assert line.startswith("error: --patient-regex: 'lits_(' is not a regular expression"), line
    line = one_error_line(_import(monkeypatch, "lits", src, out, "--patient-regex", "volume"), capsys)
    assert "--patient-regex: 'volume' does not match 'lits_0'" in line
    line = one_error_line(_import(monkeypatch, "dicom-seg", src, out, "--segment-map", "Liver=3"), capsys)
    assert "--segment-map: 'Liver=3' is not REGEX=LABEL" in line
    line = one_error_line(_import(monkeypatch, "lits", src, out, "--segment-map", "Liver=1"), capsys)
    assert "--segment-map: applies to --format dicom-seg only" in line
    for inside in (src, src / "Training Batch 1", src.parent):
        line = one_error_line(_import(monkeypatch, "lits", src, inside, "--overwrite"), capsys)
        assert "the output folder must lie outside the dataset folder" in line, line
    _no_output(out)

    assert _import(monkeypatch, "lits", src, out) == 0
    capsys.readouterr()
    (out / "sentinel.txt").write_text("from before")
    line = one_error_line(_import(monkeypatch, "lits", src, out), capsys)
    assert "output folder exists (use --overwrite to replace it)" in line
    assert (out / "sentinel.txt").exists()
    assert _import(monkeypatch, "lits", src, out, "--overwrite") == 0
    assert not (out / "sentinel.txt").exists() and (out / "labels" / "lits_12.nii.gz").exists()  # replaced whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_msd_patient_regex_joining_train_and_test_is_refused(tmp_path, monkeypatch, capsys):
    src, out = tmp_path / "data", tmp_path / "cohort"
    _msd(src)
    line = one_error_line(_import(monkeypatch, "msd", src, out, "--patient-regex", "liver"), capsys)
    assert "imagesTs/liver_7.nii.gz: patient 'liver' (patient regex 'liver') is in split 'test'" in line, line
    _no_output(out)


def _import_killed_at_second_case(src: str, out: str) -> None:
    """Child process: import LiTS but SIGKILL itself when the second case is about to be written."""
    from livermets.cohort.importers import common, import_dataset

    write_case = common._write_case
    written: list[str] = []

    def write_then_die(case, folder):
        if written:
            os.kill(os.getpid(), signal.SIGKILL)
        written.append(case.series_id)
        return write_case(case, folder)

    common._write_case = write_then_die
    import_dataset(src, out, "lits")


def test_killed_import_leaves_no_output_and_the_next_run_cleans_up(tmp_path, monkeypatch, capsys):
    src, out = tmp_path / "LiTS", tmp_path / "cohort"
    expected = _lits(src)
    child = multiprocessing.get_context("fork").Process(target=_import_killed_at_second_case, args=(str(src), str(out)))
    child.start()
    child.join(timeout=120)
    if child.is_alive():
        child.kill()
    assert child.exitcode == -signal.SIGKILL
    assert not out.exists()
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".cohort.partial-")]
    assert len(partial) == 1 and (partial[0] / "images" / "lits_0.nii.gz").is_file()  # killed mid-import
    assert _import(monkeypatch, "lits", src, out) == 0, capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    _check_cohort(monkeypatch, capsys, out, expected)
