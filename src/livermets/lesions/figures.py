"""Figure-2-like PNG: one axial slice with liver and lesion outlines of the reference and the prediction.

Two panels as in the paper's Figure 2 (ground truth | AI prediction): the CT slice (soft-tissue window, or a blank
background without CT) with the liver outlined in red and lesions in green. The slice passes through the largest
reference lesion (see :func:`livermets.lesions.scan_metrics.evaluate_scan`).

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

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt
import numpy as np

from livermets.figures import save_figure

LIVER_COLOUR = "red"
LESION_COLOUR = "lime"
WINDOW_HU = (-160.0, 240.0)
"""Soft-tissue/liver window (level 40, width 400)."""


def overlay_figure(
    reference: np.ndarray,
    prediction: np.ndarray,
    slice_index: int,
    path: str | Path,
    ct: np.ndarray | None = None,
    spacing_xyz: Sequence[float] = (1.0, 1.0, 1.0),
    title: str = "",
    direction: Sequence[float] | None = None,
) -> Path:
    """Write the two-panel PNG for axial slice ``slice_index`` of ``(z, y, x)`` label arrays; returns the path.

    ``direction`` (SimpleITK's 9 direction cosines) orients the slice in radiological convention (patient's
    right on the image's left, anterior up) for axis-aligned images; without it the array is shown as stored.
    """
    aspect = float(spacing_xyz[1]) / float(spacing_xyz[0])
    flip_x = direction is not None and float(direction[0]) < 0
    flip_y = direction is not None and float(direction[4]) < 0

    def oriented(plane: np.ndarray) -> np.ndarray:
        return plane[:: -1 if flip_y else 1, :: -1 if flip_x else 1]

    figure, axes = plt.subplots(1, 2, figsize=(10, 5.4), constrained_layout=True)
    for axis, labels, name in ((axes[0], reference, "Reference"), (axes[1], prediction, "Prediction")):
        if ct is not None:
            axis.imshow(oriented(ct[slice_index]), cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], aspect=aspect,
                        interpolation="nearest")
        else:
            axis.imshow(np.zeros(labels.shape[1:]), cmap="gray", vmin=0, vmax=1, aspect=aspect)
        plane = oriented(labels[slice_index])
        for mask, colour in ((plane >= 1, LIVER_COLOUR), (plane == 2, LESION_COLOUR)):
            if mask.any():
                axis.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=1.2)
        axis.set_title(f"{name} (slice {slice_index})")
        axis.set_axis_off()
    if title:
        figure.suptitle(title)
    return save_figure(figure, path, dpi=100)
