"""DICOM series discovery: list the series in a folder and pick one."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from livermets.errors import UserInputError
from livermets.imaging import integrity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series found in a folder: its SeriesInstanceUID and sorted slice files."""

    uid: str
    files: tuple[str, ...]

    @property
    def n_slices(self) -> int:
        return len(self.files)


def list_series(folder: str | Path) -> list[DicomSeries]:
    """All DICOM series directly inside ``folder``, largest first (GDCM sorts each series' slices by position)."""
    folder = Path(folder)
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # GDCM prints "No Series were found" to stderr; we say it
    try:
        uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    series = [
        DicomSeries(uid, tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))) for uid in uids
    ]
    return sorted(series, key=lambda s: (-s.n_slices, s.uid))


def choose_series(folder: str | Path, series_uid: str | None = None) -> DicomSeries:
    """Pick ``series_uid`` from ``folder``, or the series with most slices (logging the choice when there are several).

    Raises
    ------
    UserInputError
        No DICOM series in the folder, or ``series_uid`` not among them.
    """
    found = list_series(folder)
    if not found:
        raise UserInputError(f"{folder}: no DICOM series found in this folder")
    if series_uid is not None:
        for series in found:
            if series.uid == series_uid:
                return series
        listed = ", ".join(f"{s.uid} ({s.n_slices} slices)" for s in found)
        raise UserInputError(f"{folder}: no series with uid {series_uid}; found {listed}")
    if len(found) > 1:
        listed = "; ".join(f"{s.uid} ({s.n_slices} slices)" for s in found)
        log.warning("%s holds %d series: %s. Using the one with most slices, %s (choose with --series-uid).",
                    folder, len(found), listed, found[0].uid)
    return found[0]


def read_series(series: DicomSeries) -> sitk.Image:
    """Read a DICOM series into one 3D image; SimpleITK applies RescaleSlope/Intercept, so values are HU for CT.

    Raises
    ------
    UserInputError
        A file that cannot be read, slices differing in orientation, pixel spacing or size, or slice positions with
        a gap, a duplicate or uneven steps (checked first, from the headers: see
        :func:`livermets.imaging.integrity.check_series`).
    """
    integrity.check_series(series.files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(series.files))
    reader.MetaDataDictionaryArrayUpdateOn()
    reader.LoadPrivateTagsOff()
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        folder = Path(series.files[0]).parent if series.files else "DICOM series"
        raise UserInputError(f"{folder}: cannot read the DICOM series ({first[:200]})") from None
    # Keep the first slice's descriptive tags on the volume (modality, description) for `imaging info`.
    for key in ("0008|0060", "0008|103e", "0018|0050"):
        if reader.HasMetaDataKey(0, key):
            image.SetMetaData(key, reader.GetMetaData(0, key).strip())
    if series.uid:
        image.SetMetaData("0020|000e", series.uid)
    return image
