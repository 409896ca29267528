"""Figures 3 and 5: tumour volume against NE score/class, NE score by prediction status (PNG via matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from livermets.featuretable import TUMOUR_VOLUME_COLUMN
from livermets.figures import save_figure
from livermets.stats.burden import SAMPLE_TYPE_COLUMN


def plot_burden(studies: pd.DataFrame, path: str | os.PathLike[str], volume_column: str = TUMOUR_VOLUME_COLUMN) -> Path:
    """Scatter (volume vs NE score, log volume axis) and box plot (volume by NE class), one column per subset."""
    subsets: list[tuple[str, pd.DataFrame]] = [("all", studies)]
    if SAMPLE_TYPE_COLUMN in studies.columns:
        subsets += [(str(k), v) for k, v in studies.groupby(SAMPLE_TYPE_COLUMN, sort=True)]
    fig, axes = plt.subplots(2, len(subsets), figsize=(4.2 * len(subsets), 7), squeeze=False)
    for column, (name, subset) in enumerate(subsets):
        volume_ml = subset[volume_column].to_numpy(dtype=float) / 1000.0
        top, bottom = axes[0, column], axes[1, column]
        top.scatter(volume_ml, subset["NE_Score"], s=14, alpha=0.7)
        top.set_xscale("log")
        top.axhline(0.0, color="grey", lw=0.8, ls="--")
        top.set(xlabel="tumour volume (mL)", ylabel="NE score", title=f"{name} (n={len(subset)})")
        groups = [volume_ml[subset["NE_Class"].to_numpy() == k] for k in (0, 1)]
        bottom.boxplot(groups, tick_labels=["NE-negative", "NE-positive"])
        bottom.set_yscale("log")
        bottom.set(ylabel="tumour volume (mL)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_failure(scores: ArrayLike, correct: ArrayLike, path: str | os.PathLike[str]) -> Path:
    """NE score of correctly and incorrectly classified series (box plot with points)."""
    values = np.asarray(scores, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    data = [values[ok], values[~ok]]
    ax.boxplot(data, tick_labels=[f"correct (n={ok.sum()})", f"incorrect (n={(~ok).sum()})"])
    for position, group in enumerate(data, start=1):
        jitter = np.linspace(-0.08, 0.08, group.size) if group.size > 1 else np.zeros(group.size)
        ax.scatter(position + jitter, group, s=12, alpha=0.6)
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set(ylabel="NE score", title="NE score by prediction status")
    fig.tight_layout()
    return save_figure(fig, path)
