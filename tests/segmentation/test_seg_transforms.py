"""Training transforms: the augmentations are exact voxel permutations of the crops MONAI would have drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import tiny_config_dict
from livermets.segmentation.config import config_from_dict
from livermets.segmentation.monai.transforms import IMAGE, LABEL, train_transforms


def _crops(tiny_cohort: Path, **augment: float) -> list[dict[str, np.ndarray]]:
    data = tiny_config_dict()
    data["preprocess"]["window"].update(level_jitter_hu=0.0, width_jitter_fraction=0.0)  # no intensity randomness
    data["augment"] = augment
    transform = train_transforms(config_from_dict(data))
    transform.set_random_state(seed=5)
    case = {IMAGE: str(tiny_cohort.parent / "images" / "S00.nii.gz"),
            LABEL: str(tiny_cohort.parent / "labels" / "S00.nii.gz")}
    return [{k: np.asarray(c[k]) for k in (IMAGE, LABEL)} for c in transform(case)]


def test_flips_mirror_the_same_crops_on_every_axis(tiny_cohort: Path) -> None:
    plain = _crops(tiny_cohort)
    flipped = _crops(tiny_cohort, flip_prob=1.0)
    assert len(plain) == len(flipped) == 2
    for a, b in zip(plain, flipped, strict=True):
        for key in (IMAGE, LABEL):
            np.testing.assert_array_equal(b[key], a[key][:, ::-1, ::-1, ::-1])


def test_in_plane_rotation_keeps_the_voxels_and_the_slices(tiny_cohort: Path) -> None:
    plain = _crops(tiny_cohort)
    rotated = _crops(tiny_cohort, rotate90_prob=1.0)
    for a, b in zip(plain, rotated, strict=True):
        # Some rotation by k * 90 degrees in the (x, y) plane of the same crop; z untouched.
        assert any(np.array_equal(b[LABEL], np.rot90(a[LABEL], k, axes=(1, 2))) and
                   np.array_equal(b[IMAGE], np.rot90(a[IMAGE], k, axes=(1, 2))) for k in (1, 2, 3))


def test_intensity_augmentations_change_the_image_not_the_label(tiny_cohort: Path) -> None:
    plain = _crops(tiny_cohort)
    augmented = _crops(tiny_cohort, gamma_prob=1.0, noise_prob=1.0, blur_prob=1.0, lowres_prob=1.0)
    for a, b in zip(plain, augmented, strict=True):
        np.testing.assert_array_equal(b[LABEL], a[LABEL])  # same crops, labels untouched
        assert not np.array_equal(b[IMAGE], a[IMAGE])
        assert b[IMAGE].min() >= 0.0 and b[IMAGE].max() <= 1.0  # the window clip still comes last
    # each augmentation alone changes the image as its kind predicts
    noisy = _crops(tiny_cohort, noise_prob=1.0)
    blurred = _crops(tiny_cohort, blur_prob=1.0)
    rough = [np.abs(np.diff(c[IMAGE], axis=1)).mean() for c in plain]
    assert all(np.abs(np.diff(c[IMAGE], axis=1)).mean() < r for c, r in zip(blurred, rough, strict=True))
    assert all(np.abs(np.diff(c[IMAGE], axis=1)).mean() > r for c, r in zip(noisy, rough, strict=True))
