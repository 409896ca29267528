"""The TotalSegmentator pair computes what TotalSegmentator 2.18.0's own Python API computes (stand-in weights).

The stand-ins (tests/segmentation/nnunet/standin.py) are laid out as TotalSegmentator's weights folder. On a real
CT (a 12-slice slab of ``example_ct_sm.nii.gz``, stored LPS so that both sides reorient it), livermets'
:class:`TotalSegPairSegmenter` and TotalSegmentator's own API (``totalsegmentator`` from PyPI, run offline in a child
process with usage statistics off and every connection beyond 127.0.0.1 refused and recorded) must give
voxel-identical label maps: each model's output alone (Dataset291 liver on the whole CT, Dataset297 ``total --fast``,
Dataset591 ``liver_lesions`` on TotalSegmentator's liver crop) and the combined livermets map.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cc3d
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from livermets.errors import UserInputError
from livermets.segmentation.nnunet.composite import combine_labels
from livermets.segmentation.nnunet.totalseg import (
    TotalSegPairSegmenter,
    TotalSegTask,
    crop_box,
    find_result_folder,
)
from livermets.segmentation.options import PredictionOptions

from .standin import make_standins

HERE = Path(__file__).parent
BLOCKS = {
    "ts-liver": {"dataset": "Dataset291_TotalSegmentator_part1_organs_1559subj", "trainer": "nnUNetTrainerNoMirroring",
                 "plans": "nnUNetPlans", "configuration": "3d_fullres", "folds": [0], "resample_mm": [1.5, 1.5, 1.5]},
    "ts-liver-fast": {"dataset": "Dataset297_TotalSegmentator_total_3mm_1559subj",
                      "trainer": "nnUNetTrainer_4000epochs_NoMirroring", "plans": "nnUNetPlans",
                      "configuration": "3d_fullres", "folds": [0], "resample_mm": [3.0, 3.0, 3.0]},
    "ts-liver-lesions": {"dataset": "Dataset591_ct_liver_lesions_842subj", "trainer": "nnUNetTrainer",
                         "plans": "nnUNetPlans", "configuration": "3d_fullres_high", "folds": [0],
                         "resample_mm": [0.75, 0.75, 1.0], "crop": "liver", "crop_addon": [10, 10, 10],
                         "robust_crop": True, "crop_model": "ts-liver-fast"},
}


@pytest.fixture(scope="session")
def standins(tmp_path_factory: pytest.TempPathFactory, shared_data: Callable[..., Path]) -> Path:
    """The three stand-ins (weights folder and release zips), made once per session."""
    out = tmp_path_factory.mktemp("ts_standins")
    make_standins(out, shared_data("totalsegmentator", "example_ct_sm.nii.gz"),
                  shared_data("totalsegmentator", "example_seg.nii.gz"))
    return out


@pytest.fixture(scope="session")
def slab_ct(tmp_path_factory: pytest.TempPathFactory, shared_data: Callable[..., Path]) -> Path:
    """Slices 10-21 of the real CT, its x and y axes flipped and the affine with them (the same voxels in LPS)."""
    ct = nib.load(shared_data("totalsegmentator", "example_ct_sm.nii.gz"))
    slab = ct.slicer[:, :, 10:22]
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [slab.shape[0] - 1, slab.shape[1] - 1]
    data = np.asarray(slab.dataobj)[::-1, ::-1, :].copy()
    path = tmp_path_factory.mktemp("ts_ct") / "slab_lps.nii.gz"
    nib.save(nib.Nifti1Image(data, slab.affine @ flip), path)
    return path


@pytest.fixture(scope="session")
def totalseg_outputs(standins: Path, slab_ct: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TotalSegmentator's own outputs for the slab (see totalseg_reference.py), in a child process."""
    if importlib.util.find_spec("totalsegmentator") is None:
        message = "totalsegmentator not installed (make bootstrap installs totalsegmentator==2.18.0 --no-deps)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("ts_out")
    done = subprocess.run([sys.executable, str(HERE / "totalseg_reference.py"), str(standins / "weights"),
                           str(out / "home"), str(slab_ct), str(out), "--part1"],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def tasks(weights: Path) -> dict[str, TotalSegTask]:
    return {name: TotalSegTask.from_registry(block, weights) for name, block in BLOCKS.items()}


def ts_array(path: Path) -> np.ndarray:
    """A TotalSegmentator output as a (z, y, x) array (SimpleITK's order)."""
    return np.asarray(nib.load(path).dataobj).astype(np.uint8).transpose(2, 1, 0)


def test_pair_matches_totalsegmentator_voxel_for_voxel(standins: Path, slab_ct: Path, totalseg_outputs: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[object] = []
    connect = socket.socket.connect

    def recorded(self: socket.socket, address: object) -> object:
        if self.family != socket.AF_UNIX:
            tried.append(address)
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recorded)
    found = tasks(standins / "weights")
    pair = TotalSegPairSegmenter(found["ts-liver"], found["ts-liver-lesions"], crop=found["ts-liver-fast"],
                                 device="cpu", options=PredictionOptions(engine="torch"))  # TotalSegmentator's own
    image = sitk.ReadImage(str(slab_ct))
    parts = pair.predict_parts(image)
    liver_291 = ts_array(totalseg_outputs / "part1.nii.gz")
    total_fast = ts_array(totalseg_outputs / "total_fast.nii.gz")
    lesions = ts_array(totalseg_outputs / "liver_lesions.nii.gz")
    assert (totalseg_outputs / "connections.json").read_text() == "[]"  # nothing beyond 127.0.0.1 was tried
    # the stand-ins give something to compare: a liver, and lesion voxels inside TotalSegmentator's crop
    assert (total_fast == 5).sum() > 500 and (liver_291 == 5).sum() > 1000 and (lesions == 1).sum() > 100
    assert int((parts.liver != liver_291).sum()) == 0
    assert int((parts.crop != total_fast).sum()) == 0
    assert int((parts.lesion != lesions).sum()) == 0
    spacing = tuple(float(s) for s in image.GetSpacing()[::-1])
    expected = combine_labels(np.where(liver_291 == 5, 1, 0).astype(np.uint8),
                              np.where(lesions == 1, 2, 0).astype(np.uint8), spacing)
    combined = pair.combine(parts, image)
    assert combined.GetSize() == image.GetSize() and combined.GetOrigin() == image.GetOrigin()
    got = sitk.GetArrayFromImage(combined)
    assert int((got != expected).sum()) == 0
    assert (got == 2).sum() > 0 and (got > 0).sum() >= (got == 2).sum()
    assert tried == []  # livermets opened no network connection either


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_each_engine_agrees_with_totalsegmentator(engine: str, standins: Path, slab_ct: Path,
                                                  totalseg_outputs: Path) -> None:
    """ONNX Runtime and OpenVINO run the networks of the pair: each model's labels agree with TotalSegmentator's own
    (PyTorch) run on >= 99.99 % of the voxels, with the same number of lesions (issue 28's equality rule)."""
    found = tasks(standins / "weights")
    pair = TotalSegPairSegmenter(found["ts-liver"], found["ts-liver-lesions"], crop=found["ts-liver-fast"],
                                 device="cpu", options=PredictionOptions(engine=engine))  # type: ignore[arg-type]
    assert pair.engine == engine
    parts = pair.predict_parts(sitk.ReadImage(str(slab_ct)))
    for got, name in ((parts.liver, "part1.nii.gz"), (parts.crop, "total_fast.nii.gz"),
                      (parts.lesion, "liver_lesions.nii.gz")):
        reference = ts_array(totalseg_outputs / name)
        assert (got == reference).mean() >= 0.9999, name
    reference_lesions = ts_array(totalseg_outputs / "liver_lesions.nii.gz") == 1
    assert cc3d.connected_components(parts.lesion == 1, return_N=True)[1] == \
        cc3d.connected_components(reference_lesions, return_N=True)[1]


def test_the_lesion_crop_is_totalsegmentators() -> None:
    """TotalSegmentator's crop_to_mask: int(mm / spacing) voxels per axis, clipped (an independent count)."""
    mask = np.zeros((40, 30, 20), bool)
    mask[10:20, 5:9, 3:4] = True
    assert crop_box(mask, (0.8, 1.5, 3.0), (20, 20, 20)) == (slice(0, 40), slice(0, 22), slice(0, 10))
    assert crop_box(mask, (3.0, 3.0, 3.0), (10, 10, 10)) == (slice(7, 23), slice(2, 12), slice(0, 7))


def test_a_missing_result_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="Dataset591_ct_liver_lesions_842subj/nnUNetTrainer__nnUNetPlans__3d"):
        find_result_folder(tmp_path, "Dataset591_ct_liver_lesions_842subj", "nnUNetTrainer", "nnUNetPlans",
                           "3d_fullres_high")


def test_the_tile_step_is_totalsegmentators(standins: Path) -> None:
    found = tasks(standins / "weights")
    assert found["ts-liver"].tile_step_size == 0.8 and found["ts-liver-fast"].tile_step_size == 0.8
    assert found["ts-liver-lesions"].tile_step_size == 0.5
    assert found["ts-liver-lesions"].resample_mm == (0.75, 0.75, 1.0)
    # TotalSegmentator's task configuration says 10 mm; its python_api.py applies 20 mm to a crop from `total`
    assert found["ts-liver-lesions"].crop_addon_mm == (20.0, 20.0, 20.0)
