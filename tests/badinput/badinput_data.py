"""Inputs and helpers of the bad-input, safe-loading and kill tests: a tiny synthetic cohort, a synthetic feature table
in the published schema and a phenotype model trained on it (all built here, nothing read from ../shared)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from livermets.featuretable import FEATURE_COLUMNS, read_feature_table
from livermets.phenotype.training import train_to_folder
from livermets.synth.cohort import CohortConfig, generate_cohort


@dataclass(frozen=True)
class Inputs:
    """Paths of the shared (read-only) inputs."""

    root: Path
    manifest: Path  # 6 series (3 studies) of one patient, relative image/label paths
    ct: Path
    label: Path
    features: Path  # 60 rows, 30 patients, train/val/test groups
    ne_model: Path  # grouped-protocol LR model trained on ``features``


def feature_table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A random table in the published schema: ids, 108 features, NE targets and Group (two series per patient)."""
    rng = np.random.default_rng(seed)
    patient = np.arange(n) // 2
    score = rng.normal(0.0, 0.3, n)
    columns: dict[str, object] = {"File": [f"s{i:03d}.nii.gz" for i in range(n)],
                                  "unique_scandate": [f"p{p:02d}_d{i % 2}" for i, p in enumerate(patient)],
                                  "unique_pt": [f"p{p:02d}" for p in patient]}
    columns |= {c: rng.normal(10.0, 2.0, n) for c in FEATURE_COLUMNS}
    columns |= {"NE_Score": score, "NE_Status": np.where(score > 0, "positive", "negative"),
                "NE_Class": (score > 0).astype(int),
                "Group": np.where(patient % 5 == 0, "test", np.where(patient % 5 == 1, "val", "train"))}
    return pd.DataFrame(columns)


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    """The shared inputs (built once per session; a test must not change them)."""
    root = tmp_path_factory.mktemp("badinput_shared")
    generate_cohort(root / "cohort", CohortConfig(patients=1, size="tiny", seed=3), overview=False)
    manifest = root / "cohort" / "manifest.csv"
    first = pd.read_csv(manifest).iloc[0]
    features = root / "features.csv"
    feature_table().to_csv(features, index=False)
    table = read_feature_table(features, targets=["NE_Score", "NE_Class"])
    train_to_folder(table, root / "ne_model", protocol="grouped", model="LR", n_jobs=1, seed=0)
    return Inputs(root, manifest, root / "cohort" / first["image"], root / "cohort" / first["label"], features,
                  root / "ne_model")


def tree(*roots: Path) -> set[Path]:
    """Every file and folder below ``roots`` (hidden ones too)."""
    return {p for root in roots for p in root.rglob("*")}


def write_like(array: np.ndarray, reference: sitk.Image, path: Path, spacing: tuple[float, ...] | None = None,
               origin: tuple[float, ...] | None = None) -> Path:
    """Write a (z, y, x) array with ``reference``'s geometry, optionally another spacing or origin."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing or reference.GetSpacing())
    image.SetOrigin(origin or reference.GetOrigin())
    image.SetDirection(reference.GetDirection())
    sitk.WriteImage(image, str(path))
    return path
