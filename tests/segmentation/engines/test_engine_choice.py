"""Which engine runs, with how many threads: ``--engine``, ``auto``, the cgroup and affinity limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import SimpleITK as sitk
import torch

from cli_helpers import one_error_line, run_cli
from livermets.errors import ParameterError
from livermets.segmentation.engines import choose
from livermets.segmentation.engines.choose import AUTO_ORDER, available_engines, resolve_engine
from livermets.segmentation.engines.threads import available_cores, cgroup_cpu_limit, engine_threads
from livermets.segmentation.options import PredictionOptions

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_is_the_fastest_installed_engine_on_cpu_and_torch_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(available_engines()) == {"torch", "onnxruntime", "openvino"}  # all three are dependencies
    assert resolve_engine("auto", CPU) == "openvino" == AUTO_ORDER[0]
    assert resolve_engine("auto", CPU, kind="monai") == "torch"  # measured as fast for the shipped U-Net
    assert resolve_engine("openvino", CPU, kind="monai") == "openvino"
    assert resolve_engine(None, CUDA) == "torch" and resolve_engine("torch", CUDA) == "torch"
    monkeypatch.setattr(choose, "available_engines", lambda: ("torch", "onnxruntime"))
    assert resolve_engine("auto", CPU) == "onnxruntime"
    monkeypatch.setattr(choose, "available_engines", lambda: ("torch",))
    assert resolve_engine("auto", CPU) == "torch"


def test_an_engine_that_cannot_run_is_one_error_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ParameterError, match=r"engine 'fast': expected auto, torch, onnxruntime or openvino"):
        resolve_engine("fast", CPU)
    with pytest.raises(ParameterError, match="engine openvino runs on CPU; with device cuda use engine torch"):
        resolve_engine("openvino", CUDA)
    real = choose.importlib.util.find_spec
    monkeypatch.setattr(choose.importlib.util, "find_spec", lambda name: None if name == "openvino" else real(name))
    with pytest.raises(ParameterError, match=r"engine openvino: not installed in this Python \(pip install openvino\)"):
        resolve_engine("openvino", CPU)
    assert resolve_engine("auto", CPU) == "onnxruntime"


def test_engine_and_threads_are_checked_and_never_change_the_model_settings() -> None:
    options = PredictionOptions(engine="onnxruntime", threads=2, overlap=0.5)
    assert options.overrides() == {"overlap": 0.5}
    with pytest.raises(ParameterError, match="threads 0: must be a whole number >= 1"):
        PredictionOptions(threads=0)
    with pytest.raises(ParameterError, match="engine cuda: expected one of auto, torch, onnxruntime, openvino"):
        PredictionOptions(engine="cuda")  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["seg predict --image {ct} --out {out}", "analyze {ct} --out {out}"])
def test_cli_bad_engine_is_one_line(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    ct = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.Image(8, 8, 8, sitk.sitkInt16), str(ct))
    args = command.format(ct=ct, out=tmp_path / "out").split()
    line = one_error_line(run_cli(monkeypatch, *args, "--engine", "tensorrt"), capsys)
    assert "--engine 'tensorrt'" in line or "--engine tensorrt" in line
    assert not (tmp_path / "out").exists()


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(("files", "cores"), [
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_the_cgroup_cpu_quota_is_read_from_v2_or_v1_files(files: dict[str, str], cores: float | None,
                                                           tmp_path: Path) -> None:
    assert cgroup_cpu_limit(write(tmp_path, files)) == cores


def test_threads_are_the_cores_this_process_may_use_shared_by_workers(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert available_cores(write(tmp_path / "none", {})) == affinity
    assert available_cores(write(tmp_path / "half", {"cpu.max": "50000 100000"})) == 1
    assert available_cores(write(tmp_path / "many", {"cpu.max": f"{affinity * 400000} 100000"})) == affinity
    assert engine_threads(3) == 3
    assert engine_threads(None, workers=2) == max(1, available_cores() // 2)
    assert engine_threads(None, workers=10 * affinity) == 1
