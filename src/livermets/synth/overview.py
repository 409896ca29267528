"""Overview figure of a synthetic cohort: one axial slice per series with liver and lesion overlays."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from livermets.figures import (
    CT_WINDOW_HU,
    add_mask_legend,
    draw_label_overlay,
    mask_legend_handles,
    new_figure,
    save_figure,
)


def overview_figure(panels: list[tuple[str, np.ndarray, np.ndarray]], max_panels: int = 24) -> Figure:
    """The figure :func:`write_overview` saves: the first ``max_panels`` (series id, HU slice, label slice) panels.

    HU shown in a W400/L40 window; liver outlined in blue (label >= 1) and lesions filled orange (label 2), the
    colours of :mod:`livermets.figures`, with a legend below the panels.
    """
    panels = panels[:max_panels]
    cols = min(6, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = new_figure(rows, cols, figsize=(max(2.2 * cols, 5.0), 2.4 * rows + 0.8))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (series_id, image, label) in zip(axes.ravel(), panels, strict=False):
        ax.imshow(image, cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1], interpolation="nearest")
        draw_label_overlay(ax, np.asarray(label))
        ax.set_title(series_id, fontsize=7)
    fig.suptitle(f"livermets synth: axial slice through the largest lesion of the first {len(panels)} series "
                 "(CT window W400/L40 HU)", fontsize=8)
    add_mask_legend(fig, mask_legend_handles())
    return fig


def write_overview(path: str | Path, panels: list[tuple[str, np.ndarray, np.ndarray]], max_panels: int = 24) -> Path:
    """Write :func:`overview_figure` as a PNG; PNG metadata are fixed so that the same cohort gives the same bytes."""
    return save_figure(overview_figure(panels, max_panels), path)
