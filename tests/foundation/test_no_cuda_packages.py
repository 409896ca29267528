"""The environment `make` builds is CPU-only: no CUDA package, no torchvision/timm/triton pulled in by nnU-Net."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

# Distributions that only come with a CUDA build of torch or with nnU-Net's declared (unused) timm chain.
FORBIDDEN = re.compile(r"^(nvidia-.*|triton|torchvision|timm|cuda-.*|cupy.*)$", re.IGNORECASE)


def _installed() -> dict[str, str]:
    done = subprocess.run([sys.executable, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=120, check=True)
    return {entry["name"].lower(): entry["version"] for entry in json.loads(done.stdout)}


def test_pip_list_has_no_cuda_package_and_torch_is_the_cpu_build() -> None:
    installed = _installed()
    assert not sorted(name for name in installed if FORBIDDEN.match(name))
    assert installed["torch"].endswith("+cpu"), installed["torch"]
    assert "xgboost" not in installed and "xgboost-cpu" in installed  # xgboost's wheel requires nvidia-nccl-cu12


def test_nnunet_is_installed_and_imports_without_timm() -> None:
    code = ("import sys; from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor; "
            "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer; "
            "print('timm' in sys.modules, 'torchvision' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"nnunetv2 does not import: {done.stderr.strip().splitlines()[-1:]}")
    assert done.stdout.split() == ["False", "False"]
