"""The manifest follows the project schema; splits are by patient; NE classes are consistent and ~3:1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from livermets.cohort.manifest import MANIFEST_COLUMNS, load_manifest
from livermets.synth.cohort import CohortConfig, assign_splits, study_truths


def test_manifest_loads_with_the_project_validator(tiny_cohort: Path) -> None:
    frame = load_manifest(tiny_cohort / "manifest.csv")  # raises on any schema problem (files, splits, ne_class)
    assert list(frame.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    assert (frame["dataset"] == "synthetic").all()
    assert frame["series_id"].str.fullmatch(r"SYN-\d{3}_S\d_(SOFT|CAP)").all()
    assert (frame["study_id"] + "_" + frame["reconstruction"] == frame["series_id"]).all()
    assert (frame["image"].map(lambda p: Path(p).is_file())).all()
    assert ((frame["ne_score"] > 0).astype(int) == frame["ne_class"]).all()
    assert frame["ne_score"].between(-1, 1).all()
    assert set(frame["sample_type"]) <= {"biopsy", "cfdna"}
    assert set(frame["split"]) == {"train", "val", "test"}  # 5 patients: every split non-empty
    assert frame.groupby("patient_id")["split"].nunique().max() == 1


def test_studies_table_matches_manifest(tiny_cohort: Path) -> None:
    manifest = pd.read_csv(tiny_cohort / "manifest.csv")
    studies = pd.read_csv(tiny_cohort / "studies.csv")
    assert set(studies["study_id"]) == set(manifest["study_id"])
    merged = manifest.merge(studies, on="study_id", suffixes=("", "_study"))
    assert np.allclose(merged["ne_score"], merged["ne_score_study"])
    assert (merged["n_lesions_truth"] == merged["n_lesions_truth_study"]).all()


def test_splits_by_patient_proportions_and_small_cohorts() -> None:
    assert assign_splits(1, 0) == ["train"]
    assert sorted(assign_splits(2, 0)) == ["test", "train"]
    assert sorted(assign_splits(3, 0)) == ["test", "train", "val"]
    splits = pd.Series(assign_splits(100, 4)).value_counts()
    assert splits.to_dict() == {"train": 60, "val": 20, "test": 20}
    assert assign_splits(50, 1) == assign_splits(50, 1) and assign_splits(50, 1) != assign_splits(50, 2)


def test_class_balance_is_about_three_to_one_over_many_patients() -> None:
    # First study of 600 patients (independent), no rendering. Positive fraction 0.75; SE = sqrt(.75*.25/600) = 0.018.
    studies = study_truths(CohortConfig(patients=600, seed=9, size="tiny", max_studies=1))
    positive = float(studies["ne_class"].mean())
    assert abs(positive - 0.75) < 3 * np.sqrt(0.75 * 0.25 / len(studies))
    assert studies.groupby("patient_id")["split"].nunique().max() == 1
    assert 0.5 < float((studies["sample_type"] == "cfdna").mean()) < 0.7
    # The cohort wiring keeps the burden link: Spearman(burden, score) ~ 0.25, SE ~ 0.04 at n = 600.
    rho = stats.spearmanr(studies["burden_ml_truth"], studies["ne_score"]).statistic
    se = (1 - 0.25**2) * np.sqrt((1 + 0.25**2 / 2) / (len(studies) - 3))
    assert abs(rho - 0.25) < 3 * se
