"""Minimum lesion size: lesions too small to be metastases a reader would record are removed after prediction.

A predicted lesion is a 26-connected component of label 2 (cc3d). After any model has predicted (MONAI, nnU-Net,
a liver + lesion pair), :func:`remove_small_lesions` removes every lesion whose volume is below
:attr:`MinLesionSize.volume_ml` **or** whose longest axial diameter (the calliper measure of ``lesions.csv``,
:func:`livermets.lesions.components.longest_axial_diameters`) is below :attr:`MinLesionSize.diameter_mm`. Its
voxels become liver (label 1) when the lesion touches the liver (a liver voxel among its 26 neighbours), otherwise
background, so the liver volume (labels 1 + 2) does not change for a speck inside the liver. The lesion count, the
burden and ``Num_Lesions`` then count only the lesions kept.

The defaults (0.03 mL and 3 mm) are the model's inference settings ``min_lesion_ml`` and ``min_lesion_diameter_mm``
(:class:`~livermets.segmentation.config.InferenceConfig`; models without a livermets ``config.yaml`` use the same
defaults), overridable per run (:class:`~livermets.segmentation.options.PredictionOptions`, ``--min-lesion-ml``,
``--min-lesion-diameter-mm``). They sit below the smallest tumour annotated in LiTS (38 mm³; Bilic et al., Med Image
Anal 2023), below RECIST 1.1's nominal 5 mm for a lesion too small to measure, and below the smallest lesions of the
paper's own table (single-lesion series: 0.22 mL, 9.5 mm axial; a two-lesion series of 0.136 mL in all), and remove
the 0.001-0.03 mL fragments that models leave as voxel noise. See docs/plausibility-checks.md.

Examples
--------
>>> import numpy as np, SimpleITK as sitk
>>> lab = np.zeros((6, 20, 20), np.uint8); lab[1:5, 2:18, 2:18] = 1
>>> lab[2:4, 4:10, 4:10] = 2; lab[3, 15, 15] = 2          # a 72 mL lesion and a one-voxel speck
>>> image = sitk.GetImageFromArray(lab); image.SetSpacing((1.0, 1.0, 1.0))
>>> kept, removed = remove_small_lesions(image, MinLesionSize(0.03, 3.0))
>>> removed.n_removed, int((sitk.GetArrayViewFromImage(kept) == 2).sum())
(1, 72)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from livermets.errors import ParameterError
from livermets.lesions.components import LESION_VALUE, LIVER_VALUE, label_components, longest_axial_diameters
from livermets.segmentation.config import MIN_LESION_DIAMETER_MM, MIN_LESION_ML, InferenceConfig, SegConfig
from livermets.segmentation.options import PredictionOptions


@dataclass(frozen=True)
class MinLesionSize:
    """The smallest lesion kept: volume in mL and longest axial diameter in mm (``0``: that limit is off)."""

    volume_ml: float = MIN_LESION_ML
    diameter_mm: float = MIN_LESION_DIAMETER_MM

    def __post_init__(self) -> None:
        for name, value in (("min_lesion_ml", self.volume_ml), ("min_lesion_diameter_mm", self.diameter_mm)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= 0):
                raise ParameterError.about(name, "must be a number >= 0", value)

    @property
    def active(self) -> bool:
        return self.volume_ml > 0 or self.diameter_mm > 0

    def to_dict(self) -> dict[str, float]:
        """The settings as outputs record them (``min_lesion_ml``, ``min_lesion_diameter_mm``)."""
        return {"min_lesion_ml": float(self.volume_ml), "min_lesion_diameter_mm": float(self.diameter_mm)}


@dataclass(frozen=True)
class RemovedLesions:
    """What :func:`remove_small_lesions` removed: the limit, and the volume (mL) of each removed component."""

    limit: MinLesionSize
    volumes_ml: tuple[float, ...] = field(default=())

    @property
    def n_removed(self) -> int:
        return len(self.volumes_ml)

    @property
    def removed_ml(self) -> float:
        return float(sum(self.volumes_ml))

    def to_dict(self) -> dict[str, Any]:
        """Provenance of the removal (``qc.json``, ``report.json``)."""
        return {**self.limit.to_dict(), "n_lesions_removed": self.n_removed,
                "removed_lesion_ml": round(self.removed_ml, 4)}


def model_min_lesion_size(segmenter: Any, options: PredictionOptions | None = None) -> MinLesionSize:
    """The minimum lesion size of a loaded model: ``options`` when they set it, else the model's ``config.yaml``
    (a livermets MONAI model, whose config already holds the options), else the defaults."""
    config = getattr(segmenter, "config", None)
    inference = config.inference if isinstance(config, SegConfig) else InferenceConfig()
    options = options or PredictionOptions()
    volume = inference.min_lesion_ml if options.min_lesion_ml is None else options.min_lesion_ml
    diameter = (inference.min_lesion_diameter_mm if options.min_lesion_diameter_mm is None
                else options.min_lesion_diameter_mm)
    return MinLesionSize(float(volume), float(diameter))


def remove_small_lesions(label: sitk.Image, limit: MinLesionSize) -> tuple[sitk.Image, RemovedLesions]:
    """A copy of ``label`` without the lesions smaller than ``limit``, and what was removed.

    Parameters
    ----------
    label
        Label map (0 background, 1 liver, 2 lesion) with its physical spacing.
    limit
        Volume and longest axial diameter below which a lesion is removed (either suffices).

    Returns
    -------
    tuple of SimpleITK.Image and RemovedLesions
        The new label map on the same grid (``label`` itself when nothing is removed) and the removed volumes.
    """
    if not limit.active:
        return label, RemovedLesions(limit)
    array = sitk.GetArrayViewFromImage(label)
    components = label_components(array == LESION_VALUE)
    if components.count == 0:
        return label, RemovedLesions(limit)
    spacing = label.GetSpacing()
    volumes = components.voxel_counts * (float(np.prod(spacing)) / 1000.0)
    small = volumes < limit.volume_ml
    if limit.diameter_mm > 0:
        candidates = np.flatnonzero(~small)  # the calliper measure only where the volume passed
        small[candidates] = longest_axial_diameters(components, _xyz(spacing), candidates) < limit.diameter_mm
    if not small.any():
        return label, RemovedLesions(limit)
    out = np.array(array, copy=True)
    for index in np.flatnonzero(small):
        box = _grown(components.bounding_boxes[index], array.shape)
        lesion = components.labels[box] == index + 1
        touches = np.any(ndimage.binary_dilation(lesion, structure=np.ones((3, 3, 3), bool))
                         & (array[box] == LIVER_VALUE))
        out[box][lesion] = LIVER_VALUE if touches else 0
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(label)
    return image, RemovedLesions(limit, tuple(float(v) for v in volumes[small]))


def _grown(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by one voxel on every side, inside ``shape``."""
    return tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, shape, strict=True))


def _xyz(spacing: tuple[float, ...]) -> tuple[float, float, float]:
    return float(spacing[0]), float(spacing[1]), float(spacing[2])
