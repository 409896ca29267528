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
from matplotlib.figure import Figure
from numpy.typing import NDArray

from livermets.figures import save_figure


def roc_figure(
    curves: Mapping[str, tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]],
    title: str = "Test set ROC (soft vote), bootstrap 95% band",
    auc_ci: Mapping[str, tuple[float, float]] | None = None,
    n: int | None = None,
) -> Figure:
    """The figure :func:`plot_roc_band` saves; each panel is titled with its AUC, the AUC's CI if given, and n."""
    from livermets.figures import CURVE_COLOUR, REFERENCE_LINE_COLOUR, new_figure

    fig, axes = new_figure(1, len(curves), figsize=(4.4 * len(curves), 4.6))
    for ax, (name, (grid, point, samples, auc)) in zip(axes[0], curves.items(), strict=True):
        low, high = np.nanquantile(samples, [0.025, 0.975], axis=0)
        ax.fill_between(grid, low, high, alpha=0.2, step="post", color=CURVE_COLOUR, label="bootstrap 95%")
        ax.step(grid, np.nanmean(samples, axis=0), where="post", color=CURVE_COLOUR, label="bootstrap mean")
        ax.step(grid, point, where="post", color=CURVE_COLOUR, lw=0.8, ls=":", label="all test series")
        ax.plot([0, 1], [0, 1], color=REFERENCE_LINE_COLOUR, lw=0.8, ls="--", label="chance")
        statistic = f"AUC {auc:.2f}"
        if auc_ci is not None and name in auc_ci:
            statistic += f" (95% CI {auc_ci[name][0]:.2f}-{auc_ci[name][1]:.2f})"
        if n is not None:
            statistic += f", n = {n}"
        ax.set(xlabel="1 - specificity (false-positive rate)", ylabel="sensitivity (true-positive rate)",
               title=f"{name}: {statistic}", xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle(title)
    return fig


def plot_roc_band(
    curves: Mapping[str, tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]],
    path: str | os.PathLike[str],
    title: str = "Test set ROC (soft vote), bootstrap 95% band",
    auc_ci: Mapping[str, tuple[float, float]] | None = None,
    n: int | None = None,
) -> Path:
    """One panel per model: ``curves[name] = (fpr_grid, point_tpr, bootstrap_tpr (n_boot, n_grid), mean_auc)``;
    ``auc_ci[name] = (low, high)`` and the number of test series ``n`` are added to the panel titles when given."""
    return save_figure(roc_figure(curves, title, auc_ci, n), path)


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


def reliability_figure(probability: NDArray[np.float64], truth: NDArray[np.int64], n_bins: int = 5) -> Figure:
    """The figure :func:`plot_reliability` saves: quantile-binned calibration curve with n and the Brier score."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    from livermets.figures import CURVE_COLOUR, REFERENCE_LINE_COLOUR, new_figure

    observed, predicted = calibration_curve(truth, probability, n_bins=n_bins, strategy="quantile")
    brier = brier_score_loss(truth, probability)
    fig, axes = new_figure(figsize=(5.0, 5.4))
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], color=REFERENCE_LINE_COLOUR, lw=0.8, ls="--", label="perfect calibration")
    ax.plot(predicted, observed, marker="o", color=CURVE_COLOUR, label=f"{len(predicted)} quantile bins")
    ax.set(
        xlabel="predicted NE probability (bin mean)",
        ylabel="observed NE-positive fraction",
        title="Calibration (reliability diagram):\npredicted NE probability vs observed NE fraction,\n"
        f"n={len(truth)}, Brier {brier:.3f}",
        xlim=(0, 1),
        ylim=(0, 1),
        aspect="equal",
    )
    ax.legend(loc="upper left")
    return fig


def plot_reliability(
    probability: NDArray[np.float64], truth: NDArray[np.int64], path: str | os.PathLike[str], n_bins: int = 5
) -> Path:
    """Reliability (calibration) diagram of out-of-fold probabilities (``sklearn.calibration.calibration_curve``)."""
    return save_figure(reliability_figure(probability, truth, n_bins), path)
