"""Matching rules on hand-built volumes with answers derived by reasoning, and the vectorised LiTS rule against a
straightforward sequential re-implementation of the LiTS evaluation code's procedure."""

from __future__ import annotations

import numpy as np
import pytest

from livermets.errors import UserInputError
from livermets.lesions.matching import match, match_lits, match_paper
from livermets.lesions.scan_metrics import evaluate_scan

SPACING = (1.0, 1.0, 1.0)


def _row(lesion_x: list[range], pred_x: list[range], length: int = 140) -> tuple[np.ndarray, np.ndarray]:
    """Label maps of shape (1, 3, length): liver everywhere, lesions as runs along x on the middle row."""
    reference = np.ones((1, 3, length), np.uint8)
    prediction = np.ones((1, 3, length), np.uint8)
    for run in lesion_x:
        reference[0, 1, run.start : run.stop] = 2
    for run in pred_x:
        prediction[0, 1, run.start : run.stop] = 2
    return reference, prediction


def _counts(reference: np.ndarray, prediction: np.ndarray | None, rule: str, **kwargs: object) -> dict[str, object]:
    row = evaluate_scan(reference, prediction, SPACING, rule=rule, **kwargs).row  # type: ignore[arg-type]
    return {k: row[k] for k in ("n_ref", "n_pred", "tp", "fn", "fp")}


def test_split_prediction_one_reference_lesion() -> None:
    """One reference lesion x=0..39 (40 voxels) predicted as two pieces x=0..15 and x=24..39 (16 + 16 voxels).

    paper: the reference lesion is overlapped -> 1 TP; both pieces overlap it -> no FP.
    lits: both pieces are assigned to the only reference object and merged: I = 32, U = 40, IoU = 0.8 > 0.5 -> TP,
    both pieces correct -> no FP.
    """
    ref, pred = _row([range(0, 40)], [range(0, 16), range(24, 40)])
    expected = {"n_ref": 1, "n_pred": 2, "tp": 1, "fn": 0, "fp": 0}
    assert _counts(ref, pred, "paper") == expected
    assert _counts(ref, pred, "lits") == expected
    # IoU 0.8 is not > 0.8: undetected, its reference lesion FN and both pieces FP.
    assert _counts(ref, pred, "lits", iou_threshold=0.8) == {"n_ref": 1, "n_pred": 2, "tp": 0, "fn": 1, "fp": 2}


def test_merged_prediction_two_reference_lesions() -> None:
    """Two reference lesions x=0..15 and x=24..39 (16 voxels each), one predicted lesion x=0..39 (40 voxels).

    paper: both overlapped -> 2 TP, 0 FP.
    lits: both reference lesions overlap the prediction most -> merged (32 voxels); I = 32, U = 40 -> IoU 0.8:
    the pair is detected and both reference lesions inside it count as TP (the LiTS script itself would count
    this merged pair once).
    """
    ref, pred = _row([range(0, 16), range(24, 40)], [range(0, 40)])
    assert _counts(ref, pred, "paper") == {"n_ref": 2, "n_pred": 1, "tp": 2, "fn": 0, "fp": 0}
    assert _counts(ref, pred, "lits") == {"n_ref": 2, "n_pred": 1, "tp": 2, "fn": 0, "fp": 0}


def test_merged_prediction_too_large_for_lits() -> None:
    """Two reference lesions of 16 voxels each inside one predicted lesion of 100 voxels (x=0..99).

    paper: any overlap -> 2 TP, 0 FP. lits: merged reference 32 voxels, I = 32, U = 100, IoU = 0.32 <= 0.5 -> both
    reference lesions FN and the prediction FP.
    """
    ref, pred = _row([range(10, 26), range(50, 66)], [range(0, 100)])
    assert _counts(ref, pred, "paper") == {"n_ref": 2, "n_pred": 1, "tp": 2, "fn": 0, "fp": 0}
    assert _counts(ref, pred, "lits") == {"n_ref": 2, "n_pred": 1, "tp": 0, "fn": 2, "fp": 1}
    # With threshold 0 any overlap detects the pair, as in LiTS' "overlap > 0" statistics.
    assert _counts(ref, pred, "lits", iou_threshold=0.0)["tp"] == 2


def test_prediction_competing_for_two_reference_lesions() -> None:
    """Reference A x=0..99 (100 voxels), B x=101..120 (20). Predictions P2 x=0..88 (89), P1 x=90..120 (31).

    Step 1: A overlaps P2 by 89 and P1 by 10 -> A attached to P2; B attached to P1; no reference merge.
    Step 2: P1 overlaps A by 10 and B by 20 -> assigned to B; P2 to A.
    Pairs: (A, P2) I = 89, U = 100 -> 0.89; (B, P1) I = 20, U = 20 + 31 - 20 = 31 -> 0.645.
    IoU threshold 0.5: 2 TP, 0 FP. Threshold 0.7: A TP, B FN, P1 FP.
    paper: both overlapped, both predictions overlap -> 2 TP, 0 FP at any threshold.
    """
    ref, pred = _row([range(0, 100), range(101, 121)], [range(0, 89), range(90, 121)])
    assert _counts(ref, pred, "lits") == {"n_ref": 2, "n_pred": 2, "tp": 2, "fn": 0, "fp": 0}
    assert _counts(ref, pred, "lits", iou_threshold=0.7) == {"n_ref": 2, "n_pred": 2, "tp": 1, "fn": 1, "fp": 1}
    result = evaluate_scan(ref, pred, SPACING, rule="lits").match
    np.testing.assert_allclose(np.sort(result.group_iou), [20 / 31, 89 / 100])
    assert _counts(ref, pred, "paper", iou_threshold=0.7) == {"n_ref": 2, "n_pred": 2, "tp": 2, "fn": 0, "fp": 0}


def test_missed_lesion_and_false_positive() -> None:
    """Reference lesions x=0..9 and x=30..39; prediction x=0..9 and x=60..69.

    Both rules: first lesion exact match (IoU 1) -> TP; second reference untouched -> FN; prediction at 60..69
    touches nothing -> FP. Sensitivity 1/2, PPV 1/(1+1).
    """
    ref, pred = _row([range(0, 10), range(30, 40)], [range(0, 10), range(60, 70)])
    for rule in ("paper", "lits"):
        row = evaluate_scan(ref, pred, SPACING, rule=rule).row
        assert (row["tp"], row["fn"], row["fp"]) == (1, 1, 1)
        assert row["sensitivity"] == 0.5 and row["ppv"] == 0.5
        assert row["dice_lesion"] == pytest.approx(2 * 10 / (20 + 20))


def test_touching_lesions_depend_on_connectivity() -> None:
    """Two 2x2x2 cubes sharing only one corner: one lesion with 26-connectivity, two with 6 (and 18).

    The prediction covers only the first cube. 26: the single lesion is overlapped -> 1 TP (paper).
    6: first cube TP, second FN.
    """
    ref = np.ones((4, 4, 4), np.uint8)
    ref[0:2, 0:2, 0:2] = 2
    ref[2:4, 2:4, 2:4] = 2
    pred = np.ones_like(ref)
    pred[0:2, 0:2, 0:2] = 2
    assert _counts(ref, pred, "paper", connectivity=26) == {"n_ref": 1, "n_pred": 1, "tp": 1, "fn": 0, "fp": 0}
    assert _counts(ref, pred, "paper", connectivity=6) == {"n_ref": 2, "n_pred": 1, "tp": 1, "fn": 1, "fp": 0}
    assert _counts(ref, pred, "paper", connectivity=18)["n_ref"] == 2
    # lits, 26: one reference lesion of 16 voxels, prediction 8 voxels: IoU 0.5 is not > 0.5 -> FN + FP.
    assert _counts(ref, pred, "lits", connectivity=26) == {"n_ref": 1, "n_pred": 1, "tp": 0, "fn": 1, "fp": 1}


def test_empty_masks() -> None:
    """Both lesion-free: no counts, Dice 1.0 flagged as both-empty, sensitivity and PPV undefined.
    Reference lesion-free with one predicted lesion: 1 FP, Dice 0, PPV 0. Missing prediction: all FN."""
    empty = np.ones((2, 3, 20), np.uint8)
    row = evaluate_scan(empty, empty.copy(), SPACING).row
    assert (row["n_ref"], row["n_pred"], row["tp"], row["fn"], row["fp"]) == (0, 0, 0, 0, 0)
    assert row["dice_lesion"] == 1.0 and row["lesion_both_empty"]
    assert np.isnan(row["sensitivity"]) and np.isnan(row["ppv"])

    ref, pred = _row([], [range(3, 7)])
    for rule in ("paper", "lits"):
        row = evaluate_scan(ref, pred, SPACING, rule=rule).row
        assert (row["fp"], row["dice_lesion"], row["ppv"], row["lesion_both_empty"]) == (1, 0.0, 0.0, False)

    ref, _ = _row([range(3, 7), range(10, 12)], [])
    for rule in ("paper", "lits"):
        row = evaluate_scan(ref, None, SPACING, rule=rule).row
        assert (row["tp"], row["fn"], row["fp"], row["missing_prediction"]) == (0, 2, 0, True)
        assert row["dice_lesion"] == 0.0 and row["dice_liver"] == 0.0 and row["sensitivity"] == 0.0


def test_matrix_level_rules_and_errors() -> None:
    """Paper rule straight from a matrix: refs 0 and 2 overlapped, ref 1 not; pred 1 overlaps nothing."""
    overlap = np.array([[5, 0, 0], [0, 0, 0], [0, 0, 3]])
    result = match_paper(overlap)
    assert result.ref_detected.tolist() == [True, False, True]
    assert result.pred_correct.tolist() == [True, False, True]
    assert result.counts() == {"n_ref": 3, "n_pred": 3, "tp": 2, "fn": 1, "fp": 1, "tp_pred": 2}
    assert match_paper(np.zeros((0, 2), int)).fp == 2
    assert match_lits(np.zeros((0, 2), int), np.zeros(0), np.array([3, 4])).fp == 2
    assert match_lits(np.zeros((2, 0), int), np.array([3, 4]), np.zeros(0)).fn == 2
    with pytest.raises(UserInputError, match="^rule must be one of"):
        match(overlap, np.ones(3), np.ones(3), rule="nope")
    with pytest.raises(UserInputError, match=r"^iou_threshold must lie in \[0, 1\)"):
        match_lits(overlap, np.ones(3), np.ones(3), iou_threshold=1.5)


def _lits_sequential(overlap: np.ndarray, ref_sizes: np.ndarray, pred_sizes: np.ndarray,
                     threshold: float) -> tuple[list[bool], list[bool]]:
    """Independent re-implementation following the LiTS code's steps literally: loop over predictions in id
    order, merge the reference columns whose argmax (on the current matrix) is this prediction, keep each
    prediction's largest entry only, merge prediction rows per reference column, then test IoU per pair (union
    computed from sizes). Returns (reference lesion detected, predicted lesion correct)."""
    n_ref, n_pred = overlap.shape
    columns: list[list[int]] = [[g] for g in range(n_ref)]  # merged reference lesions per column
    matrix = overlap.T.astype(float).copy()  # rows = predictions, as in the LiTS code
    for i in range(n_pred):
        merge = [j for j in range(len(columns)) if matrix[i, j] > 0 and int(np.argmax(matrix[:, j])) == i]
        if len(merge) > 1:
            keep = merge[0]
            for j in merge[1:]:
                matrix[:, keep] += matrix[:, j]
                columns[keep] += columns[j]
            for j in sorted(merge[1:], reverse=True):
                matrix = np.delete(matrix, j, axis=1)
                del columns[j]
    owner = [int(np.argmax(matrix[i])) if matrix[i].sum() > 0 else -1 for i in range(n_pred)]
    ref_detected = [False] * n_ref
    pred_correct = [False] * n_pred
    for j, members in enumerate(columns):
        preds = [i for i in range(n_pred) if owner[i] == j]
        if not preds:
            continue
        inter = sum(matrix[i, j] for i in preds)
        union = sum(ref_sizes[g] for g in members) + sum(pred_sizes[i] for i in preds) - inter
        if inter / union > threshold:
            for g in members:
                ref_detected[g] = True
            for i in preds:
                pred_correct[i] = True
    return ref_detected, pred_correct


@pytest.mark.parametrize("seed", range(40))
def test_lits_rule_matches_sequential_procedure(seed: int) -> None:
    """Random sparse overlap matrices (with consistent sizes): vectorised rule == sequential procedure."""
    rng = np.random.default_rng(seed)
    n_ref, n_pred = rng.integers(1, 8, size=2)
    overlap = rng.integers(0, 20, size=(n_ref, n_pred)) * (rng.random((n_ref, n_pred)) < 0.35)
    ref_sizes = overlap.sum(axis=1) + rng.integers(1, 30, size=n_ref)
    pred_sizes = overlap.sum(axis=0) + rng.integers(1, 30, size=n_pred)
    threshold = float(rng.choice([0.0, 0.2, 0.5]))
    expected_ref, expected_pred = _lits_sequential(overlap, ref_sizes, pred_sizes, threshold)
    result = match_lits(overlap, ref_sizes, pred_sizes, threshold)
    assert result.ref_detected.tolist() == expected_ref
    assert result.pred_correct.tolist() == expected_pred
