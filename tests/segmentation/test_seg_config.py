"""Config presets match the paper's recipe; bad values are rejected with a message naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tiny_config_dict
from livermets.errors import UserInputError
from livermets.segmentation.config import config_from_dict, load_config, save_config
from livermets.segmentation.monai.networks import build_network


def test_paper_preset_is_the_papers_recipe() -> None:
    # Values from the paper's Methods (MONAI U-Net/SegResNet paragraph).
    cfg = load_config("paper")
    assert cfg.preprocess.spacing_mm == (0.5, 0.5, 1.0)
    assert cfg.sampling.patch_size == (512, 512, 16)
    assert cfg.sampling.class_ratios == (4, 1, 3)
    assert cfg.sampling.samples_per_image == 12
    assert cfg.train.learning_rate == pytest.approx(1e-4)
    assert cfg.train.loss == "dice"
    assert cfg.train.max_epochs == 1500
    assert cfg.preprocess.window.level_jitter_hu > 0  # "variable CT windowing"


def test_cpu_preset_is_coarser_and_smaller() -> None:
    cpu, paper = load_config("cpu"), load_config("paper")
    assert all(c > p for c, p in zip(cpu.preprocess.spacing_mm, paper.preprocess.spacing_mm, strict=True))
    assert cpu.sampling.class_ratios == paper.sampling.class_ratios
    assert sum(cpu.sampling.patch_size) < sum(paper.sampling.patch_size)
    def n_parameters(cfg: object) -> int:
        return sum(p.numel() for p in build_network(cfg).parameters())  # type: ignore[arg-type]

    assert n_parameters(cpu) < n_parameters(paper)


def test_paper_preset_uses_none_of_the_options_beyond_the_paper() -> None:
    paper = load_config("paper")
    assert paper.sampling.lesion_centres == "voxel"  # MONAI's own label-class sampling
    assert paper.train.class_weights is None and paper.train.lr_schedule == "constant"
    assert not paper.train.calibrate_lesion_threshold and paper.inference.lesion_threshold is None
    assert paper.augment.flip_prob == 0 and paper.augment.rotate90_prob == 0


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config("cpu", model="segresnet")
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("preprocess", "spacing_mm"), [2.0, -1.0, 3.0], "preprocess.spacing_mm"),
        (("sampling", "patch_size"), [30, 32, 16], "divisible by 4"),
        (("preprocess", "window", "hu_max"), -500, "hu_max"),
        (("train", "learning_rate"), 0, "train.learning_rate"),
        (("train", "loss"), "focal", "train.loss"),
        (("train", "bogus"), 1, "train.bogus"),
        (("network", "unet", "strides"), [2], "strides"),
        (("inference", "overlap"), 1.5, "inference.overlap"),
        (("model",), "vnet", "model"),
        (("train", "class_weights"), [1.0, 0.0, 3.0], "train.class_weights"),
        (("train", "lr_schedule"), "cosine", "train.lr_schedule"),
        (("train", "focal_gamma"), -1.0, "train.focal_gamma"),
        (("sampling", "lesion_centres"), "centroid", "sampling.lesion_centres"),
    ],
)
def test_bad_values_are_named(path: tuple[str, ...], value: object, fragment: str) -> None:
    data = tiny_config_dict()
    node = data
    for key in path[:-1]:
        node = node[key]  # type: ignore[assignment,index]
    node[path[-1]] = value  # type: ignore[index]
    with pytest.raises(UserInputError, match="invalid segmentation config") as info:
        config_from_dict(data, "my.yaml")
    assert fragment in str(info.value)
    assert str(info.value).startswith("my.yaml:")


def test_unknown_preset_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no such config file or preset"):
        load_config("gpu-fast")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(UserInputError, match="cannot parse YAML"):
        load_config(bad)


def test_cli_rejects_bad_config_with_exit_2(tmp_path: Path, tiny_cohort: Path) -> None:
    data = tiny_config_dict()
    data["sampling"]["patch_size"] = [32, 32, -16]  # type: ignore[index]
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(data))
    proc = subprocess.run(
        [sys.executable, "-m", "livermets", "seg", "train", "--model", "unet", "--manifest", str(tiny_cohort),
         "--out", str(tmp_path / "m"), "--config", str(config), "--device", "cpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "sampling.patch_size" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()
