"""File names inside a model folder (see :mod:`livermets.segmentation.monai.train` for the layout), and the checksum
of a network's weights."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
LOG_FILE = "train_log.csv"
CURVE_FILE = "training_curve.png"
PROVENANCE_FILE = "provenance.json"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
THRESHOLD_FILE = "lesion_threshold.csv"
DEFAULT_MODEL_DIR = Path(__file__).with_name("models") / "default"
"""The model shipped inside the package (registry name ``shipped``)."""


def weights_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
