"""Overlay outlines are drawn on the label's boundary: rendered with Agg and read back pixel by pixel.

For every way the project draws label overlays (the synthetic cohort's overview: ``imshow`` with its default origin
"upper" and no extent; the ``seg evaluate`` overlay and the analyze report: origin "upper" on a millimetre extent;
and origin "lower", which :func:`livermets.figures.draw_label_overlay` also accepts) the figure is rendered, the
pixels of the outline colour are found in the RGBA buffer, and compared with the label's boundary computed here
independently: the iso-line 0.5 of the mask between pixel centres (marching squares on a 0/1 mask crosses each
inside/outside edge at its midpoint), mapped to figure pixels through the displayed image's extent and origin (the
``imshow`` convention) and the axes' ``transData``. A flipped or shifted outline lands half a pixel or more away.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from scipy.spatial import cKDTree

import livermets.analyze.figures as analyze_figures
from livermets.figures import LESION_COLOUR, LIVER_COLOUR, draw_label_overlay, new_figure, save_figure
from livermets.lesions.figures import draw_overlay
from livermets.synth.overview import overview_figure

DPI = 200  # outlines 1-1.6 pt wide are 3-4.5 pixels: their middle pixels have the pure outline colour
COLOUR_TOLERANCE = 30  # of 255 per channel


def _label() -> np.ndarray:
    """A 0/1/2 slice without symmetry: an L-shaped liver in the upper left, a lesion near its lower right corner."""
    label = np.zeros((16, 20), np.uint8)
    label[2:10, 2:14] = 1
    label[10:14, 2:7] = 1
    label[6:9, 9:12] = 2
    return label


def _ct(label: np.ndarray) -> np.ndarray:
    return np.where(label > 0, 60.0, -1000.0)


def _boundary(mask: np.ndarray, step: float = 0.05) -> np.ndarray:
    """Points (row, column) of the 0.5 iso-line of a 0/1 mask, ``step`` pixels apart, from marching squares.

    In each 2x2 cell of pixel centres the line joins the midpoints of the cell edges whose two ends differ (the
    shapes here have no saddle cells, i.e. exactly 0 or 2 such edges per cell).
    """
    points = []
    for r in range(mask.shape[0] - 1):
        for c in range(mask.shape[1] - 1):
            corners = [(r, c), (r, c + 1), (r + 1, c + 1), (r + 1, c)]
            crossings = [np.add(a, b) / 2 for a, b in zip(corners, corners[1:] + corners[:1], strict=True)
                         if mask[a] != mask[b]]
            assert len(crossings) in (0, 2), "saddle cell"
            if crossings:
                t = np.arange(0.0, 1.0 + step, step)[:, None]
                points.append(crossings[0] + t * (crossings[1] - crossings[0]))
    return np.concatenate(points)


def _to_buffer_pixels(axis: Axes, points: np.ndarray, shape: tuple[int, int], height: int) -> np.ndarray:
    """(row, column) array positions -> (row, column) pixels of the rendered buffer (row 0 at the top).

    Uses the displayed image's extent ``(left, right, bottom, top)`` and origin: with origin "upper" array row 0 is at
    ``top``, with "lower" at ``bottom`` (matplotlib's imshow convention), then ``transData`` to display pixels.
    """
    image = axis.images[0]
    left, right, bottom, top = image.get_extent()
    rows, cols = shape
    x = left + (points[:, 1] + 0.5) * (right - left) / cols
    first, last = (top, bottom) if image.origin == "upper" else (bottom, top)
    y = first + (points[:, 0] + 0.5) * (last - first) / rows
    display = axis.transData.transform(np.column_stack([x, y]))
    return np.column_stack([height - display[:, 1], display[:, 0]])


def _render(figure: Figure) -> np.ndarray:
    figure.set_dpi(DPI)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(int)


def _outline_pixels(pixels: np.ndarray, axis: Axes, colour: str) -> np.ndarray:
    """(row, column) of the buffer pixels of ``colour`` inside ``axis``."""
    target = np.round(np.array(to_rgb(colour)) * 255)
    close = np.all(np.abs(pixels - target) <= COLOUR_TOLERANCE, axis=-1)
    box = axis.get_window_extent()
    height = pixels.shape[0]
    rows, cols = np.nonzero(close)
    inside = (cols >= box.x0) & (cols <= box.x1) & (height - rows >= box.y0) & (height - rows <= box.y1)
    return np.column_stack([rows[inside], cols[inside]]).astype(float)


def _check_outline(pixels: np.ndarray, axis: Axes, mask: np.ndarray, colour: str, linewidth_pt: float) -> None:
    """Every outline pixel lies on the mask's boundary, and the whole boundary is outlined."""
    drawn = _outline_pixels(pixels, axis, colour)
    expected = _to_buffer_pixels(axis, _boundary(mask), mask.shape, pixels.shape[0])
    pixel_size = np.abs(np.diff(_to_buffer_pixels(axis, np.array([[0.0, 0.0], [1.0, 1.0]]), mask.shape,
                                                  pixels.shape[0]), axis=0)).min()
    tolerance = linewidth_pt * DPI / 72 / 2 + 1.5
    assert pixel_size > 4 * tolerance, "array pixels too small on screen to tell a half-pixel shift"
    assert len(drawn) > 100, f"no {colour} outline rendered"
    off = cKDTree(expected).query(drawn)[0]
    assert off.max() <= tolerance, (f"{colour} outline pixels up to {off.max():.1f} px from the boundary "
                                    f"(tolerance {tolerance:.1f} px, one array pixel = {pixel_size:.0f} px)")
    missed = cKDTree(drawn).query(expected)[0]
    assert missed.max() <= tolerance, f"boundary not outlined in {colour}: {missed.max():.1f} px from any outline"


def _check_background(pixels: np.ndarray, axis: Axes, label: np.ndarray) -> None:
    """The test's own mapping agrees with the rendered CT: array pixel centres of tissue are grey, outside black."""
    centres = np.argwhere(np.ones_like(label, bool)).astype(float)
    where = np.round(_to_buffer_pixels(axis, centres, label.shape, pixels.shape[0])).astype(int)
    values = pixels[where[:, 0], where[:, 1]]
    grey = np.ptp(values, axis=1) <= 3  # not under an outline or the lesion fill
    outside, liver = label.ravel() == 0, label.ravel() == 1
    assert grey[outside].mean() > 0.8 and grey[liver].mean() > 0.8
    assert np.all(values[outside & grey] < 20)  # -1000 HU: black in the soft-tissue window
    assert np.all(values[liver & grey] > 80)  # 60 HU: grey


def _evaluation_overlay(label: np.ndarray) -> tuple[Figure, Axes, np.ndarray]:
    volume = np.stack([label] * 3)
    figure = draw_overlay(volume, volume, 1, ct=_ct(volume), spacing_xyz=(1.5, 0.8, 5.0))
    return figure, figure.axes[0], label


def _report_panel(label: np.ndarray) -> tuple[Figure, Axes, np.ndarray]:
    figure, axes = new_figure(1, 1, figsize=(4, 4))
    extent = (100.0, 100.0 + label.shape[1] * 0.7, 40.0 + label.shape[0] * 1.2, 40.0)  # mm, row 0 on top
    panel = analyze_figures.Panel(0, 0.0, _ct(label), label, (label == 2).astype(np.int32), extent)
    analyze_figures._draw_panel(axes[0, 0], panel, analyze_figures.lesion_colours(1), False, "panel")
    return figure, axes[0, 0], label


def _lower_origin(label: np.ndarray) -> tuple[Figure, Axes, np.ndarray]:
    figure, axes = new_figure(1, 1, figsize=(4, 4))
    extent = (0.0, label.shape[1] * 1.0, 0.0, label.shape[0] * 1.0)
    axes[0, 0].imshow(_ct(label), cmap="gray", vmin=-160, vmax=240, extent=extent, origin="lower")
    draw_label_overlay(axes[0, 0], label, extent, origin="lower")
    return figure, axes[0, 0], label


def _lower_origin_pixels(label: np.ndarray) -> tuple[Figure, Axes, np.ndarray]:
    figure, axes = new_figure(1, 1, figsize=(4, 4))
    axes[0, 0].imshow(_ct(label), cmap="gray", vmin=-160, vmax=240, origin="lower")
    draw_label_overlay(axes[0, 0], label, origin="lower")
    return figure, axes[0, 0], label


DRAWINGS: dict[str, Callable[[np.ndarray], tuple[Figure, Axes, np.ndarray]]] = {
    "seg evaluate overlay (upper, mm)": _evaluation_overlay,
    "analyze report panel (upper, mm)": _report_panel,
    "lower origin, mm": _lower_origin,
    "lower origin, pixels": _lower_origin_pixels,
}


@pytest.mark.parametrize("name", sorted(DRAWINGS))
def test_outlines_lie_on_the_label_boundary(name: str) -> None:
    figure, axis, label = DRAWINGS[name](_label())
    pixels = _render(figure)
    _check_background(pixels, axis, label)
    _check_outline(pixels, axis, label >= 1, LIVER_COLOUR, 1.2)
    _check_outline(pixels, axis, label == 2, LESION_COLOUR, 1.0)


def test_a_flipped_outline_fails_the_check() -> None:
    """The check itself: outlines of the upside-down label are far from the label's boundary."""
    label = _label()
    figure, axes = new_figure(1, 1, figsize=(4, 4))
    axes[0, 0].imshow(_ct(label), cmap="gray", vmin=-160, vmax=240)
    draw_label_overlay(axes[0, 0], label[::-1])
    pixels = _render(figure)
    with pytest.raises(AssertionError, match="outline pixels up to"):
        _check_outline(pixels, axes[0, 0], label >= 1, LIVER_COLOUR, 1.2)


def test_the_saved_synth_overview_has_its_outlines_on_the_label_boundary(tmp_path: Path) -> None:
    """The PNG ``synth`` writes (imshow's default origin "upper", no extent), read back from disk."""
    label = _label()
    figure = overview_figure([("s1", _ct(label), label)])
    figure.set_dpi(DPI)
    path = save_figure(figure, tmp_path / "overview.png", dpi=DPI)  # draws the figure: transData is set
    pixels = np.round(matplotlib.image.imread(path)[..., :3] * 255).astype(int)
    assert pixels.shape[:2] == (round(figure.get_figheight() * DPI), round(figure.get_figwidth() * DPI))
    axis = figure.axes[0]
    _check_background(pixels, axis, label)
    _check_outline(pixels, axis, label >= 1, LIVER_COLOUR, 1.2)
    _check_outline(pixels, axis, label == 2, LESION_COLOUR, 1.0)
