"""Integrity checks of the image reader: truncated or corrupted files and broken DICOM series fail with one line.

Every broken input is read through ``io.read_image`` and through ``livermets imaging info`` (exit code 2, one line
starting with ``error:`` that names the file or folder); intact files read as before, voxel for voxel.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from livermets import cli
from livermets.errors import UserInputError
from livermets.imaging import dicom, integrity, io

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def cli_error(path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``livermets imaging info PATH``; assert exit code 2 and one ``error:`` line naming PATH; return it."""
    monkeypatch.setattr(sys, "argv", ["livermets", "imaging", "info", str(path)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert exited.value.code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert str(path) in lines[0] and "Traceback" not in lines[0]
    return lines[0]


def assert_rejected(path: Path, pattern: str, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    """``read_image`` raises one line naming ``path`` and matching ``pattern``; the CLI says the same, and so do the
    checks alone (``read_image`` runs the stream check of a compressed file alongside SimpleITK's read)."""
    with pytest.raises(UserInputError, match=pattern) as raised:
        io.read_image(path)
    message = str(raised.value)
    assert message.startswith(f"{path}") and "\n" not in message
    if path.is_file():
        with pytest.raises(UserInputError) as alone:
            integrity.check_image_file(path)
        assert str(alone.value) == message
    assert cli_error(path, monkeypatch, capsys) == f"error: {message}"


@pytest.fixture()
def real_ct(shared_data: Callable[..., Path]) -> Path:
    return shared_data("totalsegmentator", "example_ct.nii.gz")


# --- gzip and NIfTI -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [500, "half", -1])
def test_truncated_gzip_is_rejected(real_ct: Path, tmp_path: Path, cut: int | str, monkeypatch, capsys):
    data = real_ct.read_bytes()
    n = len(data) // 2 if cut == "half" else int(cut) % len(data)
    broken = tmp_path / "ct.nii.gz"
    broken.write_bytes(data[:n])
    sitk.ReadImage(str(broken))  # what the check is for: SimpleITK alone reads the truncated file without complaint
    assert_rejected(broken, rf"truncated: the gzip stream ends after {n:,} bytes of compressed data \(the file was "
                            r"cut short, or is corrupted\)$", monkeypatch, capsys)


@pytest.mark.parametrize("from_end", [6, 20, 2000])
def test_a_flipped_byte_near_the_end_of_the_gzip_stream_is_rejected(real_ct: Path, tmp_path: Path, from_end: int,
                                                                   monkeypatch, capsys):
    data = bytearray(real_ct.read_bytes())
    data[-from_end] ^= 0xFF  # 6: in the CRC-32 field; 20 and 2000: in the compressed data
    broken = tmp_path / "ct.nii.gz"
    broken.write_bytes(bytes(data))
    if from_end == 6:
        sitk.ReadImage(str(broken))  # SimpleITK does not check the CRC
    # A changed CRC fails the checksum; changed compressed data fail it too, or break the stream's structure.
    assert_rejected(broken, r"corrupted: (the decompressed data fail the stream's CRC-32 check|invalid gzip data)"
                            r"|is corrupted\)$", monkeypatch, capsys)


def _plain_nifti(real_ct: Path, tmp_path: Path) -> bytes:
    return gzip.decompress(real_ct.read_bytes())


def test_nifti_with_its_voxel_data_cut_is_rejected(real_ct: Path, tmp_path: Path, monkeypatch, capsys):
    data = _plain_nifti(real_ct, tmp_path)
    assert len(data) == 352 + 122 * 101 * 112 * 4  # int32 CT, header and extension flag: nothing else
    broken = tmp_path / "ct.nii"
    broken.write_bytes(data[: len(data) // 2])
    assert_rejected(broken, rf"truncated: the header needs {len(data):,} bytes \(352 of header, "
                            rf"{len(data) - 352:,} of voxel data\), the file holds {len(data) // 2:,}$",
                    monkeypatch, capsys)


def test_valid_gzip_of_a_cut_nifti_is_rejected(real_ct: Path, tmp_path: Path, monkeypatch, capsys):
    data = _plain_nifti(real_ct, tmp_path)
    broken = tmp_path / "ct.nii.gz"
    broken.write_bytes(gzip.compress(data[:-4096]))  # a complete gzip stream of an incomplete file
    assert_rejected(broken, rf"truncated: the header needs {len(data):,} bytes .* the decompressed data hold "
                            rf"{len(data) - 4096:,}$", monkeypatch, capsys)


def test_file_that_is_not_nifti_is_rejected(tmp_path: Path, monkeypatch, capsys):
    broken = tmp_path / "ct.nii"
    broken.write_bytes(b"\x00" * 1000)
    assert_rejected(broken, "cannot read image: not a NIfTI file", monkeypatch, capsys)
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)  # gzip magic, then no gzip stream
    assert_rejected(garbage, r"corrupted: invalid gzip data|not gzip data", monkeypatch, capsys)


def test_intact_real_ct_reads_as_with_plain_simpleitk(real_ct: Path, tmp_path: Path, monkeypatch, capsys):
    expected = sitk.ReadImage(str(real_ct))
    image = io.read_image(real_ct)
    assert image.GetSize() == expected.GetSize() == (122, 101, 112)
    assert image.GetSpacing() == expected.GetSpacing() and image.GetOrigin() == expected.GetOrigin()
    assert image.GetDirection() == expected.GetDirection()
    assert np.array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(expected))
    monkeypatch.setattr(sys, "argv", ["livermets", "imaging", "info", str(real_ct)])
    try:
        cli.main()
    except SystemExit as exited:  # click may or may not exit explicitly on success
        assert exited.code in (0, None)
    assert json.loads(capsys.readouterr().out)["size"] == [122, 101, 112]


def test_uncompressed_and_multi_member_nii_gz_still_read(real_ct: Path, tmp_path: Path):
    data = _plain_nifti(real_ct, tmp_path)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(real_ct)))
    plain = tmp_path / "plain.nii.gz"
    plain.write_bytes(data)  # not compressed despite its name: SimpleITK reads it, so does read_image
    members = tmp_path / "members.nii.gz"
    members.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))  # two concatenated gzip members
    for path in (plain, members):
        assert np.array_equal(sitk.GetArrayViewFromImage(io.read_image(path)), expected)


def test_nii_gz_with_a_nii_beside_it_is_refused(tmp_path: Path, monkeypatch, capsys):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 5, 6), np.int16)), str(tmp_path / "ct.nii"))
    assert sitk.GetArrayViewFromImage(sitk.ReadImage(str(tmp_path / "ct.nii.gz"))).max() == 1  # the .nii's voxels
    assert_rejected(tmp_path / "ct.nii.gz", "ct.nii lies beside it, and SimpleITK's NIfTI reader would read that file "
                                            "instead", monkeypatch, capsys)
    assert sitk.GetArrayViewFromImage(io.read_image(tmp_path / "ct.nii")).max() == 1


# --- NRRD and MetaImage ---------------------------------------------------------------------------------------------


def _small_image() -> sitk.Image:
    rng = np.random.default_rng(1)
    image = sitk.GetImageFromArray(rng.integers(-1000, 1000, size=(9, 10, 11)).astype(np.int16))
    image.SetSpacing((0.8, 0.8, 2.5))
    return image


def _write(tmp_path: Path, name: str, compress: bool) -> Path:
    path = tmp_path / name
    sitk.WriteImage(_small_image(), str(path), useCompression=compress)
    return path


@pytest.mark.parametrize("name", ["ct.nrrd", "ct.mha"])
def test_attached_raw_data_cut_short_is_rejected(tmp_path: Path, name: str, monkeypatch, capsys):
    path = _write(tmp_path, name, compress=False)
    data = path.read_bytes()
    header = len(data) - 9 * 10 * 11 * 2
    path.write_bytes(data[:-100])
    assert_rejected(path, rf"truncated: the header needs 1,980 bytes of voxel data, the file holds "
                          rf"{len(data) - 100 - header:,}$", monkeypatch, capsys)


@pytest.mark.parametrize("name", ["ct.nrrd", "ct.mha"])
def test_attached_compressed_data_cut_short_is_rejected(tmp_path: Path, name: str, monkeypatch, capsys):
    path = _write(tmp_path, name, compress=True)
    path.write_bytes(path.read_bytes()[:-30])
    kind = "gzip" if name.endswith(".nrrd") else "zlib"
    assert_rejected(path, rf"truncated: the {kind} stream ends after", monkeypatch, capsys)


@pytest.mark.parametrize(("name", "data_name"), [("ct.nhdr", "ct.raw"), ("ct.mhd", "ct.raw"),
                                                 ("ct.nhdr", "ct.raw.gz"), ("ct.mhd", "ct.zraw")])
def test_detached_data_file_short_or_missing_is_rejected(tmp_path: Path, name: str, data_name: str, monkeypatch,
                                                         capsys):
    path = _write(tmp_path, name, compress=not data_name.endswith(".raw"))
    data_file = tmp_path / data_name
    assert data_file.exists()
    data_file.write_bytes(data_file.read_bytes()[:-50])
    pattern = rf" \(data file {data_name}\): truncated: the (gzip|zlib) stream ends" if data_name != "ct.raw" else (
        ": truncated: the header needs 1,980 bytes of voxel data, its data file ct.raw holds 1,930$")
    assert_rejected(path, pattern, monkeypatch, capsys)
    data_file.unlink()
    assert_rejected(path, f"the data file {data_name} named in its header does not exist", monkeypatch, capsys)


@pytest.mark.parametrize("name", ["ct.nrrd", "ct.mha", "ct.nhdr", "ct.mhd"])
@pytest.mark.parametrize("compress", [False, True])
def test_intact_nrrd_and_metaimage_read_unchanged(tmp_path: Path, name: str, compress: bool):
    path = _write(tmp_path, name, compress)
    assert np.array_equal(sitk.GetArrayViewFromImage(io.read_image(path)),
                          sitk.GetArrayViewFromImage(_small_image()))


# --- DICOM series ---------------------------------------------------------------------------------------------------


def write_series(folder: Path, positions: Sequence[float], orientations: Sequence[tuple[float, ...]] | None = None,
                 spacing: float = 0.7) -> list[Path]:
    """One 12 x 16 CT slice per position (mm along z), written by SimpleITK with the geometry tags set."""
    folder.mkdir(parents=True, exist_ok=True)
    series, study = generate_uid(), generate_uid()
    rng = np.random.default_rng(2)
    paths = []
    for i, z in enumerate(positions):
        image = sitk.GetImageFromArray(rng.integers(-100, 100, (12, 16)).astype(np.int16))
        orientation = AXIAL if orientations is None else orientations[i]
        tags = {"0008|0060": "CT", "0008|0016": "1.2.840.10008.5.1.4.1.1.2", "0008|0018": generate_uid(),
                "0020|000d": study, "0020|000e": series, "0020|0013": str(i + 1),
                "0020|0032": f"-10\\-20\\{z}", "0020|0037": "\\".join(f"{v:g}" for v in orientation),
                "0028|0030": f"{spacing}\\{spacing}"}
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        paths.append(folder / f"slice{i:02d}.dcm")
        writer.SetFileName(str(paths[-1]))
        writer.Execute(image)
    return paths


def test_synthetic_series_reads_with_its_spacing(tmp_path: Path):
    write_series(tmp_path / "dicom", [0.0, 2.0, 4.0, 6.0, 8.0])
    image = io.read_image(tmp_path / "dicom")
    assert image.GetSize() == (16, 12, 5) and image.GetSpacing()[2] == pytest.approx(2.0)


def test_series_with_a_slice_removed_is_rejected(tmp_path: Path, monkeypatch, capsys):
    folder = tmp_path / "dicom"
    write_series(folder, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0])[3].unlink()
    assert_rejected(folder, r"slice positions jump from 4\.0 to 8\.0 mm \(step 2\.0 mm elsewhere\): a slice is "
                            "missing$", monkeypatch, capsys)


def test_series_with_a_duplicated_slice_is_rejected(tmp_path: Path, monkeypatch, capsys):
    folder = tmp_path / "dicom"
    paths = write_series(folder, [0.0, 2.0, 4.0, 6.0, 8.0])
    shutil.copy(paths[2], folder / "copy_of_slice02.dcm")
    assert_rejected(folder, r"(copy_of_slice02\.dcm and slice02\.dcm|slice02\.dcm and copy_of_slice02\.dcm) lie at "
                            r"the same slice position 4\.0 mm", monkeypatch, capsys)


def test_series_of_two_acquisitions_at_the_same_positions_is_rejected(tmp_path: Path, monkeypatch, capsys):
    folder = tmp_path / "dicom"
    write_series(folder, [0.0, 2.0, 4.0, 0.0, 2.0, 4.0])  # one series UID, each position twice
    assert_rejected(folder, r"lie at the same slice position 0\.0 mm: a duplicated slice, or two acquisitions",
                    monkeypatch, capsys)


def test_series_with_an_uneven_step_is_rejected(tmp_path: Path, monkeypatch, capsys):
    folder = tmp_path / "dicom"
    write_series(folder, [0.0, 2.0, 4.0, 6.5, 8.5, 10.5])
    assert_rejected(folder, r"inconsistent slice spacing: step 2\.5 mm between positions 4\.0 and 6\.5 mm, 2\.0 mm "
                            r"elsewhere \(tolerance 0\.02 mm\)$", monkeypatch, capsys)


def test_small_position_jitter_is_accepted(tmp_path: Path):
    write_series(tmp_path / "dicom", [0.0, 2.0, 4.004, 6.0, 8.0])  # 0.004 mm off: within 1 % of the step
    assert io.read_image(tmp_path / "dicom").GetSize()[2] == 5


def test_series_with_mixed_orientation_is_rejected(tmp_path: Path, monkeypatch, capsys):
    folder = tmp_path / "dicom"
    tilted = (1.0, 0.0, 0.0, 0.0, 0.9848078, -0.1736482)  # 10 degrees about x
    write_series(folder, [0.0, 2.0, 4.0, 6.0], orientations=[AXIAL, AXIAL, tilted, AXIAL])
    assert_rejected(folder, r"slices differ in image orientation: slice\d\d\.dcm has \(.*\), slice\d\d\.dcm has",
                    monkeypatch, capsys)


def test_series_with_a_file_that_is_not_dicom_is_rejected(tmp_path: Path):
    paths = write_series(tmp_path / "dicom", [0.0, 2.0, 4.0])
    paths[1].write_bytes(b"\x00" * 10)  # GDCM would no longer list it; a stale file list would
    with pytest.raises(UserInputError, match=rf"{paths[1]}: cannot read DICOM file"):
        dicom.read_series(dicom.DicomSeries("1.2.3", tuple(str(p) for p in paths)))


def test_single_slice_series_has_no_step_checks(tmp_path: Path):
    paths = write_series(tmp_path / "dicom", [5.0])
    integrity.check_series(paths)
    assert io.read_image(tmp_path / "dicom").GetSize() == (16, 12, 1)


def test_real_dicom_series_reads_as_with_plain_simpleitk(shared_data: Callable[..., Path]):
    folder = shared_data("totalsegmentator", "example_ct_dicom")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    expected = reader.Execute()
    image = io.read_image(folder)
    assert image.GetSize() == expected.GetSize() == (512, 512, 20)
    assert image.GetSpacing() == expected.GetSpacing() and image.GetOrigin() == expected.GetOrigin()
    assert np.array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(expected))
