"""Figures 3 and 5: tumour volume against NE score/class, NE score by prediction status (PNG via matplotlib).

Each panel states its statistic on the plotted data: Spearman rho, p and n for volume vs NE score, the Wilcoxon
rank-sum p and the group sizes for the box plots. NE classes take the two ends of the NE colour map
(:data:`livermets.figures.NE_NEGATIVE_COLOUR` blue, :data:`livermets.figures.NE_POSITIVE_COLOUR` red).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from scipy import stats

from livermets.featuretable import TUMOUR_VOLUME_COLUMN
from livermets.figures import (
    NE_NEGATIVE_COLOUR,
    NE_POSITIVE_COLOUR,
    REFERENCE_LINE_COLOUR,
    format_p,
    new_figure,
    save_figure,
    spearman_text,
)
from livermets.stats.burden import SAMPLE_TYPE_COLUMN

CLASS_NAMES = ("NE-negative", "NE-positive")
CLASS_COLOURS = (NE_NEGATIVE_COLOUR, NE_POSITIVE_COLOUR)


def _box(ax: Axes, groups: list[np.ndarray], names: list[str], colours: tuple[str, ...] | None = None) -> None:
    """Box plot with the points over it and ``name (n=k)`` tick labels."""
    parts = ax.boxplot(groups, tick_labels=[f"{name}\n(n={g.size})" for name, g in zip(names, groups, strict=True)],
                       patch_artist=True, widths=0.5, showfliers=False,
                       medianprops={"color": "black"})
    for index, (box, group) in enumerate(zip(parts["boxes"], groups, strict=True)):
        colour = colours[index] if colours else "0.6"
        box.set(facecolor=colour, alpha=0.35, edgecolor=colour)
        jitter = np.linspace(-0.08, 0.08, group.size) if group.size > 1 else np.zeros(group.size)
        ax.scatter(index + 1 + jitter, group, s=10, alpha=0.7, color=colour, zorder=3)


def _ranksum_text(first: np.ndarray, second: np.ndarray) -> str:
    if first.size == 0 or second.size == 0:
        return "rank-sum not computed (an empty group)"
    return f"Wilcoxon rank-sum {format_p(float(stats.ranksums(first, second).pvalue))}"


def burden_figure(studies: pd.DataFrame, volume_column: str = TUMOUR_VOLUME_COLUMN) -> Figure:
    """The figure :func:`plot_burden` saves: per subset (all, then each ``sample_type``) a scatter of tumour volume
    (mL, log axis) vs NE score titled with Spearman rho, p and n, and a box plot of volume by NE class."""
    subsets: list[tuple[str, pd.DataFrame]] = [("all", studies)]
    if SAMPLE_TYPE_COLUMN in studies.columns:
        subsets += [(str(k), v) for k, v in studies.groupby(SAMPLE_TYPE_COLUMN, sort=True)]
    fig, axes = new_figure(2, len(subsets), figsize=(4.8 * len(subsets), 7.6))
    for column, (name, subset) in enumerate(subsets):
        volume_ml = subset[volume_column].to_numpy(dtype=float) / 1000.0
        score = subset["NE_Score"].to_numpy(dtype=float)
        positive = subset["NE_Class"].to_numpy() == 1
        top, bottom = axes[0, column], axes[1, column]
        for mask, label, colour in zip((~positive, positive), CLASS_NAMES, CLASS_COLOURS, strict=True):
            top.scatter(volume_ml[mask], score[mask], s=14, alpha=0.75, color=colour, label=label)
        top.set_xscale("log")
        top.axhline(0.0, color=REFERENCE_LINE_COLOUR, lw=0.8, ls="--")
        not_drawn = int((volume_ml <= 0).sum())
        if not_drawn:
            top.text(0.02, 0.02, f"{not_drawn} with volume 0 not drawn (log axis)", transform=top.transAxes,
                     fontsize=7)
        top.set(xlabel="tumour volume (mL, log scale)", ylabel="NE score",
                title=f"{name}: tumour volume vs NE score\n{spearman_text(volume_ml, score)}")
        top.legend(loc="upper left")
        groups = [volume_ml[~positive], volume_ml[positive]]
        _box(bottom, groups, list(CLASS_NAMES), CLASS_COLOURS)
        bottom.set_yscale("log")
        bottom.set(ylabel="tumour volume (mL, log scale)",
                   title=f"{name}: volume by NE class\n{_ranksum_text(groups[1], groups[0])}")
    return fig


def plot_burden(studies: pd.DataFrame, path: str | os.PathLike[str], volume_column: str = TUMOUR_VOLUME_COLUMN) -> Path:
    """Scatter (volume vs NE score, log volume axis) and box plot (volume by NE class), one column per subset."""
    return save_figure(burden_figure(studies, volume_column), path)


def failure_figure(scores: ArrayLike, correct: ArrayLike) -> Figure:
    """The figure :func:`plot_failure` saves: NE score of correctly and incorrectly classified series."""
    values = np.asarray(scores, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    fig, axes = new_figure(figsize=(4.8, 4.4))
    ax = axes[0, 0]
    _box(ax, [values[ok], values[~ok]], ["correct", "incorrect"])
    ax.axhline(0.0, color=REFERENCE_LINE_COLOUR, lw=0.8, ls="--")
    ax.set(ylabel="NE score", title=f"NE score by prediction status (n = {values.size})")
    return fig


def plot_failure(scores: ArrayLike, correct: ArrayLike, path: str | os.PathLike[str]) -> Path:
    """NE score of correctly and incorrectly classified series (box plot with points)."""
    return save_figure(failure_figure(scores, correct), path)
