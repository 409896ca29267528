"""The training loss named by ``train.loss``, built from MONAI losses.

``dicefocal`` is MONAI's ``DiceLoss`` plus MONAI's ``FocalLoss(use_softmax=True)``, summed. MONAI's own
``DiceFocalLoss`` (1.6) is not used: it applies the focal term to the sigmoid of each logit even when ``softmax=True``,
which does not match a softmax network. MONAI's focal term averages over the class channels; it is multiplied by the
number of classes here so that with ``focal_gamma: 0`` (and no class weights) ``dicefocal`` is exactly ``dicece``:
the focusing then only takes weight off the voxels the network already gets right.

Examples
--------
>>> import torch
>>> from livermets.segmentation.config import TrainConfig
>>> loss = build_loss(TrainConfig(max_epochs=1, loss="dicefocal"), torch.device("cpu"))
>>> logits, labels = torch.zeros(1, 3, 4, 4, 4), torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
>>> round(float(loss(logits, labels)), 3) > 0
True
"""

from __future__ import annotations

from typing import Any

import torch
from monai.losses import DiceCELoss, DiceLoss, FocalLoss

from livermets.segmentation.config import TrainConfig


class DiceFocalSoftmax(torch.nn.Module):
    """MONAI Dice loss plus MONAI softmax focal loss on logits of shape (B, C, ...) and integer labels (B, 1, ...)."""

    def __init__(self, gamma: float, weight: torch.Tensor | None, batch: bool) -> None:
        super().__init__()
        self.dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=True, batch=batch, weight=weight)
        self.focal = FocalLoss(to_onehot_y=True, use_softmax=True, include_background=True, gamma=gamma,
                               weight=weight)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, labels) + logits.shape[1] * self.focal(logits, labels)


def build_loss(train: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The loss of ``train.loss`` on softmax outputs and integer labels, with the class weights."""
    weights = torch.tensor(train.class_weights, device=device) if train.class_weights else None
    if train.loss == "dicefocal":
        return DiceFocalSoftmax(train.focal_gamma, weights, train.batch_dice)
    common: dict[str, Any] = dict(to_onehot_y=True, softmax=True, include_background=True, batch=train.batch_dice,
                                  weight=weights)
    return DiceLoss(**common) if train.loss == "dice" else DiceCELoss(**common)
