"""Build the MONAI network named in a config, run it over a whole volume, and save/load its weights as safetensors."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import SegResNet, UNet
from safetensors.torch import load_file, save_file

from livermets.atomic import atomic_path
from livermets.errors import UserInputError
from livermets.segmentation.config import CLASS_NAMES, SegConfig


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


def save_weights(network: torch.nn.Module, path: str | Path) -> Path:
    """Write the network's state_dict as safetensors, atomically."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in network.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    return Path(path)


def load_weights(network: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load safetensors weights into ``network`` (strict: names and shapes must match the config's network)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: weights file not found")
    try:
        network.load_state_dict(load_file(str(path)), strict=True)
    except (RuntimeError, OSError) as exc:  # shape/name mismatch or a damaged file
        raise UserInputError(f"{path}: weights do not match the configured network ({str(exc).splitlines()[0]})") \
            from None
    return network
