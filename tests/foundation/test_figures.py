"""Every stage's figure follows livermets.figures: same colours, a legend for the masks, units and its statistic.

Expected statistics are computed here independently of the plotting code (pandas ranks, numpy, the t distribution),
then looked for in the figure's titles; overlay colours and legend entries are read back from the Figure objects.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import stats

import livermets.analyze.figures as analyze_figures
from livermets.analyze.cohort_tables import burden_vs_ne_figure
from livermets.figures import (
    DETECTION_COLOURS,
    FALSE_NEGATIVE_COLOUR,
    FALSE_POSITIVE_COLOUR,
    LESION_ALPHA,
    LESION_COLOUR,
    LIVER_COLOUR,
    TRUE_POSITIVE_COLOUR,
    mask_legend_handles,
)
from livermets.lesions.figures import draw_overlay
from livermets.phenotype.plots import reliability_figure, roc_figure
from livermets.segmentation.monai.train import _plot_curves
from livermets.stats.plots import burden_figure
from livermets.synth.overview import overview_figure


def _texts(figure: Figure) -> str:
    """All titles, suptitle and free texts of a figure, one string."""
    parts = [figure.get_suptitle()] + [t.get_text() for t in figure.texts]
    for axis in figure.axes:
        parts += [axis.get_title(), axis.get_xlabel(), axis.get_ylabel()] + [t.get_text() for t in axis.texts]
    return "\n".join(parts)


def _legend_entries(figure: Figure) -> dict[str, tuple[float, ...]]:
    """Legend text -> edge (outlines, lines) colour of every figure- and axes-level legend."""
    legends = list(figure.legends) + [a.get_legend() for a in figure.axes if a.get_legend() is not None]
    entries = {}
    for legend in legends:
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
            if isinstance(handle, Line2D):
                colour = handle.get_color()
            elif isinstance(handle, Patch):
                colour = handle.get_edgecolor()
            else:  # scatter markers
                colour = handle.get_facecolor()[0]
            entries[text.get_text()] = tuple(to_rgba(colour))
    return entries


def _spearman_expected(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman rho from pandas average ranks (Pearson of ranks) and its two-sided p from the t distribution."""
    rho = float(pd.Series(x).rank().corr(pd.Series(y).rank()))
    n = len(x)
    t_value = rho * math.sqrt((n - 2) / (1 - rho * rho))
    return rho, float(2 * stats.t.sf(abs(t_value), n - 2))


def _check_p(operator: str, shown: str, expected: float) -> None:
    """``p = 0.012`` is ``expected`` to two significant digits; ``p < 0.001`` means it is below."""
    if operator == "<":
        assert expected < float(shown)
    else:
        assert float(shown) == pytest.approx(expected, rel=0.05)


def _check_spearman(title: str, x: np.ndarray, y: np.ndarray) -> None:
    rho, p_value = _spearman_expected(x, y)
    found = re.search(r"Spearman ρ = (-?[\d.]+), p ([=<]) ([\d.e-]+), n = (\d+)", title)
    assert found, title
    assert abs(float(found[1]) - rho) <= 0.005 + 1e-9
    assert int(found[4]) == len(x)
    _check_p(found[2], found[3], p_value)


def _ranksum_p(first: np.ndarray, second: np.ndarray) -> float:
    """Two-sided normal-approximation Wilcoxon rank-sum p from pandas ranks of the pooled sample."""
    ranks = pd.Series(np.concatenate([first, second])).rank().to_numpy()
    n1, n2 = len(first), len(second)
    z = (ranks[:n1].sum() - n1 * (n1 + n2 + 1) / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    return float(2 * stats.norm.sf(abs(z)))


def test_shared_constants_keep_the_report_colours_and_the_legend_uses_them() -> None:
    assert (LIVER_COLOUR, LESION_COLOUR, analyze_figures.NE_CMAP) == ("#1f77b4", "#ff7f0e", "coolwarm")
    assert analyze_figures.LIVER_COLOUR is LIVER_COLOUR and analyze_figures.LESION_COLOUR is LESION_COLOUR
    # Okabe-Ito colours, all different from the liver/lesion colours and from each other.
    okabe_ito = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}
    assert set(DETECTION_COLOURS.values()) <= okabe_ito and len(set(DETECTION_COLOURS.values())) == 3
    handles = mask_legend_handles(statuses=("TP", "FN", "FP"))
    assert [h.get_label() for h in handles] == ["liver", "lesion", "TP: detected lesion", "FN: missed lesion",
                                                "FP: false-positive lesion"]
    assert to_rgba(handles[0].get_color()) == to_rgba(LIVER_COLOUR)
    assert handles[1].get_facecolor() == to_rgba(LESION_COLOUR, LESION_ALPHA)
    assert [h.get_edgecolor() for h in handles[2:]] == [to_rgba(c) for c in (TRUE_POSITIVE_COLOUR,
                                                                             FALSE_NEGATIVE_COLOUR,
                                                                             FALSE_POSITIVE_COLOUR)]
    with pytest.raises(ValueError, match="status"):
        mask_legend_handles(statuses=("TN",))


def _disc(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    y, x = np.mgrid[: shape[0], : shape[1]]
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2


def _contour_centres_mm(axis: object, colour: str) -> list[tuple[float, float]]:
    """(x, y) mm centres of the closed contour paths drawn in ``colour`` on ``axis``."""
    centres = []
    for artist in axis.collections:  # type: ignore[attr-defined]
        if isinstance(artist, ContourSet) and tuple(artist.get_edgecolor()[0]) == to_rgba(colour):
            for path in artist.get_paths():
                for polygon in path.to_polygons():
                    centres.append((float(polygon[:, 0].mean()), float(polygon[:, 1].mean())))
    return centres


def test_evaluation_overlay_outlines_tp_fn_fp_where_they_are_and_names_every_colour() -> None:
    shape, spacing = (40, 50), (0.8, 1.5)  # (y, x) pixels; x and y spacing in mm
    reference = np.zeros((3, *shape), np.uint8)
    reference[:, 2:38, 2:48] = 1
    prediction = reference.copy()
    tp, fn, fp = (10, 12), (28, 35), (30, 10)  # (row, column) centres of the lesions in slice 1
    reference[1][_disc(shape, tp, 4)] = 2
    reference[1][_disc(shape, fn, 3)] = 2
    prediction[1][_disc(shape, (11, 12), 4)] = 2
    prediction[1][_disc(shape, fp, 3)] = 2
    ct = np.where(reference > 0, 60.0, -100.0)
    # Independent statuses: reference lesions in component order (tp first, raster order), predicted likewise.
    figure = draw_overlay(reference, prediction, 1, ct=ct, spacing_xyz=(spacing[1], spacing[0], 5.0),
                          detection=(np.array([True, False]), np.array([True, False])), title="demo")
    reference_axis, prediction_axis = figure.axes[:2]

    def mm(centre: tuple[int, int]) -> tuple[float, float]:
        return ((centre[1] + 0.5) * spacing[1], (centre[0] + 0.5) * spacing[0])

    expected = ((reference_axis, TRUE_POSITIVE_COLOUR, tp), (reference_axis, FALSE_NEGATIVE_COLOUR, fn),
                (prediction_axis, FALSE_POSITIVE_COLOUR, fp))
    for axis, status, centre in expected:
        centres = _contour_centres_mm(axis, status)
        assert len(centres) == 1, status
        assert np.allclose(centres[0], mm(centre), atol=1.0), (status, centres, mm(centre))
    assert not _contour_centres_mm(reference_axis, FALSE_POSITIVE_COLOUR)
    assert not _contour_centres_mm(prediction_axis, FALSE_NEGATIVE_COLOUR)
    assert len(_contour_centres_mm(reference_axis, LIVER_COLOUR)) == 1
    fills = [a for a in reference_axis.images if isinstance(a, AxesImage) and a.get_array().ndim == 3]
    fill = np.asarray(fills[0].get_array())
    assert tuple(fill[tp]) == pytest.approx(to_rgba(LESION_COLOUR, LESION_ALPHA))
    entries = _legend_entries(figure)
    assert entries == {"liver": to_rgba(LIVER_COLOUR), "lesion": to_rgba(LESION_COLOUR),
                       "TP: detected lesion": to_rgba(TRUE_POSITIVE_COLOUR),
                       "FN: missed lesion": to_rgba(FALSE_NEGATIVE_COLOUR),
                       "FP: false-positive lesion": to_rgba(FALSE_POSITIVE_COLOUR)}
    assert reference_axis.get_xlabel() == "mm" and "HU" in _texts(figure)
    assert reference_axis.get_xlim() == pytest.approx((0.0, shape[1] * spacing[1]))


def test_synthetic_overview_uses_the_same_colours_and_legend() -> None:
    label = np.zeros((30, 30), np.uint8)
    label[5:25, 5:25] = 1
    label[10:15, 10:15] = 2
    figure = overview_figure([("s1", np.where(label > 0, 60.0, -100.0), label)])
    assert _legend_entries(figure) == {"liver": to_rgba(LIVER_COLOUR), "lesion": to_rgba(LESION_COLOUR)}
    assert len(_contour_centres_mm(figure.axes[0], LIVER_COLOUR)) == 1
    assert "W400/L40 HU" in figure.get_suptitle()


def test_burden_figure_states_spearman_of_the_plotted_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 30
    volume_mm3 = np.exp(rng.normal(9, 1.0, n))
    score = 0.2 * np.log(volume_mm3) + rng.normal(0, 0.6, n)
    studies = pd.DataFrame({"original_shape_VoxelVolume": volume_mm3, "NE_Score": score,
                            "NE_Class": (score > np.median(score)).astype(int),
                            "sample_type": np.where(np.arange(n) % 3 == 0, "biopsy", "cfdna")})
    figure = burden_figure(studies)
    top = [a for a in figure.axes if a.get_ylabel() == "NE score"]
    assert len(top) == 3  # all, biopsy, cfdna
    _check_spearman(top[0].get_title(), volume_mm3 / 1000, score)
    biopsy = studies["sample_type"].to_numpy() == "biopsy"
    _check_spearman(top[1].get_title(), volume_mm3[biopsy] / 1000, score[biopsy])
    assert top[0].get_xlabel() == "tumour volume (mL, log scale)"
    assert {"NE-negative", "NE-positive"} <= set(_legend_entries(figure))
    bottom = [a for a in figure.axes if a.get_ylabel() == "tumour volume (mL, log scale)"]
    found = re.search(r"Wilcoxon rank-sum p ([=<]) ([\d.e-]+)", bottom[0].get_title())
    assert found, bottom[0].get_title()
    positive = studies["NE_Class"].to_numpy() == 1
    _check_p(found[1], found[2], _ranksum_p(volume_mm3[positive], volume_mm3[~positive]))
    assert [t.get_text() for t in bottom[0].get_xticklabels()] == [
        f"NE-negative\n(n={(~positive).sum()})", f"NE-positive\n(n={positive.sum()})"]


def test_cohort_burden_figure_states_the_patient_level_spearman() -> None:
    """One point per patient (mean of its series); a volume of 0 counts but is not drawn on the log axis."""
    rng = np.random.default_rng(4)
    volume = np.exp(rng.normal(2, 1, 12))
    volume[[0, 1]] = 0.0
    probability = rng.uniform(0, 1, 12)
    patient = np.repeat([f"P{i}" for i in range(6)], 2)
    summary = pd.DataFrame({"series_id": [f"S{i}" for i in range(12)], "study_id": patient, "patient_id": patient,
                            "total_lesion_volume_ml": volume, "ne_probability": probability,
                            "ne_score_known": [np.nan] * 12})
    figure = burden_vs_ne_figure(summary)
    title = figure.axes[0].get_title()
    found = re.search(r"Spearman ρ = (-?[\d.]+) \(95% CI (-?[\d.]+) to (-?[\d.]+)\), p ([=<]) ([\d.e-]+)", title)
    assert found, title
    rho, p_value = _spearman_expected(volume.reshape(6, 2).mean(axis=1), probability.reshape(6, 2).mean(axis=1))
    assert abs(float(found[1]) - rho) <= 0.005 + 1e-9 and float(found[2]) <= float(found[1]) <= float(found[3])
    _check_p(found[4], found[5], p_value)
    assert "n = 6 patients (6 studies, 12 series)" in title
    assert "1 patient with volume 0 not drawn (log axis)" in [t.get_text() for t in figure.axes[0].texts]


def test_reliability_figure_says_what_it_is_with_n_and_brier() -> None:
    rng = np.random.default_rng(5)
    probability = rng.uniform(0, 1, 60)
    truth = (rng.uniform(0, 1, 60) < probability).astype(int)
    title = reliability_figure(probability, truth).axes[0].get_title()
    assert title.startswith("Calibration (reliability diagram):")
    assert "predicted NE probability vs observed NE fraction" in title.replace("\n", " ")
    brier = float(np.mean((probability - truth) ** 2))
    assert f"n=60, Brier {brier:.3f}" in title


def test_roc_figure_titles_auc_ci_and_n() -> None:
    grid = np.linspace(0, 1, 11)
    samples = np.tile(np.sqrt(grid), (20, 1))
    figure = roc_figure({"LR": (grid, np.sqrt(grid), samples, 0.667)}, auc_ci={"LR": (0.51, 0.8)}, n=42)
    assert figure.axes[0].get_title() == "LR: AUC 0.67 (95% CI 0.51-0.80), n = 42"
    assert "1 - specificity" in figure.axes[0].get_xlabel()
    assert roc_figure({"LR": (grid, np.sqrt(grid), samples, 0.667)}).axes[0].get_title() == "LR: AUC 0.67"


def test_training_curve_has_whole_epochs_and_the_logged_lesion_metrics(tmp_path: Path) -> None:
    log = pd.DataFrame({"epoch": [1, 2, 3], "iterations": [4, 8, 12], "train_loss": [0.9, 0.7, 0.6],
                        "val_liver_dice": [0.5, np.nan, 0.8], "val_lesion_dice": [0.1, np.nan, 0.3],
                        "val_lesion_dice_at_threshold": [0.2, np.nan, 0.4],
                        "val_lesion_sensitivity": [0.3, np.nan, 0.5], "val_lesion_ppv": [0.2, np.nan, 0.6],
                        "best_metric": [0.2, 0.2, 0.4], "best_epoch": [1, 1, 3]})
    log.to_csv(tmp_path / "train_log.csv", index=False)
    figure = _plot_curves(tmp_path / "train_log.csv", tmp_path / "training_curve.png")
    assert (tmp_path / "training_curve.png").stat().st_size > 1000
    loss_axis, dice_axis = figure.axes
    for axis in (loss_axis, dice_axis):
        low, high = axis.get_xlim()
        shown = [t.get_text() for t in axis.get_xticklabels() if low <= t.get_position()[0] <= high]
        assert shown and all(re.fullmatch(r"\d+", text) for text in shown), shown
        assert axis.get_xlabel() == "epoch"
    lines = {line.get_label(): line for line in dice_axis.get_lines()}
    assert {"liver Dice", "lesion Dice (argmax)", "lesion Dice (calibrated threshold)",
            "lesion sensitivity (calibrated)", "lesion PPV (calibrated)"} <= set(lines)
    assert to_rgba(lines["liver Dice"].get_color()) == to_rgba(LIVER_COLOUR)
    assert to_rgba(lines["lesion Dice (argmax)"].get_color()) == to_rgba(LESION_COLOUR)
    assert list(lines["liver Dice"].get_xdata()) == [1, 3]  # epochs without validation are not drawn
    assert "selected: epoch 3" in dice_axis.get_title()


def test_docstring_examples_of_the_style_module() -> None:
    import doctest

    import livermets.figures

    result = doctest.testmod(livermets.figures)
    assert result.attempted > 0 and result.failed == 0
