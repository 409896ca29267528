"""One region of interest → one PyRadiomics feature vector, computed on a crop around the ROI.

PyRadiomics resamples the *whole* input image with a cubic B-spline (``sitkBSpline``) even though it keeps only the
ROI's bounding box afterwards: ITK's B-spline interpolator first computes spline coefficients over the entire image
(a float64 copy of the scan plus a recursive filter along every line). For a 512×512×700 scan with one small lesion
that dominates the cost. :func:`extract_roi` therefore crops the *image* to the ROI's bounding box plus a margin
before calling PyRadiomics, and passes the *full-size* mask:

* PyRadiomics computes its resampling grid from the mask only (grid aligned at the mask's index origin, bounding
  box plus ``padDistance``), and SimpleITK resamples in physical space, so the output grid is exactly the grid of an
  uncropped run;
* the margin (:func:`crop_margin`) covers ``padDistance``, the B-spline support (2 voxels) and
  :data:`SPLINE_DECAY_VOXELS` more voxels in which the influence of the crop's border on the spline coefficients
  decays below double precision (it falls as 0.268 per voxel for a cubic spline, 0.268**40 ≈ 1e-23).

The cropped run is bit-for-bit identical to the uncropped run whenever the resampled grid points do not coincide
with input voxel centres (tested). When they do coincide exactly (integer spacing ratios such as 3 mm → 1 mm) and the
image has an integer pixel type, ITK truncates interpolated values that equal an integer up to the last bit, so a
last-bit difference in the coordinate arithmetic of the cropped image can move a voxel by 1 HU; pass ``crop=False``
for an exact reproduction of an uncropped run in that case.

The seven ``diagnostics_Image-original_*`` entries describe the image PyRadiomics was given; after a cropped run
they are recomputed on the full image (hash, size, spacing, mean, minimum, maximum, as PyRadiomics defines them) so
that the row is the same as for an uncropped run.

Examples
--------
>>> import numpy as np, SimpleITK as sitk
>>> rng = np.random.default_rng(0)
>>> image = sitk.GetImageFromArray(rng.integers(0, 100, (20, 30, 30)).astype(np.int16))
>>> image.SetSpacing((0.8, 0.8, 2.5))
>>> roi = np.zeros((20, 30, 30), np.uint8); roi[8:12, 10:16, 10:18] = 1
>>> mask = sitk.GetImageFromArray(roi); mask.CopyInformation(image)
>>> features = extract_roi(image, mask, make_extractor())
>>> len([k for k in features if k.startswith("original_")])
107
"""

from __future__ import annotations

import functools
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from livermets.errors import UserInputError

log = logging.getLogger(__name__)

PARAMS_DIR = Path(__file__).resolve().parent / "params"
PAPER_PARAMS = PARAMS_DIR / "paper.yaml"
"""The paper's PyRadiomics settings (1 mm B-spline resampling, bin width 25, Original image, 7 classes)."""
IBSI_PHANTOM_PARAMS = PARAMS_DIR / "ibsi_phantom.yaml"
"""IBSI 1 digital-phantom settings (no resampling, grey levels used as they are)."""

SPLINE_SUPPORT_VOXELS = 2
"""A cubic B-spline sample reads the 4 input voxels around it: up to 2 voxels beyond the sampled position."""
SPLINE_DECAY_VOXELS = 40
"""Extra margin over which a crop border's effect on the B-spline coefficients decays below double precision."""

IMAGE_ORIGINAL_KEYS = (
    "diagnostics_Image-original_Hash",
    "diagnostics_Image-original_Dimensionality",
    "diagnostics_Image-original_Spacing",
    "diagnostics_Image-original_Size",
    "diagnostics_Image-original_Mean",
    "diagnostics_Image-original_Minimum",
    "diagnostics_Image-original_Maximum",
)


def quiet_pyradiomics() -> None:
    """Silence PyRadiomics' routine messages: only its errors reach the log.

    PyRadiomics logs every step at INFO and warns on *every* extraction with all GLCM features enabled ("GLCM is
    symmetrical, therefore Sum Average = 2 * Joint Average"), which would print one line per series; real problems
    surface as exceptions, which the cohort runner records per series.
    """
    import radiomics

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    logging.getLogger("pykwalify").setLevel(logging.WARNING)  # logs "validation.valid" at INFO per parameter file


def resolve_params(params: str | os.PathLike[str] | None) -> Path:
    """Return the parameter file to use: ``params`` if given (must exist), else :data:`PAPER_PARAMS`."""
    if params is None:
        return PAPER_PARAMS
    path = Path(params)
    if not path.is_file():
        raise UserInputError(f"--params: PyRadiomics parameter file not found: {path}")
    return path


@functools.lru_cache(maxsize=8)
def _cached_extractor(path: str, mtime: float) -> Any:
    from radiomics import featureextractor

    quiet_pyradiomics()
    try:
        return featureextractor.RadiomicsFeatureExtractor(path)
    except Exception as exc:  # pykwalify/yaml raise many types; all mean "bad parameter file"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"{path}: not a valid PyRadiomics parameter file ({first[:200]})") from None


def make_extractor(params: str | os.PathLike[str] | None = None) -> Any:
    """A configured :class:`radiomics.featureextractor.RadiomicsFeatureExtractor` (cached per process and file).

    Parameters
    ----------
    params
        PyRadiomics parameter YAML; default :data:`PAPER_PARAMS`.

    Raises
    ------
    UserInputError
        Missing file, or a file PyRadiomics rejects (its validation message is quoted).
    """
    path = resolve_params(params)
    return _cached_extractor(str(path.resolve()), path.stat().st_mtime)


def mask_bounding_box(mask_zyx: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """Bounding box of the non-zero voxels as ``(start_xyz, stop_xyz)`` (stop exclusive); ``None`` if empty.

    Uses three axis projections instead of ``np.nonzero`` so that a large mask costs one boolean pass.
    """
    if not mask_zyx.any():
        return None
    starts: list[int] = []
    stops: list[int] = []
    for axis in (2, 1, 0):  # x, y, z
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask_zyx.any(axis=other))
        starts.append(int(hit[0]))
        stops.append(int(hit[-1]) + 1)
    return (starts[0], starts[1], starts[2]), (stops[0], stops[1], stops[2])


def crop_margin(spacing_xyz: tuple[float, ...], settings: dict[str, Any]) -> tuple[int, int, int]:
    """Voxels to keep around the ROI's bounding box so that cropping changes no feature (see module docstring).

    Without resampling PyRadiomics needs no voxel outside the ROI, so the margin is 1 voxel.
    """
    resampled = settings.get("resampledPixelSpacing")
    if resampled is None or settings.get("interpolator") is None:
        return (1, 1, 1)
    pad = float(settings.get("padDistance", 5))
    margin = []
    for old, new in zip(spacing_xyz, resampled, strict=True):
        new = float(new) if float(new) > 0 else float(old)
        # padDistance counts output voxels; +1 for PyRadiomics' floor/ceil rounding of the grid bounds.
        reach = math.ceil((pad + 1.0) * new / float(old))
        margin.append(reach + SPLINE_SUPPORT_VOXELS + SPLINE_DECAY_VOXELS)
    return (margin[0], margin[1], margin[2])


def crop_box(
    size_xyz: tuple[int, ...],
    box: tuple[tuple[int, int, int], tuple[int, int, int]],
    margin_xyz: tuple[int, int, int],
) -> tuple[list[int], list[int]]:
    """``(index_xyz, size_xyz)`` of the bounding box grown by the margin and clipped to the image."""
    start, stop = box
    index = [max(0, s - m) for s, m in zip(start, margin_xyz, strict=True)]
    end = [min(n, e + m) for e, m, n in zip(stop, margin_xyz, size_xyz, strict=True)]
    return index, [e - i for i, e in zip(index, end, strict=True)]


def image_diagnostics(image: sitk.Image) -> dict[str, Any]:
    """PyRadiomics' ``diagnostics_Image-original_*`` entries of ``image`` (as ``GeneralInfo.addImageElements``).

    Mean, minimum and maximum come from ``sitk.StatisticsImageFilter`` instead of a float64 copy of the scan.
    """
    stats = sitk.StatisticsImageFilter()
    stats.Execute(image)
    return {
        "diagnostics_Image-original_Hash": sitk.Hash(image),
        "diagnostics_Image-original_Dimensionality": f"{image.GetDimension()}D",
        "diagnostics_Image-original_Spacing": image.GetSpacing(),
        "diagnostics_Image-original_Size": image.GetSize(),
        "diagnostics_Image-original_Mean": np.float64(stats.GetMean()),
        "diagnostics_Image-original_Minimum": np.float64(stats.GetMinimum()),
        "diagnostics_Image-original_Maximum": np.float64(stats.GetMaximum()),
    }


def extract_roi(
    image: sitk.Image,
    mask: sitk.Image,
    extractor: Any,
    *,
    crop: bool = True,
    label: int = 1,
) -> dict[str, Any]:
    """PyRadiomics features of the voxels of ``mask == label``, computed on a crop of ``image`` around them.

    Parameters
    ----------
    image
        CT volume.
    mask
        Mask on the same grid as ``image`` (checked by the caller); the ROI is ``mask == label``.
    extractor
        From :func:`make_extractor`.
    crop
        Crop before PyRadiomics (default). ``False`` passes the full image, exactly as a direct PyRadiomics call.
    label
        ROI value in ``mask``.

    Returns
    -------
    dict
        PyRadiomics' ordered result: ``diagnostics_*`` entries (when ``additionalInfo`` is on) then
        ``original_<class>_<feature>`` values as Python floats.

    Raises
    ------
    ValueError
        PyRadiomics' own message for an ROI it cannot use (e.g. a single voxel, or an empty mask).
    """
    settings = extractor.settings
    if not crop:
        result = extractor.execute(image, mask, label=label)
        return _floats(result)
    box = mask_bounding_box(sitk.GetArrayViewFromImage(mask) == label)
    if box is None:
        raise ValueError(f"label {label} not present in mask")
    index, size = crop_box(image.GetSize(), box, crop_margin(image.GetSpacing(), settings))
    cropped_image = sitk.RegionOfInterest(image, size, index)
    resampling = settings.get("resampledPixelSpacing") is not None and settings.get("interpolator") is not None
    if resampling:
        # The full mask keeps PyRadiomics' grid (aligned at the mask's index origin) identical to an uncropped run.
        result = extractor.execute(cropped_image, mask, label=label)
    else:
        cropped_mask = sitk.RegionOfInterest(mask, size, index)
        result = extractor.execute(cropped_image, cropped_mask, label=label)
        if "diagnostics_Mask-original_Hash" in result:
            result.update(_mask_diagnostics(mask, label))
    if "diagnostics_Image-original_Hash" in result:
        result.update(image_diagnostics(image))
    return _floats(result)


def _mask_diagnostics(mask: sitk.Image, label: int) -> dict[str, Any]:
    from radiomics import generalinfo

    info = generalinfo.GeneralInfo()
    info.addMaskElements(None, sitk.Cast(mask, sitk.sitkUInt32), label)
    return {k: v for k, v in info.getGeneralInfo().items() if k.startswith("diagnostics_Mask-original_")}


def _floats(result: dict[str, Any]) -> dict[str, Any]:
    # PyRadiomics returns 0-d numpy arrays for features; plain floats keep CSV and pickling simple.
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key.startswith("diagnostics_"):
            out[key] = value
        else:
            out[key] = float(value)
    return out
