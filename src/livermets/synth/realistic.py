"""Realistic training CT: real anatomy, domain-randomised appearance and acquisition, inserted metastases.

Each case starts from a real CT and its multi-label map (TotalSegmentator classes, liver = 5), and draws:

1. **Anatomy**: a random anisotropic scaling (0.8-1.2), in-plane rotation (+/- 10 degrees) and smooth elastic
   deformation (amplitude up to 10 mm, correlation 40-70 mm) of the scan and its labels, and a random field of view
   (in-plane and through-plane cut-offs that keep the liver's centre).
2. **Acquisition**: in-plane spacing 0.55-1.0 mm, slice thickness 0.6-5 mm (each output slice the average of 1-3
   thinner sub-slices: through-plane partial volume), CT-like correlated noise to a total of 5-25 HU.
3. **Appearance** (with probability ``remap_probability``): a contrast phase (native, arterial, portal venous) and per
   tissue group a new mean HU from that phase's range (liver 45-140 HU; vessels, kidneys, spleen, fat, muscle,
   bowel; :mod:`livermets.synth.tissues`), keeping the scan's real texture scaled by 0.8-1.3; otherwise the real
   attenuation is kept (native phase for the bundled examples).
4. **Intrahepatic vessels** brighter or darker than the liver by phase, **simple cysts** (hard negatives, labelled
   liver; 30 % of livers) and **metastases** (:mod:`livermets.synth.insertion`): 0-50 per liver, 5-120 mm
   (log-normal around 20 mm, a dominant 40-120 mm tumour in 30 % of livers), single, confluent or bulging beyond the
   liver surface, hypo/rim/necrotic/calcified/hyper, 10-80 HU contrast.

Labels follow LiTS (1 liver incl. vessels and cysts, 2 lesion; the liver includes its lesions) where the averaged
occupancy reaches 0.5. Randomness: case ``i`` uses ``SeedSequence(seed, spawn_key=(i,))``, so a case does not depend
on the others or on the number of workers.

Examples
--------
>>> from livermets.synth.realistic import RealisticConfig, SourceScan, generate_realistic  # doctest: +SKIP
>>> src = SourceScan("ts", "example_ct_sm.nii.gz", "example_seg.nii.gz")  # doctest: +SKIP
>>> manifest = generate_realistic("realistic", RealisticConfig(cases=40, sources=(src,)))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from livermets.errors import UserInputError
from livermets.imaging.io import read_image
from livermets.synth.insertion import draw_cysts, draw_lesions, insert_cysts, insert_lesions, insert_vessels
from livermets.synth.phantom import correlated_noise
from livermets.synth.shapes import F32, Array, smooth_field
from livermets.synth.tissues import (
    BONE,
    PHASES,
    TOTALSEG_LIVER,
    VESSEL_CONTRAST,
    Phase,
    draw_group_hu,
    group_means,
    remap_intensities,
    tissue_groups,
)

GENERATOR_VERSION = "realistic-2"
MAX_WORKING_VOXELS = 14_000_000


@dataclass(frozen=True)
class SourceScan:
    """A real CT and its label map on the same grid; ``liver_labels`` are the label values of the liver."""

    name: str
    image: str
    labels: str
    liver_labels: tuple[int, ...] = (TOTALSEG_LIVER,)


@dataclass(frozen=True)
class RealisticConfig:
    """What to generate: ``cases`` cases from ``sources`` (cycled), seeded; ``val_fraction`` of them validation."""

    cases: int
    sources: tuple[SourceScan, ...]
    seed: int = 0
    remap_probability: float = 0.7
    val_fraction: float = 0.15
    pixel_mm: tuple[float, float] = (0.55, 1.0)
    slice_mm: tuple[float, float] = (0.6, 5.0)
    noise_hu: tuple[float, float] = (5.0, 25.0)
    lesion_free_fraction: float = 0.2
    version: str = field(default=GENERATOR_VERSION)

    def __post_init__(self) -> None:
        if self.cases < 1:
            raise UserInputError(f"cases {self.cases}: need at least 1")
        if not self.sources:
            raise UserInputError("sources: give at least one real CT with its label map")
        if not 0 <= self.remap_probability <= 1 or not 0 <= self.val_fraction < 1:
            raise UserInputError("remap_probability must be in [0, 1] and val_fraction in [0, 1)")


@dataclass(frozen=True)
class Source:
    """A loaded source: HU, label map and tissue groups as (z, y, x) arrays, spacing (z, y, x) mm, geometry."""

    name: str
    hu: Array
    labels: Array
    groups: Array
    real_means: Array
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]
    liver_labels: tuple[int, ...]


@lru_cache(maxsize=4)
def load_source(scan: SourceScan) -> Source:
    """Read and check a source (same grid, a liver present); cached per process."""
    image = read_image(scan.image)
    labels_image = sitk.ReadImage(str(scan.labels))
    if image.GetSize() != labels_image.GetSize() or not np.allclose(image.GetSpacing(), labels_image.GetSpacing()):
        raise UserInputError(f"{scan.labels}: label map is not on the grid of {scan.image}")
    hu = sitk.GetArrayFromImage(image).astype(F32)
    labels = sitk.GetArrayFromImage(labels_image).astype(np.uint8)
    if not np.isin(labels, scan.liver_labels).any():
        raise UserInputError(f"{scan.labels}: no voxel with a liver label {scan.liver_labels}")
    liver_remapped = np.where(np.isin(labels, scan.liver_labels), TOTALSEG_LIVER, labels).astype(np.uint8)
    if scan.liver_labels != (TOTALSEG_LIVER,):
        liver_remapped[(labels == TOTALSEG_LIVER) & ~np.isin(labels, scan.liver_labels)] = 0
    groups = tissue_groups(liver_remapped, hu)
    spacing = tuple(float(s) for s in reversed(image.GetSpacing()))
    return Source(scan.name, hu, liver_remapped, groups, group_means(groups, hu), spacing,  # type: ignore[arg-type]
                  image.GetDirection(), scan.liver_labels)


@dataclass(frozen=True)
class Acquisition:
    """The drawn appearance and acquisition of one case."""

    phase: Phase | None  # None: the source's real attenuation
    pixel_mm: float
    slice_mm: float
    sub_slices: int
    noise_sd: float
    noise_sigma_px: float


def draw_acquisition(rng: np.random.Generator, config: RealisticConfig) -> Acquisition:
    remap = bool(rng.random() < config.remap_probability)
    phase: Phase | None = PHASES[int(rng.integers(len(PHASES)))] if remap else None
    slice_mm = float(rng.uniform(*config.slice_mm))
    return Acquisition(phase, float(rng.uniform(*config.pixel_mm)), slice_mm, int(min(3, math.ceil(slice_mm / 1.5))),
                       float(rng.uniform(*config.noise_hu)), float(rng.uniform(0.5, 1.2)))


def _field_of_view(rng: np.random.Generator, source: Source) -> tuple[Array, Array]:
    """(low, high) mm corners (z, y, x) of a random field of view over the body that keeps the liver centre."""
    sp = np.asarray(source.spacing)
    body = np.argwhere(source.hu > -500)
    liver_centre = np.argwhere(source.labels == TOTALSEG_LIVER).mean(0) * sp
    lo, hi = body.min(0) * sp, body.max(0) * sp
    extent = hi - lo
    cut_lo = rng.uniform(0.0, 0.15, 3) * extent * (rng.random(3) < 0.5)
    cut_hi = rng.uniform(0.0, 0.15, 3) * extent * (rng.random(3) < 0.5)
    new_lo, new_hi = np.minimum(lo + cut_lo, liver_centre - 20.0), np.maximum(hi - cut_hi, liver_centre + 20.0)
    return np.maximum(new_lo, lo), np.minimum(new_hi, hi)


def _working_grid(lo: Array, hi: Array, acq: Acquisition) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Shape and spacing (z, y, x) of the working grid (sub-slices), coarsened in-plane if it would be too large."""
    z_step = acq.slice_mm / acq.sub_slices
    n_slices = max(1, int((hi[0] - lo[0]) / acq.slice_mm)) * acq.sub_slices
    pixel = acq.pixel_mm
    ny, nx = (int((hi[k] - lo[k]) / pixel) + 1 for k in (1, 2))
    if n_slices * ny * nx > MAX_WORKING_VOXELS:
        pixel *= math.sqrt(n_slices * ny * nx / MAX_WORKING_VOXELS)
        ny, nx = (int((hi[k] - lo[k]) / pixel) + 1 for k in (1, 2))
    return (n_slices, ny, nx), (z_step, pixel, pixel)


def _source_coordinates(rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float],
                        lo: Array, source: Source) -> list[Array]:
    """Source voxel coordinates (z, y, x) of every working voxel under a random scaling, rotation and deformation."""
    centre = lo + (np.asarray(shape) - 1) * np.asarray(spacing) / 2.0
    scale = rng.uniform(0.8, 1.2, 3)
    angle = math.radians(rng.uniform(-10.0, 10.0))
    c, s = math.cos(angle), math.sin(angle)
    amplitude, correlation = rng.uniform(0.0, 10.0), rng.uniform(40.0, 70.0)
    axes = [lo[k] + np.arange(shape[k], dtype=F32) * F32(spacing[k]) - F32(centre[k]) for k in range(3)]
    z = axes[0][:, None, None] / F32(scale[0])
    y = axes[1][None, :, None] / F32(scale[1])
    x = axes[2][None, None, :] / F32(scale[2])
    coords = [np.broadcast_to(z, shape), c * y - s * x, s * y + c * x]
    source_spacing = np.asarray(source.spacing)
    out = []
    for k in range(3):
        warp = F32(amplitude) * smooth_field(rng, shape, spacing, correlation)
        out.append(((coords[k] + warp + F32(centre[k])) / F32(source_spacing[k])).astype(F32))
    return out


def _through_plane_average(volume: Array, sub_slices: int) -> Array:
    if sub_slices == 1:
        return volume
    n = volume.shape[0] // sub_slices
    return volume[: n * sub_slices].reshape(n, sub_slices, *volume.shape[1:]).mean(axis=1, dtype=F32)


@dataclass
class RealisticCase:
    """One rendered case: images on the output grid and its description."""

    hu: Array  # int16 (z, y, x)
    label: Array  # uint8 (z, y, x), LiTS
    spacing: tuple[float, float, float]  # (x, y, z) as SimpleITK
    direction: tuple[float, ...]
    record: dict[str, Any]
    lesions: list[dict[str, Any]]

    def image(self, array: Array) -> sitk.Image:
        img = sitk.GetImageFromArray(array)
        img.SetSpacing(self.spacing)
        img.SetDirection(self.direction)
        return img


def _appearance(rng: np.random.Generator, hu: Array, groups: Array, source: Source, acq: Acquisition) -> Array:
    if acq.phase is None:
        return hu
    new_means = draw_group_hu(rng, acq.phase)
    scales = {g: float(rng.uniform(0.8, 1.3)) for g in new_means}
    out = remap_intensities(hu, groups, source.real_means, new_means, scales)
    bone = groups == BONE
    out[bone] = hu[bone] * F32(rng.uniform(0.85, 1.15))
    return out


def render_case(config: RealisticConfig, index: int) -> RealisticCase:
    """Render case ``index`` (deterministic for the config's seed and the index alone)."""
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(index,)))
    scan = config.sources[index % len(config.sources)]
    source = load_source(scan)
    acq = draw_acquisition(rng, config)
    lo, hi = _field_of_view(rng, source)
    shape, spacing = _working_grid(lo, hi, acq)
    coords = _source_coordinates(rng, shape, spacing, lo, source)
    hu = ndimage.map_coordinates(source.hu, coords, order=1, mode="constant", cval=-1024.0, output=F32)
    groups = ndimage.map_coordinates(source.groups, coords, order=0, mode="nearest")
    liver = ndimage.map_coordinates((source.labels == TOTALSEG_LIVER).astype(F32), coords, order=1, output=F32)
    del coords
    hu = _appearance(rng, hu, groups, source, acq)
    liver_mean = float(np.median(hu[liver >= 0.5])) if (liver >= 0.5).any() else 60.0
    phase_key: Phase = acq.phase or "native"
    vessel_contrast = float(rng.uniform(*VESSEL_CONTRAST[phase_key]))
    insert_vessels(hu, liver, spacing, rng, vessel_contrast)
    n_cysts = insert_cysts(hu, liver, spacing, rng, draw_cysts(rng))
    specs = draw_lesions(rng, zero_fraction=config.lesion_free_fraction)
    lesion_occ, lesion_rows = insert_lesions(hu, liver, spacing, rng, specs)
    hu, liver, lesion_occ = (_through_plane_average(v, acq.sub_slices) for v in (hu, liver, lesion_occ))
    hu += correlated_noise(rng, hu.shape, acq.noise_sd)
    label = (liver >= 0.5).astype(np.uint8)
    label[lesion_occ >= 0.5] = 2  # the liver includes its lesions, also where one bulges beyond the surface
    out_spacing = (spacing[2], spacing[1], spacing[0] * acq.sub_slices)
    voxel_ml = float(np.prod(out_spacing)) / 1000.0
    record = {"source": scan.name, "phase": acq.phase or "source", "pixel_mm": round(spacing[2], 4),
              "slice_thickness_mm": round(out_spacing[2], 4), "noise_sd_hu": round(acq.noise_sd, 2),
              "liver_mean_hu": round(liver_mean, 1), "vessel_contrast_hu": round(vessel_contrast, 1),
              "n_lesions_truth": len(lesion_rows), "n_cysts": n_cysts,
              "liver_volume_ml": round(float((label > 0).sum()) * voxel_ml, 3),
              "lesion_volume_ml": round(float((label == 2).sum()) * voxel_ml, 3)}
    hu_int = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return RealisticCase(hu_int, label, out_spacing, source.direction, record, lesion_rows)
