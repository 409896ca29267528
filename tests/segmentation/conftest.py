"""Small phantom CTs (air, body, ellipsoid liver, spherical lesions) and a tiny config for fast segmentation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

from livermets.segmentation.config import load_config


def phantom(
    seed: int,
    size: tuple[int, int, int] = (48, 48, 20),
    spacing: tuple[float, float, float] = (4.0, 4.0, 6.0),
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    lesions: int = 2,
) -> tuple[sitk.Image, sitk.Image]:
    """A noisy CT in HU and its LiTS label map (x, y, z ``size``), random liver position and lesions."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    ct = np.full((nz, ny, nx), -1000.0)
    body = ((x - nx / 2) / (0.45 * nx)) ** 2 + ((y - ny / 2) / (0.4 * ny)) ** 2 < 1
    ct[body] = -80.0  # fat
    cx, cy, cz = nx * rng.uniform(0.35, 0.45), ny * rng.uniform(0.4, 0.6), nz * rng.uniform(0.4, 0.6)
    rx, ry, rz = nx * 0.22, ny * 0.2, nz * 0.3
    liver = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 < 1
    ct[liver] = 60.0
    label = liver.astype(np.uint8)
    for _ in range(lesions):
        while True:
            lx = cx + rng.uniform(-0.5, 0.5) * rx
            ly = cy + rng.uniform(-0.5, 0.5) * ry
            lz = cz + rng.uniform(-0.3, 0.3) * rz
            radius = rng.uniform(2.0, 3.5)
            sphere = ((x - lx) * spacing[0]) ** 2 + ((y - ly) * spacing[1]) ** 2 + ((z - lz) * spacing[2]) ** 2 < (
                radius * spacing[0]
            ) ** 2
            if (sphere & liver).sum() == sphere.sum() > 0:
                break
        ct[sphere] = 10.0
        label[sphere] = 2
    ct += rng.normal(0, 12, ct.shape)
    image = sitk.GetImageFromArray(ct.astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((-100.0, 20.0, -300.0))
    image.SetDirection(direction)
    lab = sitk.GetImageFromArray(label)
    lab.CopyInformation(image)
    return image, lab


def write_cohort(folder: Path, splits: list[str], seed: int = 0, **kwargs: object) -> Path:
    """Write phantom images/labels and a manifest with the given split per case; return the manifest path."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, split in enumerate(splits):
        image, label = phantom(seed + i, **kwargs)  # type: ignore[arg-type]
        sid = f"S{i:02d}"
        sitk.WriteImage(image, str(folder / "images" / f"{sid}.nii.gz"))
        sitk.WriteImage(label, str(folder / "labels" / f"{sid}.nii.gz"))
        rows.append({"series_id": sid, "study_id": f"T{i:02d}", "patient_id": f"P{i:02d}",
                     "image": f"images/{sid}.nii.gz", "label": f"labels/{sid}.nii.gz", "split": split})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of 6 phantom scans: 4 train, 1 val, 1 test."""
    return write_cohort(tmp_path_factory.mktemp("seg_cohort"), ["train"] * 4 + ["val", "test"])


def tiny_config_dict(model: str = "unet") -> dict[str, object]:
    """The cpu preset shrunk to a few seconds per epoch on the phantoms."""
    data = load_config("cpu").model_dump(mode="json")
    data["preset"] = "test-tiny"
    data["model"] = model
    data["preprocess"]["spacing_mm"] = [4.0, 4.0, 6.0]
    data["sampling"].update(patch_size=[32, 32, 16], samples_per_image=2)
    data["network"]["unet"].update(channels=[8, 16, 32], strides=[2, 2], num_res_units=1)
    data["network"]["segresnet"].update(init_filters=8, blocks_down=[1, 1, 1], blocks_up=[1, 1])
    data["train"].update(max_epochs=2, max_minutes=None, val_interval=1, learning_rate=3e-3)
    return data


@pytest.fixture()
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict()))
    return path


@pytest.fixture(scope="session")
def trained_model(tiny_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A U-Net trained for 6 short epochs on the phantom cohort (a few seconds on CPU)."""
    from livermets.segmentation.monai.train import train_model

    folder = tmp_path_factory.mktemp("seg_model")
    data = tiny_config_dict()
    data["train"]["max_epochs"] = 6  # type: ignore[index]
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(data))
    train_model(tiny_cohort, folder / "model", model="unet", config=config, device="cpu")
    return folder / "model"
