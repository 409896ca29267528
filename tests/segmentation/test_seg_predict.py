"""Prediction: exact input geometry (anisotropic, oblique, real CT), identical results after a weights round trip,
CLI over a manifest, clear errors for non-CT input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch

from conftest import phantom
from livermets.errors import UserInputError
from livermets.imaging.geometry import geometry_differences
from livermets.imaging.io import read_image
from livermets.segmentation.config import load_config
from livermets.segmentation.monai.networks import build_network, load_weights, save_weights
from livermets.segmentation.options import PredictionOptions
from livermets.segmentation.predict import Segmenter, series_id_from_path


def _rotation(axis: str, radians: float) -> tuple[float, ...]:
    c, s = np.cos(radians), np.sin(radians)
    matrix = {"z": [[c, -s, 0], [s, c, 0], [0, 0, 1]], "x": [[1, 0, 0], [0, c, -s], [0, s, c]]}[axis]
    return tuple(np.asarray(matrix, dtype=float).ravel())


def _exactly_same_grid(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    assert a.GetSpacing() == b.GetSpacing()
    assert a.GetOrigin() == b.GetOrigin()
    assert a.GetDirection() == b.GetDirection()


@pytest.mark.parametrize(
    "geometry",
    [
        {"spacing": (0.9, 1.7, 7.5), "size": (60, 50, 17)},  # anisotropic
        {"direction": _rotation("z", 0.3)},  # oblique in-plane
        {"direction": tuple((np.reshape(_rotation("x", 0.2), (3, 3)) @ np.reshape(_rotation("z", -0.4), (3, 3)))
                            .ravel())},  # oblique in 3D
        {"direction": (0, 1, 0, 1, 0, 0, 0, 0, -1)},  # permuted, flipped axes
    ],
)
@pytest.mark.parametrize("resample", ["probabilities", "labels"])
def test_prediction_has_the_input_geometry(trained_model: Path, geometry: dict, resample: str) -> None:
    image, _ = phantom(42, **geometry)
    label = Segmenter(trained_model, device="cpu", options=PredictionOptions(resample=resample)).predict_image(image)
    _exactly_same_grid(label, image)
    assert label.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayViewFromImage(label)).tolist()) <= {0, 1, 2}


def test_prediction_follows_the_anatomy_not_the_axes(trained_model: Path) -> None:
    # The same voxels under an axis flip describe a mirrored patient: the predicted liver must move with the data.
    image, truth = phantom(7)
    flipped = sitk.Flip(image, [True, False, False])
    seg = Segmenter(trained_model, device="cpu")
    a = sitk.GetArrayFromImage(seg.predict_image(image)) > 0
    b = sitk.GetArrayFromImage(seg.predict_image(flipped))[:, :, ::-1] > 0
    assert (a != b).mean() < 0.02


def test_real_ct_geometry_and_tta(trained_model: Path, shared_data: Callable[..., Path]) -> None:
    path = shared_data("totalsegmentator", "example_ct_sm.nii.gz")
    ct = read_image(path)
    seg = Segmenter(trained_model, device="cpu")
    for tta in (False, True):
        label = seg.predict_image(ct, str(path), tta=tta)
        _exactly_same_grid(label, ct)
        assert not geometry_differences(label, ct)


def test_weights_round_trip_gives_identical_predictions(trained_model: Path, tmp_path: Path) -> None:
    config = load_config(trained_model / "config.yaml")
    torch.manual_seed(1)
    original = build_network(config).eval()
    save_weights(original, tmp_path / "w.safetensors")
    torch.manual_seed(2)
    fresh = build_network(config).eval()
    x = torch.rand(1, 1, *config.sampling.patch_size)
    with torch.no_grad():
        assert not torch.equal(original(x), fresh(x))
        load_weights(fresh, tmp_path / "w.safetensors")
        assert torch.equal(original(x), fresh(x))

    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.yaml", "model.safetensors"):
        shutil.copy(trained_model / name, copy / name)
    image, _ = phantom(3)
    first = sitk.GetArrayFromImage(Segmenter(trained_model, device="cpu").predict_image(image, tta=True))
    second = sitk.GetArrayFromImage(Segmenter(copy, device="cpu").predict_image(image, tta=True))
    assert np.array_equal(first, second)
    assert (first > 0).any()


def test_weights_for_another_network_are_rejected(trained_model: Path, tmp_path: Path) -> None:
    segresnet = build_network(load_config("cpu", model="segresnet"))
    save_weights(segresnet, tmp_path / "w.safetensors")
    with pytest.raises(UserInputError, match="do not match the configured network"):
        load_weights(build_network(load_config(trained_model / "config.yaml")), tmp_path / "w.safetensors")


def test_non_ct_image_is_rejected(trained_model: Path) -> None:
    image, _ = phantom(5)
    as_uint8 = sitk.RescaleIntensity(image, 0, 255)
    with pytest.raises(UserInputError, match="do not look like CT"):
        Segmenter(trained_model, device="cpu").predict_image(as_uint8, "mr.nii.gz")


def test_cli_predict_manifest_split_and_image(trained_model: Path, tiny_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    base = [sys.executable, "-m", "livermets", "seg", "predict", "--model", str(trained_model), "--device", "cpu"]
    proc = subprocess.run([*base, "--manifest", str(tiny_cohort), "--split", "test", "--out", str(out), "--tta",
                           "--blend", "constant", "--overlap", "0.5"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "trained without flips" in " ".join(proc.stderr.split())  # the tiny model never saw flipped CTs
    manifest = pd.read_csv(tiny_cohort)
    test_ids = manifest.loc[manifest["split"] == "test", "series_id"].tolist()
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"{s}_seg.nii.gz" for s in test_ids]
    summary = pd.read_csv(out / "predictions.csv")
    assert summary["series_id"].tolist() == test_ids
    assert summary["engine"].tolist() == ["torch"] * len(test_ids)  # auto on CPU, for a MONAI network
    image_path = tiny_cohort.parent / manifest.loc[0, "image"]
    proc = subprocess.run([*base, "--image", str(image_path), "--out", str(out), "--resample", "labels",
                           "--keep-all-lesions"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    written = read_image(out / f"{series_id_from_path(image_path)}_seg.nii.gz")
    assert not geometry_differences(written, read_image(image_path))
    proc = subprocess.run([*base, "--image", str(image_path), "--out", str(out), "--overlap", "1.5"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr == "error: --overlap 1.5: must be in [0, 1)\n"
    for bad, fragment in ((["--lesion-threshold", "1.5"], "--lesion-threshold 1.5: must be in (0, 1)"),
                          (["--lesion-threshold", "0.3", "--argmax"], "exclude each other")):
        proc = subprocess.run([*base, "--image", str(image_path), "--out", str(out), *bad],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr


def test_lesion_threshold_changes_only_the_lesion_rule(trained_model: Path) -> None:
    image, _ = phantom(21, spacing=(2.1, 2.4, 4.0))
    segmenter = Segmenter(trained_model, device="cpu", options=PredictionOptions(resample="labels"))
    default = sitk.GetArrayFromImage(segmenter.predict_image(image))
    low = sitk.GetArrayFromImage(Segmenter(trained_model, device="cpu", options=PredictionOptions(
        resample="labels", lesion_threshold=0.01)).predict_image(image))
    # A 1 % threshold can only add lesion voxels where the argmax said liver or background (post-processing aside).
    assert (low == 2).sum() >= (default == 2).sum()
    assert ((default == 2) & (low != 2)).sum() == 0


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="not a trained model folder"):
        Segmenter(tmp_path)
