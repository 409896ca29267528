"""Fixtures of the analyze/run tests: a tiny synthetic cohort, a phenotype model trained on the published table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from livermets.featuretable import read_feature_table
from livermets.phenotype.training import train_to_folder
from livermets.synth.cohort import CohortConfig, generate_cohort


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 2-patient tiny phantom cohort (synth phantoms, LiTS labels, NE scores)."""
    out = tmp_path_factory.mktemp("tiny_cohort")
    generate_cohort(out / "cohort", CohortConfig(patients=2, size="tiny", seed=11), overview=False)
    return out / "cohort" / "manifest.csv"


@pytest.fixture(scope="session")
def three_series(tiny_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of three series of the tiny cohort (two patients), paths made absolute."""
    frame = pd.read_csv(tiny_cohort, dtype=str)
    rows = pd.concat([frame[frame["patient_id"] == p].head(2) for p in frame["patient_id"].unique()]).head(3)
    for column in ("image", "label"):
        rows[column] = [str((tiny_cohort.parent / v).resolve()) for v in rows[column]]
    path = tmp_path_factory.mktemp("three") / "manifest.csv"
    rows.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def ne_model(shared_data: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grouped-protocol LR phenotype model trained on the paper's published feature table."""
    table = read_feature_table(shared_data("nih_mip_msclc", "Final_ResampledClassificationData.csv"),
                               targets=["NE_Score", "NE_Class"])
    out = tmp_path_factory.mktemp("ne_model") / "ne_lr"
    train_to_folder(table, out, protocol="grouped", model="LR", n_jobs=1, seed=0)
    return out
