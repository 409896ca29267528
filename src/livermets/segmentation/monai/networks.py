"""Build the MONAI network named in a config, run it over a whole volume, and save/load its weights as safetensors.

Weights files are safetensors (a JSON header and raw tensor bytes: loading one never runs code) whose metadata holds a
SHA-256 checksum of the tensors (:data:`CHECKSUM_KEY`), so that a damaged or modified file is refused instead of
silently giving other predictions.
"""

from __future__ import annotations

from pathlib import Path

import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import SegResNet, UNet
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from livermets.atomic import atomic_path
from livermets.errors import UserInputError
from livermets.segmentation.config import CLASS_NAMES, SegConfig
from livermets.segmentation.model_files import weights_checksum


def build_network(config: SegConfig) -> torch.nn.Module:
    """``monai.networks.nets.UNet`` or ``SegResNet`` (3D, 1 input channel, 3 output classes) from ``config``.

    Examples
    --------
    >>> from livermets.segmentation.config import load_config
    >>> net = build_network(load_config("cpu"))
    >>> type(net).__name__
    'UNet'
    """
    if config.model == "unet":
        u = config.network.unet
        return UNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=len(CLASS_NAMES),
            channels=u.channels,
            strides=u.strides,
            num_res_units=u.num_res_units,
            norm=u.norm,
            dropout=u.dropout,
        )
    s = config.network.segresnet
    return SegResNet(
        spatial_dims=3,
        init_filters=s.init_filters,
        in_channels=1,
        out_channels=len(CLASS_NAMES),
        dropout_prob=s.dropout_prob,
        blocks_down=s.blocks_down,
        blocks_up=s.blocks_up,
    )


def sliding_window_logits(network: torch.nn.Module, image: torch.Tensor, config: SegConfig) -> torch.Tensor:
    """Logits (N, 3, x, y, z) of a preprocessed (N, 1, x, y, z) volume: MONAI's sliding window with the config's
    patch size and the inference settings (windows per pass, overlap, blending) that validation and prediction share.
    """
    inference = config.inference
    return torch.as_tensor(sliding_window_inference(
        image, config.sampling.patch_size, inference.sw_batch_size, network, overlap=inference.overlap,
        mode=inference.blend_mode,
    ))


CHECKSUM_KEY = "livermets_sha256"
"""safetensors metadata key of the tensors' checksum (:func:`weights_checksum`)."""


def save_weights(network: torch.nn.Module, path: str | Path) -> Path:
    """Write the network's state_dict as safetensors with its checksum, atomically."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in network.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={CHECKSUM_KEY: weights_checksum(tensors)})
    return Path(path)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, checked against the checksum in its metadata when it has one.

    Raises
    ------
    UserInputError
        Missing file, a file that is not safetensors (a torch pickle, a cut or damaged file), or tensors that differ
        from their checksum.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as weights:
            metadata = weights.metadata() or {}
            tensors = {name: weights.get_tensor(name) for name in weights.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise UserInputError(f"{path}: not a readable safetensors weights file ({reason}); the file is damaged, "
                             "cut short or of another format (livermets never loads pickled weights)") from None
    expected = metadata.get(CHECKSUM_KEY)
    if expected is not None and expected != weights_checksum(tensors):
        raise UserInputError(f"{path}: the weights differ from the checksum stored with them (the file was modified "
                             "or damaged after it was written)")
    return tensors


def load_weights(network: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load checked safetensors weights into ``network`` (strict: names and shapes must match its config)."""
    tensors = read_weights(path)
    try:
        network.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:  # shape/name mismatch
        raise UserInputError(f"{path}: weights do not match the configured network ({str(exc).splitlines()[0]})") \
            from None
    return network
