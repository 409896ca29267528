"""One region of interest → one PyRadiomics feature vector, computed on a crop around the ROI.

PyRadiomics resamples the *whole* input image with a cubic B-spline (``sitkBSpline``) even though it keeps only the
ROI's bounding box afterwards: ITK's B-spline interpolator first computes spline coefficients over the entire image
(a float64 copy of the scan plus a recursive filter along every line). For a 512×512×700 scan with one small lesion
that dominates the cost. :func:`extract_roi` therefore crops the *image* to the ROI's bounding box plus a margin
and runs PyRadiomics' own steps (those of ``RadiomicsFeatureExtractor.loadImage``) itself:

* ``imageoperations.resampleImage(cropped_image, full_mask)``: PyRadiomics computes its resampling grid from the mask
  only (aligned at the mask's index origin, bounding box plus ``padDistance``) and SimpleITK resamples in physical
  space, so the output grid is exactly the grid of an uncropped run;
* the margin (:func:`crop_margin`) covers ``padDistance``, the B-spline support (2 voxels) and
  :data:`SPLINE_DECAY_VOXELS` more voxels in which the influence of the crop's border on the spline coefficients
  decays below double precision (it falls as 0.268 per voxel for a cubic spline, 0.268**40 ≈ 1e-23);
* features are then computed by the same extractor without resampling, and the ``diagnostics_*`` entries of the
  original image and mask are computed on the full volumes (same formulas as PyRadiomics' ``GeneralInfo``, SHA-1
  through hashlib, which gives ``sitk.Hash``'s digest about 20x faster).

The cropped run is bit-for-bit identical to the uncropped run (tested) except in one geometry: when the 1 mm grid
has points that fall exactly on input voxel centres along all three axes (odd integer spacing ratios such as
3 mm → 1 mm, or an axis already at 1 mm), interpolated values there equal input values up to the last bit, and a
last-bit difference in the cropped image's coordinate arithmetic can move such a value across an integer (ITK
truncates when casting to the integer pixel type) or a bin edge. :func:`grid_hits_voxel_centres` detects that
geometry and :func:`extract_roi` then runs PyRadiomics on the whole image, so cropping never changes a value.

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

import copy
import functools
import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from livermets.errors import ParameterError, UserInputError
from livermets.featuretable import DIAGNOSTICS_COLUMNS

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

IMAGE_ORIGINAL_KEYS = tuple(c for c in DIAGNOSTICS_COLUMNS if c.startswith("diagnostics_Image-original_"))


def quiet_pyradiomics() -> None:
    """Silence PyRadiomics' routine messages: only its errors reach the log.

    PyRadiomics logs every step at INFO and warns on *every* extraction with all GLCM features enabled ("GLCM is
    symmetrical, therefore Sum Average = 2 * Joint Average"), which would print one line per series; real problems
    surface as exceptions, which the cohort runner records per series.
    """
    import radiomics

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    # pykwalify logs "validation.valid" at INFO per parameter file, and a bad file's errors at ERROR before raising
    # them (the exception becomes the one error line)
    logging.getLogger("pykwalify").setLevel(logging.CRITICAL)


def resolve_params(params: str | os.PathLike[str] | None) -> Path:
    """Return the parameter file to use: ``params`` if given (must exist), else :data:`PAPER_PARAMS`."""
    if params is None:
        return PAPER_PARAMS
    path = Path(params)
    if not path.is_file():
        raise ParameterError("{params}: PyRadiomics parameter file not found: {path}", path=path)
    return path


@functools.lru_cache(maxsize=8)
def _cached_extractor(path: str, mtime: float) -> Any:
    from radiomics import featureextractor

    quiet_pyradiomics()
    try:
        return featureextractor.RadiomicsFeatureExtractor(path)
    except Exception as exc:  # pykwalify/yaml raise many types; all mean "bad parameter file"
        reason = " ".join(str(getattr(exc, "msg", None) or exc).split()) or type(exc).__name__
        raise UserInputError(f"{path}: not a valid PyRadiomics parameter file ({reason[:300]})") from None


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


def grid_hits_voxel_centres(spacing_xyz: tuple[float, ...], settings: dict[str, Any], horizon: int = 4096) -> bool:
    """Whether PyRadiomics' resampling grid has points exactly on input voxel centres along every axis.

    PyRadiomics places output sample ``n`` (0, 1, …, counted from the image corner) at the continuous input index
    ``0.5 * (new - old) / old + n * new / old`` per axis; a hit is an integer index (to 1e-10). Checked for ``n``
    below ``horizon`` output voxels.

    Examples
    --------
    >>> settings = {"resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline"}
    >>> grid_hits_voxel_centres((3.0, 3.0, 3.0), settings), grid_hits_voxel_centres((0.8, 0.8, 2.5), settings)
    (True, False)
    """
    resampled = settings.get("resampledPixelSpacing")
    if resampled is None or settings.get("interpolator") is None:
        return False
    steps = np.arange(horizon, dtype=float)
    for old, new in zip(spacing_xyz, resampled, strict=True):
        new = float(new) if float(new) > 0 else float(old)
        index = 0.5 * (new - old) / old + steps * new / old
        if not np.any(np.abs(index - np.round(index)) < 1e-10):
            return False
    return True


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


def _sha1(image: sitk.Image, dtype: Any = None) -> str:
    # sitk.Hash is the SHA-1 of the pixel buffer; hashlib gives the same digest about 20x faster.
    array = sitk.GetArrayViewFromImage(image)
    if dtype is not None:
        array = array.astype(dtype)
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def image_diagnostics(image: sitk.Image) -> dict[str, Any]:
    """PyRadiomics' ``diagnostics_Image-original_*`` entries of ``image``.

    The same computations as ``radiomics.generalinfo.GeneralInfo.addImageElements`` (mean, minimum and maximum of
    the image as float64), with the SHA-1 digest from hashlib instead of ``sitk.Hash`` (identical, faster).
    """
    values = sitk.GetArrayViewFromImage(image).astype("float")
    return {
        "diagnostics_Image-original_Hash": _sha1(image),
        "diagnostics_Image-original_Dimensionality": f"{image.GetDimension()}D",
        "diagnostics_Image-original_Spacing": image.GetSpacing(),
        "diagnostics_Image-original_Size": image.GetSize(),
        "diagnostics_Image-original_Mean": np.mean(values),
        "diagnostics_Image-original_Minimum": np.min(values),
        "diagnostics_Image-original_Maximum": np.max(values),
    }


def mask_diagnostics(mask: sitk.Image, label: int = 1) -> dict[str, Any]:
    """PyRadiomics' ``diagnostics_Mask-original_*`` entries of ``mask`` (PyRadiomics hashes the UInt32 mask).

    The same computations as ``GeneralInfo.addMaskElements`` for the original mask, with hashlib's SHA-1.
    """
    prefix = "diagnostics_Mask-original_"
    shape_stats = sitk.LabelShapeStatisticsImageFilter()
    shape_stats.Execute(mask)
    label_map = mask == label
    components = sitk.ConnectedComponentImageFilter()
    components.FullyConnectedOn()
    components.Execute(label_map)
    coordinates = np.array(np.where(sitk.GetArrayViewFromImage(label_map) == 1))
    center_index = tuple(np.mean(coordinates, axis=1)[::-1])
    return {
        prefix + "Hash": _sha1(mask, np.uint32),
        prefix + "Spacing": mask.GetSpacing(),
        prefix + "Size": mask.GetSize(),
        prefix + "BoundingBox": shape_stats.GetBoundingBox(label),
        prefix + "VoxelNum": shape_stats.GetNumberOfPixels(label),
        prefix + "VolumeNum": components.GetObjectCount(),
        prefix + "CenterOfMassIndex": center_index,
        prefix + "CenterOfMass": mask.TransformContinuousIndexToPhysicalPoint(center_index),
    }


def _without_resampling(extractor: Any) -> Any:
    """A copy of ``extractor`` that takes already resampled image and mask (same classes, features, settings)."""
    from radiomics import featureextractor

    settings = {**extractor.settings, "resampledPixelSpacing": None, "interpolator": None}
    plain = featureextractor.RadiomicsFeatureExtractor(**settings)
    plain.enabledImagetypes = copy.deepcopy(extractor.enabledImagetypes)
    plain.enabledFeatures = copy.deepcopy(extractor.enabledFeatures)
    return plain


def extract_roi(
    image: sitk.Image,
    mask: sitk.Image,
    extractor: Any,
    *,
    crop: bool = True,
    label: int = 1,
) -> dict[str, Any]:
    """PyRadiomics features of the voxels of ``mask == label``, computed on a crop of ``image`` around them.

    With resampling enabled, the crop path calls PyRadiomics' own pieces in the order of
    ``RadiomicsFeatureExtractor.loadImage``: ``imageoperations.resampleImage`` on the cropped image and the full
    mask (so the grid is that of an uncropped run), feature extraction on the resampled pair, and the diagnostics of
    the original image and mask (computed on the full image and mask) and of the resampled pair (with
    ``GeneralInfo``). The result equals ``extractor.execute(image, mask)`` entry for entry (tested).

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
        Settings with ``normalize`` (statistics of the whole image) and grids for which
        :func:`grid_hits_voxel_centres` is true are always run uncropped.
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
    if not crop or settings.get("normalize", False) or grid_hits_voxel_centres(image.GetSpacing(), settings):
        return _floats(extractor.execute(image, mask, label=label))
    box = mask_bounding_box(sitk.GetArrayViewFromImage(mask) == label)
    if box is None:
        raise ValueError(f"label {label} not present in mask")
    index, size = crop_box(image.GetSize(), box, crop_margin(image.GetSpacing(), settings))
    cropped_image = sitk.RegionOfInterest(image, size, index)
    resampling = settings.get("resampledPixelSpacing") is not None and settings.get("interpolator") is not None
    if not resampling:
        cropped_mask = sitk.RegionOfInterest(mask, size, index)
        result = extractor.execute(cropped_image, cropped_mask, label=label)
        if settings.get("additionalInfo", True):
            result.update(image_diagnostics(image))
            result.update(mask_diagnostics(mask, label))
        return _floats(result)

    from radiomics import generalinfo, imageoperations

    resampled_image, resampled_mask = imageoperations.resampleImage(cropped_image, mask, **{**settings,
                                                                                             "label": label})
    result = _without_resampling(extractor).execute(resampled_image, resampled_mask, label=label)
    if not settings.get("additionalInfo", True):
        return _floats(result)
    resampled_info = generalinfo.GeneralInfo()
    resampled_info.addImageElements(resampled_image, "interpolated")
    resampled_info.addMaskElements(resampled_image, resampled_mask, label, "interpolated")
    ordered: dict[str, Any] = {k: v for k, v in result.items() if k.startswith("diagnostics_Versions_")}
    ordered["diagnostics_Configuration_Settings"] = {**settings, "label": label}
    ordered["diagnostics_Configuration_EnabledImageTypes"] = extractor.enabledImagetypes
    ordered.update(image_diagnostics(image))
    ordered.update(mask_diagnostics(mask, label))
    ordered.update({k: v for k, v in resampled_info.getGeneralInfo().items() if "-interpolated_" in k})
    ordered.update({k: v for k, v in result.items() if not k.startswith("diagnostics_")})
    return _floats(ordered)


def _floats(result: dict[str, Any]) -> dict[str, Any]:
    # PyRadiomics returns 0-d numpy arrays for features; plain floats keep CSV and pickling simple.
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key.startswith("diagnostics_"):
            out[key] = value
        else:
            out[key] = float(value)
    return out
