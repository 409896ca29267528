"""Post-processing rules and the SimpleITK ⇄ MetaTensor geometry conversion."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from livermets.segmentation.monai.convert import array_to_image, image_to_metatensor
from livermets.segmentation.postprocess import labels_from_probabilities, postprocess_label, postprocess_probabilities


def _scene() -> np.ndarray:
    label = np.zeros((40, 40, 20), np.uint8)
    label[5:25, 5:25, 5:15] = 1  # the liver
    label[10:14, 10:14, 8:11] = 2  # a lesion inside
    label[22:27, 10:14, 8:11] = 2  # an exophytic lesion crossing the capsule (touches the liver)
    label[32:36, 32:36, 2:4] = 1  # a small liver-like island
    label[30, 20, 10] = 2  # a lesion 6 voxels from the liver (x 30 vs 24)
    label[38, 38, 18] = 2  # a distant lesion
    return label


def test_largest_liver_and_lesion_distance() -> None:
    label = _scene()
    out = postprocess_label(label, (1.0, 1.0, 1.0), largest_liver=True, lesion_max_distance_mm=6.0)
    assert (out[32:36, 32:36, 2:4] == 0).all()  # island removed
    assert (out[10:14, 10:14, 8:11] == 2).all() and (out[22:27, 10:14, 8:11] == 2).all()
    assert out[30, 20, 10] == 2  # 6 mm from the liver voxel (24, 20, 10): kept at 6 mm
    assert out[38, 38, 18] == 0
    assert (out[5:25, 5:25, 5:15] > 0).all()
    # A finer distance drops the nearby lesion; millimetres follow the spacing (x spacing 2: >= 10 mm away).
    assert postprocess_label(label, (1.0, 1.0, 1.0), lesion_max_distance_mm=5.0)[30, 20, 10] == 0
    assert postprocess_label(label, (2.0, 1.0, 1.0), lesion_max_distance_mm=6.0)[30, 20, 10] == 0
    # Both rules off: identity.
    assert np.array_equal(postprocess_label(label, (1.0, 1.0, 1.0), False, None), label)


def test_probabilities_follow_the_label_rules() -> None:
    label = _scene()
    probs = np.stack([(label == c).astype(np.float32) * 0.8 + 0.1 for c in range(3)])
    cleaned = postprocess_probabilities(probs, (1.0, 1.0, 1.0), True, 6.0)
    assert np.array_equal(cleaned.argmax(axis=0), postprocess_label(label, (1.0, 1.0, 1.0), True, 6.0))


def test_lesion_threshold_against_an_independent_rule() -> None:
    rng = np.random.default_rng(4)
    probs = rng.dirichlet((1.0, 1.0, 0.5), size=(6, 7, 5)).transpose(3, 0, 1, 2)
    assert np.array_equal(labels_from_probabilities(probs), probs.argmax(axis=0))
    for threshold in (0.1, 0.3, 0.6):
        expected = np.where(probs[2] >= threshold, 2, np.where(probs[1] > probs[0], 1, 0))
        assert np.array_equal(labels_from_probabilities(probs, threshold), expected)
    # UInt8 probabilities (0..255) with the threshold in the same units give the same labels.
    quantised = np.rint(probs * 255).astype(np.uint8)
    assert np.array_equal(labels_from_probabilities(list(quantised), 0.3 * 255),
                          np.where(quantised[2] >= 76.5, 2, np.where(quantised[1] > quantised[0], 1, 0)))


def test_no_liver_means_no_lesion() -> None:
    label = np.zeros((10, 10, 10), np.uint8)
    assert postprocess_label(label, (1.0, 1.0, 1.0)).sum() == 0


def test_metatensor_round_trip_keeps_oblique_geometry() -> None:
    image = sitk.Image(7, 5, 3, sitk.sitkInt16)
    image.SetSpacing((0.7, 1.3, 4.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    c, s = np.cos(0.4), np.sin(0.4)
    image.SetDirection((c, 0, s, 0, 1, 0, -s, 0, c))
    array = np.arange(7 * 5 * 3, dtype=np.int16).reshape(3, 5, 7)
    filled = sitk.GetImageFromArray(array)
    filled.CopyInformation(image)
    tensor = image_to_metatensor(filled)
    assert tuple(tensor.shape) == (1, 7, 5, 3)
    assert tensor[0, 6, 4, 2] == array[2, 4, 6]
    back = array_to_image(tensor[0].numpy(), tensor.affine.numpy())
    assert np.allclose(back.GetSpacing(), image.GetSpacing())
    assert np.allclose(back.GetOrigin(), image.GetOrigin())
    assert np.allclose(back.GetDirection(), image.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(back), array)
    # RAS affine: index (0,0,0) of this LPS image lies at R/L, A/P = -x, -y.
    assert np.allclose(tensor.affine[:3, 3].numpy(), [-10.0, 20.0, 30.0])
