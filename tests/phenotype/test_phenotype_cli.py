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
