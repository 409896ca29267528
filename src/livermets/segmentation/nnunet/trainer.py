"""nnU-Net's trainer with user-set training length, and checkpoints read without unpickling arbitrary objects.

This module imports nnunetv2 at import time: import it only where nnU-Net is needed (livermets itself imports it
lazily, inside functions).

Examples
--------
>>> from livermets.segmentation.nnunet.trainer import read_checkpoint
>>> checkpoint = read_checkpoint("results/.../fold_0/checkpoint_final.pth")  # doctest: +SKIP
>>> sorted(checkpoint)[:3]  # doctest: +SKIP
['_best_ema', 'current_epoch', 'grad_scaler_state']
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch._dynamo import OptimizedModule

from livermets.atomic import atomic_path
from livermets.errors import ParameterError, UserInputError
from livermets.segmentation.nnunet.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

SEG_LAYER_KEY = ".seg_layers."
"""Marks the 1x1x1 output convolutions of nnU-Net's networks (one output channel per label)."""

def read_checkpoint(path: str | Path, parameter: Literal["pretrained", "resume"] = "pretrained") -> dict[str, Any]:
    """Load an nnU-Net v2 checkpoint (``checkpoint_final.pth`` ...) with ``torch.load(weights_only=True)``.

    :func:`livermets.segmentation.nnunet.checkpoint.load_checkpoint`, its messages
    prefixed with ``parameter``: a checkpoint holding anything but weights, plain values and numpy numbers is refused
    rather than unpickled (unpickling can run arbitrary code).

    Raises
    ------
    ParameterError
        Missing file, not a torch checkpoint, other pickled objects, or no ``network_weights``.
    """
    try:
        return load_checkpoint(path)
    except UserInputError as exc:
        if parameter == "resume":
            raise ParameterError("{resume} {problem}", problem=str(exc)) from None
        raise ParameterError("{pretrained} {problem}", problem=str(exc)) from None


def unwrapped(network: torch.nn.Module) -> torch.nn.Module:
    """The network itself, without a ``torch.compile`` wrapper."""
    return network._orig_mod if isinstance(network, OptimizedModule) else network


def transfer_weights(network: torch.nn.Module, weights: dict[str, torch.Tensor], source: str) -> list[str]:
    """Copy ``weights`` into ``network`` like nnU-Net's ``load_pretrained_weights``; return the keys not copied.

    Every parameter must exist in ``weights`` with the same shape, except the segmentation output layers
    (``.seg_layers.``), which are copied only when their shapes match (same labels) and otherwise keep their fresh
    initialisation.

    Raises
    ------
    ParameterError
        A parameter outside the output layers is missing or has another shape (a different architecture).
    """
    target = unwrapped(network)
    state = target.state_dict()
    skipped = []
    for key, value in state.items():
        incoming = weights.get(key, weights.get(f"module.{key}"))
        if incoming is not None and tuple(incoming.shape) == tuple(value.shape):
            state[key] = incoming.to(value.dtype)
        elif SEG_LAYER_KEY in key:
            skipped.append(key)
        else:
            found = "missing" if incoming is None else f"shape {tuple(incoming.shape)} vs {tuple(value.shape)}"
            raise ParameterError("{pretrained} {path}: weights do not fit the planned network ({key}: {found})",
                                 path=source, key=key, found=found)
    target.load_state_dict(state)
    return skipped


class nnUNetTrainerLivermets(nnUNetTrainer):
    """``nnUNetTrainer`` whose training length is set after construction and whose checkpoints load safely.

    Set ``num_epochs``, ``num_iterations_per_epoch`` and ``num_val_iterations_per_epoch`` before
    :meth:`initialize` (the poly learning-rate schedule reads ``num_epochs`` there). Network, loss, augmentation and
    checkpoint format are nnU-Net's own.
    """

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written to a temporary file and renamed (a kill never leaves half a checkpoint)."""
        if self.disable_checkpointing or self.local_rank != 0:
            super().save_checkpoint(filename)
            return
        with atomic_path(filename) as tmp:
            super().save_checkpoint(str(tmp))

    def plot_network_architecture(self) -> None:
        """Skipped (nnU-Net's version needs the optional ``hiddenlayer`` package)."""

    def load_checkpoint(self, filename_or_checkpoint: dict[str, Any] | str) -> None:
        """Restore weights, optimizer, epoch and training log from a checkpoint read by :func:`read_checkpoint`."""
        if not self.was_initialized:
            self.initialize()
        checkpoint = (read_checkpoint(filename_or_checkpoint, "resume")
                      if isinstance(filename_or_checkpoint, str) else filename_or_checkpoint)
        weights = {key[7:] if key.startswith("module.") else key: value
                   for key, value in checkpoint["network_weights"].items()}
        unwrapped(self.network).load_state_dict(weights)
        self.my_init_kwargs = checkpoint["init_args"]
        self.current_epoch = checkpoint["current_epoch"]
        self.logger.load_checkpoint(checkpoint["logging"])
        self._best_ema = checkpoint["_best_ema"]
        if "inference_allowed_mirroring_axes" in checkpoint:
            self.inference_allowed_mirroring_axes = checkpoint["inference_allowed_mirroring_axes"]
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if self.grad_scaler is not None and checkpoint.get("grad_scaler_state") is not None:
            self.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])
