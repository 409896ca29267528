"""Pick the faster tensor layout for training on this machine, as ``torch.backends.cudnn.benchmark`` picks kernels.

Channels-last 3D (NDHWC) convolutions were 1.5x faster than the default layout on one 2-core Intel CPU here and 1.3x
slower on an AMD one: which layout wins depends on the CPU, the oneDNN kernels and the network, so ``auto`` times a few
training steps of a copy of the network in each layout. The choice changes speed only; results agree to float
rounding.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch

MEMORY_FORMATS: dict[str, torch.memory_format] = {
    "contiguous": torch.contiguous_format,
    "channels_last": torch.channels_last_3d,
}


def _seconds_per_step(
    network: torch.nn.Module, batch: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor], amp: bool,
    repeats: int,
) -> float:
    def step() -> None:
        network.zero_grad(set_to_none=True)
        with torch.autocast(batch.device.type, enabled=amp):
            value = loss(network(batch))
        value.backward()
        if batch.device.type == "cuda":
            torch.cuda.synchronize(batch.device)

    step()  # the first call pays for kernel selection and allocation
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def fastest_memory_format(
    network: torch.nn.Module, input_shape: Sequence[int], device: torch.device, amp: bool = False, repeats: int = 2,
) -> tuple[str, dict[str, float]]:
    """Name of the faster layout (``contiguous`` or ``channels_last``) and the seconds per training step of each.

    Times forward and backward passes (no optimiser step) of a deep copy of ``network``, so its weights and any
    running statistics stay untouched, on a random batch of ``input_shape`` (N, C, x, y, z) drawn from a private
    generator; the global random state is restored afterwards (dropout draws from it).

    Examples
    --------
    >>> from monai.networks.nets import UNet
    >>> net = UNet(3, 1, 3, channels=(4, 8), strides=(2,), num_res_units=0)
    >>> name, seconds = fastest_memory_format(net, (1, 1, 16, 16, 16), torch.device("cpu"), repeats=1)
    >>> name in seconds
    True
    """
    generator = torch.Generator().manual_seed(0)
    batch = torch.rand(tuple(input_shape), generator=generator).to(device)
    seconds: dict[str, float] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # dropout draws stay private
        for name, memory_format in MEMORY_FORMATS.items():
            trial = copy.deepcopy(network).to(device=device, memory_format=memory_format)  # type: ignore[call-overload]
            trial.train()
            seconds[name] = _seconds_per_step(trial, batch, lambda out: out.float().square().mean(), amp, repeats)
    return min(seconds, key=seconds.__getitem__), seconds
