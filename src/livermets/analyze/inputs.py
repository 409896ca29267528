"""The CT given to ``analyze``: read once, checked, described without patient identifiers unless asked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import SimpleITK as sitk

from livermets.errors import UserInputError
from livermets.imaging import dicom
from livermets.imaging.geometry import header_mm
from livermets.imaging.integrity import check_headers
from livermets.imaging.io import image_info, read_image

IDENTIFIER_TAGS = {"patient_name": "PatientName", "patient_id": "PatientID", "study_date": "StudyDate",
                   "accession_number": "AccessionNumber"}


@dataclass
class ScanInput:
    """A CT read for analysis: the image, where it came from and its JSON-ready description."""

    path: Path
    series_id: str
    image: sitk.Image
    dicom_series: dicom.DicomSeries | None
    info: dict[str, Any]

    @property
    def is_dicom(self) -> bool:
        return self.dicom_series is not None


def _format(path: Path) -> str:
    if path.is_dir():
        return "dicom"
    name = path.name.lower()
    for suffix, kind in ((".nii.gz", "nifti"), (".nii", "nifti"), (".nrrd", "nrrd"), (".nhdr", "nrrd"),
                         (".mha", "mha"), (".mhd", "mha")):
        if name.endswith(suffix):
            return kind
    raise UserInputError(f"{path}: not a CT file (.nii.gz, .nii, .nrrd, .mha) or a DICOM series folder")


def _check_dicom_modality(series: dicom.DicomSeries, folder: Path) -> None:
    header = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    modality = str(getattr(header, "Modality", "") or "")
    if modality and modality.upper() != "CT":
        raise UserInputError(f"{folder}: the DICOM series is {modality}, not CT")


def _identifiers(series: dicom.DicomSeries) -> dict[str, str | None]:
    header = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    return {key: (str(header.get(tag)) if header.get(tag) not in (None, "") else None)
            for key, tag in IDENTIFIER_TAGS.items()}


def _thickness(value: Any) -> float | str | None:
    """DICOM SliceThickness in mm to its header's precision (kept as given when it is not a number)."""
    try:
        return header_mm(value)
    except ValueError:
        return str(value)


def check_ct_path(path: str | Path, series_uid: str | None = None) -> None:
    """The cheap checks of :func:`read_scan`, before any model loads: the path exists, is a CT file format (its
    header readable) or a folder holding a DICOM series (``series_uid`` among them when given).

    Raises
    ------
    UserInputError
        One line naming the path.
    """
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"{p}: file or folder does not exist")
    _format(p)
    if p.is_dir():
        if series_uid is None and not dicom.list_series(p):
            raise UserInputError(f"{p}: no DICOM series found in this folder")
        if series_uid is not None:
            dicom.choose_series(p, series_uid)
    else:
        check_headers(p)


def read_scan(path: str | Path, series_uid: str | None = None, show_identifiers: bool = False,
              series_id: str | None = None) -> ScanInput:
    """Read and check a CT file or DICOM series folder.

    Parameters
    ----------
    path
        NIfTI/NRRD/MHA file or DICOM series folder.
    series_uid
        For a folder with several series: the one to read (default: the one with most slices).
    show_identifiers
        Put the DICOM patient name, id, study date and accession number into ``info["identifiers"]``.
    series_id
        Name of the scan in the outputs (default: the file name without suffix, or the folder name).

    Raises
    ------
    UserInputError
        Missing or unreadable input, a folder without DICOM, a DICOM series of another modality, or intensities
        that are not Hounsfield units (one line naming the input).
    """
    from livermets.segmentation.checks import check_ct_intensities  # pandas, scipy: after the path checks
    from livermets.segmentation.predict import series_id_from_path

    p = Path(path)
    check_ct_path(p, series_uid)
    kind = _format(p)
    series = dicom.choose_series(p, series_uid) if p.is_dir() else None
    if series is not None:
        _check_dicom_modality(series, p)
    image = dicom.read_series(series) if series is not None else read_image(p, series_uid)
    check_ct_intensities(image, str(p))
    info: dict[str, Any] = {"path": str(p), "format": kind}
    described: dict[str, Any] = image_info(image)
    info.update({key: described.get(key) for key in ("size", "direction")})
    info.update({key: [header_mm(v) for v in described[key]] for key in ("spacing", "origin")})
    info.update({"modality": described.get("modality"), "series_description": described.get("series_description"),
                 "slice_thickness": _thickness(described.get("slice_thickness")),
                 "n_dicom_files": series.n_slices if series is not None else None,
                 "hu_min": described["min"], "hu_max": described["max"],
                 "identifiers": _identifiers(series) if (series is not None and show_identifiers) else None})
    return ScanInput(p, series_id or series_id_from_path(p), image, series, info)
