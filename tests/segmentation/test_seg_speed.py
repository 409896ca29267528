"""Speed options: mixed precision only where the hardware has it, and the timed memory-format choice."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNet

from livermets.segmentation import device as device_module
from livermets.segmentation.device import mixed_precision
from livermets.segmentation.memory_format import fastest_memory_format


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [(True, False, True), (False, True, True),
                                                               (False, False, False)])
def test_cpu_mixed_precision_needs_native_bfloat16(monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool,
                                                   expected: bool) -> None:
    monkeypatch.setattr(device_module.torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(device_module.torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert mixed_precision(torch.device("cpu"), requested=True) is expected
    assert mixed_precision(torch.device("cpu"), requested=False) is False
    assert mixed_precision(torch.device("cuda"), requested=True) is True


def test_fastest_memory_format_leaves_the_network_and_random_state_alone() -> None:
    torch.manual_seed(3)
    net = UNet(3, 1, 3, channels=(4, 8), strides=(2,), num_res_units=0, norm="batch", dropout=0.2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng_before = torch.get_rng_state()
    name, seconds = fastest_memory_format(net, (2, 1, 16, 16, 16), torch.device("cpu"), repeats=1)
    assert set(seconds) == {"contiguous", "channels_last"} and all(s > 0 for s in seconds.values())
    assert name == min(seconds, key=seconds.__getitem__)
    # Batch-norm running statistics and weights are untouched (a copy was timed); dropout drew privately.
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert next(net.parameters()).is_contiguous()
