"""The real LiTS case (../shared/data/lits_tiny) against shifted and eroded copies of itself, and Dice against
MONAI's DiceMetric.

The case's header keeps the original 0.664 mm in-plane spacing although the volume was downsampled from 512 to 64
pixels (SOURCE.md); we set the true spacing 0.664 * 512 / 64 = 5.31 mm before computing sizes. Counts do not
depend on the spacing. Expected counts come from scipy.ndimage.label (an implementation independent of cc3d) and
explicit per-lesion loops.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.metrics import DiceMetric
from scipy import ndimage

from livermets.imaging.io import read_label
from livermets.lesions.components import lesion_table
from livermets.lesions.scan_metrics import evaluate_scan

STRUCTURE_26 = np.ones((3, 3, 3), bool)


@pytest.fixture(scope="module")
def lits_label(shared_data: Callable[..., Path]) -> sitk.Image:
    label = read_label(shared_data("lits_tiny", "segmentation.nii.gz"))
    sx, sy, sz = label.GetSpacing()
    label.SetSpacing((sx * 512 / 64, sy * 512 / 64, sz))  # fix the header (SOURCE.md)
    return label


def _paper_counts_independent(ref: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Paper rule with scipy components and one loop per lesion (fine for a 64x64x33 test volume)."""
    ref_cc, n_ref = ndimage.label(ref == 2, structure=STRUCTURE_26)
    pred_cc, n_pred = ndimage.label(pred == 2, structure=STRUCTURE_26)
    tp = sum(bool(np.any(pred[ref_cc == i] == 2)) for i in range(1, n_ref + 1))
    fp = sum(not np.any(ref[pred_cc == j] == 2) for j in range(1, n_pred + 1))
    return {"n_ref": n_ref, "n_pred": n_pred, "tp": tp, "fn": n_ref - tp, "fp": fp}


def _lits_counts_one_to_one(ref: np.ndarray, pred: np.ndarray, threshold: float) -> dict[str, int]:
    """LiTS rule for the shifted copy, where every reference lesion has exactly one predicted twin and no merges
    happen (checked): a reference lesion is detected iff IoU with its twin > threshold."""
    ref_cc, n_ref = ndimage.label(ref == 2, structure=STRUCTURE_26)
    pred_cc, n_pred = ndimage.label(pred == 2, structure=STRUCTURE_26)
    tp = fp = 0
    for i in range(1, n_ref + 1):
        touching = np.unique(pred_cc[(ref_cc == i) & (pred_cc > 0)])
        assert len(touching) <= 1
        if len(touching) == 1:
            twin = pred_cc == touching[0]
            assert len(np.unique(ref_cc[twin & (ref_cc > 0)])) == 1
            iou = np.count_nonzero(twin & (ref_cc == i)) / np.count_nonzero(twin | (ref_cc == i))
            tp += iou > threshold
            fp += iou <= threshold
    untouched_pred = sum(not np.any(ref_cc[pred_cc == j]) for j in range(1, n_pred + 1))
    return {"n_ref": n_ref, "n_pred": n_pred, "tp": tp, "fn": n_ref - tp, "fp": fp + untouched_pred}


def _lits_counts_subset(ref: np.ndarray, pred: np.ndarray, threshold: float) -> dict[str, int]:
    """LiTS rule when every predicted lesion voxel is a reference lesion voxel: each predicted piece lies in exactly
    one reference lesion, so no reference lesions merge; all pieces inside reference lesion i merge with it and the
    IoU is |pred & lesion_i| / |lesion_i|. Detected iff IoU > threshold; pieces of undetected lesions are FPs."""
    assert not np.any((pred == 2) & (ref != 2))
    ref_cc, n_ref = ndimage.label(ref == 2, structure=STRUCTURE_26)
    pred_cc, n_pred = ndimage.label(pred == 2, structure=STRUCTURE_26)
    tp = fp = 0
    for i in range(1, n_ref + 1):
        lesion = ref_cc == i
        pieces = np.unique(pred_cc[lesion & (pred_cc > 0)])
        detected = len(pieces) > 0 and np.count_nonzero(lesion & (pred == 2)) / lesion.sum() > threshold
        tp += bool(detected)
        fp += 0 if detected else len(pieces)
    return {"n_ref": n_ref, "n_pred": n_pred, "tp": tp, "fn": n_ref - tp, "fp": fp}


def _counts(ref: np.ndarray, pred: np.ndarray, spacing: tuple[float, ...], rule: str) -> dict[str, int]:
    row = evaluate_scan(ref, pred, spacing, rule=rule).row
    return {k: row[k] for k in ("n_ref", "n_pred", "tp", "fn", "fp")}


def test_reference_against_itself(lits_label: sitk.Image) -> None:
    """Identical maps: the 9 lesions (26-connectivity, scipy count) are all TP under both rules, Dice 1."""
    ref = sitk.GetArrayFromImage(lits_label)
    n = ndimage.label(ref == 2, structure=STRUCTURE_26)[1]
    assert n == 9
    for rule in ("paper", "lits"):
        assert _counts(ref, ref.copy(), lits_label.GetSpacing(), rule) == {"n_ref": 9, "n_pred": 9, "tp": 9,
                                                                             "fn": 0, "fp": 0}


@pytest.mark.parametrize("shift", [(0, 0, 1), (0, 1, 1), (1, 0, 0)])
def test_shifted_copy(lits_label: sitk.Image, shift: tuple[int, int, int]) -> None:
    """Whole label map shifted by one voxel: small lesions lose their overlap; counts as computed independently."""
    ref = sitk.GetArrayFromImage(lits_label)
    pred = np.roll(ref, shift, axis=(0, 1, 2))
    spacing = lits_label.GetSpacing()
    paper = _paper_counts_independent(ref, pred)
    assert _counts(ref, pred, spacing, "paper") == paper
    assert _counts(ref, pred, spacing, "lits") == _lits_counts_one_to_one(ref, pred, 0.5)
    assert paper["fn"] > 0  # the 1-2 voxel lesions are missed: the test exercises FN and FP paths


def test_eroded_copy(lits_label: sitk.Image) -> None:
    """Lesions eroded (6-neighbourhood): lesions of 1-2 voxels vanish (FN), survivors stay inside (no FP)."""
    ref = sitk.GetArrayFromImage(lits_label)
    pred = ref.copy()
    eroded = ndimage.binary_erosion(ref == 2, structure=ndimage.generate_binary_structure(3, 1))
    pred[(ref == 2) & ~eroded] = 1
    paper = _paper_counts_independent(ref, pred)
    assert _counts(ref, pred, lits_label.GetSpacing(), "paper") == paper
    assert paper["fp"] == 0 and 0 < paper["tp"] < 9
    assert _counts(ref, pred, lits_label.GetSpacing(), "lits") == _lits_counts_subset(ref, pred, 0.5)


@pytest.mark.parametrize("removed_slice", [16, 17, 18, 20])
def test_copy_with_one_slice_removed(lits_label: sitk.Image, removed_slice: int) -> None:
    """Lesion voxels of one axial slice relabelled liver: lesions spanning it split into two predicted pieces
    (merged again by the LiTS rule), lesions inside it vanish. Both rules against independent counts."""
    ref = sitk.GetArrayFromImage(lits_label)
    pred = ref.copy()
    pred[removed_slice][pred[removed_slice] == 2] = 1
    spacing = lits_label.GetSpacing()
    assert _counts(ref, pred, spacing, "paper") == _paper_counts_independent(ref, pred)
    lits = _lits_counts_subset(ref, pred, 0.5)
    assert _counts(ref, pred, spacing, "lits") == lits
    assert lits["tp"] > 0  # large lesions keep IoU > 0.5: the TP path of the LiTS rule on real data


def test_lesion_table_on_real_case(lits_label: sitk.Image) -> None:
    """9 lesions, 210 lesion voxels (SOURCE.md), volumes with the corrected spacing."""
    table = lesion_table(lits_label)
    assert len(table) == 9 and table["voxel_count"].sum() == 210
    voxel_ml = np.prod(lits_label.GetSpacing()) / 1000
    assert table["volume_ml"].sum() == pytest.approx(210 * voxel_ml)
    assert (table["liver_contact_fraction"] > 0.5).all()  # real lesions sit inside the liver


def test_dice_matches_monai(lits_label: sitk.Image) -> None:
    """Per-scan liver and lesion Dice equal MONAI's DiceMetric on one-hot masks (shifted copy and empty cases)."""
    ref = sitk.GetArrayFromImage(lits_label)
    pred = np.roll(ref, (0, 1, 2), axis=(0, 1, 2))
    row = evaluate_scan(ref, pred, lits_label.GetSpacing()).row
    metric = DiceMetric(include_background=True, reduction="none", ignore_empty=False)

    def monai_dice(a: np.ndarray, b: np.ndarray) -> float:
        return float(metric(torch.from_numpy(a[None, None].astype(np.float32)),
                            torch.from_numpy(b[None, None].astype(np.float32)))[0, 0])

    assert row["dice_lesion"] == pytest.approx(monai_dice(pred == 2, ref == 2), rel=1e-6)
    assert row["dice_liver"] == pytest.approx(monai_dice(pred > 0, ref > 0), rel=1e-6)
    assert 0 < row["dice_lesion"] < row["dice_liver"] < 1
    # Both lesion-free: MONAI (ignore_empty=False) and livermets agree on 1.0; one empty: 0.0.
    liver_only = np.where(ref == 2, 1, ref).astype(np.uint8)
    assert evaluate_scan(liver_only, liver_only, (1, 1, 1)).row["dice_lesion"] == monai_dice(
        liver_only == 2, liver_only == 2) == 1.0
    assert evaluate_scan(ref, liver_only, (1, 1, 1)).row["dice_lesion"] == monai_dice(liver_only == 2,
                                                                                      ref == 2) == 0.0
