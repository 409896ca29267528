"""Matching predicted lesions to reference lesions: the paper's rule and the LiTS challenge rule.

Both rules are pure functions of the overlap matrix (voxel counts, reference lesions x predicted lesions, from
:func:`livermets.lesions.overlap.overlap_matrix`) and the component sizes.

``paper`` (Ty et al. 2025, "Statistical analysis")
    A reference lesion overlapped by at least one voxel of any predicted lesion is a true positive (TP), otherwise a
    false negative (FN). A predicted lesion overlapping no reference lesion is a false positive (FP).

``lits`` (Bilic et al., Med Image Anal 2023; the LiTS evaluation code's ``detect_lesions``)
    1. Each reference lesion that touches any prediction is attached to the predicted lesion that overlaps it most
       (ties: lowest predicted id); reference lesions attached to the same predicted lesion are merged into one
       reference object. Untouched reference lesions stay single objects.
    2. Each predicted lesion that touches any reference is assigned to the merged reference object it overlaps most
       (ties: the object whose lowest reference id is smallest); the predicted lesions assigned to the same object
       are merged.
    3. A merged pair counts as detected only if IoU = |P & G| / |P | G| > ``iou_threshold`` (0.5 by default;
       strictly greater, as in the LiTS code). Every reference lesion inside a detected pair is a TP, every
       reference lesion in an undetected pair or without any prediction is a FN, and the predicted lesions of an
       undetected pair are FPs, as are predicted lesions touching no reference lesion.

Counts: ``tp`` and ``fn`` count reference lesions, ``fp`` counts predicted lesions (for both rules), so
``sensitivity = tp / n_ref`` and ``ppv = tp / (tp + fp)`` as in the paper and the LiTS evaluation script.

Examples
--------
>>> import numpy as np
>>> overlap = np.array([[8, 0], [0, 0]])       # ref 1 overlapped by pred 1; ref 2 missed; pred 2 elsewhere
>>> match_paper(overlap).counts()
{'n_ref': 2, 'n_pred': 2, 'tp': 1, 'fn': 1, 'fp': 1, 'tp_pred': 1}
>>> match_lits(overlap, ref_sizes=np.array([10, 5]), pred_sizes=np.array([9, 4])).group_iou.round(3).tolist()
[0.727, nan]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from livermets.errors import ParameterError

Rule = Literal["paper", "lits"]
RULES: tuple[str, ...] = ("paper", "lits")


@dataclass(frozen=True)
class MatchResult:
    """Outcome of matching one scan's predicted lesions to its reference lesions.

    Attributes
    ----------
    rule
        ``"paper"`` or ``"lits"``.
    iou_threshold
        IoU threshold (``lits`` only, else ``None``).
    ref_detected
        Boolean per reference lesion (index ``i`` = component ``i + 1``): TP if True, FN otherwise.
    pred_correct
        Boolean per predicted lesion: False means FP.
    ref_group
        Merged reference object of each reference lesion (``lits``); identity for ``paper``.
    pred_group
        Reference object each predicted lesion was assigned to; ``-1`` if it touches no reference lesion.
    group_iou
        IoU of each merged pair (``lits``; NaN for objects without any assigned prediction); NaN for ``paper``.
    """

    rule: str
    iou_threshold: float | None
    ref_detected: np.ndarray
    pred_correct: np.ndarray
    ref_group: np.ndarray
    pred_group: np.ndarray
    group_iou: np.ndarray

    @property
    def n_ref(self) -> int:
        return int(self.ref_detected.size)

    @property
    def n_pred(self) -> int:
        return int(self.pred_correct.size)

    @property
    def tp(self) -> int:
        """Reference lesions counted as detected."""
        return int(np.count_nonzero(self.ref_detected))

    @property
    def fn(self) -> int:
        """Reference lesions counted as missed."""
        return self.n_ref - self.tp

    @property
    def fp(self) -> int:
        """Predicted lesions counted as false positives."""
        return self.n_pred - self.tp_pred

    @property
    def tp_pred(self) -> int:
        """Predicted lesions that are not false positives."""
        return int(np.count_nonzero(self.pred_correct))

    @property
    def sensitivity(self) -> float:
        """``tp / n_ref`` (NaN without reference lesions)."""
        return self.tp / self.n_ref if self.n_ref else float("nan")

    @property
    def ppv(self) -> float:
        """``tp / (tp + fp)`` (NaN when both are zero)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    def counts(self) -> dict[str, int]:
        """The integer counts as a dict."""
        return {"n_ref": self.n_ref, "n_pred": self.n_pred, "tp": self.tp, "fn": self.fn, "fp": self.fp,
                "tp_pred": self.tp_pred}


def _check(overlap: np.ndarray) -> np.ndarray:
    overlap = np.asarray(overlap)
    if overlap.ndim != 2:
        raise ValueError(f"overlap must be a 2D (n_ref, n_pred) matrix, got shape {overlap.shape}")
    return overlap


def match_paper(overlap: np.ndarray) -> MatchResult:
    """The paper's rule: any voxel of overlap makes a reference lesion a TP; non-overlapping predictions are FPs."""
    overlap = _check(overlap)
    n_ref, n_pred = overlap.shape
    ref_touched = overlap.sum(axis=1) > 0
    pred_touched = overlap.sum(axis=0) > 0
    pred_group = np.where(pred_touched, overlap.argmax(axis=0) if n_ref else -1, -1)
    return MatchResult("paper", None, ref_touched, pred_touched, np.arange(n_ref), pred_group,
                       np.full(n_ref, np.nan))


def match_lits(overlap: np.ndarray, ref_sizes: np.ndarray, pred_sizes: np.ndarray,
               iou_threshold: float = 0.5) -> MatchResult:
    """The LiTS challenge rule (merge, assign, IoU > threshold); see the module docstring for the exact steps."""
    overlap = _check(overlap)
    if not 0.0 <= iou_threshold < 1.0:
        raise ParameterError("{iou_threshold} must lie in [0, 1) (got {value})", value=iou_threshold)
    n_ref, n_pred = overlap.shape
    ref_sizes = np.asarray(ref_sizes, dtype=np.int64)
    pred_sizes = np.asarray(pred_sizes, dtype=np.int64)
    if ref_sizes.shape != (n_ref,) or pred_sizes.shape != (n_pred,):
        raise ValueError("ref_sizes/pred_sizes must match the overlap matrix")
    if n_ref == 0:
        empty = np.zeros(0, dtype=np.int64)
        return MatchResult("lits", iou_threshold, np.zeros(0, bool), np.zeros(n_pred, bool), empty,
                           np.full(n_pred, -1), np.zeros(0))

    # Step 1: merge reference lesions that overlap the same predicted lesion most.
    ref_touched = overlap.sum(axis=1) > 0
    best_pred = overlap.argmax(axis=1) if n_pred else np.zeros(n_ref, np.int64)
    key = np.where(ref_touched, best_pred, n_pred + np.arange(n_ref))  # untouched lesions: a key of their own
    _, first_member, group_by_key = np.unique(key, return_index=True, return_inverse=True)
    # Number objects by their lowest reference id, the order the LiTS code keeps its merged columns in (ties).
    rank = np.empty_like(first_member)
    rank[np.argsort(first_member, kind="stable")] = np.arange(first_member.size)
    ref_group = rank[group_by_key.reshape(-1)]
    n_groups = first_member.size
    group_overlap = np.zeros((n_groups, n_pred), dtype=np.int64)
    np.add.at(group_overlap, ref_group, overlap)
    group_ref_size = np.bincount(ref_group, weights=ref_sizes, minlength=n_groups)

    # Step 2: assign each predicted lesion to the object it overlaps most; merge predictions per object.
    pred_touched = overlap.sum(axis=0) > 0
    pred_group = np.where(pred_touched, group_overlap.argmax(axis=0), -1)
    assigned = np.flatnonzero(pred_touched)
    owners = pred_group[assigned]
    intersection = np.bincount(owners, weights=group_overlap[owners, assigned], minlength=n_groups)
    group_pred_size = np.bincount(owners, weights=pred_sizes[assigned], minlength=n_groups)

    # Step 3: a merged pair is detected if its IoU exceeds the threshold.
    union = group_ref_size + group_pred_size - intersection
    has_prediction = group_pred_size > 0
    group_iou = np.full(n_groups, np.nan)
    group_iou[has_prediction] = intersection[has_prediction] / union[has_prediction]
    detected = has_prediction & (np.nan_to_num(group_iou, nan=0.0) > iou_threshold)
    ref_detected = detected[ref_group]
    pred_correct = pred_touched & detected[np.maximum(pred_group, 0)]
    return MatchResult("lits", iou_threshold, ref_detected, pred_correct, ref_group, pred_group, group_iou)


def match(overlap: np.ndarray, ref_sizes: np.ndarray, pred_sizes: np.ndarray, rule: str = "paper",
          iou_threshold: float = 0.5) -> MatchResult:
    """Dispatch to :func:`match_paper` or :func:`match_lits`."""
    if rule == "paper":
        return match_paper(overlap)
    if rule == "lits":
        return match_lits(overlap, ref_sizes, pred_sizes, iou_threshold)
    raise ParameterError("{rule} must be one of {choices} (got {value!r})", choices=list(RULES), value=rule)
