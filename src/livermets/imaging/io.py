"""Read CT images and label maps, write them back with identical geometry.

Volumes are SimpleITK images; arrays taken from them are in SimpleITK's (z, y, x) order and spacing tuples in
(x, y, z) order. CT values are Hounsfield units (DICOM rescale is applied by SimpleITK on reading).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from livermets.atomic import atomic_path
from livermets.errors import ParameterError, UserInputError
from livermets.imaging import dicom, integrity

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
LITS_LABELS = (0, 1, 2)  # background, liver, lesion
PREDICTION_SUFFIX = "_seg.nii.gz"
"""Predicted label maps are ``<series_id>_seg.nii.gz`` in their folder (never mistaken for the CT they come from)."""


def prediction_path(folder: str | os.PathLike[str], series_id: str) -> Path:
    """Where a folder of predictions holds the label map of ``series_id``: ``folder/<series_id>_seg.nii.gz``."""
    return Path(folder) / f"{series_id}{PREDICTION_SUFFIX}"


def _has_image_suffix(path: Path) -> bool:
    return any(path.name.lower().endswith(s) for s in IMAGE_SUFFIXES)


def read_image(path: str | Path, series_uid: str | None = None) -> sitk.Image:
    """Read a CT volume from a NIfTI/NRRD/MHA file or a DICOM series folder.

    Parameters
    ----------
    path
        Image file, or a folder of DICOM files.
    series_uid
        For a folder holding several series: the SeriesInstanceUID to read (default: the one with most slices).

    Returns
    -------
    SimpleITK.Image
        3D image with the file's exact spacing, origin and direction.

    Raises
    ------
    UserInputError
        Missing, unreadable, truncated, corrupted or non-3D input, a folder without DICOM, or a DICOM series with a
        missing, duplicated or unevenly spaced slice (see :mod:`livermets.imaging.integrity`).

    Examples
    --------
    >>> img = read_image("ct.nii.gz")  # doctest: +SKIP
    >>> img.GetSpacing()  # doctest: +SKIP
    (0.78, 0.78, 5.0)
    """
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"{p}: file or folder does not exist")
    if p.is_dir():
        image = dicom.read_series(dicom.choose_series(p, series_uid))
    else:
        if series_uid is not None:
            raise ParameterError("{path}: {series_uid} applies to DICOM folders only", path=p)
        pending = integrity.check_headers(p)
        image = _read_file(p) if pending is None else _read_alongside(p, pending)
    if image.GetDimension() != 3:
        raise UserInputError(f"{p}: expected a 3D volume, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UserInputError(f"{p}: expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components")
    return image


def _read_file(path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise UserInputError(f"{path}: cannot read image ({first[:200]})") from None


def _read_alongside(path: Path, pending: integrity.StreamCheck) -> sitk.Image:
    """Read ``path`` while a second thread checks its compressed stream (both release the GIL while decompressing).

    With a free core the check adds little wall time (its CPU time stays). A problem found by the check is raised
    in preference to SimpleITK's own error, which says less.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="livermets-integrity") as pool:
        checked = pool.submit(pending.run)
        try:
            image = _read_file(path)
        except UserInputError:
            checked.result()
            raise
        checked.result()
    return image


def read_label(path: str | Path, allowed: Iterable[int] | None = LITS_LABELS) -> sitk.Image:
    """Read a label map as UInt8, checking that values are integers from ``allowed`` (``None``: any 0..255).

    Raises
    ------
    UserInputError
        Non-integer values, or values outside ``allowed`` (the message lists the offending values).
    """
    image = read_image(path)
    values = _label_values(image)
    if values is None:
        raise UserInputError(f"{path}: label map has non-integer values")
    if allowed is not None:
        unexpected = sorted(set(values) - set(allowed))
        if unexpected:
            raise UserInputError(
                f"{path}: unexpected label values {unexpected[:10]} (allowed: {sorted(allowed)}; "
                "LiTS convention 0 background, 1 liver, 2 lesion)"
            )
    elif min(values) < 0 or max(values) > 255:
        raise UserInputError(f"{path}: label values must lie in 0..255 (found {min(values)}..{max(values)})")
    if image.GetPixelID() != sitk.sitkUInt8:
        image = sitk.Cast(image, sitk.sitkUInt8)
    return image


def _label_values(image: sitk.Image) -> list[int] | None:
    """Distinct values of a label image, or ``None`` if any value is not an integer.

    Integer images in 0..255 are counted with one ``np.bincount`` (several times faster than ``np.unique`` on a
    full CT-sized map); other images fall back to ``np.unique``.
    """
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if 0 <= low and high <= 255:
            counts = np.bincount(array.ravel().astype(np.uint8, copy=False), minlength=256)
            return np.flatnonzero(counts).tolist()
        return np.unique(array).astype(np.int64).tolist()
    values = np.unique(array)
    if not np.all(np.mod(values, 1) == 0):
        return None
    return values.astype(np.int64).tolist()


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``image`` atomically (format from the suffix, e.g. ``.nii.gz``)."""
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return Path(path)


def label_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A UInt8 label image from a (z, y, x) array, with ``reference``'s geometry."""
    expected = tuple(reversed(reference.GetSize()))
    if array.shape != expected:
        raise ValueError(f"label array shape {array.shape} does not match the reference (z, y, x) {expected}")
    label = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.uint8))
    label.CopyInformation(reference)
    return label


def write_label(label: sitk.Image | np.ndarray, path: str | Path, reference: sitk.Image | None = None) -> Path:
    """Write a label map (UInt8) atomically; a numpy ``label`` takes its geometry from ``reference``."""
    if isinstance(label, np.ndarray):
        if reference is None:
            raise ValueError("writing a numpy label map needs a reference image for its geometry")
        image = label_image(label, reference)
    else:
        image = label if label.GetPixelID() == sitk.sitkUInt8 else sitk.Cast(label, sitk.sitkUInt8)
    return write_image(image, path)


def image_info(image: sitk.Image) -> dict[str, object]:
    """JSON-ready description: size, spacing, origin, direction, HU range and DICOM tags when present."""
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    info: dict[str, object] = {
        "size": list(image.GetSize()),
        "spacing": [round(v, 6) for v in image.GetSpacing()],
        "origin": [round(v, 6) for v in image.GetOrigin()],
        "direction": [round(v, 6) for v in image.GetDirection()],
        "pixel_type": image.GetPixelIDTypeAsString(),
        "min": float(stats.GetMinimum()),
        "max": float(stats.GetMaximum()),
    }
    tags = {"0008|0060": "modality", "0008|103e": "series_description", "0020|000e": "series_uid",
            "0018|0050": "slice_thickness"}
    for key, name in tags.items():
        if image.HasMetaDataKey(key):
            info[name] = image.GetMetaData(key)
    return info


def is_image_path(path: str | Path) -> bool:
    """True for a file with a supported image suffix or a folder (DICOM)."""
    p = Path(path)
    return p.is_dir() or _has_image_suffix(p)
