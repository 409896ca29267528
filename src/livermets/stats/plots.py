"""Figures 3 and 5: tumour volume against NE score/class, NE score by prediction status (PNG via matplotlib).

Each panel states its statistic on the plotted data: Spearman rho, p and n for volume vs NE score, the Wilcoxon
rank-sum p and the group sizes for the box plots. At the patient level (``stats burden``'s default) a point is a
patient, and the Spearman title adds the patient-level bootstrap CI and states n as patients, studies and series.
NE classes take the two ends of the NE colour map (:data:`livermets.figures.NE_NEGATIVE_COLOUR` blue,
:data:`livermets.figures.NE_POSITIVE_COLOUR` red).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

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
from livermets.stats.burden import SAMPLE_TYPE_COLUMN, patient_table, sample_type_subsets
from livermets.stats.clustered import Units, spearman_sentence

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


def _burden_titles(name: str, points: pd.DataFrame, volume_column: str,
                   result: dict[str, Any] | None) -> tuple[str, str]:
    """Scatter and box-plot titles; with a patient-level ``result`` its Spearman CI and n as patients/studies/series."""
    volume_ml = points[volume_column].to_numpy(dtype=float) / 1000.0
    positive, negative = points["NE_Class"].to_numpy() == 1, points["NE_Class"].to_numpy() == 0
    if result is None:
        return (f"{name}: tumour volume vs NE score\n"
                f"{spearman_text(volume_ml, points['NE_Score'].to_numpy(dtype=float))}",
                f"{name}: volume by NE class\n{_ranksum_text(volume_ml[positive], volume_ml[negative])}")
    units = Units(result["n_patients"], result["n_studies"], result["n_series"])
    rho = {"rho": result["spearman_rho"], "p": result["spearman_p"], "low95": result["spearman_low95"],
           "high95": result["spearman_high95"]}
    spearman = spearman_sentence(rho, units).replace("; n = ", "\nn = ")
    return (f"{name}: patient mean tumour volume vs NE score\n{spearman}",
            f"{name}: patient mean volume by NE class\n{_ranksum_text(volume_ml[positive], volume_ml[negative])}")


def burden_figure(studies: pd.DataFrame, volume_column: str = TUMOUR_VOLUME_COLUMN,
                  statistics: dict[str, Any] | None = None, note: str | None = None) -> Figure:
    """The figure :func:`plot_burden` saves: per subset (all, then each ``sample_type``) a scatter of tumour volume
    (mL, log axis) vs NE score titled with Spearman rho, p and n, and a box plot of volume by NE class.

    ``studies`` holds one series per study. Given the patient-level result of
    :func:`livermets.stats.burden.burden_statistics` as ``statistics``, the figure is at the patient level: one point
    per patient (:func:`livermets.stats.burden.patient_table`; patients with tied NE classes are drawn grey in the
    scatter and left out of the box plot), titles with its Spearman CI and n as patients, studies and series; without
    it, one point per study (the paper's Figure 3). ``note`` is written above the panels (wrapped to their width)."""
    patients = statistics is not None
    subsets = sample_type_subsets(studies) if patients else _study_subsets(studies)
    fig, axes = new_figure(2, len(subsets), figsize=(4.8 * len(subsets), 8.2 if patients else 7.6))
    for column, (name, subset) in enumerate(subsets):
        points = patient_table(subset, volume_column) if patients else subset
        volume_ml = points[volume_column].to_numpy(dtype=float) / 1000.0
        score = points["NE_Score"].to_numpy(dtype=float)
        positive, negative = points["NE_Class"].to_numpy() == 1, points["NE_Class"].to_numpy() == 0
        top, bottom = axes[0, column], axes[1, column]
        for mask, label, colour in zip((negative, positive), CLASS_NAMES, CLASS_COLOURS, strict=True):
            top.scatter(volume_ml[mask], score[mask], s=14, alpha=0.75, color=colour, label=label)
        if (~(positive | negative)).any():
            top.scatter(volume_ml[~(positive | negative)], score[~(positive | negative)], s=14, alpha=0.75,
                        color="0.5", label="tied class")
        top.set_xscale("log")
        top.axhline(0.0, color=REFERENCE_LINE_COLOUR, lw=0.8, ls="--")
        not_drawn = int((volume_ml <= 0).sum())
        if not_drawn:
            top.text(0.02, 0.02, f"{not_drawn} with volume 0 not drawn (log axis)", transform=top.transAxes,
                     fontsize=7)
        scatter_title, box_title = _burden_titles(name, points, volume_column,
                                                  statistics[name] if statistics is not None else None)
        top.set(xlabel="tumour volume (mL, log scale)", ylabel="NE score", title=scatter_title)
        top.legend(loc="upper left")
        groups = [volume_ml[negative], volume_ml[positive]]
        _box(bottom, groups, list(CLASS_NAMES), CLASS_COLOURS)
        bottom.set_yscale("log")
        bottom.set(ylabel="tumour volume (mL, log scale)", title=box_title)
    if note:
        fig.suptitle(textwrap.fill(note, width=60 * len(subsets)), fontsize=9)
    return fig


def _study_subsets(studies: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The paper figure's subsets: all, then each ``sample_type`` under its own spelling."""
    subsets: list[tuple[str, pd.DataFrame]] = [("all", studies)]
    if SAMPLE_TYPE_COLUMN in studies.columns:
        subsets += [(str(k), v) for k, v in studies.groupby(SAMPLE_TYPE_COLUMN, sort=True)]
    return subsets


def plot_burden(studies: pd.DataFrame, path: str | os.PathLike[str], volume_column: str = TUMOUR_VOLUME_COLUMN,
                statistics: dict[str, Any] | None = None, note: str | None = None) -> Path:
    """Scatter (volume vs NE score, log volume axis) and box plot (volume by NE class), one column per subset;
    at the patient level when the patient-level ``statistics`` are given (:func:`burden_figure`)."""
    return save_figure(burden_figure(studies, volume_column, statistics, note), path)


def failure_figure(scores: ArrayLike, correct: ArrayLike, units: str | None = None) -> Figure:
    """The figure :func:`plot_failure` saves: NE score of correctly and incorrectly classified series.

    ``units`` (e.g. ``"50 patients (50 studies, 50 series)"``) replaces the plain series count in the title.
    """
    values = np.asarray(scores, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    fig, axes = new_figure(figsize=(4.8, 4.4))
    ax = axes[0, 0]
    _box(ax, [values[ok], values[~ok]], ["correct", "incorrect"])
    ax.axhline(0.0, color=REFERENCE_LINE_COLOUR, lw=0.8, ls="--")
    ax.set(ylabel="NE score", title=f"NE score by prediction status (n = {units or values.size})")
    return fig


def plot_failure(scores: ArrayLike, correct: ArrayLike, path: str | os.PathLike[str],
                 units: str | None = None) -> Path:
    """NE score of correctly and incorrectly classified series (box plot with points; ``units``: n in the title)."""
    return save_figure(failure_figure(scores, correct, units), path)
