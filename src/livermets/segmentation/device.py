"""Choose the torch device for training and prediction."""

from __future__ import annotations

from typing import Literal

import torch

from livermets.errors import ParameterError

DeviceName = Literal["auto", "cpu", "cuda"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a user error.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError("{device} cuda: no CUDA device is available (use {device} cpu or auto)")
        return torch.device("cuda")
    raise ParameterError("{device} {value!r}: expected auto, cpu or cuda", value=name)


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere oneDNN emulates it slowly."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def mixed_precision(device: torch.device, requested: bool) -> bool:
    """Whether to run under ``torch.autocast``: float16 on CUDA, bfloat16 on a CPU with native bfloat16.

    Examples
    --------
    >>> mixed_precision(torch.device("cpu"), requested=False)
    False
    """
    if not requested:
        return False
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bfloat16())


def out_of_memory_message(device: torch.device, what: str) -> str:
    """One line advising how to fit into GPU memory (by the config's sizes)."""
    return (
        f"out of memory on {device} during {what}: use a config with a smaller sampling.patch_size or "
        "sampling.samples_per_image, or a smaller inference.sw_batch_size"
    )


def out_of_memory_error(device: torch.device, what: str) -> ParameterError:
    """The error of running out of GPU memory during a prediction: advises the config's sizes and ``sw_batch_size``.

    Examples
    --------
    >>> str(out_of_memory_error(torch.device("cuda"), "prediction of S01"))  # doctest: +ELLIPSIS
    'out of memory on cuda during prediction of S01: ..., or a smaller sw_batch_size / inference.sw_batch_size'
    """
    return ParameterError("out of memory on {where} during {what}: use a config with a smaller sampling.patch_size "
                          "or sampling.samples_per_image, or a smaller {sw_batch_size} / inference.sw_batch_size",
                          where=str(device), what=what)


def nnunet_out_of_memory_error(device: torch.device, name: str) -> ParameterError:
    """The error of an nnU-Net prediction running out of memory (its patch size is the model's own: no option to
    shrink it, so the advice is another device).

    Examples
    --------
    >>> str(nnunet_out_of_memory_error(torch.device("cuda"), "S01"))
    'out of memory on cuda during prediction of S01: use device cpu or a machine with more memory'
    """
    return ParameterError("out of memory on {where} during prediction of {what}: use {device} cpu or a machine with "
                          "more memory", where=str(device), what=name)

