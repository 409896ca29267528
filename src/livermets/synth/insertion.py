"""Insert synthetic liver metastases and intrahepatic vessels into any CT volume with a liver mask.

Used by the realistic generator on deformed real anatomy and by the real-CT benchmark on real scans as they are.
Everything works on numpy arrays in SimpleITK's (z, y, x) order with the voxel spacing in mm, and only inside each
object's bounding box.

A lesion is an irregular ellipsoid (a randomly rotated ellipsoid whose signed distance is perturbed by a smooth random
field), optionally confluent with one to four satellites. Its attenuation is drawn relative to the local liver:
hypo-attenuating, rim-enhancing (dark core, bright rim), necrotic (fluid core, dark wall), calcified (dark with a
dense core) or hyper-attenuating, at 10-80 HU of contrast. It replaces the low-frequency content of the background
(vessels disappear inside it) and keeps the scan's own high-frequency noise, so the noise inside a lesion matches the
scan. Lesions are clipped to the liver (a subcapsular metastasis is cut by its surface), except that half of those
above 30 mm may bulge beyond it (exophytic); the liver label includes every lesion. Simple cysts (water, smooth,
sharp) are painted the same way as hard negatives and stay liver.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> hu = rng.normal(60, 10, (40, 60, 60)).astype(np.float32)
>>> liver = np.zeros(hu.shape, np.float32); liver[5:35, 10:50, 10:50] = 1
>>> lesion_occ, rows = insert_lesions(hu, liver, (2.0, 1.5, 1.5), rng, draw_lesions(rng, count=2))
>>> len(rows), bool((lesion_occ[liver == 0] == 0).all())
(2, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from livermets.synth.shapes import F32, Array, occupancy, random_rotation, smooth_field, smoothstep

LesionKind = Literal["hypo", "rim", "necrotic", "hyper", "calcified", "cyst"]
KINDS: tuple[LesionKind, ...] = ("hypo", "rim", "necrotic", "hyper", "calcified")
KIND_PROBABILITIES = (0.4, 0.2, 0.12, 0.18, 0.1)
DIAMETER_RANGE_MM = (5.0, 120.0)
SIZE_MEDIAN_MM, SIZE_LOG_SD = 20.0, 0.75  # most metastases 10-40 mm (LiTS), a long tail above 80 mm
LARGE_RANGE_MM, LARGE_PROBABILITY = (40.0, 120.0), 0.3  # a dominant large tumour in this share of livers
CONTRAST_RANGE_HU = (10.0, 80.0)
MAX_LESIONS = 50
CYST_RANGE_MM, CYST_PROBABILITY = (5.0, 30.0), 0.3
BULGE_MIN_MM, BULGE_PROBABILITY = 30.0, 0.5
Spacing = tuple[float, float, float]  # (z, y, x) mm


@dataclass(frozen=True)
class LesionSpec:
    """One lesion to insert: kind, diameter (mm), contrast to the liver (HU, positive), confluent satellites.

    ``bulge``: the lesion may grow up to about 15 % of its diameter beyond the liver surface (an exophytic tumour);
    the liver label then includes it (LiTS convention).
    """

    kind: LesionKind
    diameter_mm: float
    contrast_hu: float
    satellites: int = 0
    bulge: bool = False


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _diameter(rng: np.random.Generator, dominant: bool, diameter_range_mm: tuple[float, float] | None) -> float:
    if diameter_range_mm is not None:
        return _log_uniform(rng, *diameter_range_mm)
    if dominant:
        return _log_uniform(rng, *LARGE_RANGE_MM)
    return float(np.clip(SIZE_MEDIAN_MM * np.exp(SIZE_LOG_SD * rng.standard_normal()), *DIAMETER_RANGE_MM))


def draw_lesions(rng: np.random.Generator, count: int | None = None, zero_fraction: float = 0.2,
                 diameter_range_mm: tuple[float, float] | None = None) -> list[LesionSpec]:
    """Random metastases: 0-50 per liver (``zero_fraction`` lesion-free), 5-120 mm, 10-80 HU contrast.

    With ``count`` the number is fixed; otherwise it is 0 with probability ``zero_fraction`` and else a geometric
    count whose mean is itself random (2.5-12.5), capped at :data:`MAX_LESIONS`. Diameters are log-normal (median
    20 mm, clipped to 5-120 mm) and, in 30 % of livers, the first lesion is a dominant tumour of 40-120 mm
    (log-uniform); ``diameter_range_mm`` draws every diameter log-uniform in that range instead. Lesions above 15 mm
    get 1-4 confluent satellites with probability 0.3; lesions above 30 mm may bulge beyond the liver surface.
    """
    if count is None:
        count = 0 if rng.random() < zero_fraction else min(MAX_LESIONS, int(rng.geometric(rng.uniform(0.08, 0.4))))
    dominant = rng.random() < LARGE_PROBABILITY
    specs = []
    for i in range(count):
        diameter = _diameter(rng, dominant and i == 0, diameter_range_mm)
        kind = KINDS[int(rng.choice(len(KINDS), p=KIND_PROBABILITIES))]
        if kind in ("rim", "necrotic", "calcified") and diameter < 12.0:
            kind = "hypo"  # a rim, a necrotic core or a calcification needs room
        satellites = int(rng.integers(1, 5)) if diameter > 15.0 and rng.random() < 0.3 else 0
        bulge = diameter > BULGE_MIN_MM and rng.random() < BULGE_PROBABILITY
        specs.append(LesionSpec(kind, diameter, float(rng.uniform(*CONTRAST_RANGE_HU)), satellites, bulge))
    return specs


def draw_cysts(rng: np.random.Generator, probability: float = CYST_PROBABILITY) -> list[LesionSpec]:
    """Simple hepatic cysts (hard negatives, labelled liver): none, or with ``probability`` 1-3 of 5-30 mm."""
    if rng.random() >= probability:
        return []
    return [LesionSpec("cyst", _log_uniform(rng, *CYST_RANGE_MM), 0.0) for _ in range(int(rng.integers(1, 4)))]


def _grid(shape: tuple[int, ...], box: tuple[slice, ...], spacing: Spacing) -> list[Array]:
    """mm coordinates (z, y, x) of the voxel centres of ``box``, broadcastable."""
    return [((np.arange(s.start, s.stop, dtype=F32) * F32(sp)).reshape([-1 if a == i else 1 for a in range(3)]))
            for i, (s, sp) in enumerate(zip(box, spacing, strict=True))]


def _box(centre_mm: Array, radius_mm: float, spacing: Spacing, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
    lo = np.floor((centre_mm - radius_mm) / np.asarray(spacing)).astype(int)
    hi = np.ceil((centre_mm + radius_mm) / np.asarray(spacing)).astype(int) + 1
    box = tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(lo, hi, shape, strict=True))
    return None if any(s.stop <= s.start for s in box) else box


def _blob_sd(coords: list[Array], centre: Array, semi: Array, rotation: Array) -> Array:
    """Approximate signed distance (mm) to a rotated ellipsoid."""
    d = [c - c0 for c, c0 in zip(coords, centre, strict=True)]
    q = [(rotation[0, k] * d[0] + rotation[1, k] * d[1] + rotation[2, k] * d[2]) / semi[k] for k in range(3)]
    k0 = np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2)
    k1 = np.sqrt((q[0] / semi[0]) ** 2 + (q[1] / semi[1]) ** 2 + (q[2] / semi[2]) ** 2)
    return (k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)).astype(F32)


def _lesion_sd(rng: np.random.Generator, coords: list[Array], shape: tuple[int, int, int], spacing: Spacing,
               centre: Array, spec: LesionSpec) -> Array:
    """Signed distance of an irregular (and possibly confluent) lesion over the box grid."""
    radius = spec.diameter_mm / 2.0
    semi = radius * rng.uniform(0.75, 1.25, 3)
    semi *= radius / np.cbrt(np.prod(semi))  # keep the equivalent diameter
    sd = _blob_sd(coords, centre, semi, random_rotation(rng))
    for _ in range(spec.satellites):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        r_sat = radius * rng.uniform(0.4, 0.8)
        offset = centre + direction * radius * rng.uniform(0.6, 1.0)
        sd = np.minimum(sd, _blob_sd(coords, offset, np.full(3, r_sat), np.eye(3)))
    bumps = smooth_field(rng, shape, spacing, max(2.0, 0.6 * radius))
    irregularity = rng.uniform(0.0, 0.03) if spec.kind == "cyst" else rng.uniform(0.05, 0.2)
    return (sd + F32(irregularity * radius) * bumps).astype(F32)


def _profile(spec: LesionSpec, depth: Array, radius: float, rng: np.random.Generator, liver_hu: float) -> Array:
    """HU of the lesion as a function of the depth below its surface (mm)."""
    t = np.clip(depth / max(radius, 1e-3), 0.0, 1.0)  # 0 at the surface, 1 at the centre
    c = spec.contrast_hu
    if spec.kind == "cyst":  # water, homogeneous, sharp
        return np.full(depth.shape, rng.uniform(0.0, 15.0), F32)
    if spec.kind == "calcified":  # hypo-attenuating with a dense calcified core
        base = liver_hu - c
        return (base + (rng.uniform(150.0, 450.0) - base) * smoothstep(t, 0.45, 0.8)).astype(F32)
    if spec.kind == "hyper":
        return (liver_hu + c * (0.85 + 0.15 * smoothstep(t, 0.0, 0.5))).astype(F32)
    if spec.kind == "hypo":
        return (liver_hu - c * (0.85 + 0.15 * smoothstep(t, 0.0, 0.5))).astype(F32)
    if spec.kind == "rim":
        rim = liver_hu + rng.uniform(15.0, 50.0)
        core = liver_hu - c
        return (rim + (core - rim) * smoothstep(t, 0.15, 0.45)).astype(F32)
    wall = liver_hu - min(c, 40.0)  # necrotic: dark wall, fluid core
    core = rng.uniform(5.0, 25.0)
    return (wall + (core - wall) * smoothstep(t, 0.3, 0.6)).astype(F32)


def _centre(rng: np.random.Generator, candidates: Array, shape: tuple[int, ...], spacing: Spacing) -> Array | None:
    """A random point (mm, z, y, x) in a random voxel of ``candidates`` (flat indices into ``shape``)."""
    if candidates.size == 0:
        return None
    index = np.unravel_index(int(candidates[rng.integers(candidates.size)]), shape)
    return (np.asarray(index, dtype=np.float64) + rng.uniform(-0.5, 0.5, 3)) * np.asarray(spacing)


def _allowed(liver: Array, spec: LesionSpec, spacing: Spacing) -> Array:
    """Where a lesion may lie (occupancy in [0, 1]): the liver, or for a bulging lesion also a margin beyond it."""
    inside = np.clip(liver, 0.0, 1.0)
    if not spec.bulge:
        return inside
    sigma = [0.15 * spec.diameter_mm / s for s in spacing]
    margin = 3.0 * ndimage.gaussian_filter((liver >= 0.5).astype(F32), sigma)  # >= 0.5 up to ~0.15 D outside
    return np.clip(np.maximum(inside, margin), 0.0, 1.0)


def _paint_one(hu: Array, liver: Array, spacing: Spacing, rng: np.random.Generator, candidates: Array,
               spec: LesionSpec) -> tuple[tuple[slice, ...], Array, dict[str, float | str]] | None:
    """Paint one lesion (or cyst) at a random centre in the liver; return its box, occupancy there and its row."""
    centre = _centre(rng, candidates, liver.shape, spacing)
    if centre is None:
        return None
    reach = spec.diameter_mm * (1.3 if spec.satellites == 0 else 2.2) / 2.0 + 2.0 * max(spacing)
    box = _box(centre, reach, spacing, hu.shape)
    if box is None:
        return None
    coords = _grid(hu.shape, box, spacing)
    sub_shape = (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)
    sd = _lesion_sd(rng, coords, sub_shape, spacing, centre, spec)
    occ = occupancy(sd, float(min(spacing))) * _allowed(liver[box], spec, spacing)
    background = hu[box]
    smooth_bg = ndimage.gaussian_filter(background, [2.0 / s for s in spacing])
    inside_liver = liver[box] >= 0.5
    liver_hu = float(np.median(smooth_bg[inside_liver])) if inside_liver.any() else float(np.median(smooth_bg))
    target = _profile(spec, -sd, spec.diameter_mm / 2.0, rng, liver_hu)
    hu[box] = background + occ * (target - smooth_bg)
    row = {**asdict(spec), "liver_hu": round(liver_hu, 1), "centre_z_mm": round(float(centre[0]), 2),
           "centre_y_mm": round(float(centre[1]), 2), "centre_x_mm": round(float(centre[2]), 2)}
    return box, occ, row


def insert_lesions(hu: Array, liver: Array, spacing: Spacing, rng: np.random.Generator,
                   specs: list[LesionSpec]) -> tuple[Array, list[dict[str, float | str]]]:
    """Paint ``specs`` into ``hu`` (in place) at random centres inside ``liver`` (occupancy in [0, 1]).

    Returns the lesion occupancy (float32 like ``hu``; clipped to the liver, or for a bulging lesion to a margin
    around it, so the liver label must include the lesions) and one row per lesion: index, kind, diameter,
    contrast, satellites, bulge, centre (mm in array order z, y, x) and the liver HU around it.
    """
    lesion_occ = np.zeros(hu.shape, F32)
    rows: list[dict[str, float | str]] = []
    candidates = np.flatnonzero(liver.ravel() >= 0.5)  # once: the liver does not change while lesions are painted
    for index, spec in enumerate(specs, start=1):
        painted = _paint_one(hu, liver, spacing, rng, candidates, spec)
        if painted is None:
            continue
        box, occ, row = painted
        lesion_occ[box] = np.maximum(lesion_occ[box], occ)
        rows.append({"lesion_index": index, **row})
    return lesion_occ, rows


def insert_cysts(hu: Array, liver: Array, spacing: Spacing, rng: np.random.Generator,
                 specs: list[LesionSpec]) -> int:
    """Paint simple cysts (:func:`draw_cysts`) into ``hu`` in place; they stay liver. Return how many were painted."""
    candidates = np.flatnonzero(liver.ravel() >= 0.5)
    return sum(_paint_one(hu, liver, spacing, rng, candidates, spec) is not None for spec in specs)


def insert_vessels(hu: Array, liver: Array, spacing: Spacing, rng: np.random.Generator,
                   contrast_hu: float) -> Array:
    """Paint a random tubular network inside the liver (in place) at ``contrast_hu`` to the liver; return its occupancy.

    Tubes are the curves where two independent smooth random fields are both near zero (intersections of their
    zero-level surfaces), thinned by a third field; radius 1-4 mm. Vessels stay labelled liver, as in LiTS.
    """
    inside = np.argwhere(liver >= 0.5)
    if inside.size == 0:
        return np.zeros(hu.shape, F32)
    box = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(inside.min(0), inside.max(0), strict=True))
    shape = (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)
    scale = float(rng.uniform(25.0, 45.0))
    distances = []
    for _ in range(2):
        field = smooth_field(rng, shape, spacing, scale)
        gradient = np.sqrt(sum(g * g for g in np.gradient(field, *spacing)))
        distances.append(np.abs(field) / np.maximum(gradient, 1e-3))
    radius = F32(rng.uniform(1.0, 4.0))
    sd = np.maximum(distances[0], distances[1]).astype(F32) - radius
    keep = smooth_field(rng, shape, spacing, scale) > rng.uniform(-0.5, 0.5)
    occ = occupancy(sd, float(min(spacing))) * keep * np.clip(liver[box], 0.0, 1.0)
    hu[box] += occ * F32(contrast_hu)
    out = np.zeros(hu.shape, F32)
    out[box] = occ
    return out
