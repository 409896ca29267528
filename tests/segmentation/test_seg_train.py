"""Training: the loss falls, --resume continues the epoch count, bad inputs give one clear error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from scipy import ndimage
from typer.testing import CliRunner

from conftest import phantom, tiny_config_dict, write_cohort
from livermets.cli import app
from livermets.errors import UserInputError
from livermets.imaging.geometry import geometry_differences
from livermets.segmentation.config import load_config
from livermets.segmentation.monai.train import PolySchedule, train_model
from livermets.segmentation.monai.transforms import eval_transforms
from livermets.segmentation.postprocess import labels_from_probabilities, postprocess_label
from livermets.segmentation.predict import Segmenter


def test_training_lowers_the_loss_and_writes_the_model_folder(trained_model: Path) -> None:
    log = pd.read_csv(trained_model / "train_log.csv")
    assert log["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert log["train_loss"].iloc[-1] < 0.8 * log["train_loss"].iloc[0]
    assert log["val_liver_dice"].notna().all()
    for name in ("config.yaml", "model.safetensors", "training_curve.png", "provenance.json"):
        assert (trained_model / name).is_file(), name
    cfg = load_config(trained_model / "config.yaml")
    assert cfg.model == "unet" and cfg.preprocess.spacing_mm == (4.0, 4.0, 6.0)
    state = json.loads((trained_model / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 6
    # Best = highest validation lesion Dice, ties broken by liver Dice.
    ranked = log.sort_values(["val_lesion_dice", "val_liver_dice"], ascending=False, kind="stable")
    assert state["best_epoch"] == int(ranked["epoch"].iloc[0])
    # One checkpoint generation only, and no temporary files left behind.
    assert sorted(p.name for p in (trained_model / "checkpoint").iterdir()) == [
        "last_model_e00006.safetensors", "last_optimizer_e00006.pt", "state.json"]
    assert not list(trained_model.rglob(".*tmp*"))


def test_segresnet_trains_and_predicts(tiny_cohort: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict("segresnet")))
    result = train_model(tiny_cohort, tmp_path / "m", model="segresnet", config=config, device="cpu", max_epochs=1)
    assert result.last_epoch == 1
    assert (tmp_path / "m" / "model.safetensors").is_file()
    image, _ = phantom(11, spacing=(3.1, 2.2, 5.0))
    label = Segmenter(tmp_path / "m", device="cpu").predict_image(image)
    assert not geometry_differences(label, image)


def test_resume_continues_the_epoch_count(tiny_cohort: Path, tiny_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    train_model(tiny_cohort, out, model="unet", config=tiny_config, device="cpu", max_epochs=1)
    with pytest.raises(UserInputError, match="already holds a trained model"):
        train_model(tiny_cohort, out, model="unet", config=tiny_config, device="cpu", max_epochs=2)
    result = train_model(tiny_cohort, out, model=None, device="cpu", max_epochs=2, resume=True)
    assert result.last_epoch == 2
    assert pd.read_csv(out / "train_log.csv")["epoch"].tolist() == [1, 2]
    assert json.loads((out / "checkpoint" / "state.json").read_text())["epoch"] == 2


def test_resume_without_checkpoint(tmp_path: Path, tiny_cohort: Path) -> None:
    with pytest.raises(UserInputError, match="nothing to resume"):
        train_model(tiny_cohort, tmp_path / "none", model="unet", resume=True)


def test_no_val_split_falls_back_to_a_share_of_train(
    tmp_path: Path, tiny_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = write_cohort(tmp_path / "c", ["train"] * 5)
    result = train_model(manifest, tmp_path / "m", model="unet", config=tiny_config, device="cpu", max_epochs=1)
    assert result.last_epoch == 1
    assert "no 'val' split" in caplog.text
    prov = json.loads((tmp_path / "m" / "provenance.json").read_text())["parameters"]
    assert len(prov["val_series"]) == 1 and len(prov["train_series"]) == 4
    assert not set(prov["val_series"]) & set(prov["train_series"])


def _edit_manifest(manifest: Path, **column_values: object) -> Path:
    frame = pd.read_csv(manifest)
    for column, value in column_values.items():
        if value is None:
            frame = frame.drop(columns=column)
        else:
            frame.loc[0, column] = value
    frame.to_csv(manifest, index=False)
    return manifest


def _overwrite_first(manifest: Path, kind: str, array: np.ndarray) -> None:
    frame = pd.read_csv(manifest)
    path = manifest.parent / frame.loc[0, kind]
    reference = sitk.ReadImage(str(path))
    image = sitk.GetImageFromArray(array.astype(sitk.GetArrayViewFromImage(reference).dtype))
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path))


@pytest.mark.parametrize("problem", ["no_label_column", "missing_label", "no_split", "uint8_ct", "empty_label",
                                     "all_lesion_label", "label_values"])
def test_bad_training_input(tmp_path: Path, tiny_config: Path, problem: str) -> None:
    manifest = write_cohort(tmp_path / "c", ["train", "train", "val"])
    first = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "c" / "images" / "S00.nii.gz")))
    expected = {
        "no_label_column": "needs a 'label' column",
        "missing_label": r"row 1 \(series S00\): no label",
        "no_split": "needs a 'split' column",
        "uint8_ct": "do not look like CT",
        "empty_label": "is empty",
        "all_lesion_label": "no background",
        "label_values": "unexpected label values",
    }[problem]
    if problem == "no_label_column":
        _edit_manifest(manifest, label=None)
    elif problem == "missing_label":
        frame = pd.read_csv(manifest)
        frame["label"] = frame["label"].astype(object)
        frame.loc[0, "label"] = None
        frame.to_csv(manifest, index=False)
    elif problem == "no_split":
        _edit_manifest(manifest, split=None)
    elif problem == "uint8_ct":  # an 8-bit export: intensities rescaled to 0..255
        scaled = (first - first.min()) * 255.0 / (first.max() - first.min())
        _overwrite_first(manifest, "image", np.round(scaled))
    elif problem == "empty_label":
        _overwrite_first(manifest, "label", np.zeros(first.shape))
    elif problem == "all_lesion_label":
        _overwrite_first(manifest, "label", np.full(first.shape, 2))
    elif problem == "label_values":
        _overwrite_first(manifest, "label", np.full(first.shape, 7))
    with pytest.raises(UserInputError, match=expected):
        train_model(manifest, tmp_path / "m", model="unet", config=tiny_config, device="cpu", max_epochs=1)
    assert not (tmp_path / "m").exists()  # nothing written before the inputs are checked


def test_cli_train_bad_input_exit_2_and_good_run(tmp_path: Path, tiny_cohort: Path, tiny_config: Path) -> None:
    broken = tmp_path / "c"
    shutil.copytree(tiny_cohort.parent, broken)
    _edit_manifest(broken / "manifest.csv", label=None)
    base = [sys.executable, "-m", "livermets", "seg", "train", "--model", "unet", "--config", str(tiny_config),
            "--device", "cpu", "--max-epochs", "1"]
    proc = subprocess.run([*base, "--manifest", str(broken / "manifest.csv"), "--out", str(tmp_path / "bad")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "label" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([*base, "--manifest", str(tiny_cohort), "--out", str(tmp_path / "good")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 epoch(s)" in proc.stdout


def test_disk_cache_with_capped_indices_is_reused_on_resume(tiny_cohort: Path, tmp_path: Path) -> None:
    data = tiny_config_dict()
    data["train"]["cache"] = "disk"  # type: ignore[index]
    data["sampling"]["max_indices_per_class"] = 500  # type: ignore[index]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "m"
    train_model(tiny_cohort, out, model="unet", config=config, device="cpu", max_epochs=1)
    cached = sorted((out / "cache").rglob("*.pt"))
    assert len(cached) == 5  # 4 train + 1 val volumes, preprocessed once
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert train_model(tiny_cohort, out, model=None, device="cpu", max_epochs=2, resume=True).last_epoch == 2
    assert [p.stat().st_mtime_ns for p in sorted((out / "cache").rglob("*.pt"))] == stamps


def test_poly_schedule_follows_the_nnunet_formula_over_epochs_and_time() -> None:
    by_steps = PolySchedule(total_iterations=8, budget_s=float("inf"))
    assert [by_steps.factor(i) for i in (0, 2, 8)] == pytest.approx([1.0, 0.75**0.9, 0.0])
    # Half of a 100 s budget used (start set 50 s in the past) dominates an early iteration fraction.
    by_time = PolySchedule(total_iterations=1000, budget_s=100.0, started=time.monotonic() - 50.0)
    assert by_time.factor(1) == pytest.approx(0.5**0.9, abs=0.01)
    # A resumed run starts where the interrupted one stopped and spreads the rest over its own budget.
    resumed = PolySchedule(total_iterations=1000, budget_s=100.0, start_fraction=0.6, started=time.monotonic() - 50.0)
    assert resumed.time_progress() == pytest.approx(0.6 + 0.4 * 0.5, abs=0.01)


def test_poly_schedule_and_class_weights_train(tiny_cohort: Path, tmp_path: Path) -> None:
    data = tiny_config_dict()
    data["sampling"]["lesion_centres"] = "component"
    data["train"].update(lr_schedule="poly", class_weights=[1.0, 1.0, 3.0], max_epochs=3,
                         calibrate_lesion_threshold=True)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    model = tmp_path / "m"
    train_model(tiny_cohort, model, model="unet", config=config, device="cpu")
    log = pd.read_csv(model / "train_log.csv")
    # The logged rate is the last iteration's: lr * (1 - (epoch - 1 + (n - 1) / n) / 3) ** 0.9 with n = 4 scans.
    expected = [3e-3 * (1 - (e - 1 + 3 / 4) / 3) ** 0.9 for e in (1, 2, 3)]
    assert log["learning_rate"].tolist() == pytest.approx(expected, rel=1e-6)
    assert log["train_loss"].notna().all()

    # The calibration table holds each threshold's validation lesion Dice and lesion detection after post-processing,
    # recomputed here from the saved model's probabilities (components with scipy); the config keeps the best Dice
    # among the thresholds with at most train.max_fp_per_scan false positives per scan (the fewest if none has).
    table = pd.read_csv(model / "lesion_threshold.csv")
    cfg = load_config(model / "config.yaml")
    allowed = table[table["fp_per_scan"] <= cfg.train.max_fp_per_scan]
    best = (allowed.loc[allowed["mean_val_lesion_dice"].idxmax(), "threshold"] if len(allowed)
            else table.loc[table["fp_per_scan"].idxmin(), "threshold"])
    assert str(cfg.inference.lesion_threshold or "argmax") == str(best)
    segmenter = Segmenter(model, device="cpu")
    val = pd.read_csv(tiny_cohort)
    rows = val[val["split"] == "val"]
    assert (table["n_val_scans"] == len(rows)).all()
    expected = {t: np.zeros(4) for t in table["threshold"]}  # Dice sum, n_ref, tp, fp
    for row in rows.itertuples():
        case = eval_transforms(cfg)({"image": str(tiny_cohort.parent / row.image),
                                     "label": str(tiny_cohort.parent / row.label)})
        probs = segmenter.probabilities(case["image"].as_tensor()[None])[0].numpy()
        truth = case["label"][0].numpy() == 2
        ref_ids, n_ref = ndimage.label(truth, structure=np.ones((3, 3, 3)))
        for threshold in table["threshold"]:
            value = None if threshold == "argmax" else float(threshold)
            lesion = postprocess_label(labels_from_probabilities(probs, value), cfg.preprocess.spacing_mm) == 2
            pred_ids, n_pred = ndimage.label(lesion, structure=np.ones((3, 3, 3)))
            tp = len(np.unique(ref_ids[lesion & truth]))
            fp = n_pred - len(np.unique(pred_ids[lesion & truth]))
            expected[threshold] += [2 * (lesion & truth).sum() / (lesion.sum() + truth.sum()), n_ref, tp, fp]
    for _, got in table.iterrows():
        dice_sum, n_ref, tp, fp = expected[got["threshold"]]
        assert got["mean_val_lesion_dice"] == pytest.approx(dice_sum / len(rows), abs=1e-6)
        assert (got["n_ref"], got["tp"], got["fp"]) == (n_ref, tp, fp)
        assert got["sensitivity"] == pytest.approx(tp / n_ref)
        assert got["f1"] == pytest.approx(2 * tp / (2 * tp + (n_ref - tp) + fp))
    # Every validation calibrated in the same pass; the model was selected on the Dice at its chosen threshold, and
    # the saved table (checked above against the saved weights) is the best epoch's.
    assert log["val_lesion_threshold"].notna().all()
    best_epoch = log.loc[log["epoch"] == log["best_epoch"].iloc[-1]].iloc[0]
    best_dice = expected[best][0] / len(rows)
    assert best_epoch["val_lesion_dice_at_threshold"] == pytest.approx(best_dice, abs=1e-6)
    assert log["best_metric"].iloc[-1] == pytest.approx(best_dice, abs=1e-6)
    assert log["best_metric"].iloc[-1] == pytest.approx(log["val_lesion_dice_at_threshold"].max(), abs=1e-9)

    # `seg calibrate` re-chooses on the saved model by detection F1 without retraining. It reads the validation scans
    # without training's cache, yet must measure exactly what training measured (preprocessing outside autocast).
    trained_table = table
    result = CliRunner().invoke(app, ["seg", "calibrate", "--model", str(model), "--manifest", str(tiny_cohort),
                                      "--metric", "lesion_f1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(model / "lesion_threshold.csv")
    pd.testing.assert_frame_equal(table, trained_table)
    cfg = load_config(model / "config.yaml")
    assert cfg.train.calibration_metric == "lesion_f1"
    best = table.loc[table["f1"].idxmax(), "threshold"]
    assert str(cfg.inference.lesion_threshold or "argmax") == str(best)
    assert f"lesion threshold {best}" in result.output
    bad = subprocess.run([sys.executable, "-m", "livermets", "seg", "calibrate", "--model", str(model), "--manifest",
                          str(tiny_cohort), "--metric", "auc"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "calibration_metric" in bad.stderr and "Traceback" not in bad.stderr
