"""Tissue groups of TotalSegmentator label maps and their CT attenuation by contrast phase.

The realistic generator (:mod:`livermets.synth.realistic`) re-draws the attenuation of every structure of a real
anatomy in the spirit of SynthSeg: each tissue group gets a new mean HU from the range of a randomly drawn contrast
phase, and the real within-structure texture is kept and rescaled (``new = mean_new + s * (hu - mean_real)``).

Group membership follows TotalSegmentator v2's 117-class ``total`` task (liver = 5); unlabelled body voxels are split
by their real HU into fat and other soft tissue, and air/gas is never changed.

Examples
--------
>>> import numpy as np
>>> groups = tissue_groups(np.array([5, 1, 52, 0, 0, 0]), np.array([50.0, 45, 40, -100, 30, -900]))
>>> [GROUP_NAMES[g] for g in groups]
['liver', 'spleen', 'artery', 'fat', 'soft', 'air']
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Phase = Literal["native", "arterial", "portal"]
PHASES: tuple[Phase, ...] = ("native", "arterial", "portal")

GROUP_NAMES = ("air", "fat", "soft", "bone", "liver", "spleen", "kidney", "pancreas", "bowel", "fluid", "artery",
               "portal_vein", "vein", "heart")
AIR, FAT, SOFT, BONE, LIVER, SPLEEN, KIDNEY, PANCREAS, BOWEL, FLUID, ARTERY, PORTAL, VEIN, HEART = range(14)

#: TotalSegmentator v2 ``total`` class ids per tissue group (the rest of the labelled classes count as soft tissue).
TOTALSEG_GROUPS: dict[int, tuple[int, ...]] = {
    LIVER: (5,),
    SPLEEN: (1,),
    KIDNEY: (2, 3),
    PANCREAS: (7,),
    BOWEL: (6, 15, 18, 19, 20),
    FLUID: (4, 21, 23, 24),
    ARTERY: (52, 54, 55, 56, 57, 58, 65, 66),
    PORTAL: (64,),
    VEIN: (53, 59, 60, 62, 63, 67, 68),
    HEART: (51, 61),
    BONE: (25, *range(26, 51), *range(69, 79), 91, *range(92, 118)),
}
TOTALSEG_LIVER = 5

#: (low, high) of the mean HU of each group by phase; groups absent here keep their real mean.
PHASE_HU: dict[Phase, dict[int, tuple[float, float]]] = {
    "native": {LIVER: (45, 70), SPLEEN: (40, 55), KIDNEY: (25, 40), PANCREAS: (30, 50), ARTERY: (30, 50),
               PORTAL: (30, 50), VEIN: (30, 50), HEART: (30, 50), FLUID: (0, 20)},
    "arterial": {LIVER: (55, 90), SPLEEN: (80, 140), KIDNEY: (120, 220), PANCREAS: (80, 130), ARTERY: (200, 350),
                 PORTAL: (90, 160), VEIN: (60, 110), HEART: (150, 300), FLUID: (0, 20)},
    "portal": {LIVER: (90, 140), SPLEEN: (100, 140), KIDNEY: (140, 200), PANCREAS: (80, 120), ARTERY: (130, 190),
               PORTAL: (150, 210), VEIN: (110, 170), HEART: (120, 180), FLUID: (0, 20)},
}
#: Phase-independent ranges: fat, soft tissue (muscle, bowel wall) and bowel.
COMMON_HU: dict[int, tuple[float, float]] = {FAT: (-120, -70), SOFT: (30, 65), BOWEL: (0, 60)}
#: Intrahepatic vessels relative to the liver by phase (HU): darker without contrast, brighter in the portal phase;
#: in the arterial phase hepatic veins are still dark and portal branches bright.
VESSEL_CONTRAST: dict[Phase, tuple[float, float]] = {
    "native": (-25, -8), "arterial": (-15, 45), "portal": (20, 70),
}

_LOOKUP = np.full(256, SOFT, dtype=np.uint8)
_LOOKUP[0] = 255  # unlabelled: decided by HU
for _group, _ids in TOTALSEG_GROUPS.items():
    _LOOKUP[list(_ids)] = _group


def tissue_groups(labels: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """Tissue group (index into :data:`GROUP_NAMES`) of every voxel of a TotalSegmentator label map.

    Air/gas is any voxel below -400 HU whatever its label (lungs, bowel gas, outside the body); unlabelled voxels are
    fat between -250 and -40 HU, soft tissue above.
    """
    groups = _LOOKUP[np.clip(labels, 0, 255).astype(np.uint8)]
    unlabelled = groups == 255
    groups = np.where(unlabelled & (hu < -40), FAT, groups)
    groups = np.where(unlabelled & (hu >= -40), SOFT, groups)
    groups = np.where(hu < -400, AIR, groups)
    return groups.astype(np.uint8)


def group_means(groups: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """Median real HU of each group (NaN where a group is absent)."""
    means = np.full(len(GROUP_NAMES), np.nan)
    for g in np.unique(groups):
        means[g] = float(np.median(hu[groups == g]))
    return means


def draw_group_hu(rng: np.random.Generator, phase: Phase) -> dict[int, float]:
    """A new mean HU for every group with a range in ``phase`` (one uniform draw per group)."""
    ranges = {**COMMON_HU, **PHASE_HU[phase]}
    return {g: float(rng.uniform(*ranges[g])) for g in sorted(ranges)}


def remap_intensities(hu: np.ndarray, groups: np.ndarray, real_means: np.ndarray, new_means: dict[int, float],
                      texture_scale: dict[int, float]) -> np.ndarray:
    """Per-group linear remap ``new_mean + scale * (hu - real_mean)``; groups without a new mean are unchanged.

    Parameters
    ----------
    hu
        Real attenuation (any shape, float).
    groups
        Tissue group per voxel (:func:`tissue_groups`), same shape.
    real_means
        :func:`group_means` of the source scan.
    new_means, texture_scale
        Per group: the new mean HU and the factor applied to the real deviations from the mean (texture contrast).
    """
    offset = np.zeros(len(GROUP_NAMES), np.float32)
    scale = np.ones(len(GROUP_NAMES), np.float32)
    for g, mean in new_means.items():
        if np.isfinite(real_means[g]):
            scale[g] = texture_scale.get(g, 1.0)
            offset[g] = mean - scale[g] * real_means[g]
    return (hu * scale[groups] + offset[groups]).astype(np.float32)
