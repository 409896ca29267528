"""Minimum lesion size: the lesions a speckled prediction keeps, and ``Num_Lesions``, against an independent count
(scipy.ndimage.label, volumes from the spacing, calliper diameters by brute force over pixel corners)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.distance import pdist

from livermets.errors import ParameterError
from livermets.featuretable import LESION_COUNT_COLUMN
from livermets.lesions.components import lesion_table
from livermets.radiomics.series import ExtractionOptions, SeriesTask, series_features
from livermets.segmentation.config import load_config
from livermets.segmentation.lesion_size import MinLesionSize, model_min_lesion_size, remove_small_lesions
from livermets.segmentation.options import PredictionOptions

SPACING = (0.8, 0.8, 2.5)  # x, y, z mm: one voxel is 1.6 mm³


def speckled_prediction(seed: int = 3) -> tuple[sitk.Image, sitk.Image]:
    """A CT and a predicted label map: a box liver with real lesions, random specks and thin streaks."""
    rng = np.random.default_rng(seed)
    shape = (16, 70, 70)  # z, y, x
    label = np.zeros(shape, np.uint8)
    label[2:14, 5:65, 5:65] = 1
    label[4:8, 10:22, 10:22] = 2  # 12 x 12 pixels on 4 slices: 0.92 mL
    label[9:11, 40:47, 12:17] = 2  # 0.112 mL
    label[5, 30:35, 50:54] = 2  # one slice, 20 pixels: 0.032 mL, 5 mm wide: kept by a hair
    label[3:13, 55, 30] = 2  # a one-pixel streak over 10 slices: 0.016 mL... removed by volume
    label[2:14, 58, 58] = 2  # 12 slices: 0.0192 mL
    label[4:14, 50, 8:10] = 2  # 20 voxels = 0.032 mL, but 1.8 mm wide: removed by the diameter
    for _ in range(40):  # specks of 1-4 voxels (0.0016-0.0064 mL) where there is still liver
        z, y, x = rng.integers(3, 13), rng.integers(25, 60), rng.integers(25, 45)
        label[z, y : y + rng.integers(1, 3), x : x + rng.integers(1, 3)] = 2
    hu = np.where(label > 0, 60, -1000).astype(np.int16)
    hu[label == 2] = 20
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing(SPACING)
    ct.SetOrigin((-100.0, 40.0, -300.0))
    image = sitk.GetImageFromArray(label)
    image.CopyInformation(ct)
    return ct, image


def independent_kept(label: np.ndarray, limit: MinLesionSize) -> int:
    """Lesions at or above both limits, counted with scipy.ndimage (26-connectivity) and brute-force diameters."""
    components, n = ndimage.label(label == 2, structure=np.ones((3, 3, 3), bool))
    voxel_ml = float(np.prod(SPACING)) / 1000.0
    kept = 0
    for index in range(1, n + 1):
        mask = components == index
        if mask.sum() * voxel_ml < limit.volume_ml:
            continue
        if _calliper_mm(mask) >= limit.diameter_mm:
            kept += 1
    return kept


def _calliper_mm(mask: np.ndarray) -> float:
    """Largest distance between two corners of the lesion's pixel squares within one axial slice."""
    sx, sy = SPACING[0], SPACING[1]
    best = 0.0
    for plane in mask:
        ys, xs = np.nonzero(plane)
        if len(ys) == 0:
            continue
        corners = np.array([((x + dx) * sx, (y + dy) * sy) for y, x in zip(ys, xs, strict=True)
                            for dx, dy in itertools.product((0, 1), (0, 1))])
        best = max(best, float(pdist(corners).max()))
    return best


def test_num_lesions_counts_only_the_lesions_above_the_minimum_size() -> None:
    ct, label = speckled_prediction()
    before = sitk.GetArrayFromImage(label)
    _, n_predicted = ndimage.label(before == 2, structure=np.ones((3, 3, 3), bool))
    limit = MinLesionSize()  # the defaults: 0.03 mL, 3 mm
    expected = independent_kept(before, limit)
    assert expected == 3 and n_predicted > 30  # the test scene: 3 lesions, specks and streaks

    kept, removed = remove_small_lesions(label, limit)
    after = sitk.GetArrayFromImage(kept)
    assert removed.n_removed == n_predicted - expected
    assert removed.removed_ml == pytest.approx(((before == 2).sum() - (after == 2).sum()) * 1.6e-3)
    assert np.array_equal(after > 0, before > 0)  # removed specks inside the liver became liver: same liver volume
    assert len(lesion_table(kept)) == expected

    task = SeriesTask(key="s1", series_id="s1", image="ct", label=None, ids={"File": "s1"})
    row = series_features(task, ct, kept, ExtractionOptions()).rows[0]
    assert row[LESION_COUNT_COLUMN] == expected + 1  # the published convention: components + 1


def test_a_removed_lesion_outside_the_liver_becomes_background() -> None:
    label = np.zeros((5, 20, 20), np.uint8)
    label[1:4, 2:10, 2:10] = 1
    label[2, 15, 15] = 2  # a speck away from the liver
    label[2, 5, 5] = 2  # a speck inside it
    image = sitk.GetImageFromArray(label)
    kept, removed = remove_small_lesions(image, MinLesionSize())
    out = sitk.GetArrayFromImage(kept)
    assert removed.n_removed == 2 and (out[2, 15, 15], out[2, 5, 5]) == (0, 1)


def test_zero_turns_the_limits_off_and_the_setting_comes_from_options_or_model() -> None:
    _, label = speckled_prediction()
    kept, removed = remove_small_lesions(label, MinLesionSize(0.0, 0.0))
    assert kept is label and removed.n_removed == 0
    assert model_min_lesion_size(object()) == MinLesionSize(0.03, 3.0)  # an nnU-Net model: the defaults
    assert model_min_lesion_size(object(), PredictionOptions(min_lesion_ml=0.1)) == MinLesionSize(0.1, 3.0)

    class Monai:  # a livermets model carries the setting in its config.yaml
        config = load_config("cpu", **{"inference.min_lesion_diameter_mm": 5.0})

    assert model_min_lesion_size(Monai()) == MinLesionSize(0.03, 5.0)
    with pytest.raises(ParameterError, match="min_lesion_ml"):
        MinLesionSize(-1.0, 3.0)
    with pytest.raises(ParameterError, match="min_lesion_diameter_mm"):
        PredictionOptions(min_lesion_diameter_mm=float("nan"))
