"""Render one study: the thin "SOFT" reconstruction on the size's grid, the thick "CAP" one by slice averaging.

Tissues are alpha-composited with partial-volume occupancies (see :mod:`livermets.synth.shapes`); local structures
(organs, vessels, ribs, lesions) are computed only inside their bounding boxes. Correlated CT noise (Gaussian-filtered
white noise) is added to the thin volume before the thick one is formed, so the thick reconstruction has the lower
noise and the through-plane partial volume of a real thick-slice reconstruction of the same acquisition.
Labels (LiTS): 1 where the liver occupies >= 50 % of a voxel, 2 where a lesion (clipped to the liver) does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from threadpoolctl import threadpool_limits

from livermets.synth.anatomy import Anatomy, sample_anatomy
from livermets.synth.burden import LesionDraw
from livermets.synth.lesions import Lesion, place_lesions
from livermets.synth.shapes import (
    F32,
    Array,
    ellipse_sd,
    ellipsoid_sd,
    occupancy,
    paint,
    rotated_ellipsoid_sd,
    smooth_field,
)
from livermets.synth.sizes import Z_EXTENT_MM, SizeSpec

__all__ = ["RenderedStudy", "render_study", "sample_anatomy"]

Box = tuple[slice, slice, slice]
SdFn = Callable[..., Array]


@dataclass
class Grid:
    """Voxel-centre coordinates (mm, patient frame, after the study's positioning shift) of the thin grid."""

    x: Array  # (n,)
    y: Array  # (n,)
    z: Array  # (nz,)
    pixel_mm: float
    slice_mm: float

    def box(self, lo: Array, hi: Array) -> Box | None:
        """Index ranges of voxels whose centres lie in the mm box [lo, hi] (x, y, z); None when empty."""
        ranges = []
        for axis, (low, high) in zip((self.z, self.y, self.x), ((lo[2], hi[2]), (lo[1], hi[1]), (lo[0], hi[0])),
                                     strict=True):
            start, stop = int(np.searchsorted(axis, low)), int(np.searchsorted(axis, high, side="right"))
            if stop <= start:
                return None
            ranges.append(slice(start, stop))
        return ranges[0], ranges[1], ranges[2]

    def coords(self, box: Box | None = None) -> tuple[Array, Array, Array]:
        """Broadcastable (x, y, z) arrays of shapes (1, 1, nx), (1, ny, 1), (nz, 1, 1)."""
        bz, by, bx = box if box is not None else (slice(None),) * 3
        return self.x[bx][None, None, :], self.y[by][None, :, None], self.z[bz][:, None, None]


@dataclass
class RenderedStudy:
    """Both reconstructions of a study with their labels, lesion truth and per-series statistics."""

    images: dict[str, sitk.Image]
    labels: dict[str, sitk.Image]
    lesions: list[dict[str, Any]]
    lesion_voxels: dict[str, Array]  # per reconstruction: voxels of label 2 owned by each lesion (index - 1)
    series_stats: dict[str, dict[str, float]]
    slices: dict[str, tuple[Array, Array]]  # overview slice (HU, label) per reconstruction
    shift: Array  # the study's positioning shift (mm): patient coordinates + shift = scanner coordinates

    def overview_slice(self, reconstruction: str) -> tuple[Array, Array]:
        return self.slices[reconstruction]


def make_grid(anatomy: Anatomy, spec: SizeSpec, shift: Array) -> Grid:
    """Voxel centres of ``spec``'s thin grid for ``anatomy``: ``spec.matrix`` × ``spec.matrix`` pixels centred on
    x = y = 0 (size :meth:`SizeSpec.pixel_mm`), ``spec.thin_slices`` slices from z = 0 up, minus ``shift`` (mm)."""
    pixel = spec.pixel_mm(anatomy.real_pixel_mm)
    n = spec.matrix
    xy = (np.arange(n) - (n - 1) / 2.0) * pixel
    z = (np.arange(spec.thin_slices) + 0.5) * spec.thin_mm
    return Grid((xy - shift[0]).astype(F32), (xy - shift[1]).astype(F32), (z - shift[2]).astype(F32), pixel,
                spec.thin_mm)


def _paint_box(hu: Array, grid: Grid, lo: Array, hi: Array, sd_fn: SdFn, value: Array | float,
               width: float) -> tuple[Box, Array] | None:
    box = grid.box(lo, hi)
    if box is None:
        return None
    occ = occupancy(sd_fn(*grid.coords(box)), width)
    paint(hu[box], occ, value)
    return box, occ


def _render_body(hu: Array, grid: Grid, a: Anatomy, rng: np.random.Generator, width: float) -> Array:
    """Skin, subcutaneous fat, muscle wall, visceral fat/bowel, lungs, diaphragm. Returns the cavity sd."""
    x, y, z = grid.coords()
    body = a.body_sd(x, y, z)
    paint(hu, occupancy(body, width), a.hu["fat"])
    paint(hu, occupancy(body + a.fat_mm, width), a.hu["muscle"])
    cavity = body + (a.fat_mm + a.muscle_mm)
    spacing = (grid.slice_mm, grid.pixel_mm, grid.pixel_mm)
    bowel = smooth_field(rng, hu.shape, spacing, 18.0)
    gas = smooth_field(rng, hu.shape, spacing, 10.0)
    threshold = float(np.interp(a.visceral_fat_fraction, [0.0, 1.0], [-1.5, 1.5]))
    bowel_fraction = np.clip((bowel - threshold) * 2.0 + 0.5, 0.0, 1.0)
    visceral = a.hu["fat"] + bowel_fraction * (a.hu["bowel"] - a.hu["fat"])
    gas_fraction = np.clip((gas - 1.8) * 3.0, 0.0, 1.0) * bowel_fraction
    visceral += gas_fraction * (a.hu["air"] - visceral)
    paint(hu, occupancy(cavity, width), visceral)

    diaphragm = a.diaphragm_z(x, y)
    in_body = (x / a.body_a) ** 2 + (y / a.body_b_anterior) ** 2 < 1.0
    lowest = float(diaphragm[in_body].min()) if in_body.any() else float(diaphragm.min())
    first = int(np.searchsorted(grid.z, lowest + 5.0))
    if first < grid.z.size:
        top = slice(first, None)  # a slice keeps hu[top] a view, so painting writes through
        zt = z[top]
        lung_sd = np.maximum(cavity[top], (diaphragm + 5.0) - zt)
        mediastinum = ellipse_sd(x, y, (0.0, a.vertebra_y - 10.0), a.vertebra_r + 30.0, a.vertebra_r + 40.0)
        lung_sd = np.maximum(lung_sd, 3.0 - mediastinum)
        texture = smooth_field(rng, lung_sd.shape, spacing, 6.0)
        paint(hu[top], occupancy(lung_sd, width), a.hu["lung"] + 25.0 * texture)
        muscle_sd = np.maximum(cavity[top], np.abs(zt - (diaphragm + 2.5)) - 2.5)
        paint(hu[top], occupancy(muscle_sd, width), a.hu["muscle"])
    return cavity


def _render_retroperitoneum(hu: Array, grid: Grid, a: Anatomy, width: float) -> None:
    """Paraspinal muscles, psoas, aorta, IVC, vertebrae (discs), spinal canal."""
    x, y, z = grid.coords()
    for side in (-1.0, 1.0):
        para = ellipse_sd(x, y, (side * 27.0, a.canal_y + 12.0), 22.0, 19.0)
        paint(hu, occupancy(para, width), a.hu["muscle"])
        psoas_r = np.clip((a.kidneys[1][0][2] + 40.0 - z) * 0.3, 0.0, 22.0)
        psoas = ellipse_sd(x, y, (side * (a.vertebra_r + 12.0), a.vertebra_y - 4.0), np.maximum(psoas_r, 1e-3),
                           np.maximum(psoas_r * 0.8, 1e-3))
        paint(hu, occupancy(np.where(psoas_r > 3.0, psoas, 99.0), width), a.hu["muscle"])
    aorta = ellipse_sd(x, y, a.aorta[:2], a.aorta[2], a.aorta[2])
    paint(hu, occupancy(aorta, width), a.hu["aorta"])
    ivc = ellipse_sd(x, y, a.ivc[:2], a.ivc[2], a.ivc[3])
    paint(hu, occupancy(ivc, width), a.hu["hepatic_vein"])

    # Posterior elements (ring around the canal + spinous process), then the vertebral body with discs.
    ring = ellipse_sd(x, y, (0.0, a.canal_y), 15.0, 13.0)
    spinous = ellipse_sd(x, y, (0.0, a.canal_y + 24.0), 5.0, 14.0)
    paint(hu, occupancy(np.minimum(ring, spinous), width), 0.5 * (a.hu["cortical_bone"] +
                                                                       a.hu["cancellous_bone"]))
    canal = ellipse_sd(x, y, (0.0, a.canal_y), 8.0, 7.0)
    paint(hu, occupancy(canal, width), a.hu["csf"])
    phase = np.mod(grid.z - a.disc_phase, a.disc_pitch)[:, None, None]
    disc = (phase < 8.0).astype(F32)
    body = ellipse_sd(x, y, (0.0, a.vertebra_y), a.vertebra_r, a.vertebra_r * 0.9)
    occ = occupancy(body, width)
    paint(hu, occ, a.hu["cortical_bone"] + disc * (a.hu["disc"] - a.hu["cortical_bone"]))
    occ_inner = occupancy(body + 2.5, width)
    paint(hu, occ_inner, a.hu["cancellous_bone"] + disc * (a.hu["disc"] - a.hu["cancellous_bone"]))


def _render_organs(hu: Array, grid: Grid, a: Anatomy, width: float) -> None:
    """Kidneys (cortex, medulla, sinus fat), spleen, stomach (wall, content, gas), heart."""
    for centre, semi, angle in a.kidneys:
        c, s = np.asarray(centre), np.asarray(semi)
        lo, hi = c - s.max() - 3, c + s.max() + 3

        def kidney(x: Array, y: Array, z: Array, offset: float = 0.0, c: Array = c, s: Array = s,
                   angle: float = angle) -> Array:
            return rotated_ellipsoid_sd(x, y, z, tuple(c), tuple(s), angle) + offset

        _paint_box(hu, grid, lo, hi, kidney, a.hu["renal_cortex"], width)
        _paint_box(hu, grid, lo, hi, lambda x, y, z, k=kidney: k(x, y, z, 7.0), a.hu["renal_medulla"], width)
        sinus_c = c + np.array([-np.sign(c[0]) * 0.45 * s[0], -0.2 * s[1], 0.0])
        _paint_box(hu, grid, lo, hi, lambda x, y, z, sc=sinus_c, s=s: ellipsoid_sd(
            x, y, z, tuple(sc), (0.35 * s[0], 0.35 * s[1], 0.45 * s[2])), a.hu["renal_sinus_fat"], width)

    centre, semi, angle = a.spleen
    c, s = np.asarray(centre), np.asarray(semi)
    _paint_box(hu, grid, c - s.max(), c + s.max(), lambda x, y, z: np.maximum(np.maximum(
        rotated_ellipsoid_sd(x, y, z, centre, semi, angle), a.body_sd(x, y, z) + a.fat_mm + a.muscle_mm + 2.0),
        z - a.diaphragm_z(x, y) + 2.5), a.hu["spleen"], width)

    centre, semi, gas_level = a.stomach
    c, s = np.asarray(centre), np.asarray(semi)
    lo, hi = c - s, c + s

    def stomach(x: Array, y: Array, z: Array) -> Array:
        return np.maximum(ellipsoid_sd(x, y, z, centre, semi), z - a.diaphragm_z(x, y) + 2.5)

    _paint_box(hu, grid, lo, hi, stomach, a.hu["muscle"], width)
    box = grid.box(lo, hi)
    if box is not None:
        x, y, z = grid.coords(box)
        inner = occupancy(stomach(x, y, z) + 4.0, width)
        content = np.where(y < gas_level, a.hu["air"], a.hu["stomach_content"]).astype(F32)
        paint(hu[box], inner, content)

    centre, semi = a.heart
    c, s = np.asarray(centre), np.asarray(semi)

    def heart(x: Array, y: Array, z: Array, offset: float = 0.0) -> Array:
        return np.maximum(ellipsoid_sd(x, y, z, centre, semi) + offset, a.diaphragm_z(x, y) + 6.0 - z)

    _paint_box(hu, grid, c - s, c + s, heart, a.hu["muscle"], width)
    _paint_box(hu, grid, c - s, c + s, lambda x, y, z: heart(x, y, z, 9.0), a.hu["blood_pool"], width)


def _render_ribs(hu: Array, grid: Grid, a: Anatomy, width: float) -> None:
    """Rib cross-sections in the chest/abdominal wall, in bands along z (ribs run obliquely)."""
    for angle, phase, lowest, radius in a.ribs:
        wall_b = (a.body_b_anterior if np.cos(angle) > 0 else a.body_b_posterior) - a.fat_mm - a.muscle_mm / 2.0
        wall_a = a.body_a - a.fat_mm - a.muscle_mm / 2.0
        cx, cy = wall_a * np.sin(angle), -wall_b * np.cos(angle)
        lo = np.array([cx - radius - 2, cy - radius - 2, lowest])
        hi = np.array([cx + radius + 2, cy + radius + 2, Z_EXTENT_MM + 20.0])
        box = grid.box(lo, hi)
        if box is None:
            continue
        x, y, z = grid.coords(box)
        band = np.abs(np.mod(z - phase, a.rib_pitch) - a.rib_pitch / 2.0) - 6.0  # 12 mm high bands
        section = ellipse_sd(x, y, (cx, cy), radius, radius)
        paint(hu[box], occupancy(np.maximum(section, band), width), a.hu["cortical_bone"])
        paint(hu[box], occupancy(np.maximum(section + 1.5, band + 1.5), width), a.hu["cancellous_bone"])


def _render_liver(hu: Array, grid: Grid, a: Anatomy, lesions: list[Lesion], rng: np.random.Generator,
                  width: float) -> tuple[Array, Array, Array]:
    """Liver parenchyma + texture, vessels, gallbladder, lesions. Returns liver occ, lesion occ, lesion owner."""
    shape = hu.shape
    liver_occ = np.zeros(shape, F32)
    lesion_occ = np.zeros(shape, F32)
    owner = np.zeros(shape, np.int16)
    lo, hi = a.liver_box()
    box = grid.box(lo, hi)
    for index in np.flatnonzero(a.vessels[:, 8] == 0):  # extrahepatic portal trunk (background label)
        seg = a.vessels[index]
        r = max(seg[6], seg[7]) + 2
        _paint_box(hu, grid, np.minimum(seg[0:3], seg[3:6]) - r, np.maximum(seg[0:3], seg[3:6]) + r,
                   lambda x, y, z, i=int(index): a.vessel_sd(x, y, z, i), a.hu["portal"], width)
    if box is None:
        return liver_occ, lesion_occ, owner
    x, y, z = grid.coords(box)
    occ = occupancy(a.liver_sd(x, y, z), width)
    liver_occ[box] = occ
    region = hu[box]
    paint(region, occ, a.hu["liver"])
    for vessel_index, seg in enumerate(a.vessels):
        if seg[8] == 0:
            continue
        r = max(seg[6], seg[7]) + 2
        sub = grid.box(np.minimum(seg[0:3], seg[3:6]) - r, np.maximum(seg[0:3], seg[3:6]) + r)
        if sub is None:
            continue
        local = _intersect(sub, box)
        if local is None:
            continue
        gx, gy, gz = grid.coords(local[0])
        vessel_occ = occupancy(a.vessel_sd(gx, gy, gz, vessel_index), width) * occ[local[1]]
        value = a.hu["portal"] if vessel_index < _first_hepatic(a) else a.hu["hepatic_vein"]
        paint(region[local[1]], vessel_occ, value)
    for lesion in lesions:
        reach = lesion.reach_mm + 2.0 * width
        sub = grid.box(lesion.centre - reach, lesion.centre + reach)
        local = _intersect(sub, box) if sub is not None else None
        if local is None:
            continue
        gx, gy, gz = grid.coords(local[0])
        sd, lesion_hu = lesion.evaluate(gx, gy, gz)
        lesion_width = max(width, 2.0)  # real margins are blurred over ~2 mm
        edge = occupancy(sd, lesion_width) * occ[local[1]]
        paint(region[local[1]], edge, lesion_hu)
        label_occ = occupancy(sd, width) * occ[local[1]]
        current = lesion_occ[local[0]]
        owner[local[0]] = np.where(label_occ > current, lesion.index, owner[local[0]])
        np.maximum(current, label_occ, out=current)
    spacing = (grid.slice_mm, grid.pixel_mm, grid.pixel_mm)
    texture = smooth_field(rng, region.shape, spacing, 7.0)
    region += occ * (4.0 * texture)
    if a.gallbladder is not None:
        centre, semi = a.gallbladder
        _paint_box(hu, grid, np.asarray(centre) - semi, np.asarray(centre) + semi,
                   lambda x, y, z: ellipsoid_sd(x, y, z, centre, semi), a.hu["gallbladder"], width)
    return liver_occ, lesion_occ, owner


def _first_hepatic(a: Anatomy) -> int:
    """Index of the first hepatic-vein segment (after the trunk and the two portal trees)."""
    return int(a.extra.get("first_hepatic", len(a.vessels)))


def _intersect(sub: Box, outer: Box) -> tuple[Box, Box] | None:
    """(global box, box relative to ``outer``) of the intersection of two boxes."""
    glob, rel = [], []
    for s, o in zip(sub, outer, strict=True):
        start, stop = max(s.start, o.start), min(s.stop, o.stop)
        if stop <= start:
            return None
        glob.append(slice(start, stop))
        rel.append(slice(start - o.start, stop - o.start))
    return (glob[0], glob[1], glob[2]), (rel[0], rel[1], rel[2])


def correlated_noise(rng: np.random.Generator, shape: tuple[int, int, int], sd: float) -> Array:
    """Gaussian-filtered white noise (sigma 0.7 pixel in-plane, 0.4 slice), rescaled to standard deviation ``sd``."""
    white = rng.standard_normal(shape, dtype=F32)
    noise = ndimage.gaussian_filter(white, (0.4, 0.7, 0.7), mode="wrap")
    return noise * F32(sd / max(float(noise.std()), 1e-6))


def _to_image(array: Array, spacing: tuple[float, float, float], origin: tuple[float, float, float],
              dtype: type) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.astype(dtype)))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def _labels(liver_occ: Array, lesion_occ: Array) -> Array:
    label = (liver_occ >= 0.5).astype(np.uint8)
    label[lesion_occ >= 0.5] = 2
    return label


def _stats(label: Array, voxel_ml: float) -> dict[str, float]:
    lesion = label == 2
    n_components = int(cc3d.connected_components(lesion, connectivity=26, return_N=True)[1]) if lesion.any() else 0
    return {"n_components": n_components, "lesion_ml": float(lesion.sum() * voxel_ml),
            "liver_ml": float((label > 0).sum() * voxel_ml)}


def _overview(hu: Array, label: Array, owner: Array) -> tuple[Array, Array]:
    """Axial slice through the largest lesion (most label-2 voxels), else through the largest liver area."""
    lesion = label == 2
    if lesion.any():
        counts = np.bincount(owner[lesion].ravel())
        biggest = int(np.argmax(counts))
        per_slice = ((owner == biggest) & lesion).sum(axis=(1, 2))
    else:
        per_slice = (label > 0).sum(axis=(1, 2))
    k = int(np.argmax(per_slice))
    return hu[k].astype(np.int16), label[k].astype(np.uint8)


def render_study(anatomy: Anatomy, draw: LesionDraw, spec: SizeSpec, rng: np.random.Generator) -> RenderedStudy:
    """Place ``draw``'s lesions in ``anatomy`` and render both reconstructions on ``spec``'s grid.

    Examples
    --------
    >>> from livermets.synth.burden import sample_lesions
    >>> from livermets.synth.sizes import SIZES
    >>> rng = np.random.default_rng(0)
    >>> study = render_study(sample_anatomy(rng), sample_lesions(rng), SIZES["tiny"], rng)
    >>> study.images["SOFT"].GetSize(), study.images["CAP"].GetSize()
    ((64, 64, 48), (64, 64, 24))
    """
    # One BLAS thread: the renderer's matrix products are small, and multi-threaded BLAS on a busy machine is slower.
    with threadpool_limits(limits=1):
        return _render_study(anatomy, draw, spec, rng)


UNENHANCED_HU = {"liver": 55.0, "spleen": 45.0, "renal_cortex": 35.0, "renal_medulla": 35.0, "aorta": 40.0,
                 "portal": 40.0, "hepatic_vein": 40.0, "blood_pool": 40.0}


def study_contrast(anatomy: Anatomy, rng: np.random.Generator) -> Anatomy:
    """The patient's anatomy with this study's contrast timing: enhancement x U(0.85, 1.10) over unenhanced HU."""
    factor = float(rng.uniform(0.85, 1.10))
    hu = dict(anatomy.hu)
    for tissue, unenhanced in UNENHANCED_HU.items():
        hu[tissue] = unenhanced + factor * (hu[tissue] - unenhanced)
    return replace(anatomy, hu=hu)


def _render_study(anatomy: Anatomy, draw: LesionDraw, spec: SizeSpec, rng: np.random.Generator) -> RenderedStudy:
    anatomy = study_contrast(anatomy, rng)
    lesions = place_lesions(anatomy, draw, rng)
    shift = rng.normal(0.0, 1.0, 3) * np.array([3.0, 3.0, 6.0])  # positioning and breathing between studies
    grid = make_grid(anatomy, spec, shift)
    width = grid.pixel_mm
    shape = (spec.thin_slices, spec.matrix, spec.matrix)
    hu = np.full(shape, anatomy.hu["air"], F32)
    _render_body(hu, grid, anatomy, rng, width)
    _render_retroperitoneum(hu, grid, anatomy, width)
    _render_organs(hu, grid, anatomy, width)
    liver_occ, lesion_occ, owner = _render_liver(hu, grid, anatomy, lesions, rng, width)
    _render_ribs(hu, grid, anatomy, width)
    hu += correlated_noise(rng, shape, anatomy.noise_sd)

    k = spec.thick_factor
    thick_shape = (spec.thick_slices, k, spec.matrix, spec.matrix)
    volumes = {
        "SOFT": (hu, liver_occ, lesion_occ, owner, spec.thin_mm),
        "CAP": (hu.reshape(thick_shape).mean(axis=1), liver_occ.reshape(thick_shape).mean(axis=1),
                lesion_occ.reshape(thick_shape).mean(axis=1), _thick_owner(owner, lesion_occ, k), spec.thick_mm),
    }
    n = spec.matrix
    origin_xy = -(n - 1) / 2.0 * grid.pixel_mm
    images, labels, voxels, stats, slices = {}, {}, {}, {}, {}
    for recon, (image, liver, lesion, own, thickness) in volumes.items():
        label = _labels(liver, lesion)
        origin = (origin_xy, origin_xy, thickness / 2.0)
        spacing = (grid.pixel_mm, grid.pixel_mm, thickness)
        rounded = np.clip(np.rint(image), -1024, 3071)
        images[recon] = _to_image(rounded, spacing, origin, np.int16)
        labels[recon] = _to_image(label, spacing, origin, np.uint8)
        voxels[recon] = np.bincount(own[label == 2].ravel(), minlength=len(lesions) + 1)[1:]
        stats[recon] = _stats(label, grid.pixel_mm**2 * thickness / 1000.0)
        slices[recon] = _overview(rounded, label, own)
    truth = [{
        "lesion_index": lesion.index, "kind": lesion.kind, "diameter_mm": round(lesion.diameter_mm, 3),
        "volume_ml_truth": round(lesion.volume_ml, 4),
        "centroid_x_mm": round(float(lesion.centre[0] + shift[0]), 2),
        "centroid_y_mm": round(float(lesion.centre[1] + shift[1]), 2),
        "centroid_z_mm": round(float(lesion.centre[2] + shift[2]), 2),
    } for lesion in lesions]
    return RenderedStudy(images, labels, truth, voxels, stats, slices, shift)


def _thick_owner(owner: Array, lesion_occ: Array, k: int) -> Array:
    """Owner lesion of each thick voxel: the owner in the thin slice of the group with the largest occupancy."""
    nz, ny, nx = owner.shape
    occ = lesion_occ.reshape(nz // k, k, ny, nx)
    pick = np.argmax(occ, axis=1)[:, None]
    return np.take_along_axis(owner.reshape(nz // k, k, ny, nx), pick, axis=1)[:, 0]
