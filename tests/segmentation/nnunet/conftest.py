"""Tiny phantom cohorts for the nnU-Net backend and a tiny trained nnU-Net model folder (session-scoped).

Self-contained on purpose (no import from tests/segmentation/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

TINY_SIZE = (32, 32, 24)
"""x, y, z voxels of the phantoms: nnU-Net plans a [24, 32, 32] patch, one CPU iteration takes seconds."""

CohortFactory = Callable[..., Path]


def phantom_ct(seed: int, size: tuple[int, int, int] = TINY_SIZE, spacing: tuple[float, float, float] = (4.0, 4.0, 6.0),
               direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1)) -> tuple[sitk.Image, sitk.Image]:
    """A noisy CT in HU (air, body, liver, one or two lesions) and its LiTS label map on the same grid."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    ct = np.full((nz, ny, nx), -1000.0)
    ct[((x - nx / 2) / (0.45 * nx)) ** 2 + ((y - ny / 2) / (0.4 * ny)) ** 2 < 1] = -80.0
    cx, cy, cz = nx * rng.uniform(0.38, 0.45), ny * rng.uniform(0.45, 0.55), nz * rng.uniform(0.45, 0.55)
    liver = ((x - cx) / (0.24 * nx)) ** 2 + ((y - cy) / (0.22 * ny)) ** 2 + ((z - cz) / (0.32 * nz)) ** 2 < 1
    ct[liver] = 60.0
    label = liver.astype(np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        lx, ly, lz = cx + rng.uniform(-2, 2), cy + rng.uniform(-2, 2), cz + rng.uniform(-1, 1)
        lesion = ((x - lx) ** 2 + (y - ly) ** 2 + ((z - lz) * 1.5) ** 2 < rng.uniform(2.0, 3.0) ** 2) & liver
        ct[lesion] = 10.0
        label[lesion] = 2
    ct += rng.normal(0, 12, ct.shape)
    image = sitk.GetImageFromArray(ct.astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((-60.0 + seed, 20.0, -300.0))
    image.SetDirection(direction)
    lab = sitk.GetImageFromArray(label)
    lab.CopyInformation(image)
    return image, lab


def write_cohort(folder: Path, splits: list[str], patients: list[str] | None = None,
                 series_ids: list[str] | None = None, seed: int = 0, **kwargs: object) -> Path:
    """Phantom images, labels and a manifest (one row per split entry); return the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, split in enumerate(splits):
        image, label = phantom_ct(seed + i, **kwargs)  # type: ignore[arg-type]
        sid = series_ids[i] if series_ids else f"S{i:02d}"
        sitk.WriteImage(image, str(folder / f"image{i:02d}.nii.gz"))
        sitk.WriteImage(label, str(folder / f"label{i:02d}.nii.gz"))
        patient = patients[i] if patients else f"P{i:02d}"
        rows.append({"series_id": sid, "study_id": f"{patient}-T{i:02d}", "patient_id": patient,
                     "image": f"image{i:02d}.nii.gz", "label": f"label{i:02d}.nii.gz", "split": split})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.fixture(scope="session")
def nnunet_cohort_factory(tmp_path_factory: pytest.TempPathFactory) -> CohortFactory:
    """``make(splits, patients=None, series_ids=None, seed=0, **phantom_kwargs) -> manifest`` in a new folder."""

    def make(splits: list[str], **kwargs: object) -> Path:
        return write_cohort(tmp_path_factory.mktemp("nnunet_cohort"), splits, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def tiny_nnunet_cohort(nnunet_cohort_factory: CohortFactory) -> Path:
    """Manifest of 6 phantom scans of 6 patients: 4 train, 1 val, 1 test."""
    return nnunet_cohort_factory(["train"] * 4 + ["val", "test"])


@pytest.fixture(scope="session")
def tiny_nnunet_model(tiny_nnunet_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A livermets nnU-Net model folder (MODEL with nnunet.json, results/...) trained for 1 epoch of 2 iterations (1
    validation iteration) on CPU on :func:`tiny_nnunet_cohort` (fold 0 = the manifest's val split)."""
    pytest.importorskip("nnunetv2")
    from livermets.segmentation.nnunet.train import train_nnunet

    model = tmp_path_factory.mktemp("nnunet_model") / "model"
    train_nnunet(tiny_nnunet_cohort, model, epochs=1, iterations_per_epoch=2, device="cpu", num_processes=0)
    return model
