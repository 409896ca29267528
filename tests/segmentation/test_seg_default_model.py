"""The model shipped with livermets: complete, safe to load, and it segments a real CT on its exact grid.

The real CT is the TotalSegmentator DICOM series, which the default model never saw in training; the liver
reference is TotalSegmentator's own segmentation of it (an independent model's output).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from safetensors import safe_open

from livermets import cli
from livermets.imaging.geometry import geometry_differences, reorient_like
from livermets.imaging.io import read_image
from livermets.lesions.dice import dice
from livermets.segmentation.default_model import DEFAULT_MODEL_DIR, resolve_model
from livermets.segmentation.predict import Segmenter


def test_the_default_model_folder_is_complete_and_small() -> None:
    folder = resolve_model(None)
    assert folder == DEFAULT_MODEL_DIR
    for name in ("config.yaml", "model.safetensors", "train_log.csv", "training_curve.png", "lesion_threshold.csv",
                 "provenance.json", "RECIPE.md"):
        assert (folder / name).is_file(), name
    assert (folder / "model.safetensors").stat().st_size < 40 * 2**20
    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        assert len(list(weights.keys())) > 10
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["parameters"]["preset"] == "default" and provenance["versions"]
    log = pd.read_csv(folder / "train_log.csv")
    config = Segmenter(folder, device="cpu").config
    assert int(log["iterations"].iloc[-1]) == config.train.max_iterations  # trained to its iteration budget
    table = pd.read_csv(folder / "lesion_threshold.csv")
    chosen = table[table["threshold"].astype(str) == str(config.inference.lesion_threshold or "argmax")]
    assert len(chosen) == 1 and float(chosen["fp_per_scan"].iloc[0]) <= config.train.max_fp_per_scan


def test_an_explicit_model_folder_is_used_as_given(tmp_path: Path) -> None:
    assert resolve_model(tmp_path) == tmp_path


def test_default_model_segments_the_real_dicom_ct_on_its_grid(shared_data: Callable[..., Path]) -> None:
    ct = read_image(shared_data("totalsegmentator", "example_ct_dicom"))
    reference = reorient_like(sitk.ReadImage(str(shared_data("totalsegmentator", "example_seg_dicom.nii.gz"))), ct)
    label = Segmenter(resolve_model(None), device="cpu").predict_image(ct, "example_ct_dicom")
    assert geometry_differences(label, ct) == []
    predicted = sitk.GetArrayFromImage(label)
    assert set(np.unique(predicted)) <= {0, 1, 2}
    liver_dice = dice(predicted > 0, sitk.GetArrayFromImage(reference) == 5)
    assert liver_dice > 0.8  # measured 0.854 (docs/benchmarks.md); a misplaced grid or a broken model gives far less


def test_seg_predict_without_model_uses_the_default(monkeypatch: pytest.MonkeyPatch,
                                                    shared_data: Callable[..., Path], tmp_path: Path) -> None:
    lits = sitk.ReadImage(str(shared_data("lits_tiny", "volume.nii.gz")))
    lits.SetSpacing((0.664062 * 8, 0.664062 * 8, 5.0))  # the file's header keeps the pre-downsampling spacing
    image = tmp_path / "lits.nii.gz"
    sitk.WriteImage(lits, str(image))
    monkeypatch.setattr(sys, "argv", ["livermets", "-q", "seg", "predict", "--image", str(image),
                                      "--out", str(tmp_path / "out")])
    try:
        cli.main()
    except SystemExit as exc:
        assert not exc.code
    assert (tmp_path / "out" / "lits_seg.nii.gz").is_file()
    record = json.loads((tmp_path / "out" / "lits.qc.json").read_text())
    assert "spacing" in [flag["code"] for flag in record["flags"]]  # 5.3 mm pixels: outside the training range
