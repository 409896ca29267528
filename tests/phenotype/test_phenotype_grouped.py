"""Grouped protocol: patients never straddle a split, permutations keep patient-consistent labels, end to end."""

from __future__ import annotations

import numpy as np
import pytest

from livermets.featuretable import FEATURE_COLUMNS, read_feature_table
from livermets.phenotype.cv import grouped_splits
from livermets.phenotype.grouped import GroupedConfig, evaluate_grouped, out_of_fold, patient_permutation

CSV = ("nih_mip_msclc", "Final_ResampledClassificationData.csv")


@pytest.fixture(scope="module")
def frame(shared_data):
    return read_feature_table(shared_data(*CSV), targets=["NE_Score", "NE_Class", "Group"])


def test_every_patient_on_one_side_of_every_split(frame):
    dev = frame.query("Group != 'test'")
    groups = dev["unique_pt"].to_numpy()
    for seed in range(3):
        for train, test in grouped_splits(dev["NE_Class"].to_numpy(), groups, 5, seed):
            assert set(groups[train]).isdisjoint(groups[test])
    config = GroupedConfig(n_repeats=1, n_permutations=0)
    X = dev[FEATURE_COLUMNS].to_numpy()
    y = dev["NE_Class"].to_numpy()
    inner = out_of_fold(X, y, dev["NE_Score"].to_numpy(), groups, config, seed=0, choose_threshold=False)
    for model, (train, _) in zip(inner["models"], inner["splits"], strict=True):
        assert model.named_steps["scale"].n_samples_seen_ == train.size  # scaler fitted on training fold only


def test_patient_permutation_keeps_study_and_patient_structure(frame):
    groups = frame["unique_pt"].to_numpy()
    studies = frame["unique_scandate"].to_numpy()
    y = frame["NE_Class"].to_numpy()
    score = frame["NE_Score"].to_numpy()
    new_y, new_score = patient_permutation(groups, studies, y, score, np.random.default_rng(0))
    assert (frame.assign(c=new_y).groupby("unique_scandate")["c"].nunique() == 1).all()
    assert ((new_score > 0) == (new_y == 1)).all()  # class still follows its score
    assert set(new_score) <= set(score) and not (new_y == y).all()


def test_evaluate_grouped_summary(frame):
    config = GroupedConfig(n_repeats=1, n_permutations=3, n_boot=50, n_jobs=1)
    result = evaluate_grouped(frame, FEATURE_COLUMNS, config)
    s = result.summary
    for key in ("protocol", "model", "cv_auc", "cv_auc_low95", "cv_auc_high95", "permutation_p", "n_permutations",
                "test_auc", "test_auc_low95", "test_auc_high95", "brier"):
        assert key in s
    assert s["protocol"] == "grouped" and s["n_permutations"] == 3
    assert s["cv_auc_low95"] <= s["cv_auc"] + 0.2 and 0 < s["permutation_p"] <= 1
    assert 0 <= s["brier"] <= 1


def test_too_few_patients_per_class_is_a_clear_user_error(frame):
    from livermets.errors import UserInputError

    dev = frame.query("Group != 'test'")
    negatives = dev.loc[dev["NE_Class"] == 0, "unique_pt"].unique()[:3]
    small = dev[(dev["NE_Class"] == 1) | dev["unique_pt"].isin(negatives)]
    with pytest.raises(UserInputError, match=r"at least 5 patients of each class .*NE_Class 0: 3"):
        evaluate_grouped(small, FEATURE_COLUMNS, GroupedConfig(n_repeats=1, n_permutations=0))
