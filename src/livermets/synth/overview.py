"""Overview figure of a synthetic cohort: one axial slice per series with liver and lesion outlines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from livermets.figures import save_figure

WINDOW = (40.0, 400.0)  # level, width (soft-tissue window)


def write_overview(path: str | Path, panels: list[tuple[str, np.ndarray, np.ndarray]], max_panels: int = 24) -> Path:
    """Write a PNG montage of the first ``max_panels`` (series id, HU slice, label slice) panels.

    HU shown in a W400/L40 window; liver outlined in green (label >= 1), lesions in red (label 2). PNG metadata are
    fixed so that the same cohort gives the same bytes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = panels[:max_panels]
    cols = min(6, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    level, width = WINDOW
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (series_id, image, label) in zip(axes.ravel(), panels, strict=False):
        ax.imshow(image, cmap="gray", vmin=level - width / 2, vmax=level + width / 2, interpolation="nearest")
        if (label >= 1).any():
            ax.contour(label >= 1, levels=[0.5], colors="lime", linewidths=0.6)
        if (label == 2).any():
            ax.contour(label == 2, levels=[0.5], colors="red", linewidths=0.6)
        ax.set_title(series_id, fontsize=7)
    fig.suptitle("livermets synth: axial slice through the largest lesion (green liver, red lesions; W400/L40)",
                 fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
