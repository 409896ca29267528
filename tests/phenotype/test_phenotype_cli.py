"""CLI: train/predict round trip without pickle, and one-line errors with exit code 2 on bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

CSV = ("nih_mip_msclc", "Final_ResampledClassificationData.csv")
LIVERMETS = [sys.executable, "-m", "livermets"]


def _run(*args):
    return subprocess.run([*LIVERMETS, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_train_predict_roundtrip_without_group_column(shared_data, tmp_path):
    source = shared_data(*CSV)
    model_dir = tmp_path / "model"
    done = _run("phenotype", "train", "--features", source, "--out", model_dir, "--protocol", "paper",
                "--model", "XGB")
    assert done.returncode == 0, done.stderr
    assert not list(model_dir.glob("*.pkl")) and (model_dir / "config.json").is_file()
    table = pd.read_csv(source).drop(columns=["Group", "NE_Score", "NE_Status", "NE_Class"])
    table.to_csv(tmp_path / "new.csv", index=False)
    done = _run("phenotype", "predict", "--model", model_dir, "--features", tmp_path / "new.csv",
                "--out", tmp_path / "pred.csv")
    assert done.returncode == 0, done.stderr
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 227 and pred["probability"].between(0, 1).all()
    assert (pred["fold_probability_min"] <= pred["probability"]).all()
    assert set(pred["predicted_class"]) <= {0, 1}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.drop(columns=["original_glcm_Idm"]), "missing column 'original_glcm_Idm'"),
        (lambda t: t.assign(original_shape_Flatness=t["original_shape_Flatness"].where(t.index != 4, np.nan)),
         "'original_shape_Flatness', row 6"),
        (lambda t: t.assign(NE_Class=np.where(t["Group"] == "test", 1, t["NE_Class"])), "only one class"),
    ],
)
def test_bad_input_one_line_exit_2(shared_data, tmp_path, mutate, message):
    table = mutate(pd.read_csv(shared_data(*CSV)))
    table.to_csv(tmp_path / "bad.csv", index=False)
    done = _run("reproduce", "paper", "--features", tmp_path / "bad.csv", "--out", tmp_path / "o", "--tables", "4")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_unknown_model_exit_2(shared_data, tmp_path):
    done = _run("phenotype", "train", "--features", shared_data(*CSV), "--out", tmp_path / "m", "--model", "SVM")
    assert done.returncode == 2 and "unknown model 'SVM'" in done.stderr


def test_predict_flags_extrapolation_and_fold_disagreement(shared_data, tmp_path):
    source = shared_data(*CSV)
    model_dir = tmp_path / "model"
    assert _run("phenotype", "train", "--features", source, "--out", model_dir, "--protocol", "grouped",
                "--model", "LR", "--n-jobs", "1").returncode == 0
    table = pd.read_csv(source).drop(columns=["Group", "NE_Score", "NE_Status", "NE_Class"]).head(3)
    dev = pd.read_csv(source).query("Group != 'test'")
    low, high = dev["original_shape_VoxelVolume"].min(), dev["original_shape_VoxelVolume"].max()
    table.loc[1, "original_shape_VoxelVolume"] = high + 2 * (high - low)  # two training ranges beyond the maximum
    table.to_csv(tmp_path / "new.csv", index=False)
    done = _run("phenotype", "predict", "--model", model_dir, "--features", tmp_path / "new.csv",
                "--out", tmp_path / "pred.csv")
    assert done.returncode == 0, done.stderr
    pred = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False)
    assert "out_of_range" in pred.loc[1, "flags"] and pred.loc[1, "max_outside_range"] == pytest.approx(2.0)
    spread = pred["fold_probability_max"] - pred["fold_probability_min"]
    expected = [("fold_disagreement" in f) for f in pred["flags"]]
    assert expected == (spread >= 0.3).tolist()  # independent of the flag code
    outside = int((pred["n_features_outside_training_range"] > 0).sum())
    assert f"{outside} of 3 row(s) have features outside" in " ".join(done.stderr.split())
