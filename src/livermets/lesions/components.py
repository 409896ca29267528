"""Lesions as 3D connected components (cc3d) and the per-lesion table.

A *lesion* is one connected component of the lesion label (LiTS convention: value 2) found by
``cc3d.connected_components`` with 26-connectivity by default (cc3d's default, used by the paper with cc3d 3.12.1).
All per-lesion statistics are computed without one full-volume pass per lesion: counts, bounding boxes and centroids
come from one ``cc3d.statistics`` call, HU sums from one ``np.bincount`` over the lesion voxels, and the shape
measures (longest axial diameter, liver contact) work inside each lesion's bounding box only.

Arrays are in SimpleITK order ``(z, y, x)``; spacings are SimpleITK order ``(x, y, z)`` in mm.

Examples
--------
>>> import numpy as np
>>> mask = np.zeros((3, 8, 8), dtype=bool)
>>> mask[1, 1:3, 1:3] = True
>>> mask[1, 5:8, 5:8] = True
>>> components = label_components(mask)
>>> components.count, components.voxel_counts.tolist()
(2, [4, 9])
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from livermets.errors import ParameterError

CONNECTIVITIES = (6, 18, 26)
"""3D neighbourhoods cc3d supports: faces (6), faces+edges (18), faces+edges+corners (26)."""

LESION_VALUE = 2
LIVER_VALUE = 1

_DIAMETER_ANGLES = 180
"""Directions sampled for the Feret diameter (1 degree apart): relative error below 1 - cos(0.5 deg) = 4e-5."""

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class LesionComponents:
    """Connected components of a binary mask.

    Attributes
    ----------
    labels
        Component ids, ``0`` background, ``1..count`` lesions; same shape as the mask, ``(z, y, x)``.
    count
        Number of components.
    voxel_counts
        ``voxel_counts[i]`` is the size of component ``i + 1`` (int64, length ``count``).
    bounding_boxes
        ``bounding_boxes[i]`` is the ``(z, y, x)`` slice tuple of component ``i + 1``.
    centroids_zyx
        Centroid of each component in voxel index coordinates ``(z, y, x)``, shape ``(count, 3)``.
    connectivity
        The cc3d connectivity used.
    voxels
        Flat (C-order) indices of all component voxels, ascending.
    voxel_ids
        Component id of each entry of ``voxels``.
    """

    labels: np.ndarray
    count: int
    voxel_counts: np.ndarray
    bounding_boxes: tuple[Box, ...]
    centroids_zyx: np.ndarray
    connectivity: int
    voxels: np.ndarray
    voxel_ids: np.ndarray


def check_connectivity(connectivity: int) -> int:
    """Return ``connectivity`` if cc3d supports it in 3D, else raise :class:`~livermets.errors.ParameterError`."""
    if connectivity not in CONNECTIVITIES:
        raise ParameterError("{connectivity} must be one of {choices} (got {value})", choices=list(CONNECTIVITIES),
                             value=connectivity)
    return connectivity


def label_components(mask: np.ndarray, connectivity: int = 26) -> LesionComponents:
    """Label the connected components of a binary 3D mask with cc3d.

    Parameters
    ----------
    mask
        Boolean (or 0/1) array ``(z, y, x)``.
    connectivity
        6, 18 or 26 (default 26, cc3d's default and the paper's setting).
    """
    check_connectivity(connectivity)
    binary = np.ascontiguousarray(mask, dtype=bool)
    labels, count = cc3d.connected_components(
        binary, connectivity=connectivity, return_N=True, binary_image=True  # type: ignore[call-overload]
    )
    if count == 0:
        none = np.zeros(0, np.intp)
        return LesionComponents(labels, 0, np.zeros(0, np.int64), (), np.zeros((0, 3)), connectivity, none, none)
    # Statistics from the lesion voxels only (a few % of the volume): one flatnonzero pass, then bincount and
    # reduceat on the small arrays. cc3d.statistics scans the whole volume and was 3x slower on a 512x512x700 scan.
    voxels = np.flatnonzero(binary)  # the 1-byte mask: faster to scan than the component ids
    ids = labels.reshape(-1)[voxels].astype(np.intp)
    voxel_counts = np.bincount(ids, minlength=count + 1)[1:].astype(np.int64)
    coords = np.unravel_index(voxels, labels.shape)
    sums = np.stack([np.bincount(ids, weights=c, minlength=count + 1)[1:] for c in coords], axis=1)
    centroids = sums.astype(float) / voxel_counts[:, None]
    order = np.argsort(ids, kind="stable")
    starts = np.r_[0, np.cumsum(voxel_counts)[:-1]]
    lows = [np.minimum.reduceat(c[order], starts) for c in coords]
    highs = [np.maximum.reduceat(c[order], starts) + 1 for c in coords]
    boxes = tuple(
        (slice(int(lows[0][i]), int(highs[0][i])), slice(int(lows[1][i]), int(highs[1][i])),
         slice(int(lows[2][i]), int(highs[2][i])))
        for i in range(int(count))
    )
    return LesionComponents(labels, int(count), voxel_counts, boxes, centroids, connectivity, voxels, ids)


def index_to_physical(index_zyx: np.ndarray, image: sitk.Image) -> np.ndarray:
    """Map continuous voxel indices ``(z, y, x)`` to physical points ``(x, y, z)`` in mm (vectorised).

    Same as SimpleITK's ``TransformContinuousIndexToPhysicalPoint`` applied row by row.
    """
    index_xyz = np.asarray(index_zyx, dtype=float)[:, ::-1]
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    return origin + (index_xyz * spacing) @ direction.T


def longest_axial_diameters(components: LesionComponents, spacing_xyz: tuple[float, float, float],
                            indices: np.ndarray | None = None) -> np.ndarray:
    """Longest in-plane (axial) diameter of each lesion in mm (only of the 0-based components ``indices`` if given).

    The diameter is the maximum Feret diameter of the lesion's pixel squares within one axial slice, maximised over
    slices: the largest edge-to-edge extent a reader would measure with a calliper on one slice (a single pixel has
    the length of its diagonal). It is computed from the in-slice boundary pixels of each lesion inside its
    bounding box, projecting them on 180 directions (relative error < 4e-5).
    """
    sx, sy = float(spacing_xyz[0]), float(spacing_xyz[1])
    angles = np.linspace(0.0, np.pi, _DIAMETER_ANGLES, endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    pixel_extent = np.abs(cos) * sx + np.abs(sin) * sy  # projected width of one pixel square
    in_plane_cross = np.zeros((1, 3, 3), dtype=bool)
    in_plane_cross[0, 1, :] = True
    in_plane_cross[0, :, 1] = True
    which = np.arange(components.count) if indices is None else np.asarray(indices, dtype=np.intp)
    diameters = np.zeros(len(which))
    for position, index in enumerate(which):
        box = components.bounding_boxes[index]
        lesion = components.labels[box] == index + 1
        boundary = lesion & ~ndimage.binary_erosion(lesion, structure=in_plane_cross, border_value=0)
        z, y, x = np.nonzero(boundary)
        starts = np.flatnonzero(np.r_[True, z[1:] != z[:-1]])
        best = 0.0
        # Chunks of whole slices keep the (points x directions) array small for big lesions.
        chunk_bounds = _slice_chunks(starts, len(z), max_points=20000)
        for first, last in chunk_bounds:
            sel = slice(starts[first], starts[last] if last < len(starts) else len(z))
            proj = np.multiply.outer(x[sel] * sx, cos) + np.multiply.outer(y[sel] * sy, sin)
            local_starts = starts[first:last] - starts[first]
            extent = np.maximum.reduceat(proj, local_starts, axis=0) - np.minimum.reduceat(proj, local_starts, axis=0)
            best = max(best, float((extent + pixel_extent).max()))
        diameters[position] = best
    return diameters


def _slice_chunks(starts: np.ndarray, total: int, max_points: int) -> list[tuple[int, int]]:
    """Group consecutive slices (given by their start offsets) into runs of about ``max_points`` points."""
    bounds: list[tuple[int, int]] = []
    first = 0
    ends = np.r_[starts[1:], total]
    while first < len(starts):
        last = int(np.searchsorted(ends, starts[first] + max_points, side="right"))
        last = max(last, first + 1)
        bounds.append((first, min(last, len(starts))))
        first = last
    return bounds


def liver_contact_fractions(components: LesionComponents, label_array: np.ndarray,
                            liver_value: int = LIVER_VALUE) -> np.ndarray:
    """Fraction of each lesion's one-voxel outer shell (6-neighbours) that carries the liver label.

    1.0 for a lesion embedded in liver, about 0.5 for a subcapsular one, 0.0 for a "lesion" floating outside the
    liver (a typical false positive). NaN if the shell is empty (lesion filling the whole volume).
    """
    shape = np.asarray(label_array.shape)
    fractions = np.full(components.count, np.nan)
    face_neighbours = ndimage.generate_binary_structure(3, 1)
    for index, box in enumerate(components.bounding_boxes):
        grown = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, int(n))) for s, n in zip(box, shape, strict=True))
        lesion = components.labels[grown] == index + 1
        shell = ndimage.binary_dilation(lesion, structure=face_neighbours) & ~lesion
        n_shell = int(shell.sum())
        if n_shell:
            fractions[index] = np.count_nonzero(shell & (label_array[grown] == liver_value)) / n_shell
    return fractions


def lesion_table(
    label: sitk.Image,
    image: sitk.Image | None = None,
    liver: sitk.Image | None = None,
    connectivity: int = 26,
    lesion_value: int = LESION_VALUE,
    liver_value: int = LIVER_VALUE,
) -> pd.DataFrame:
    """One row per lesion (connected component of ``lesion_value``) of a label map.

    Parameters
    ----------
    label
        Label map (LiTS convention: 0 background, 1 liver, 2 lesion).
    image
        Optional CT on the same grid: adds ``hu_mean`` and ``hu_std`` (population std over the lesion's voxels).
    liver
        Optional second label map on the same grid whose non-zero voxels are the liver (e.g. a reference
        segmentation when ``label`` is a prediction): adds ``fraction_in_liver``.
    connectivity
        cc3d connectivity (6, 18, 26).

    Returns
    -------
    pandas.DataFrame
        Columns ``lesion_id, voxel_count, volume_ml, centroid_x_mm, centroid_y_mm, centroid_z_mm,
        bbox_x_start, bbox_x_stop, bbox_y_start, bbox_y_stop, bbox_z_start, bbox_z_stop`` (voxel indices, stop
        exclusive), ``longest_axial_diameter_mm, liver_contact_fraction, hu_mean, hu_std, fraction_in_liver``
        (NaN when the optional input is not given). Lesions are numbered in cc3d's order (raster scan).
    """
    array = sitk.GetArrayViewFromImage(label)
    components = label_components(array == lesion_value, connectivity)
    spacing = label.GetSpacing()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    n = components.count
    centroids = index_to_physical(components.centroids_zyx, label) if n else np.zeros((0, 3))
    boxes = np.array([[s.start, s.stop] for box in components.bounding_boxes for s in box]).reshape(n, 3, 2)
    table = pd.DataFrame({
        "lesion_id": np.arange(1, n + 1),
        "voxel_count": components.voxel_counts,
        "volume_ml": components.voxel_counts * voxel_ml,
        "centroid_x_mm": centroids[:, 0],
        "centroid_y_mm": centroids[:, 1],
        "centroid_z_mm": centroids[:, 2],
        "bbox_x_start": boxes[:, 2, 0], "bbox_x_stop": boxes[:, 2, 1],
        "bbox_y_start": boxes[:, 1, 0], "bbox_y_stop": boxes[:, 1, 1],
        "bbox_z_start": boxes[:, 0, 0], "bbox_z_stop": boxes[:, 0, 1],
        "longest_axial_diameter_mm": longest_axial_diameters(components, spacing),
        "liver_contact_fraction": liver_contact_fractions(components, array, liver_value),
    })
    lesion_voxels = components.voxels
    ids = components.voxel_ids
    table["hu_mean"] = np.nan
    table["hu_std"] = np.nan
    if image is not None and n:
        hu = sitk.GetArrayViewFromImage(image).ravel()[lesion_voxels].astype(float)
        sums = np.bincount(ids, weights=hu, minlength=n + 1)[1:]
        squares = np.bincount(ids, weights=hu * hu, minlength=n + 1)[1:]
        mean = sums / components.voxel_counts
        table["hu_mean"] = mean
        table["hu_std"] = np.sqrt(np.maximum(squares / components.voxel_counts - mean * mean, 0.0))
    table["fraction_in_liver"] = np.nan
    if liver is not None and n:
        inside = sitk.GetArrayViewFromImage(liver).ravel()[lesion_voxels] > 0
        table["fraction_in_liver"] = np.bincount(ids, weights=inside, minlength=n + 1)[1:] / components.voxel_counts
    return table
