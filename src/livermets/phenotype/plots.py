"""Phenotype figures: ROC per model with a bootstrap band, and the LASSO feature-group bar chart (Figure 4)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from livermets.figures import save_figure


def plot_roc_band(
    curves: Mapping[str, tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]],
    path: str | os.PathLike[str],
    title: str = "Test set ROC (soft vote), bootstrap 95% band",
) -> Path:
    """One panel per model: ``curves[name] = (fpr_grid, point_tpr, bootstrap_tpr (n_boot, n_grid), mean_auc)``."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4.2), squeeze=False)
    for ax, (name, (grid, point, samples, auc)) in zip(axes[0], curves.items(), strict=True):
        low, high = np.nanquantile(samples, [0.025, 0.975], axis=0)
        ax.fill_between(grid, low, high, alpha=0.25, step="post", label="bootstrap 95%")
        ax.step(grid, np.nanmean(samples, axis=0), where="post", label="bootstrap mean")
        ax.step(grid, point, where="post", color="k", lw=0.8, ls=":", label="all test series")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set(
            xlabel="1 - specificity", ylabel="sensitivity", title=f"{name} (AUC {auc:.2f})", xlim=(0, 1), ylim=(0, 1.02)
        )
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_feature_groups(selected: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Bar chart of the selected features' groups (percent), with the feature list beside it (Figure 4)."""
    counts = selected["group"].value_counts()
    percent = 100.0 * counts / counts.sum()
    fig, (bars, listing) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [1, 1.4]})
    bars.bar(percent.index.astype(str), percent.to_numpy())
    for x, value in enumerate(percent.to_numpy()):
        bars.text(x, value + 0.5, f"{value:.0f}%", ha="center", fontsize=8)
    bars.set(ylabel="% of selected features", title=f"LASSO-selected features (n={len(selected)})")
    listing.axis("off")
    lines = [f"{row.group}: {str(row.feature).replace('original_', '')}" for row in selected.itertuples()]
    listing.text(0, 1, "\n".join(lines), va="top", fontsize=7, family="monospace")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_reliability(
    probability: NDArray[np.float64], truth: NDArray[np.int64], path: str | os.PathLike[str], n_bins: int = 5
) -> Path:
    """Reliability (calibration) diagram of out-of-fold probabilities (``sklearn.calibration.calibration_curve``)."""
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(truth, probability, n_bins=n_bins, strategy="quantile")
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.plot(predicted, observed, marker="o")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed NE-positive fraction",
        title="Reliability",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    fig.tight_layout()
    return save_figure(fig, path)
