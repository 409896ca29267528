"""One look for every livermets figure: colours, mask legends, a small matplotlib style, and atomic saving.

Every stage draws with these constants, so a colour means the same thing in every figure: the synthetic cohort's
``overview.png``, the ``seg evaluate`` overlays, the training curve, the stats and phenotype plots and the analyze
report.

Colour convention
    :data:`LIVER_COLOUR` (blue) outlines the liver (labels 1 and 2); :data:`LESION_COLOUR` (orange) fills and outlines
    lesions (label 2). Detection overlays outline each lesion by its match status with colours of the Okabe-Ito
    palette (safe for the common colour-vision deficiencies): :data:`TRUE_POSITIVE_COLOUR` (bluish green),
    :data:`FALSE_NEGATIVE_COLOUR` (yellow), :data:`FALSE_POSITIVE_COLOUR` (reddish purple). NE probabilities use
    :data:`NE_CMAP` on 0..1 (blue = non-NE, red = NE); NE classes use its two ends, :data:`NE_NEGATIVE_COLOUR` and
    :data:`NE_POSITIVE_COLOUR`.
Style
    :func:`figure_style` is a ``matplotlib.rc_context`` (font sizes, no top/right spines, nearest-neighbour images);
    :func:`new_figure` creates a constrained-layout figure inside it without pyplot's global figure list, and
    :func:`save_figure` renders under the same style.

Examples
--------
>>> fig, axes = new_figure(1, 1, figsize=(3, 3))
>>> legend = axes[0, 0].legend(handles=mask_legend_handles(statuses=("TP", "FN")))
>>> [text.get_text() for text in legend.get_texts()]
['liver', 'lesion', 'TP: detected lesion', 'FN: missed lesion']
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from numpy.typing import ArrayLike

from livermets.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

LIVER_COLOUR = "#1f77b4"
"""Liver outline (blue)."""
LESION_COLOUR = "#ff7f0e"
"""Lesion fill and outline (orange)."""
LESION_ALPHA = 0.45
"""Opacity of the lesion fill."""
TRUE_POSITIVE_COLOUR = "#009E73"
"""Detected lesion (Okabe-Ito bluish green)."""
FALSE_NEGATIVE_COLOUR = "#F0E442"
"""Missed reference lesion (Okabe-Ito yellow)."""
FALSE_POSITIVE_COLOUR = "#CC79A7"
"""Predicted lesion matching no reference lesion (Okabe-Ito reddish purple)."""
DETECTION_COLOURS = {"TP": TRUE_POSITIVE_COLOUR, "FN": FALSE_NEGATIVE_COLOUR, "FP": FALSE_POSITIVE_COLOUR}
"""Outline colour of a lesion by its match status."""
DETECTION_NAMES = {"TP": "TP: detected lesion", "FN": "FN: missed lesion", "FP": "FP: false-positive lesion"}
"""Legend entry of each match status."""
NE_CMAP = "coolwarm"
"""Colormap of the NE probability on 0..1 (blue = non-NE, red = NE)."""
NE_NEGATIVE_COLOUR = "#3b4cc0"
"""NE-negative class: the blue end of :data:`NE_CMAP`."""
NE_POSITIVE_COLOUR = "#b40426"
"""NE-positive class: the red end of :data:`NE_CMAP`."""
CURVE_COLOUR = "#000000"
"""Data curves that are neither liver nor lesion (ROC, calibration, training loss): black."""
REFERENCE_LINE_COLOUR = "0.5"
"""Chance lines, identity lines and zero lines (grey)."""
Origin = Literal["upper", "lower"]
"""Where ``imshow`` puts row 0 of an array: on top (``"upper"``) or at the bottom (``"lower"``)."""
CT_WINDOW_HU = (-160.0, 240.0)
"""Soft-tissue window of the CT overlays: level 40 HU, width 400 HU."""
STYLE: dict[RcKeyType, Any] = {
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "figure.titlesize": 10.0,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
}
"""matplotlib rc parameters of :func:`figure_style`."""


@contextmanager
def figure_style() -> Iterator[None]:
    """Apply :data:`STYLE` for the duration of the block (create and save figures inside it)."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(
    nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (5.0, 4.0), **subplot_kw: Any
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure in :func:`figure_style` and its axes as a 2D array (``squeeze=False``).

    The figure is not registered with pyplot: save it with :func:`save_figure`.
    """
    with figure_style():
        figure = Figure(figsize=figsize, layout="constrained")
        axes = figure.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return figure, axes


def mask_legend_handles(
    liver: str | None = "liver", lesion: str | None = "lesion", statuses: Sequence[str] = ()
) -> list[Artist]:
    """Legend handles of label-map overlays: liver outline, lesion fill, and lesion outlines by match status.

    Parameters
    ----------
    liver, lesion
        Legend text of the liver outline and of the lesion fill; ``None`` leaves the entry out.
    statuses
        Match statuses to add (keys of :data:`DETECTION_COLOURS`: ``"TP"``, ``"FN"``, ``"FP"``).

    Raises
    ------
    ValueError
        An unknown status.
    """
    handles: list[Artist] = []
    if liver is not None:
        handles.append(Line2D([], [], color=LIVER_COLOUR, linewidth=1.5, label=liver))
    if lesion is not None:
        handles.append(Patch(facecolor=to_rgba(LESION_COLOUR, LESION_ALPHA), edgecolor=LESION_COLOUR, label=lesion))
    for status in statuses:
        if status not in DETECTION_COLOURS:
            raise ValueError(f"status {status!r}: expected one of {sorted(DETECTION_COLOURS)}")
        handles.append(Patch(facecolor="none", edgecolor=DETECTION_COLOURS[status], linewidth=2.0,
                             label=DETECTION_NAMES[status]))
    return handles


def add_mask_legend(figure: Figure, handles: Sequence[Artist], ncols: int | None = None) -> None:
    """Legend of ``handles`` below the axes of a constrained-layout ``figure``, in one row when it fits."""
    figure.legend(handles=list(handles), loc="outside lower center", ncols=ncols or min(len(handles), 5))


def pixel_centres(shape: tuple[int, int], extent: tuple[float, float, float, float] | None = None,
                  origin: Origin = "upper") -> tuple[np.ndarray, np.ndarray]:
    """Data coordinates of the pixel centres of a 2D array drawn by ``imshow(array, extent=extent, origin=origin)``.

    Returns ``(x of each column, y of each row)``: with ``origin="upper"`` row 0 is at the ``top`` of ``extent``
    ``(left, right, bottom, top)``, with ``"lower"`` at its ``bottom``; without ``extent`` imshow's default
    (pixel ``(i, j)`` centred on ``x = j, y = i``).

    Examples
    --------
    >>> x, y = pixel_centres((2, 3), extent=(0.0, 6.0, 4.0, 0.0))
    >>> x.tolist(), y.tolist()
    ([1.0, 3.0, 5.0], [1.0, 3.0])
    >>> pixel_centres((2, 3), origin="lower")[1].tolist()
    [0.0, 1.0]
    """
    if origin not in ("upper", "lower"):
        raise ValueError(f"origin {origin!r}: expected 'upper' or 'lower'")
    rows, cols = shape
    if extent is None:
        extent = (-0.5, cols - 0.5, rows - 0.5, -0.5) if origin == "upper" else (-0.5, cols - 0.5, -0.5, rows - 0.5)
    left, right, bottom, top = extent
    first, last = (top, bottom) if origin == "upper" else (bottom, top)
    x = left + (np.arange(cols) + 0.5) * (right - left) / cols
    y = first + (np.arange(rows) + 0.5) * (last - first) / rows
    return x, y


def draw_outline(axis: Axes, mask: np.ndarray, colour: Any, linewidth: float,
                 extent: tuple[float, float, float, float] | None = None, origin: Origin = "upper") -> None:
    """Outline the pixels of a 2D boolean ``mask`` where ``imshow(mask, extent=extent, origin=origin)`` shows them.

    The contour runs half-way between inside and outside pixel centres; nothing is drawn for an empty or full mask.
    """
    mask = np.asarray(mask, bool)
    if mask.any() and not mask.all():
        x, y = pixel_centres((mask.shape[0], mask.shape[1]), extent, origin)
        axis.contour(x, y, mask.astype(float), levels=[0.5], colors=[colour], linewidths=linewidth)


def draw_label_overlay(axis: Axes, label: np.ndarray, extent: tuple[float, float, float, float] | None = None,
                       lesion_outline: str | None = LESION_COLOUR, origin: Origin = "upper") -> None:
    """Liver outline and semi-transparent lesion fill of a 2D LiTS label slice on ``axis``.

    ``extent`` and ``origin`` are those of the ``imshow`` of the CT slice underneath (default: imshow's own, row 0 on
    top). ``lesion_outline`` is the colour of the lesion outlines (``None``: no outline, e.g. when the caller outlines
    each lesion by its match status).
    """
    draw_outline(axis, label >= 1, LIVER_COLOUR, 1.2, extent, origin)
    lesion = label == 2
    if lesion.any():
        fill = np.zeros((*lesion.shape, 4))
        fill[lesion] = to_rgba(LESION_COLOUR, LESION_ALPHA)
        axis.imshow(fill, extent=extent, origin=origin, interpolation="nearest")
        if lesion_outline is not None:
            draw_outline(axis, lesion, lesion_outline, 1.0, extent, origin)


def format_p(p_value: float) -> str:
    """A p-value for a figure: ``"p = 0.012"`` (two significant digits), ``"p < 0.001"``, ``"p = n/a"`` if NaN.

    Examples
    --------
    >>> format_p(0.01234), format_p(2e-7), format_p(float("nan"))
    ('p = 0.012', 'p < 0.001', 'p = n/a')
    """
    if not np.isfinite(p_value):
        return "p = n/a"
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.2g}"


def spearman_text(x: ArrayLike, y: ArrayLike) -> str:
    """``"Spearman rho = 0.31, p = 0.012, n = 40"`` over the finite pairs of ``x`` and ``y``.

    Computed with ``scipy.stats.spearmanr``; with fewer than 3 pairs only n is given.
    """
    x_values, y_values = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    finite = np.isfinite(x_values) & np.isfinite(y_values)
    n = int(finite.sum())
    if n < 3:
        return f"Spearman rho not computed, n = {n}"
    from scipy import stats

    rho, p_value = stats.spearmanr(x_values[finite], y_values[finite])
    return f"Spearman \u03c1 = {rho:.2f}, {format_p(float(p_value))}, n = {n}"


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Write ``fig`` atomically (format from the suffix, PNG by default) under :func:`figure_style` and close it.

    PNGs carry no software/version stamp, so the same figure gives the same bytes on every run.
    """
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    metadata = {"Software": None} if fmt == "png" else None
    with figure_style(), atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt, metadata=metadata)
    plt.close(fig)
    return Path(path)
