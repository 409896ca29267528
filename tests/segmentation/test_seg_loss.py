"""The configured training losses are MONAI's, with the class weights and the focal parameter passed through."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_config_dict
from livermets.segmentation.config import TrainConfig, config_from_dict
from livermets.segmentation.monai.losses import build_loss


def _train_config(**train: object) -> TrainConfig:
    data = tiny_config_dict()
    section = data["train"]
    assert isinstance(section, dict)
    section.update(train)
    return config_from_dict(data, "test.yaml").train


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 8, 8, 4, generator=generator)
    labels = torch.randint(0, 3, (2, 1, 8, 8, 4), generator=generator)
    return logits, labels


def test_focal_term_reduces_to_cross_entropy_without_focusing() -> None:
    """gamma = 0 makes the focal term the cross-entropy, so dicefocal equals MONAI's DiceCE and Dice + torch's CE."""
    logits, labels = _batch()
    device = torch.device("cpu")
    dice_only = float(build_loss(_train_config(loss="dice", class_weights=None), device)(logits, labels))
    dice_ce = float(build_loss(_train_config(loss="dicece", class_weights=None), device)(logits, labels))
    dice_focal = float(build_loss(_train_config(loss="dicefocal", focal_gamma=0.0, class_weights=None), device)(
        logits, labels))
    assert dice_focal == pytest.approx(dice_ce, rel=1e-5)
    assert dice_focal - dice_only == pytest.approx(float(F.cross_entropy(logits, labels[:, 0])), rel=1e-5)


def test_focal_term_down_weights_confident_voxels() -> None:
    logits, labels = _batch(1)
    device = torch.device("cpu")
    dice_only = float(build_loss(_train_config(loss="dice", class_weights=None), device)(logits, labels))
    # the cross-entropy computed here with torch's own function, not MONAI's
    ce = float(F.cross_entropy(logits, labels[:, 0]))
    focal = float(build_loss(_train_config(loss="dicefocal", focal_gamma=2.0, class_weights=None), device)(
        logits, labels)) - dice_only
    probability_of_truth = F.softmax(logits, 1).gather(1, labels)
    expected = float((-(1 - probability_of_truth) ** 2 * probability_of_truth.log()).mean())
    assert focal == pytest.approx(expected, rel=1e-4)
    assert 0 < focal < ce


def test_lesion_weight_raises_the_loss_on_missed_lesions() -> None:
    logits = torch.zeros(1, 3, 8, 8, 4)
    logits[:, 0] = 4.0  # everything predicted background, though half of it is lesion
    labels = torch.zeros(1, 1, 8, 8, 4, dtype=torch.long)
    labels[..., :4, :] = 2
    device = torch.device("cpu")
    for loss in ("dicece", "dicefocal"):
        plain = float(build_loss(_train_config(loss=loss, class_weights=[1.0, 1.0, 1.0]), device)(logits, labels))
        weighted = float(build_loss(_train_config(loss=loss, class_weights=[1.0, 1.0, 6.0]), device)(logits, labels))
        assert weighted > plain, loss
