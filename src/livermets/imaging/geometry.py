"""Geometry checks between a CT and its label map, and nearest-neighbour resampling of labels."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from livermets.errors import UserInputError

# Header round-off (float32 NIfTI, DICOM text) makes bit-exact comparison too strict; 1e-4 mm and 1e-5 in the
# direction cosines are far below anything that moves a voxel.
SPACING_TOL_MM = 1e-4
ORIGIN_TOL_MM = 1e-3
DIRECTION_TOL = 1e-5


def header_mm(value: float | str | None) -> float | None:
    """A spacing, slice thickness or origin (mm) to the precision its header justifies.

    Image headers store these as 32-bit floats (NIfTI, and DICOM decimal strings written from them), so digits past
    float32 precision are noise: the value becomes the shortest decimal that reads back as the same float32, rounded
    to 0.0001 mm. ``None`` and empty strings give ``None``.

    Examples
    --------
    >>> header_mm(1.6000000238418579), header_mm("1.6000000238418579"), header_mm(0.9765625), header_mm(None)
    (1.6, 1.6, 0.9766, None)
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return round(float(str(np.float32(float(value)))), 4)


def geometry_differences(a: sitk.Image, b: sitk.Image) -> list[str]:
    """Names and values of the geometry properties in which ``a`` and ``b`` differ (empty if they agree)."""
    diffs: list[str] = []
    if a.GetSize() != b.GetSize():
        diffs.append(f"size {a.GetSize()} vs {b.GetSize()}")
    if not np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=0, atol=SPACING_TOL_MM):
        diffs.append(f"spacing {_fmt(a.GetSpacing())} vs {_fmt(b.GetSpacing())}")
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=ORIGIN_TOL_MM):
        diffs.append(f"origin {_fmt(a.GetOrigin())} vs {_fmt(b.GetOrigin())}")
    if not np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=DIRECTION_TOL):
        diffs.append(f"direction {_fmt(a.GetDirection())} vs {_fmt(b.GetDirection())}")
    return diffs


def same_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    """True when size, spacing, origin and direction agree within header round-off."""
    return not geometry_differences(a, b)


def check_same_geometry(
    a: sitk.Image, b: sitk.Image, name_a: str = "image", name_b: str = "label", hint: str = ""
) -> None:
    """Raise :class:`UserInputError` naming both inputs and every differing property if the geometries differ.

    ``hint`` is appended to the message (e.g. the option that resamples, where a command has one).
    """
    diffs = geometry_differences(a, b)
    if diffs:
        suffix = f" ({hint})" if hint else ""
        raise UserInputError(f"geometry mismatch between {name_a} and {name_b}: " + "; ".join(diffs) + suffix)


def resample_label_to(label: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Resample ``label`` onto ``reference``'s grid with nearest-neighbour interpolation (labels stay labels)."""
    return sitk.Resample(label, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, label.GetPixelID())


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def orientation_code(image: sitk.Image) -> str:
    """Three-letter DICOM orientation code of the image axes (e.g. ``LPS``, ``RAS``)."""
    return str(sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection()))


def reorient_like(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Permute/flip ``image``'s axes (no interpolation) so that its orientation matches ``reference``'s.

    A DICOM series read in LPS and a NIfTI written in RAS-like order cover the same voxel centres in a different
    axis order; after this the two share one grid exactly when they describe the same acquisition.
    """
    return sitk.DICOMOrient(image, orientation_code(reference))
