"""Lesion components and the lesion table against independent computations (scipy.ndimage, brute force)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.distance import pdist

from livermets.errors import UserInputError
from livermets.lesions.components import label_components, lesion_table, longest_axial_diameters
from livermets.lesions.overlap import component_overlaps, overlap_matrix


def _random_label_map(seed: int, shape: tuple[int, int, int] = (12, 40, 44)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    labels[1:-1, 3:-3, 3:-3] = 1
    blobs = ndimage.gaussian_filter(rng.random(shape), sigma=1.5) > 0.53
    labels[blobs & (labels == 1)] = 2
    return labels


def _feret_brute_force(mask2d: np.ndarray, sx: float, sy: float) -> float:
    """Max distance between the corners of the pixel squares of a 2D mask (the exact pixel Feret diameter)."""
    y, x = np.nonzero(mask2d)
    corners = np.array([(xi + dx, yi + dy) for yi, xi in zip(y, x, strict=True) for dx in (-0.5, 0.5)
                        for dy in (-0.5, 0.5)]) * [sx, sy]
    return float(pdist(corners).max()) if len(corners) > 1 else 0.0


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_components_match_scipy_label(connectivity: int) -> None:
    """cc3d components = scipy.ndimage.label components with the same neighbourhood (as sets of voxels)."""
    labels = _random_label_map(1)
    rank = {6: 1, 18: 2, 26: 3}[connectivity]
    expected, n_expected = ndimage.label(labels == 2, structure=ndimage.generate_binary_structure(3, rank))
    comps = label_components(labels == 2, connectivity)
    assert comps.count == n_expected > 3
    # Same partition: every cc3d component maps to exactly one scipy component and vice versa.
    pairs = {(int(a), int(b)) for a, b in zip(comps.labels[labels == 2], expected[labels == 2], strict=True)}
    assert len(pairs) == n_expected
    np.testing.assert_array_equal(np.sort(comps.voxel_counts), np.sort(np.bincount(expected.ravel())[1:]))


def test_bad_connectivity() -> None:
    with pytest.raises(UserInputError, match="connectivity"):
        label_components(np.zeros((2, 2, 2), bool), connectivity=8)


def test_overlap_matrix_matches_loops() -> None:
    """Joint-histogram overlaps equal the per-pair voxel counts computed with explicit loops."""
    ref = label_components(_random_label_map(2) == 2)
    pred = label_components(_random_label_map(3) == 2)
    matrix = overlap_matrix(ref.labels, pred.labels, ref.count, pred.count)
    expected = np.array([[np.count_nonzero((ref.labels == i) & (pred.labels == j)) for j in range(1, pred.count + 1)]
                         for i in range(1, ref.count + 1)])
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(component_overlaps(ref, pred), expected)
    assert matrix.sum() > 0


def test_diameters_match_brute_force() -> None:
    """Projection-based longest axial diameter = brute-force pixel-corner Feret diameter (anisotropic pixels)."""
    labels = _random_label_map(4)
    comps = label_components(labels == 2)
    sx, sy = 0.7, 1.3
    diameters = longest_axial_diameters(comps, (sx, sy, 5.0))
    for index in range(comps.count):
        lesion = comps.labels == index + 1
        expected = max(_feret_brute_force(lesion[z], sx, sy) for z in np.flatnonzero(lesion.any(axis=(1, 2))))
        assert diameters[index] == pytest.approx(expected, rel=1e-4)


def test_single_pixel_and_bar_diameters() -> None:
    """A single 1 x 2 mm pixel measures its diagonal sqrt(5); a 10-pixel bar along x measures sqrt(10^2 + 2^2)."""
    mask = np.zeros((1, 5, 20), bool)
    mask[0, 0, 0] = True
    mask[0, 3, 5:15] = True
    comps = label_components(mask)
    np.testing.assert_allclose(longest_axial_diameters(comps, (1.0, 2.0, 1.0)), [np.sqrt(5), np.sqrt(104)],
                               rtol=1e-4)


def test_lesion_table_against_independent_values() -> None:
    """Volumes, centroids (SimpleITK physical points), HU statistics and liver fractions recomputed directly."""
    labels = _random_label_map(5)
    rng = np.random.default_rng(0)
    ct_array = rng.normal(60, 20, labels.shape).astype(np.float32)
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((-100.0, 20.0, 5.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    ct = sitk.GetImageFromArray(ct_array)
    ct.CopyInformation(image)
    liver_only = np.zeros_like(labels)
    liver_only[:, :, : labels.shape[2] // 2] = 1  # a "liver" covering the left half only
    liver = sitk.GetImageFromArray(liver_only)
    liver.CopyInformation(image)

    table = lesion_table(image, image=ct, liver=liver)
    components, n = ndimage.label(labels == 2, structure=np.ones((3, 3, 3)))
    assert len(table) == n
    for _, row in table.iterrows():
        # Identify the scipy component by the table's bounding box and voxel count.
        box = tuple(slice(int(row[f"bbox_{a}_start"]), int(row[f"bbox_{a}_stop"])) for a in "zyx")
        ids = np.unique(components[box][components[box] > 0])
        candidates = [i for i in ids if np.count_nonzero(components == i) == row.voxel_count]
        lesion = components == candidates[0]
        assert ndimage.find_objects(lesion.astype(int))[0] == box
        assert row.volume_ml == pytest.approx(lesion.sum() * 0.8 * 0.9 * 2.5 / 1000)
        centroid_index = np.argwhere(lesion).mean(axis=0)[::-1]  # (x, y, z)
        expected_point = image.TransformContinuousIndexToPhysicalPoint(centroid_index.tolist())
        np.testing.assert_allclose([row.centroid_x_mm, row.centroid_y_mm, row.centroid_z_mm], expected_point)
        assert row.hu_mean == pytest.approx(ct_array[lesion].mean(), rel=1e-5)
        assert row.hu_std == pytest.approx(ct_array[lesion].std(), rel=1e-4)
        assert row.fraction_in_liver == pytest.approx(liver_only[lesion].mean())
        shell = ndimage.binary_dilation(lesion, ndimage.generate_binary_structure(3, 1)) & ~lesion
        assert row.liver_contact_fraction == pytest.approx((labels[shell] == 1).mean())


def test_lesion_table_without_lesions() -> None:
    image = sitk.GetImageFromArray(np.ones((3, 4, 5), np.uint8))
    table = lesion_table(image)
    assert isinstance(table, pd.DataFrame) and len(table) == 0 and "longest_axial_diameter_mm" in table
