"""The analyze figures: radiological display whatever the input direction, slice choice, colours, edge cases."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from report_synthetic import flipped, make_case

from livermets.analyze.figures import (
    LESION_COLOUR,
    NE_COLOURBAR_LABEL,
    axial_montage,
    choose_axial_slices,
    coronal_panel,
    coronal_view,
    display_slices,
    lesion_colours,
    orient_volume,
)
from livermets.figures import save_figure


def _pixels(figure: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _image(array: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


@pytest.mark.parametrize("axes", [(True, True, False), (True, True, True), (False, False, True)])
def test_panels_do_not_depend_on_the_stored_direction(axes: tuple[bool, bool, bool]) -> None:
    ct, label = make_case()
    reference = display_slices(ct, label)
    other = display_slices(flipped(ct, axes), flipped(label, axes))
    assert len(reference) == len(other) == 12
    for a, b in zip(reference, other, strict=True):
        assert a.position_mm == pytest.approx(b.position_mm)
        assert a.extent == pytest.approx(b.extent)
        np.testing.assert_array_equal(a.ct, b.ct)
        np.testing.assert_array_equal(a.label, b.label)
    if not axes[2]:  # same slice numbering when the slice axis is stored the same way
        assert [p.slice_index for p in reference] == [p.slice_index for p in other]


def test_ras_flipped_copy_renders_the_same_montage() -> None:
    ct, label = make_case()
    lps = _pixels(axial_montage(ct, label))
    ras = _pixels(axial_montage(flipped(ct, (True, True, False)), flipped(label, (True, True, False))))
    assert lps.shape == ras.shape
    np.testing.assert_array_equal(lps, ras)


@pytest.mark.parametrize("axes", [(False, False, False), (True, True, False)])
def test_radiological_view_patient_right_on_the_left_anterior_up(axes: tuple[bool, bool, bool]) -> None:
    label = np.zeros((10, 40, 40), np.uint8)
    label[2:8, 4:14, 6:16] = 1  # LPS array: low x = patient's right, low y = anterior
    ct = np.where(label > 0, 60, 0).astype(np.int16)
    panel = display_slices(flipped(_image(ct), axes), flipped(_image(label), axes), n_slices=1)[0]
    rows, cols = np.nonzero(panel.label)
    assert cols.mean() < panel.label.shape[1] / 2  # patient's right on the image's left
    assert rows.mean() < panel.label.shape[0] / 2  # anterior up


def test_coronal_panel_is_superior_up() -> None:
    label = np.zeros((30, 20, 20), np.uint8)
    label[5:25, 5:15, 5:15] = 1
    label[20:24, 8:12, 8:12] = 2  # lesion near the top (high z = superior in LPS)
    ct = np.where(label > 0, 60, 0).astype(np.int16)
    panel, through = coronal_panel(orient_volume(_image(ct), _image(label)))
    rows, _ = np.nonzero(panel.lesion_ids)
    assert "largest lesion" in through
    assert rows.mean() < panel.lesion_ids.shape[0] / 2


def test_slices_include_the_largest_cross_section_of_the_largest_lesions() -> None:
    ct, label = make_case()
    volume = orient_volume(ct, label)
    slices = choose_axial_slices(volume, 12)
    assert slices == sorted(slices, reverse=True) and len(set(slices)) == 12
    assert set(volume.lesion_best_z.tolist()) <= set(slices)
    z_box = volume.box[0]
    assert all(z_box.start <= z < z_box.stop for z in slices)
    ids = volume.ids
    for lesion, z in enumerate(volume.lesion_best_z, start=1):
        areas = np.count_nonzero(ids == lesion, axis=(1, 2))
        assert areas[z] == areas.max()


def test_per_lesion_colours_differ_by_probability() -> None:
    table = lesion_colours(3, {1: 0.1, 2: 0.9})
    low, high, missing = table[1], table[2], table[3]
    assert not np.allclose(low, high)
    assert low[2] > low[0] and high[0] > high[2]  # blue for low, red for high probability
    np.testing.assert_allclose(missing, to_rgba(LESION_COLOUR))
    assert table[0][3] == 0.0
    with pytest.raises(ValueError, match="lesion id 4"):
        lesion_colours(3, {4: 0.5})


def test_montage_with_probabilities_has_the_exploratory_colour_bar() -> None:
    ct, label = make_case()
    figure = axial_montage(ct, label, {1: 0.1, 2: 0.9, 3: 0.5})
    labels = [axis.get_ylabel() for axis in figure.axes]
    assert NE_COLOURBAR_LABEL in labels
    plain = axial_montage(ct, label)
    assert NE_COLOURBAR_LABEL not in [axis.get_ylabel() for axis in plain.axes]
    assert [t.get_text() for t in plain.legends[0].get_texts()] == ["liver", "lesion"]
    assert _pixels(figure).shape[2] == 4  # renders


def test_empty_liver_does_not_crash(tmp_path: Path) -> None:
    ct, _ = make_case()
    empty = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(ct)
    montage = axial_montage(ct, empty)
    assert montage.get_suptitle().endswith("no liver found")
    assert len(display_slices(ct, empty)) == 12
    coronal = coronal_view(ct, empty)
    assert "no liver found" in coronal.axes[0].get_title()
    assert save_figure(montage, tmp_path / "m.png").stat().st_size > 0
    assert save_figure(coronal, tmp_path / "c.png").stat().st_size > 0


def test_empty_volume_without_body_does_not_crash() -> None:
    ct = _image(np.full((6, 16, 16), -1000, np.int16))
    label = _image(np.zeros((6, 16, 16), np.uint8))
    assert [p.slice_index for p in display_slices(ct, label)] == [4, 3, 2, 1]  # 6 slices less a quarter (1) each end
    axial_montage(ct, label)
    coronal_view(ct, label)


def test_tiny_volume_without_lesions() -> None:
    label = np.zeros((20, 24, 24), np.uint8)
    label[8:13, 6:18, 6:18] = 1  # the liver spans 5 slices
    ct = np.where(label > 0, 60, 0).astype(np.int16)
    panels = display_slices(_image(ct), _image(label))
    assert [p.slice_index for p in panels] == [12, 11, 10, 9, 8]
    figure = axial_montage(_image(ct), _image(label))
    assert len([a for a in figure.axes if a.images]) == 5
    coronal_view(_image(ct), _image(label))


def test_anisotropic_spacing_keeps_the_physical_aspect() -> None:
    label = np.zeros((12, 30, 20), np.uint8)
    label[3:9, 10:20, 5:15] = 1
    ct = np.where(label > 0, 60, 0).astype(np.int16)
    spacing = (0.6, 1.5, 5.0)
    panel = display_slices(_image(ct, spacing), _image(label, spacing), n_slices=2)[0]
    left, right, bottom, top = panel.extent
    assert right - left == pytest.approx(panel.ct.shape[1] * 0.6)
    assert bottom - top == pytest.approx(panel.ct.shape[0] * 1.5)
    figure = axial_montage(_image(ct, spacing), _image(label, spacing), n_slices=2)
    assert figure.axes[0].images[0].get_extent() == pytest.approx(list(panel.extent))


def test_saved_png_bytes_are_reproducible(tmp_path: Path) -> None:
    ct, label = make_case()
    first = save_figure(axial_montage(ct, label, {2: 0.8}), tmp_path / "a.png").read_bytes()
    second = save_figure(axial_montage(ct, label, {2: 0.8}), tmp_path / "b.png").read_bytes()
    assert first == second and first.startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["figures", "html"])
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"livermets.analyze.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
