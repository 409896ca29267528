"""Figure-2-like PNG: one axial slice with the liver and lesions of the reference and of the prediction.

Two panels as in the paper's Figure 2 (reference | prediction): the CT slice (soft-tissue window W400/L40 with a
grey HU colour bar, or a blank background without CT) on a millimetre grid, the liver outlined in
:data:`~livermets.figures.LIVER_COLOUR` (blue) and lesions filled in :data:`~livermets.figures.LESION_COLOUR`
(orange), the colours of every livermets figure. Given the match (``detection``), each lesion is outlined by its
status: reference lesions TP (detected, bluish green) or FN (missed, yellow), predicted lesions TP or FP (reddish
purple). A legend below the panels names every colour shown. The slice passes through the largest reference lesion
(see :func:`livermets.lesions.scan_metrics.evaluate_scan`).

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> ref = np.zeros((3, 32, 32), np.uint8); ref[:, 4:28, 4:28] = 1; ref[1, 10:16, 10:16] = 2
>>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.png"
>>> overlay_figure(ref, ref, 1, path, spacing_xyz=(1, 1, 1), title="demo").exists()
True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from livermets.figures import (
    CT_WINDOW_HU,
    DETECTION_COLOURS,
    LESION_COLOUR,
    add_mask_legend,
    draw_label_overlay,
    draw_outline,
    mask_legend_handles,
    new_figure,
    save_figure,
)
from livermets.lesions.components import LESION_VALUE, label_components

WINDOW_HU = CT_WINDOW_HU
"""Soft-tissue/liver window (level 40, width 400)."""
Detection = tuple[np.ndarray, np.ndarray]
"""Per-lesion match status: ``(ref_detected, pred_correct)`` of :class:`livermets.lesions.matching.MatchResult`."""


def _status_ids(labels: np.ndarray, slice_index: int, status: np.ndarray, connectivity: int) -> np.ndarray:
    """Axial slice of the 3D lesion components of ``labels``, each id replaced by 1 (status True) or 2 (False)."""
    components = label_components(labels == LESION_VALUE, connectivity)
    if components.count != len(status):
        raise ValueError(f"detection: {len(status)} statuses for {components.count} lesions")
    lookup = np.concatenate([[0], np.where(np.asarray(status, bool), 1, 2)]).astype(np.uint8)
    return lookup[components.labels[slice_index]]


def _draw_panel(axis: Axes, plane: np.ndarray, ct_plane: np.ndarray | None, extent: tuple[float, float, float, float],
                statuses: np.ndarray | None, names: tuple[str, str]) -> list[str]:
    """CT, liver outline, lesion fill and lesion outlines on ``axis``; returns the statuses outlined."""
    if ct_plane is not None:
        axis.imshow(ct_plane, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], extent=extent, origin="upper")
    else:
        axis.imshow(np.zeros(plane.shape), cmap="gray", vmin=0, vmax=1, extent=extent, origin="upper")
    draw_label_overlay(axis, plane, extent, lesion_outline=None if statuses is not None else LESION_COLOUR)
    shown = []
    if statuses is not None:
        for value, name in ((1, names[0]), (2, names[1])):
            mask = statuses == value
            if mask.any():
                draw_outline(axis, mask, DETECTION_COLOURS[name], 1.6, extent, origin="upper")
                shown.append(name)
    axis.set_xlabel("mm")
    axis.set_ylabel("mm")
    axis.spines[["top", "right"]].set_visible(True)
    return shown


def overlay_figure(
    reference: np.ndarray,
    prediction: np.ndarray,
    slice_index: int,
    path: str | Path,
    ct: np.ndarray | None = None,
    spacing_xyz: Sequence[float] = (1.0, 1.0, 1.0),
    title: str = "",
    direction: Sequence[float] | None = None,
    detection: Detection | None = None,
    connectivity: int = 26,
) -> Path:
    """Write the two-panel PNG for axial slice ``slice_index`` of ``(z, y, x)`` label arrays; returns the path.

    ``direction`` (SimpleITK's 9 direction cosines) orients the slice in radiological convention (patient's
    right on the image's left, anterior up) for axis-aligned images; without it the array is shown as stored.
    ``detection`` (the evaluation's per-lesion statuses, lesions numbered as
    :func:`livermets.lesions.components.label_components` with ``connectivity``) outlines lesions by match status.
    """
    figure = draw_overlay(reference, prediction, slice_index, ct, spacing_xyz, title, direction, detection,
                          connectivity)
    return save_figure(figure, path, dpi=100)


def draw_overlay(
    reference: np.ndarray,
    prediction: np.ndarray,
    slice_index: int,
    ct: np.ndarray | None = None,
    spacing_xyz: Sequence[float] = (1.0, 1.0, 1.0),
    title: str = "",
    direction: Sequence[float] | None = None,
    detection: Detection | None = None,
    connectivity: int = 26,
) -> Figure:
    """The figure :func:`overlay_figure` saves (same parameters, without ``path``)."""
    flip_x = direction is not None and float(direction[0]) < 0
    flip_y = direction is not None and float(direction[4]) < 0

    def oriented(plane: np.ndarray) -> np.ndarray:
        return plane[:: -1 if flip_y else 1, :: -1 if flip_x else 1]

    n_y, n_x = reference.shape[1:]
    extent = (0.0, n_x * float(spacing_xyz[0]), n_y * float(spacing_xyz[1]), 0.0)
    figure, axes = new_figure(1, 2, figsize=(10, 5.6))
    panels = ((reference, "Reference", ("TP", "FN")), (prediction, "Prediction", ("TP", "FP")))
    outlined: list[str] = []
    for index, (labels, name, names) in enumerate(panels):
        statuses = None
        if detection is not None:
            statuses = oriented(_status_ids(labels, slice_index, detection[index], connectivity))
        ct_plane = oriented(np.asarray(ct[slice_index], float)) if ct is not None else None
        outlined += _draw_panel(axes[0, index], oriented(labels[slice_index]), ct_plane, extent, statuses, names)
        axes[0, index].set_title(f"{name} (slice {slice_index})")
    if ct is not None:
        bar = figure.colorbar(ScalarMappable(Normalize(*WINDOW_HU), cmap="gray"), ax=list(axes[0]), shrink=0.7)
        bar.set_label("CT (HU), window W400/L40")
    statuses_shown = [s for s in ("TP", "FN", "FP") if s in outlined]
    add_mask_legend(figure, mask_legend_handles(statuses=statuses_shown))
    if title:
        figure.suptitle(title)
    return figure
