"""Anatomical clean-up of a predicted label map: one liver, lesions only in or next to it.

Both rules run on the network grid (small) before the result is mapped back to the input grid:

1. ``largest_liver``: the liver is the largest 26-connected component of liver ∪ lesion (cc3d); liver voxels outside
   it become background.
2. ``lesion_max_distance_mm``: lesion voxels farther than this many mm from that liver (Euclidean distance with the
   voxel spacing) become background; exophytic lesions touching the capsule survive.
"""

from __future__ import annotations

from typing import Any

import cc3d
import numpy as np
from scipy import ndimage

from livermets.segmentation.config import CLASS_NAMES

LIVER = CLASS_NAMES.index("liver")
LESION = CLASS_NAMES.index("lesion")


def labels_from_probabilities(probabilities: Any, lesion_threshold: float | None = None) -> np.ndarray:
    """UInt8 label map from class probabilities ``(background, liver, lesion)`` along the first axis.

    Without ``lesion_threshold`` this is the argmax (ties go to the lower label). With it, a voxel is lesion when its
    lesion probability reaches the threshold (in the probabilities' own units, e.g. 0..255 for UInt8), otherwise
    liver or background by the larger of the two; a threshold below 0.5 trades precision for lesion sensitivity.

    Examples
    --------
    >>> probs = np.array([[0.5, 0.2], [0.2, 0.5], [0.3, 0.3]])[:, :, None]  # two voxels
    >>> labels_from_probabilities(probs).ravel().tolist(), labels_from_probabilities(probs, 0.25).ravel().tolist()
    ([0, 1], [2, 2])
    """
    background, liver, lesion = probabilities[0], probabilities[LIVER], probabilities[LESION]
    label = np.zeros(np.shape(background), dtype=np.uint8)
    label[liver > background] = LIVER
    if lesion_threshold is None:
        label[(lesion > background) & (lesion > liver)] = LESION
    else:
        label[lesion >= lesion_threshold] = LESION
    return label


def allowed_regions(
    label: np.ndarray,
    spacing: tuple[float, ...],
    largest_liver: bool = True,
    lesion_max_distance_mm: float | None = 5.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks where liver and where lesion voxels may stay.

    Parameters
    ----------
    label
        Integer label map (0/1/2), any axis order matching ``spacing``.
    spacing
        Voxel size per axis of ``label`` in mm.
    """
    organ = label > 0
    if largest_liver and organ.any():
        organ = cc3d.largest_k(organ, k=1, connectivity=26) > 0
    if lesion_max_distance_mm is None:
        lesion_ok = np.ones_like(organ)
    elif not organ.any():
        lesion_ok = np.zeros_like(organ)
    else:
        distance = ndimage.distance_transform_edt(~organ, sampling=spacing)
        lesion_ok = distance <= lesion_max_distance_mm
    return organ, lesion_ok


def postprocess_label(
    label: np.ndarray,
    spacing: tuple[float, ...],
    largest_liver: bool = True,
    lesion_max_distance_mm: float | None = 5.0,
) -> np.ndarray:
    """Apply both rules to a label map and return a new uint8 map.

    Examples
    --------
    >>> lab = np.zeros((20, 20, 20), np.uint8); lab[2:10, 2:10, 2:10] = 1; lab[15:17, 15:17, 15:17] = 1
    >>> lab[18, 18, 18] = 2
    >>> out = postprocess_label(lab, (1.0, 1.0, 1.0))
    >>> int((out == 1).sum()), int((out == 2).sum())
    (512, 0)
    """
    organ, lesion_ok = allowed_regions(label, spacing, largest_liver, lesion_max_distance_mm)
    out = np.zeros(label.shape, dtype=np.uint8)
    out[(label == LIVER) & organ] = LIVER
    out[(label == LESION) & lesion_ok] = LESION
    return out


def postprocess_probabilities(
    probabilities: np.ndarray,
    spacing: tuple[float, ...],
    largest_liver: bool = True,
    lesion_max_distance_mm: float | None = 5.0,
    lesion_threshold: float | None = None,
) -> np.ndarray:
    """Zero the liver/lesion probabilities (C, ...) where :func:`postprocess_label` would remove them (in place).

    The regions come from :func:`labels_from_probabilities` with ``lesion_threshold``.
    """
    label = labels_from_probabilities(probabilities, lesion_threshold)
    organ, lesion_ok = allowed_regions(label, spacing, largest_liver, lesion_max_distance_mm)
    liver_removed = ~organ & (label == LIVER)
    lesion_removed = ~lesion_ok & (label == LESION)
    probabilities[LIVER][liver_removed] = 0
    probabilities[LESION][lesion_removed | liver_removed] = 0
    probabilities[LIVER][lesion_removed] = 0
    return probabilities
