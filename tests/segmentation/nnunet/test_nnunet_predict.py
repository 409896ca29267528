"""Prediction with nnU-Net v2 models written outside livermets (nnU-Net's own planner and checkpoint format).

Expected label maps come from nnU-Net's own ``nnUNetPredictor`` (its model-folder loading and ``SimpleITKIO`` file
reading, ``predict_from_files_sequential`` on NIfTI files), mapped through the label map with numpy; the composite
from an independent numpy/scipy combination (a dilation by a ball in mm rather than a distance transform).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from cli_helpers import one_error_line, run_cli
from livermets.errors import ParameterError, UserInputError
from livermets.imaging.geometry import geometry_differences
from livermets.imaging.io import read_image, read_label

from .foreign_nnunet import TRAINER_FOLDER, plan_dataset, save_result_folder, synthetic_ct

pytest.importorskip("nnunetv2")

LIVER_LESION_LABELS = {"liver": 5, "lesion": 7, "other": 3}
"""Model A: liver 5 and lesion 7 among 8 labels (like TotalSegmentator's total, where the liver is 5)."""
LESION_MODEL_LABELS = {"background": 0, "liver_vessels": 1, "liver_tumor": 2}
"""Model B: a lesion model labelled like TotalSegmentator's liver_vessels task (liver_tumor = 2)."""


@dataclass(frozen=True)
class Foreign:
    """Two nnU-Net result folders (A: folds 0 and 1; B: fold 0) and test CTs written as NIfTI."""

    a: Path
    b: Path
    images: dict[str, Path]
    work: Path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Foreign:
    root = tmp_path_factory.mktemp("foreign_nnunet")
    plan_dataset(root, 912, LIVER_LESION_LABELS)
    a = save_result_folder(root, 912, seed=0, fold=0)
    save_result_folder(root, 912, seed=1, fold=1)
    lesion_json = {"channel_names": {"0": "CT"}, "labels": LESION_MODEL_LABELS, "numTraining": 3,
                   "file_ending": ".nii.gz"}
    b_root = root / "lesion_model"
    shutil.copytree(root / "preprocessed", b_root / "preprocessed")
    b = save_result_folder(b_root, 912, seed=6, fold=0, dataset_json=lesion_json)
    images = root / "images"
    images.mkdir()
    plain, _ = synthetic_ct(11)
    permuted, _ = synthetic_ct(12, size=(24, 28, 12))  # other size, spacing and a non-identity direction
    permuted.SetSpacing((2.2, 2.8, 5.0))
    permuted.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    paths = {"plain": images / "plain.nii.gz", "permuted": images / "permuted.nii.gz"}
    sitk.WriteImage(plain, str(paths["plain"]))
    sitk.WriteImage(permuted, str(paths["permuted"]))
    return Foreign(a, b, paths, root / "work")


def nnunet_reference(result_folder: Path, image: Path, out: Path, folds: tuple[int, ...] | None = None,
                     mirroring: bool = False) -> np.ndarray:
    """nnU-Net's own prediction of ``image`` (z, y, x labels): its model-folder loading (the trainer lookup by name
    stubbed to nnUNetTrainer, whose network every test model uses) and its file reading and writing."""
    import torch
    from nnunetv2.inference import predict_from_raw_data
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    out.parent.mkdir(parents=True, exist_ok=True)
    with mock.patch.object(predict_from_raw_data, "recursive_find_trainer_class_by_name", lambda _: nnUNetTrainer):
        predictor = predict_from_raw_data.nnUNetPredictor(
            tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring, perform_everything_on_device=False,
            device=torch.device("cpu"), allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(result_folder), folds)
        predictor.predict_from_files_sequential([[str(image)]], [str(out)], overwrite=True)
    return sitk.GetArrayFromImage(sitk.ReadImage(f"{out}.nii.gz"))


@pytest.fixture(scope="module")
def references(foreign: Foreign) -> dict[str, np.ndarray]:
    """nnU-Net's own label maps of model A (both folds) and B on both test CTs."""
    refs = {}
    for name, image in foreign.images.items():
        refs[f"a_{name}"] = nnunet_reference(foreign.a, image, foreign.work / "ref" / f"a_{name}")
        refs[f"b_{name}"] = nnunet_reference(foreign.b, image, foreign.work / "ref" / f"b_{name}")
    return refs


def mapped(labels: np.ndarray, liver: tuple[int, ...], lesion: tuple[int, ...]) -> np.ndarray:
    return np.where(np.isin(labels, lesion), 2, np.where(np.isin(labels, liver), 1, 0)).astype(np.uint8)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest 26-connected component (scipy.ndimage.label)."""
    components, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count == 0:
        return mask
    sizes = np.bincount(components.ravel())[1:]
    return components == (int(np.argmax(sizes)) + 1)


def dilate_mm(mask: np.ndarray, spacing_zyx: tuple[float, ...], radius_mm: float) -> np.ndarray:
    """``mask`` grown by a ball of ``radius_mm`` (binary dilation with an ellipsoid of voxels)."""
    half = [int(radius_mm // s) for s in spacing_zyx]
    grid = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing_zyx, strict=True)], indexing="ij")
    ball = sum(g**2 for g in grid) <= radius_mm**2
    return ndimage.binary_dilation(mask, structure=ball)


def test_checkpoint_with_numpy_values_loads_without_full_unpickling(foreign: Foreign) -> None:
    import torch

    from livermets.segmentation.nnunet.checkpoint import load_checkpoint

    path = foreign.a / "fold_0" / "checkpoint_final.pth"
    with pytest.raises(Exception, match="numpy"):  # plain weights_only refuses nnU-Net's numpy log values ...
        torch.load(path, map_location="cpu", weights_only=True)
    checkpoint = load_checkpoint(path)  # ... the allowlist of numpy scalars and dtypes accepts them
    assert isinstance(checkpoint["_best_ema"], np.float64)
    assert checkpoint["trainer_name"] == "nnUNetTrainer"
    reference = torch.load(path, map_location="cpu", weights_only=False)  # our own test file: safe to compare
    assert checkpoint["network_weights"].keys() == reference["network_weights"].keys()
    assert all(torch.equal(checkpoint["network_weights"][k], v) for k, v in reference["network_weights"].items())


def test_cli_equals_nnunet_own_prediction_and_resumes(foreign: Foreign, references: dict[str, np.ndarray],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = foreign.work / "manifest.csv"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"series_id": list(foreign.images), "study_id": ["T1", "T2"], "patient_id": ["P1", "P2"],
                  "image": [str(p) for p in foreign.images.values()]}).to_csv(manifest, index=False)
    out = foreign.work / "pred_a"
    args = ["seg", "predict", "--model", foreign.a, "--manifest", manifest, "--out", out, "--device", "cpu",
            "--label-map", "liver=liver,lesion=7", "--all-liver", "--keep-all-lesions", "--min-lesion-ml", "0",
            "--min-lesion-diameter-mm", "0", "--engine", "torch"]  # nnU-Net's own engine: equal voxel for voxel
    assert run_cli(monkeypatch, *args) == 0
    for name, path in foreign.images.items():
        label = read_label(out / f"{name}_seg.nii.gz")
        expected = mapped(references[f"a_{name}"], (5,), (7,))
        assert {1, 2} <= set(np.unique(expected).tolist())  # the comparison covers both classes
        np.testing.assert_array_equal(sitk.GetArrayFromImage(label), expected)
        assert geometry_differences(label, read_image(path)) == []
        assert label.GetPixelID() == sitk.sitkUInt8
        assert (out / f"{name}.qc.json").is_file()
    table = pd.read_csv(out / "predictions.csv")
    assert list(table["series_id"]) == list(foreign.images)
    voxel_ml = np.prod(sitk.ReadImage(str(foreign.images["plain"])).GetSpacing()) / 1000
    assert table.loc[0, "lesion_ml"] == pytest.approx((mapped(references["a_plain"], (5,), (7,)) == 2).sum()
                                                      * voxel_ml, abs=1e-3)
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")}
    assert run_cli(monkeypatch, *args) == 0  # resumed: every series is finished, nothing is rewritten
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")} == written


def test_default_cleanup_is_largest_liver_and_lesions_near_it(foreign: Foreign,
                                                              references: dict[str, np.ndarray]) -> None:
    from livermets.segmentation.nnunet.predictor import NnunetSegmenter

    segmenter = NnunetSegmenter(foreign.a, device="cpu")  # dataset.json names liver (5) and lesion (7)
    assert str(segmenter.label_map) == "liver=5,lesion=7"
    image = read_image(foreign.images["permuted"])
    label = sitk.GetArrayFromImage(segmenter.predict_image(image))
    raw = mapped(references["a_permuted"], (5,), (7,))
    organ = largest_component(raw > 0)
    near = dilate_mm(organ, image.GetSpacing()[::-1], 5.0)
    expected = np.where((raw == 2) & near, 2, np.where((raw == 1) & organ, 1, 0))
    np.testing.assert_array_equal(label, expected)
    assert (raw != expected).any()  # the clean-up changed something, so the comparison tests it


def test_tta_equals_nnunet_mirroring(foreign: Foreign) -> None:
    from livermets.segmentation.nnunet.predictor import NnunetSegmenter

    segmenter = NnunetSegmenter(foreign.b, device="cpu", label_map="liver=1,lesion=2", largest_liver=False,
                                lesion_max_distance_mm=None)
    assert segmenter.mirroring_axes == (0, 1, 2)
    image = read_image(foreign.images["plain"])
    expected = nnunet_reference(foreign.b, foreign.images["plain"], foreign.work / "ref" / "b_tta", mirroring=True)
    with_tta = sitk.GetArrayFromImage(segmenter.predict_image(image, tta=True))
    np.testing.assert_array_equal(with_tta, mapped(expected, (1,), (2,)))
    without = sitk.GetArrayFromImage(segmenter.predict_image(image))
    assert (with_tta != without).any()


def test_ras_feeds_nnunet_the_reoriented_ct(foreign: Foreign) -> None:
    from livermets.segmentation.nnunet.predictor import NnunetSegmenter

    image = read_image(foreign.images["permuted"])  # direction (0 1 0, -1 0 0, 0 0 1): not RAS
    ras = sitk.DICOMOrient(image, "RAS")
    written = foreign.work / "permuted_ras.nii.gz"
    sitk.WriteImage(ras, str(written))
    reference = sitk.GetImageFromArray(nnunet_reference(foreign.b, written, foreign.work / "ref" / "b_ras"))
    reference.CopyInformation(ras)
    # back onto the input's voxels through physical space (a permutation and flip: voxel centres coincide)
    expected = sitk.GetArrayFromImage(sitk.Resample(reference, image, sitk.Transform(), sitk.sitkNearestNeighbor))
    segmenter = NnunetSegmenter(foreign.b, device="cpu", label_map="liver=1,lesion=2", largest_liver=False,
                                lesion_max_distance_mm=None, ras=True)
    label = segmenter.predict_image(image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), mapped(expected, (1,), (2,)))
    assert geometry_differences(label, image) == []
    as_stored = NnunetSegmenter(foreign.b, device="cpu", label_map="liver=1,lesion=2", largest_liver=False,
                                lesion_max_distance_mm=None)
    assert (sitk.GetArrayFromImage(as_stored.predict_image(image)) != sitk.GetArrayFromImage(label)).any()


def test_composite_equals_numpy_combination(foreign: Foreign, references: dict[str, np.ndarray],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = foreign.work / "pred_composite"
    image = foreign.images["permuted"]
    assert run_cli(monkeypatch, "seg", "predict", "--liver-model", foreign.a, "--liver-label-map", "liver",
                   "--lesion-model", foreign.b, "--lesion-max-distance-mm", "5.5", "--image", image,
                   "--out", out, "--device", "cpu", "--min-lesion-ml", "0", "--min-lesion-diameter-mm", "0") == 0
    ct = sitk.ReadImage(str(image))
    spacing = ct.GetSpacing()[::-1]
    organ = largest_component(references["a_permuted"] == 5)
    box = tuple(slice(max(int(i.min()) - int(np.ceil(30 / s)), 0), int(i.max()) + int(np.ceil(30 / s)) + 1)
                for i, s in zip(np.nonzero(organ), spacing, strict=True))  # the liver box grown by 30 mm
    crop = foreign.work / "composite_crop.nii.gz"
    sitk.WriteImage(ct[box[2], box[1], box[0]], str(crop))
    lesion_model = np.zeros(organ.shape, np.uint8)
    lesion_model[box] = nnunet_reference(foreign.b, crop, foreign.work / "ref" / "b_crop")
    lesion = (lesion_model == 2) & dilate_mm(organ, spacing, 5.5)
    expected = np.where(lesion, 2, np.where(organ, 1, 0))
    assert lesion.any() and ((lesion_model == 2) & ~lesion).any()  # lesions kept and dropped
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_label(out / "permuted_seg.nii.gz")), expected)


class _Stub:
    """A segmenter returning a fixed label map (or ``fill`` everywhere) and recording the images it was given."""

    def __init__(self, label: np.ndarray | None = None, fill: int = 2) -> None:
        self.label, self.fill, self.seen = label, fill, []
        self.model_dir, self.device, self.engine = Path("stub"), "cpu", "torch"

    qc = None
    lesion_threshold = None

    def predict_image(self, image: sitk.Image, name: str = "image", tta: bool = False,
                      check: bool = True) -> sitk.Image:
        self.seen.append(image)
        array = self.label if self.label is not None else np.full(image.GetSize()[::-1], self.fill, np.uint8)
        out = sitk.GetImageFromArray(array)
        out.CopyInformation(image)
        return out


def test_composite_runs_the_lesion_model_on_the_ct_around_the_liver() -> None:
    from livermets.segmentation.nnunet.composite import CompositeSegmenter

    ct = sitk.GetImageFromArray(np.full((30, 60, 70), -500, np.int16))
    ct.SetSpacing((2.0, 3.0, 4.0))
    ct.SetOrigin((10.0, -20.0, 5.0))
    ct.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    liver = np.zeros((30, 60, 70), np.uint8)
    liver[12:15, 20:30, 30:34] = 1
    liver[0, 0, 0] = 1  # a speck: not the largest component, not in the box
    lesion_model = _Stub()
    label = CompositeSegmenter(_Stub(liver), lesion_model, margin_mm=5.0).predict_image(ct)  # type: ignore[arg-type]
    (seen,) = lesion_model.seen
    # box: z 12..14 grown by ceil(30/4) = 8, y 20..29 by 10, x 30..33 by 15 voxels
    assert seen.GetSize() == (4 + 30, 10 + 20, 3 + 16)
    assert seen.GetOrigin() == pytest.approx(ct.TransformIndexToPhysicalPoint((15, 10, 4)))
    assert seen.GetSpacing() == ct.GetSpacing() and seen.GetDirection() == ct.GetDirection()
    organ = np.zeros(liver.shape, bool)
    organ[12:15, 20:30, 30:34] = True
    expected = np.where(dilate_mm(organ, (4.0, 3.0, 2.0), 5.0), 2, 0)  # the stub's lesion everywhere near it
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), expected)
    empty = _Stub()
    none = CompositeSegmenter(_Stub(np.zeros_like(liver)), empty).predict_image(ct)  # type: ignore[arg-type]
    assert empty.seen == [] and not sitk.GetArrayFromImage(none).any()


def test_exact_grid_on_real_dicom(foreign: Foreign, shared_data: Callable[..., Path]) -> None:
    from livermets.segmentation.nnunet.predictor import NnunetSegmenter

    ct = read_image(shared_data("totalsegmentator", "example_ct_dicom"))
    crop = ct[200:312, 150:262, :]  # 112 x 112 x 20 real voxels at 0.98 x 0.98 x 2 mm, true origin kept
    written = foreign.work / "dicom_crop.nii.gz"
    sitk.WriteImage(crop, str(written))
    segmenter = NnunetSegmenter(foreign.a, device="cpu", label_map="liver=5,lesion=7", folds=[0],
                                largest_liver=False, lesion_max_distance_mm=None, engine="torch")
    label = segmenter.predict_image(crop)
    assert label.GetSize() == crop.GetSize() and label.GetSpacing() == crop.GetSpacing()
    assert label.GetOrigin() == crop.GetOrigin() and label.GetDirection() == crop.GetDirection()
    expected = nnunet_reference(foreign.a, written, foreign.work / "ref" / "dicom_crop", folds=(0,))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), mapped(expected, (5,), (7,)))


def test_livermets_nnunet_model_round_trip(tiny_nnunet_model: Path, tmp_path: Path) -> None:
    from livermets.segmentation.nnunet.predictor import NnunetSegmenter

    meta = json.loads((tiny_nnunet_model / "nnunet.json").read_text())
    segmenter = NnunetSegmenter(tiny_nnunet_model, device="cpu", largest_liver=False, lesion_max_distance_mm=None)
    assert str(segmenter.label_map) == "liver=1,lesion=2"
    image, _ = synthetic_ct(21)
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    folds = tuple(int(f) for f in meta["folds"])
    expected = nnunet_reference(tiny_nnunet_model / meta["result_folder"], path, tmp_path / "ref", folds=folds)
    label = segmenter.predict_image(read_image(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), mapped(expected, (1,), (2,)))
    assert geometry_differences(label, image) == []


def test_analyze_loads_an_nnunet_result_folder(foreign: Foreign) -> None:
    from livermets.analyze.single import AnalyzeOptions, Analyzer
    from livermets.segmentation.nnunet.predictor import NnunetSegmenter

    analyzer = Analyzer(AnalyzeOptions(model=foreign.a, device="cpu"))
    assert isinstance(analyzer.segmenter, NnunetSegmenter)
    assert analyzer.segmenter.lesion_threshold is None and analyzer.segmenter.qc.max_lesions == 50
    assert analyzer.segmenter.engine == "openvino"  # on CPU, nnU-Net networks run in the fastest engine by default


def _copy_model(source: Path, tmp_path: Path) -> Path:
    model = tmp_path / "model" / TRAINER_FOLDER
    shutil.copytree(source, model)
    return model


class _RunsCode:
    """Pickles as a call that would create ``marker`` when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_label_map_error_names_the_parameter_or_file_it_came_from() -> None:
    from livermets.segmentation.nnunet.predictor import parse_label_map

    labels = {"background": 0, "liver": 5}
    for parameter in ("label_map", "liver_label_map", "lesion_label_map"):
        with pytest.raises(ParameterError) as info:
            parse_label_map("kidney=3", labels, parameter)
        assert str(info.value).startswith(f"{parameter} 'kidney=3': expected CLASS=LABEL")
        assert info.value.parameters == (parameter,)
    with pytest.raises(UserInputError, match=r"^m/nnunet.json label_map 'liver=9': label '9' is not") as found:
        parse_label_map("liver=9", labels, "m/nnunet.json label_map")
    assert not isinstance(found.value, ParameterError)


@pytest.mark.parametrize("case", ["not_a_model", "missing_label", "unknown_class", "label_map_on_monai",
                                  "liver_model_alone", "truncated_checkpoint", "code_in_checkpoint"])
def test_bad_input_is_one_line_and_no_output(case: str, foreign: Foreign, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    out = tmp_path / "pred"
    model = tmp_path / "empty"
    model.mkdir()
    extra: list[object] = []
    expected = ["not a trained model folder", str(model)]
    marker = tmp_path / "code_ran"
    if case == "missing_label":
        model, extra, expected = foreign.a, ["--label-map", "liver=5,lesion=9"], ["'9'", "dataset.json", "liver=5"]
    elif case == "unknown_class":
        model, extra, expected = foreign.a, ["--label-map", "kidney=3"], ["--label-map", "kidney=3", "liver"]
    elif case == "label_map_on_monai":
        from livermets.segmentation.default_model import DEFAULT_MODEL_DIR

        model, extra, expected = DEFAULT_MODEL_DIR, ["--label-map", "liver=1"], ["--label-map", "nnU-Net"]
    elif case == "liver_model_alone":
        extra, expected = ["--liver-model", foreign.a], ["--liver-model and --lesion-model"]
    elif case == "truncated_checkpoint":
        model = _copy_model(foreign.b, tmp_path)
        checkpoint = model / "fold_0" / "checkpoint_final.pth"
        checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
        expected = [str(checkpoint), "not a readable torch checkpoint"]
    elif case == "code_in_checkpoint":
        model = _copy_model(foreign.b, tmp_path)
        checkpoint = model / "fold_0" / "checkpoint_final.pth"
        payload = torch.load(checkpoint, map_location="cpu", weights_only=False)  # our own fixture file
        payload["init_args"]["device"] = _RunsCode(marker)
        torch.save(payload, checkpoint)
        expected = [str(checkpoint), "refused", "re-save its network_weights alone"]
    args = [] if case == "liver_model_alone" else ["--model", model]
    code = run_cli(monkeypatch, "seg", "predict", *args, *extra, "--image", foreign.images["plain"], "--out", out,
                   "--device", "cpu")
    line = one_error_line(code, capsys)
    assert all(part in line for part in expected), line
    assert not out.exists()
    assert not marker.exists()


def test_checkpoint_with_an_unlisted_type_is_refused_naming_it(foreign: Foreign, tmp_path: Path) -> None:
    """Even a harmless object outside the allowlist is refused: livermets has no unrestricted unpickling."""
    import torch

    from livermets.segmentation.nnunet.checkpoint import load_checkpoint

    path = tmp_path / "checkpoint_final.pth"
    payload = torch.load(foreign.b / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    payload["init_args"]["namespace"] = argparse.Namespace(fold=0)  # harmless, but not on the allowlist
    torch.save(payload, path)
    with pytest.raises(UserInputError, match="argparse.Namespace"):
        load_checkpoint(path)
