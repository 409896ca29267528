"""Figures of the analyze report: an axial montage and a coronal view of the CT with the liver and its lesions.

Orientation
    Every image is reoriented to LPS first (``sitk.DICOMOrient(image, "LPS")``, a copy). The array ``(z, y, x)`` then
    runs inferior to superior, anterior to posterior and patient right to left, so an axial slice drawn with row 0 on
    top shows anterior up and the patient's right on the image's left (radiological convention) whatever the input's
    direction cosines. A coronal slice is drawn superior up, patient's right on the left. Pixels keep their physical
    size (the images are drawn on a millimetre extent).
Display
    CT in an abdomen window (W 400 / L 50 HU, grey); liver (labels 1 and 2) outlined in :data:`LIVER_COLOUR`;
    lesions (label 2) filled semi-transparent and outlined in :data:`LESION_COLOUR`. With per-lesion NE probabilities
    each lesion takes its colour from :data:`NE_CMAP` on 0..1 (blue = non-NE, red = NE) and a colour bar labelled
    "NE probability (exploratory)" is added; a lesion without a probability stays orange.
Lesion ids
    Lesions are the 26-connected components of label 2 numbered on the *input* array by
    :func:`livermets.lesions.components.label_components`, the numbering of
    :func:`livermets.lesions.components.lesion_table` (``lesion_id``), which keys ``lesion_probability``.
Slice choice (montage)
    First the slice of largest area of each of the largest lesions (by volume, at most half of the panels), then the
    remaining panels at evenly spaced positions over the liver's z-extent (the nearest slice not shown yet). Panels
    run from superior (top left) to inferior. Without liver the panels are spread over the middle half of the body
    (CT above -500 HU) and the figure says "no liver found". Every panel is cropped to the liver's bounding box plus
    a 15 mm margin.
Cost
    A few passes over the volume (reorientation, one labelling of the lesions, one bounding-box projection); the
    per-lesion work uses only the lesion voxels, never one full-volume pass per lesion.

Examples
--------
>>> import numpy as np, SimpleITK as sitk
>>> label = np.zeros((20, 32, 32), np.uint8); label[4:16, 8:24, 8:24] = 1; label[8:11, 12:15, 12:15] = 2
>>> ct = sitk.GetImageFromArray(np.where(label > 0, 60, -1000).astype(np.int16))
>>> panels = display_slices(ct, sitk.GetImageFromArray(label), n_slices=4)
>>> [p.slice_index for p in panels], panels[0].ct.shape
([13, 9, 8, 5], (32, 32))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import numpy as np
import SimpleITK as sitk
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from livermets.figures import (
    LESION_ALPHA,
    LESION_COLOUR,
    LIVER_COLOUR,
    NE_CMAP,
    draw_outline,
    mask_legend_handles,
)
from livermets.lesions.components import LESION_VALUE, label_components

NE_COLOURBAR_LABEL = "NE probability (exploratory)"

WINDOW_HU = (-150.0, 250.0)
"""Abdomen window: width 400 HU, level 50 HU."""
MARGIN_MM = 15.0
"""Margin around the liver's bounding box in every panel."""
BODY_HU = -500.0
"""Without liver, voxels above this HU are the body the panels are centred on."""
FONT_PT = 9
N_COLUMNS = 4
PANEL_INCHES = 3.0
MIN_WIDTH_INCHES = 6.0


@dataclass(frozen=True)
class OrientedVolume:
    """A CT and its label map reoriented to LPS, with the lesion ids and the region the figures show.

    Attributes
    ----------
    ct_image, label_image, ids_image
        LPS copies of the CT, the label map and the lesion ids (0 outside lesions, ``lesion_id`` inside).
    source
        The input label map (for slice numbers in the input's own numbering).
    n_lesions
        Number of lesions.
    lesion_voxels, lesion_best_z, lesion_centroid_y
        Per lesion (index ``lesion_id - 1``): voxel count, LPS z index of its largest cross-section, LPS y centroid.
    box
        ``(z, y, x)`` slices of the region shown: the liver's bounding box, else the body's, else the whole image.
    centre
        Centre of mass ``(z, y, x)`` of that region (LPS indices).
    has_liver
        Whether the label map has any liver or lesion voxel.
    """

    ct_image: sitk.Image
    label_image: sitk.Image
    ids_image: sitk.Image
    source: sitk.Image
    n_lesions: int
    lesion_voxels: np.ndarray
    lesion_best_z: np.ndarray
    lesion_centroid_y: np.ndarray
    box: tuple[slice, slice, slice]
    centre: tuple[float, float, float]
    has_liver: bool

    @property
    def ct(self) -> np.ndarray:
        """CT array ``(z, y, x)`` in LPS order (read-only view)."""
        return sitk.GetArrayViewFromImage(self.ct_image)

    @property
    def label(self) -> np.ndarray:
        """Label array ``(z, y, x)`` in LPS order (read-only view)."""
        return sitk.GetArrayViewFromImage(self.label_image)

    @property
    def ids(self) -> np.ndarray:
        """Lesion id array ``(z, y, x)`` in LPS order (read-only view)."""
        return sitk.GetArrayViewFromImage(self.ids_image)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """LPS voxel spacing ``(x, y, z)`` in mm."""
        sx, sy, sz = self.label_image.GetSpacing()
        return float(sx), float(sy), float(sz)


@dataclass(frozen=True)
class Panel:
    """One displayed slice: arrays as drawn (row 0 on top) and their millimetre extent.

    Attributes
    ----------
    slice_index
        Axial: the slice number in the input image's own numbering. Coronal: the LPS y index.
    position_mm
        Axial: physical z of the slice (mm). Coronal: physical y (mm).
    ct, label, lesion_ids
        2D arrays as displayed.
    extent
        ``(left, right, bottom, top)`` in mm for ``imshow(..., origin="upper")``.
    """

    slice_index: int
    position_mm: float
    ct: np.ndarray
    label: np.ndarray
    lesion_ids: np.ndarray
    extent: tuple[float, float, float, float]


def orient_volume(ct: sitk.Image, label: sitk.Image) -> OrientedVolume:
    """Reorient ``ct`` and ``label`` to LPS, label the lesions once and find the region to show."""
    if ct.GetSize() != label.GetSize():
        raise ValueError(f"CT size {ct.GetSize()} differs from label size {label.GetSize()}")
    components = label_components(sitk.GetArrayViewFromImage(label) == LESION_VALUE)
    ids_image = sitk.GetImageFromArray(components.labels.astype(np.uint32, copy=False))
    ids_image.CopyInformation(label)
    ct_lps, label_lps, ids_lps = (sitk.DICOMOrient(image, "LPS") for image in (ct, label, ids_image))
    ids = sitk.GetArrayViewFromImage(ids_lps)
    voxels, best_z, centroid_y = _lesion_slices(ids, components.count)
    region = _region(sitk.GetArrayViewFromImage(label_lps) > 0)
    has_liver = region is not None
    if region is None:
        region = _region(sitk.GetArrayViewFromImage(ct_lps) > BODY_HU) or _whole(ids.shape)
    box, centre = region
    return OrientedVolume(ct_lps, label_lps, ids_lps, label, components.count, voxels, best_z, centroid_y,
                          box, centre, has_liver)


def _lesion_slices(ids: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel count, z of the largest cross-section and mean y of each lesion, from the lesion voxels only."""
    if count == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    flat = ids.reshape(-1)
    where = np.flatnonzero(flat)
    lesion = flat[where].astype(np.int64) - 1
    n_z, n_y, n_x = ids.shape
    z = where // (n_y * n_x)
    y = (where // n_x) % n_y
    voxels = np.bincount(lesion, minlength=count)
    centroid_y = np.bincount(lesion, weights=y, minlength=count) / np.maximum(voxels, 1)
    keys, areas = np.unique(lesion * n_z + z, return_counts=True)
    key_lesion, key_z = keys // n_z, keys % n_z
    order = np.lexsort((key_z, -areas, key_lesion))  # per lesion: largest area first, lowest z on ties
    first = order[np.r_[True, key_lesion[order][1:] != key_lesion[order][:-1]]]
    best_z = np.zeros(count, np.int64)
    best_z[key_lesion[first]] = key_z[first]
    return voxels, best_z, centroid_y


def _region(mask: np.ndarray) -> tuple[tuple[slice, slice, slice], tuple[float, float, float]] | None:
    """Bounding box and centre of mass of a 3D mask from its axis projections; None if the mask is empty."""
    per_zy = np.count_nonzero(mask, axis=2)
    total = int(per_zy.sum())
    if total == 0:
        return None
    profiles = (per_zy.sum(axis=1), per_zy.sum(axis=0), np.count_nonzero(mask, axis=(0, 1)))
    box = []
    centre = []
    for profile in profiles:
        present = np.flatnonzero(profile)
        box.append(slice(int(present[0]), int(present[-1]) + 1))
        centre.append(float(np.dot(profile, np.arange(profile.size))) / total)
    return (box[0], box[1], box[2]), (centre[0], centre[1], centre[2])


def _whole(shape: tuple[int, ...]) -> tuple[tuple[slice, slice, slice], tuple[float, float, float]]:
    """The whole image as the region shown, centred."""
    n_z, n_y, n_x = shape
    return (slice(0, n_z), slice(0, n_y), slice(0, n_x)), ((n_z - 1) / 2.0, (n_y - 1) / 2.0, (n_x - 1) / 2.0)


def choose_axial_slices(volume: OrientedVolume, n_slices: int = 12) -> list[int]:
    """LPS z indices of the montage panels, superior first (see the module docstring for the rule)."""
    z_box = volume.box[0]
    low, high = z_box.start, z_box.stop  # high exclusive
    if not volume.has_liver:
        quarter = (high - low) // 4
        low, high = low + quarter, high - quarter
    chosen: list[int] = []
    if volume.n_lesions:
        largest = np.lexsort((np.arange(volume.n_lesions), -volume.lesion_voxels))[: max(n_slices // 2, 1)]
        for lesion in largest:
            z = int(volume.lesion_best_z[lesion])
            if z not in chosen and len(chosen) < n_slices:
                chosen.append(z)
    n_fill = min(n_slices, high - low) - len(chosen)
    used = np.zeros(high - low, bool)
    used[[z - low for z in chosen if low <= z < high]] = True
    positions = np.arange(low, high)
    for target in low + (np.arange(max(n_fill, 0)) + 0.5) * (high - low) / max(n_fill, 1) - 0.5:
        free = np.flatnonzero(~used)
        if free.size == 0:
            break
        pick = free[np.argmin(np.abs(positions[free] - target))]
        used[pick] = True
        chosen.append(int(positions[pick]))
    return sorted(chosen, reverse=True)


def _crop(volume: OrientedVolume, axis_box: slice, axis: int, margin_mm: float) -> slice:
    """``axis_box`` of LPS array axis ``axis`` (0 z, 1 y, 2 x) grown by ``margin_mm`` and clipped to the image."""
    spacing = volume.spacing[2 - axis]
    size = volume.ids.shape[axis]
    grow = int(math.ceil(margin_mm / spacing))
    return slice(max(axis_box.start - grow, 0), min(axis_box.stop + grow, size))


def _input_slice_index(volume: OrientedVolume, z: int) -> int:
    """Number of LPS axial slice ``z`` along the input image's most cranio-caudal axis."""
    direction = np.asarray(volume.source.GetDirection(), float).reshape(3, 3)
    axis = int(np.argmax(np.abs(direction[2])))
    point = volume.label_image.TransformIndexToPhysicalPoint((0, 0, int(z)))
    return int(round(volume.source.TransformPhysicalPointToContinuousIndex(point)[axis]))


def axial_panels(volume: OrientedVolume, slices: Sequence[int], margin_mm: float = MARGIN_MM) -> list[Panel]:
    """Cropped axial panels at LPS z indices ``slices``."""
    rows = _crop(volume, volume.box[1], 1, margin_mm)
    cols = _crop(volume, volume.box[2], 2, margin_mm)
    sx, sy, _ = volume.spacing
    extent = (0.0, (cols.stop - cols.start) * sx, (rows.stop - rows.start) * sy, 0.0)
    size_x, size_y, _ = volume.label_image.GetSize()
    panels = []
    for z in slices:
        centre = ((size_x - 1) / 2.0, (size_y - 1) / 2.0, float(z))
        z_mm = float(volume.label_image.TransformContinuousIndexToPhysicalPoint(centre)[2])
        panels.append(Panel(
            _input_slice_index(volume, z), z_mm, np.asarray(volume.ct[z, rows, cols], np.float32),
            np.array(volume.label[z, rows, cols]), np.array(volume.ids[z, rows, cols]), extent,
        ))
    return panels


def display_slices(ct: sitk.Image, label: sitk.Image, n_slices: int = 12) -> list[Panel]:
    """The montage's panels exactly as :func:`axial_montage` draws them (LPS, cropped, row 0 on top)."""
    volume = orient_volume(ct, label)
    return axial_panels(volume, choose_axial_slices(volume, n_slices))


def coronal_panel(volume: OrientedVolume, margin_mm: float = 2 * MARGIN_MM) -> tuple[Panel, str]:
    """Coronal slice (superior up) through the largest lesion, else the region's centre of mass; and what it is."""
    if volume.n_lesions:
        largest = int(np.lexsort((np.arange(volume.n_lesions), -volume.lesion_voxels))[0])
        y = int(round(float(volume.lesion_centroid_y[largest])))
        through = f"through the largest lesion (id {largest + 1})"
    else:
        y = int(round(volume.centre[1]))
        through = "through the liver's centre of mass" if volume.has_liver else "through the middle of the body"
    zs = _crop(volume, volume.box[0], 0, margin_mm)
    cols = _crop(volume, volume.box[2], 2, margin_mm)
    sx, _, sz = volume.spacing
    extent = (0.0, (cols.stop - cols.start) * sx, (zs.stop - zs.start) * sz, 0.0)
    size_x, _, size_z = volume.label_image.GetSize()
    centre = ((size_x - 1) / 2.0, float(y), (size_z - 1) / 2.0)
    y_mm = float(volume.label_image.TransformContinuousIndexToPhysicalPoint(centre)[1])
    panel = Panel(
        y, y_mm, np.asarray(volume.ct[zs, y, cols][::-1], np.float32), np.array(volume.label[zs, y, cols][::-1]),
        np.array(volume.ids[zs, y, cols][::-1]), extent,
    )
    return panel, through


def lesion_colours(n_lesions: int, lesion_probability: Mapping[int, float] | None = None) -> np.ndarray:
    """RGBA lookup table ``(n_lesions + 1, 4)`` indexed by lesion id (row 0, background, transparent).

    Lesions get :data:`LESION_COLOUR`, or the :data:`NE_CMAP` colour of their probability when one is given (a
    missing or NaN probability keeps the lesion orange).

    Raises
    ------
    ValueError
        A probability for a lesion id outside ``1..n_lesions``.
    """
    table = np.tile(np.asarray(to_rgba(LESION_COLOUR)), (n_lesions + 1, 1))
    table[0] = 0.0
    if lesion_probability:
        cmap = colormaps[NE_CMAP]
        for lesion_id, probability in lesion_probability.items():
            if not 1 <= int(lesion_id) <= n_lesions:
                raise ValueError(f"lesion_probability has lesion id {lesion_id}, the label map has {n_lesions}")
            if probability is not None and np.isfinite(probability):
                table[int(lesion_id)] = cmap(float(np.clip(probability, 0.0, 1.0)))
    return table


def _draw_panel(axis: Axes, panel: Panel, colours: np.ndarray, per_lesion: bool, title: str) -> None:
    """CT in the abdomen window, liver outline, lesion fill and outlines on ``axis``."""
    axis.imshow(panel.ct, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], extent=panel.extent,
                interpolation="nearest", origin="upper")
    draw_outline(axis, panel.label > 0, LIVER_COLOUR, 1.3, panel.extent, origin="upper")
    lesions = panel.lesion_ids > 0
    if lesions.any():
        fill = colours[panel.lesion_ids]
        fill[..., 3] = np.where(lesions, LESION_ALPHA, 0.0)
        axis.imshow(fill, extent=panel.extent, interpolation="nearest", origin="upper")
        if not lesions.all():
            groups = np.unique(panel.lesion_ids[lesions]) if per_lesion else [None]
            for lesion in groups:
                mask = lesions if lesion is None else panel.lesion_ids == lesion
                colour = LESION_COLOUR if lesion is None else tuple(colours[int(lesion)][:3])
                draw_outline(axis, mask, colour, 1.1, panel.extent, origin="upper")
    axis.set_title(title, fontsize=FONT_PT)
    axis.set_axis_off()


def _legend_and_colourbar(figure: Figure, axes: Sequence[Axes], per_lesion: bool) -> None:
    """Liver/lesion legend below the panels; the NE colour bar when lesions are coloured by probability."""
    handles = mask_legend_handles(lesion=None if per_lesion else "lesion")
    if per_lesion:
        handles.append(Patch(facecolor="none", edgecolor="0.3", label="lesion (colour: NE probability)"))
    figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=FONT_PT + 1, frameon=False)
    if per_lesion:
        bar = figure.colorbar(ScalarMappable(norm=Normalize(0.0, 1.0), cmap=NE_CMAP), ax=list(axes), shrink=0.6)
        bar.set_label(NE_COLOURBAR_LABEL, fontsize=FONT_PT + 1)
        bar.ax.tick_params(labelsize=FONT_PT)


def axial_montage(
    ct: sitk.Image,
    label: sitk.Image,
    lesion_probability: Mapping[int, float] | None = None,
    n_slices: int = 12,
) -> Figure:
    """Axial slices over the liver with liver and lesion overlays (see the module docstring for every convention).

    Parameters
    ----------
    ct
        CT in HU.
    label
        Label map on the CT's grid (0 background, 1 liver, 2 lesion).
    lesion_probability
        Optional per-lesion NE probability keyed by ``lesion_id`` (the numbering of ``lesion_table``): lesions are
        then coloured with :data:`NE_CMAP` and a colour bar is added.
    n_slices
        Number of panels (fewer when the liver spans fewer slices).

    Returns
    -------
    matplotlib.figure.Figure
        Save it with :func:`livermets.figures.save_figure`.
    """
    volume = orient_volume(ct, label)
    panels = axial_panels(volume, choose_axial_slices(volume, n_slices))
    colours = lesion_colours(volume.n_lesions, lesion_probability)
    per_lesion = bool(lesion_probability)
    n_cols = max(min(N_COLUMNS, len(panels)), 1)
    n_rows = max(math.ceil(len(panels) / n_cols), 1)
    left, right, bottom, top = panels[0].extent if panels else (0.0, 1.0, 1.0, 0.0)
    ratio = float(np.clip((bottom - top) / max(right - left, 1e-6), 0.4, 1.6))
    width = max(n_cols * PANEL_INCHES + (1.2 if per_lesion else 0.3), MIN_WIDTH_INCHES)
    figure = Figure(figsize=(width, n_rows * PANEL_INCHES * ratio + 1.1), layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
    for axis, panel in zip(axes, panels, strict=False):
        _draw_panel(axis, panel, colours, per_lesion, f"slice {panel.slice_index} · z {panel.position_mm:.1f} mm")
    for axis in axes[len(panels):]:
        axis.set_axis_off()
    separator = " " if n_cols >= 3 else "\n"  # narrow figures: two lines, never clipped
    title = f"Axial slices, superior to inferior{separator}(radiological view: patient's right on the left)"
    if not volume.has_liver:
        title += f"{separator}— no liver found"
    figure.suptitle(title, fontsize=FONT_PT + 2)
    _legend_and_colourbar(figure, list(axes), per_lesion)
    return figure


def coronal_view(
    ct: sitk.Image,
    label: sitk.Image,
    lesion_probability: Mapping[int, float] | None = None,
) -> Figure:
    """One coronal slice (superior up, patient's right on the left) with the montage's overlays and legend.

    The slice passes through the centroid of the largest lesion, or the liver's centre of mass without lesions, or
    the middle of the body without liver.
    """
    volume = orient_volume(ct, label)
    panel, through = coronal_panel(volume)
    colours = lesion_colours(volume.n_lesions, lesion_probability)
    per_lesion = bool(lesion_probability)
    left, right, bottom, top = panel.extent
    ratio = float(np.clip((bottom - top) / max(right - left, 1e-6), 0.5, 2.0))
    width = 6.0 + (1.2 if per_lesion else 0.0)
    figure = Figure(figsize=(width, 6.0 * ratio + 1.1), layout="constrained")
    axis = figure.subplots()
    title = f"Coronal slice {through} · y {panel.position_mm:.1f} mm"
    if not volume.has_liver:
        title += " — no liver found"
    _draw_panel(axis, panel, colours, per_lesion, title)
    for text, x, y in (("S", 0.5, 0.98), ("I", 0.5, 0.02), ("R", 0.02, 0.5), ("L", 0.98, 0.5)):
        axis.text(x, y, text, color="yellow", fontsize=FONT_PT + 1, ha="center", va="center",
                  transform=axis.transAxes)
    _legend_and_colourbar(figure, [axis], per_lesion)
    return figure
