"""Liver from one model, lesions from another: e.g. TotalSegmentator's ``total`` (liver = label 5) with a
liver-lesion model.

Each model segments the CT on its own; :func:`combine_labels` then builds the livermets label map:

1. the liver is every voxel the liver model labels liver (or lesion, when its label map has one), with
   ``largest_liver`` only its largest 26-connected component;
2. a lesion is every voxel the lesion model labels lesion that lies within ``margin_mm`` of that liver (Euclidean
   distance in mm with the voxel spacing; 0 keeps only lesion voxels inside the liver, ``None`` keeps them all);
   such voxels are lesion (2) even where the liver model saw liver, and lesion voxels in the margin outside the
   liver survive as exophytic lesion;
3. all other voxels are background.

The default margin, 5 mm, is the MONAI path's ``lesion_max_distance_mm``: a lesion model that finds a lesion at the
liver capsule keeps it, lesions it finds in other organs (kidney cysts, lung nodules) are dropped.

As TotalSegmentator does for its liver tasks, the lesion model sees only the CT around the liver: the box of the
liver grown by :data:`CROP_MARGIN_MM` (30 mm, or the margin when larger) on every side, clipped to the image (a
plain crop of the voxels, so the CT keeps its spacing, direction and physical position). Its labels are put back
into the full grid; nothing outside the box could survive the margin rule anyway. Without a margin (``None``, keep
every lesion) the lesion model sees the whole CT, and without a liver it does not run (no lesion can be kept).

Examples
--------
>>> liver = np.zeros((1, 1, 8), np.uint8); liver[..., 2:5] = 1
>>> lesion = np.zeros((1, 1, 8), np.uint8); lesion[..., [3, 5, 7]] = 2
>>> combine_labels(liver, lesion, (1.0, 1.0, 1.0), margin_mm=1.0).ravel().tolist()
[0, 0, 1, 2, 1, 2, 0, 0]
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from livermets.segmentation.config import QCConfig
from livermets.segmentation.nnunet.predictor import label_image
from livermets.segmentation.postprocess import LESION, LIVER

if TYPE_CHECKING:  # predict.py imports this module when it builds a composite
    from livermets.segmentation.predict import ImageSegmenter

log = logging.getLogger(__name__)

DEFAULT_MARGIN_MM = 5.0
CROP_MARGIN_MM = 30.0


def combine_labels(liver_label: np.ndarray, lesion_label: np.ndarray, spacing: tuple[float, ...],
                   margin_mm: float | None = DEFAULT_MARGIN_MM, largest_liver: bool = True) -> np.ndarray:
    """The livermets label map (uint8 0/1/2) from a liver model's and a lesion model's maps (see the module).

    Parameters
    ----------
    liver_label, lesion_label
        0/1/2 maps of the same shape; only ``liver_label > 0`` and ``lesion_label == 2`` are used.
    spacing
        Voxel size in mm along the arrays' axes (``image.GetSpacing()[::-1]`` for SimpleITK arrays).
    margin_mm
        Lesion voxels farther than this from the liver become background (``None``: keep every lesion voxel).
    largest_liver
        Keep only the largest 26-connected liver component.
    """
    if liver_label.shape != lesion_label.shape:
        raise ValueError(f"label shapes differ: {liver_label.shape} vs {lesion_label.shape}")
    organ = liver_mask(liver_label, largest_liver)
    lesion = lesion_label == LESION
    if margin_mm is not None:
        lesion &= _within(organ, spacing, margin_mm)
    out = np.zeros(organ.shape, dtype=np.uint8)
    out[organ] = LIVER
    out[lesion] = LESION
    return out


def liver_mask(liver_label: np.ndarray, largest_liver: bool = True) -> np.ndarray:
    """The liver of the liver model's map (labels 1 and 2), with ``largest_liver`` its largest 26-connected part."""
    organ = liver_label > 0
    if largest_liver and organ.any():
        organ = cc3d.largest_k(organ, k=1, connectivity=26) > 0
    return np.asarray(organ, dtype=bool)


def grown_box(mask: np.ndarray, spacing: tuple[float, ...], margin_mm: float) -> tuple[slice, ...]:
    """Index box of the non-empty ``mask`` grown by ``margin_mm`` on every side (at least that many mm), clipped.

    Examples
    --------
    >>> m = np.zeros((10, 10, 10), bool); m[4:6, 4:6, 4:6] = True
    >>> grown_box(m, (2.0, 1.0, 1.0), 2.5)
    (slice(2, 8, None), slice(1, 9, None), slice(1, 9, None))
    """
    box = []
    for axis, step in enumerate(spacing):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        index = np.nonzero(mask.any(axis=other))[0]
        grow = int(np.ceil(margin_mm / step))
        box.append(slice(max(int(index[0]) - grow, 0), min(int(index[-1]) + grow + 1, mask.shape[axis])))
    return tuple(box)


def _within(organ: np.ndarray, spacing: tuple[float, ...], margin_mm: float) -> np.ndarray:
    """Voxels at most ``margin_mm`` from ``organ``; the distance transform runs inside the organ's bounding box
    grown by the margin (no voxel outside it can be that close), which keeps a whole CT cheap."""
    near = np.zeros(organ.shape, dtype=bool)
    if not organ.any():
        return near
    crop = grown_box(organ, spacing, margin_mm + max(spacing))
    near[crop] = ndimage.distance_transform_edt(~organ[crop], sampling=spacing) <= margin_mm
    return near


class CompositeSegmenter:
    """Two segmenters combined by :func:`combine_labels` (livermets' segmenter interface).

    Parameters
    ----------
    liver, lesion
        The liver model and the lesion model, each giving 0/1/2 maps on the input grid; built without their own
        clean-up so that the composite decides (e.g. ``NnunetSegmenter(..., largest_liver=False,
        lesion_max_distance_mm=None)``).
    margin_mm, largest_liver
        See :func:`combine_labels`.

    Examples
    --------
    >>> from livermets.segmentation.nnunet.predictor import NnunetSegmenter
    >>> liver = NnunetSegmenter("ts/total", label_map="liver=5", largest_liver=False,
    ...                         lesion_max_distance_mm=None)  # doctest: +SKIP
    >>> lesion = NnunetSegmenter("ts/liver_lesions", label_map="lesion=1", largest_liver=False,
    ...                          lesion_max_distance_mm=None)  # doctest: +SKIP
    >>> label = CompositeSegmenter(liver, lesion).predict_image(ct)  # doctest: +SKIP
    """

    def __init__(self, liver: ImageSegmenter, lesion: ImageSegmenter, margin_mm: float | None = DEFAULT_MARGIN_MM,
                 largest_liver: bool = True) -> None:
        self.liver = liver
        self.lesion = lesion
        self.margin_mm = margin_mm
        self.largest_liver = largest_liver
        self.model_dir = liver.model_dir
        self.device = liver.device
        self.engine = liver.engine if liver.engine == lesion.engine else f"{liver.engine}+{lesion.engine}"
        self.last_timings: dict[str, Any] = {}

    @property
    def qc(self) -> QCConfig:
        """The liver model's plausibility thresholds."""
        return self.liver.qc

    @property
    def lesion_threshold(self) -> float | None:
        return self.lesion.lesion_threshold

    def predict_image(self, image: sitk.Image, name: str = "image", tta: bool = False,
                      check: bool = True) -> sitk.Image:
        """Label map (UInt8, 0/1/2) on exactly ``image``'s grid (``check``: the liver model checks the CT)."""
        tick = time.perf_counter()
        spacing = image.GetSpacing()[::-1]
        liver = sitk.GetArrayFromImage(self.liver.predict_image(image, name, tta, check=check))
        middle = time.perf_counter()
        lesion = self._lesions(image, name, tta, liver_mask(liver, self.largest_liver), spacing)
        done = time.perf_counter()
        out = label_image(combine_labels(liver, lesion, spacing, self.margin_mm, self.largest_liver), image)
        self.last_timings = {"liver_model_s": middle - tick, "lesion_model_s": done - middle,
                             "combine_s": time.perf_counter() - done}
        log.debug("%s: %s", name, self.last_timings)
        return out

    def _lesions(self, image: sitk.Image, name: str, tta: bool, organ: np.ndarray,
                 spacing: tuple[float, ...]) -> np.ndarray:
        """The lesion model's map on the full grid, predicted on the CT around the liver (see the module)."""
        if self.margin_mm is None:
            return sitk.GetArrayFromImage(self.lesion.predict_image(image, name, tta))
        lesion = np.zeros(organ.shape, dtype=np.uint8)
        if not organ.any():
            log.info("%s: the liver model found no liver, so no lesion is kept; the lesion model is not run", name)
            return lesion
        box = grown_box(organ, spacing, max(CROP_MARGIN_MM, self.margin_mm))
        around = image[box[2], box[1], box[0]]  # SimpleITK indexes x, y, z; the crop keeps the physical position
        lesion[box] = sitk.GetArrayFromImage(self.lesion.predict_image(around, name, tta, check=False))
        return lesion
