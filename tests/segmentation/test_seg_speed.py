"""Speed options: mixed precision only where the hardware has it, and the timed memory-format choice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from monai.networks.nets import UNet

from conftest import tiny_config_dict
from livermets.errors import ParameterError
from livermets.segmentation import device as device_module
from livermets.segmentation.config import load_config
from livermets.segmentation.device import mixed_precision, resolve_device
from livermets.segmentation.monai.memory_format import fastest_memory_format
from livermets.segmentation.monai.networks import build_network
from livermets.segmentation.monai.transforms import IMAGE, LABEL
from livermets.segmentation.monai.validation import THRESHOLDS, validate


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [(True, False, True), (False, True, True),
                                                               (False, False, False)])
def test_cpu_mixed_precision_needs_native_bfloat16(monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool,
                                                   expected: bool) -> None:
    monkeypatch.setattr(device_module.torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(device_module.torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert mixed_precision(torch.device("cpu"), requested=True) is expected
    assert mixed_precision(torch.device("cpu"), requested=False) is False
    assert mixed_precision(torch.device("cuda"), requested=True) is True


def test_an_unknown_device_names_the_device_parameter() -> None:
    with pytest.raises(ParameterError, match=r"^device 'gpu': expected auto, cpu or cuda$") as info:
        resolve_device("gpu")
    assert info.value.render({"device": "--device"}) == "--device 'gpu': expected auto, cpu or cuda"


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


def test_validation_preprocesses_outside_autocast(tmp_path: Path) -> None:
    # An uncached loader runs MONAI's resampling while it is iterated; under CPU autocast that resampling would run in
    # bfloat16 and change the labels (a real 48-patient validation set lost 5 of its 328 lesions that way).
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config_dict()))
    cfg = load_config(config_path)
    network = build_network(cfg)
    states: list[bool] = []

    def loader() -> Iterator[dict[str, torch.Tensor]]:
        generator = torch.Generator().manual_seed(0)
        for _ in range(2):
            states.append(torch.is_autocast_enabled("cpu"))
            yield {IMAGE: torch.rand((1, 1, 32, 32, 16), generator=generator),
                   LABEL: torch.randint(0, 3, (1, 1, 32, 32, 16), generator=generator).float()}

    validate(network, loader(), cfg, torch.device("cpu"), amp=True)  # type: ignore[arg-type]
    validate(network, loader(), cfg, torch.device("cpu"), amp=True, thresholds=THRESHOLDS)  # type: ignore[arg-type]
    assert states == [False] * 4
