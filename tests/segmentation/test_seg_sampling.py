"""Lesion-balanced crop centres: every lesion equally likely, checked through MONAI's own label-class cropper."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from monai.transforms import ClassesToIndices, RandCropByLabelClassesd

from livermets.segmentation.monai.sampling import component_balanced_indices


def _two_lesions() -> np.ndarray:
    """(1, 40, 40, 40) label: liver block, one 12^3 lesion (1,728 voxels) and one 2^3 lesion (8 voxels)."""
    label = np.zeros((1, 40, 40, 40), np.uint8)
    label[0, 2:38, 2:38, 2:38] = 1
    label[0, 4:16, 4:16, 4:16] = 2
    label[0, 30:32, 30:32, 30:32] = 2
    return label


def test_each_lesion_gets_the_same_number_of_candidates_inside_it() -> None:
    label = _two_lesions()
    indices = component_balanced_indices(label, num_classes=3, per_component=100, seed=3)
    components = cc3d.connected_components(label[0] == 2, connectivity=26).ravel()
    hits = components[indices[2]]
    assert hits.min() >= 1  # every candidate is a lesion voxel
    assert np.bincount(hits, minlength=3)[1:].tolist() == [100, 100]
    # The small lesion's 8 voxels are all used (uniform draws with replacement cover them).
    assert len(np.unique(indices[2][hits == components[31 * 1600 + 31 * 40 + 31]])) == 8
    # Background and liver candidates are exactly MONAI's.
    reference = ClassesToIndices(num_classes=3)(label)
    for mine, theirs in zip(indices[:2], reference[:2], strict=True):
        np.testing.assert_array_equal(mine, np.asarray(theirs))


def test_no_lesion_leaves_the_lesion_class_empty() -> None:
    label = _two_lesions()
    label[label == 2] = 1
    assert component_balanced_indices(label, 3, per_component=10)[2].size == 0


@pytest.mark.parametrize(("balanced", "expected_share"), [(False, 8 / 1736), (True, 0.5)])
def test_crops_centre_on_the_small_lesion_as_often_as_expected(balanced: bool, expected_share: float) -> None:
    label = _two_lesions()
    indices = (component_balanced_indices(label, 3, per_component=256, seed=0) if balanced
               else [np.asarray(i) for i in ClassesToIndices(num_classes=3)(label)])
    components = cc3d.connected_components(label[0] == 2, connectivity=26)[None].astype(np.int32)
    small_id = int(components[0, 31, 31, 31])
    cropper = RandCropByLabelClassesd(
        ["label", "components"], label_key="label", spatial_size=(4, 4, 4), ratios=[0, 0, 1], num_classes=3,
        num_samples=400, indices_key="indices",
    )
    cropper.set_random_state(seed=0)
    crops = cropper({"label": label, "components": components, "indices": indices})
    # The lesions lie 14 voxels apart, so a 4^3 crop holds one of them: which one, the cropped component map tells.
    share = np.mean([bool((np.asarray(c["components"]) == small_id).any()) for c in crops])
    assert share == pytest.approx(expected_share, abs=0.06)
