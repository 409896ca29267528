"""Metrics of one predicted label map against its reference (one scan).

Label maps follow LiTS: 0 background, 1 liver, 2 lesion. The *liver* for ``dice_liver`` is every non-zero voxel
(liver including its lesions, as in LiTS); the *lesion* mask is label 2. Lesions are 3D connected components
(cc3d, 26-connectivity by default); overlaps come from one joint histogram and the matching from
:mod:`livermets.lesions.matching`. The lesion Dice is derived from the same counts
(``|P & R| = sum of the overlap matrix``), so there is no extra pass over the volume.

Examples
--------
>>> import numpy as np
>>> ref = np.zeros((4, 16, 16), np.uint8); ref[:, 2:14, 2:14] = 1; ref[1:3, 4:7, 4:7] = 2
>>> pred = ref.copy(); pred[1:3, 10:12, 10:12] = 2          # one extra (false positive) lesion
>>> result = evaluate_scan(ref, pred, spacing_xyz=(1.0, 1.0, 2.0), series_id="demo")
>>> {k: result.row[k] for k in ("n_ref", "n_pred", "tp", "fn", "fp")}
{'n_ref': 1, 'n_pred': 2, 'tp': 1, 'fn': 0, 'fp': 1}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from livermets.lesions.components import LESION_VALUE, LesionComponents, label_components, longest_axial_diameters
from livermets.lesions.dice import dice_from_counts
from livermets.lesions.matching import MatchResult, match
from livermets.lesions.overlap import component_overlaps

PER_SCAN_COLUMNS = (
    "series_id", "dice_liver", "dice_lesion", "lesion_both_empty", "n_ref", "n_pred", "tp", "fn", "fp", "tp_pred",
    "sensitivity", "ppv", "ref_lesion_voxels", "pred_lesion_voxels", "lesion_intersection_voxels",
    "ref_liver_voxels", "pred_liver_voxels", "liver_intersection_voxels", "ref_lesion_volume_ml",
    "pred_lesion_volume_ml", "missing_prediction", "rule", "iou_threshold", "connectivity",
)


def stratum_names(edges_mm: Sequence[float]) -> list[str]:
    """Names of the diameter strata cut at ``edges_mm``: ``[10]`` gives ``['lt10mm', 'ge10mm']``.

    >>> stratum_names([5, 10])
    ['lt5mm', '5to10mm', 'ge10mm']
    """
    edges = [float(e) for e in edges_mm]
    if not edges:
        return []
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)) or edges[0] <= 0:
        raise ValueError(f"size strata must be increasing positive diameters in mm (got {edges})")
    fmt = [f"{e:g}" for e in edges]
    names = [f"lt{fmt[0]}mm"]
    names += [f"{a}to{b}mm" for a, b in zip(fmt, fmt[1:], strict=False)]
    names.append(f"ge{fmt[-1]}mm")
    return names


def assign_strata(diameters_mm: np.ndarray, edges_mm: Sequence[float]) -> np.ndarray:
    """Stratum name per lesion: ``lt<e0>mm`` if diameter < e0, ..., ``ge<en>mm`` if diameter >= en."""
    names = np.array(stratum_names(edges_mm), dtype=object)
    return names[np.searchsorted(np.asarray(edges_mm, dtype=float), diameters_mm, side="right")]


@dataclass(frozen=True)
class ScanEvaluation:
    """Per-scan metrics (``row``), the per-lesion tables and the match itself."""

    series_id: str
    row: dict[str, Any]
    match: MatchResult
    lesions: pd.DataFrame
    figure_slice: int | None = field(default=None)


def _lesion_frame(side: str, comps: LesionComponents, correct: np.ndarray, group: np.ndarray, voxel_ml: float,
                  diameters: np.ndarray | None, strata_edges: Sequence[float]) -> pd.DataFrame:
    frame = pd.DataFrame({
        "side": side,
        "lesion_id": np.arange(1, comps.count + 1),
        "voxel_count": comps.voxel_counts,
        "volume_ml": comps.voxel_counts * voxel_ml,
        "centroid_z_index": comps.centroids_zyx[:, 0] if comps.count else np.zeros(0),
        "status": np.where(correct, "TP", "FN" if side == "reference" else "FP"),
        "group": np.asarray(group) + 1,  # 1-based reference object, 0 = touches no reference lesion
    })
    if diameters is not None:
        frame["longest_axial_diameter_mm"] = diameters
        if strata_edges:
            frame["stratum"] = assign_strata(diameters, strata_edges)
    return frame


def evaluate_scan(
    reference: np.ndarray,
    prediction: np.ndarray | None,
    spacing_xyz: Sequence[float],
    series_id: str = "",
    rule: str = "paper",
    iou_threshold: float = 0.5,
    connectivity: int = 26,
    size_strata_mm: Sequence[float] = (),
    diameters: bool = False,
) -> ScanEvaluation:
    """Evaluate one predicted label map against its reference.

    Parameters
    ----------
    reference, prediction
        Label arrays ``(z, y, x)`` with values in {0, 1, 2} on the same grid. ``prediction=None`` means the
        prediction is missing: it is evaluated as an empty map (every reference lesion a FN) and flagged.
    spacing_xyz
        Voxel spacing in mm (SimpleITK order), for volumes and diameters.
    rule, iou_threshold
        Matching rule (``paper`` or ``lits``) and the LiTS IoU threshold.
    connectivity
        cc3d connectivity for lesions (6, 18, 26).
    size_strata_mm
        Diameter cut points (mm) for size strata of lesions, e.g. ``(10,)``; adds per-stratum counts to ``row``.
    diameters
        Compute each lesion's longest axial diameter even without strata.

    Returns
    -------
    ScanEvaluation
        ``row`` holds :data:`PER_SCAN_COLUMNS` (plus ``n_ref_<stratum>``, ``tp_<stratum>``, ``n_pred_<stratum>``,
        ``fp_<stratum>`` with strata); ``lesions`` one row per reference and predicted lesion.
    """
    missing = prediction is None
    if prediction is None:
        prediction = np.zeros(reference.shape, dtype=np.uint8)
    if reference.shape != prediction.shape:
        raise ValueError(f"{series_id}: shape mismatch {reference.shape} vs {prediction.shape}")
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    ref_comps = label_components(reference == LESION_VALUE, connectivity)
    pred_comps = label_components(prediction == LESION_VALUE, connectivity)
    overlap = component_overlaps(ref_comps, pred_comps)
    result = match(overlap, ref_comps.voxel_counts, pred_comps.voxel_counts, rule, iou_threshold)
    row: dict[str, Any] = {
        "series_id": series_id,
        **_overlap_counts(reference, prediction, ref_comps, pred_comps, overlap, result, voxel_ml),
        "missing_prediction": missing,
        "rule": rule,
        "iou_threshold": iou_threshold if rule == "lits" else float("nan"),
        "connectivity": connectivity,
    }
    need_diameters = diameters or bool(size_strata_mm)
    spacing3 = (float(spacing_xyz[0]), float(spacing_xyz[1]), float(spacing_xyz[2]))
    ref_diam = longest_axial_diameters(ref_comps, spacing3) if need_diameters else None
    pred_diam = longest_axial_diameters(pred_comps, spacing3) if need_diameters else None
    ref_frame = _lesion_frame("reference", ref_comps, result.ref_detected, result.ref_group, voxel_ml, ref_diam,
                              size_strata_mm)
    pred_frame = _lesion_frame("prediction", pred_comps, result.pred_correct, result.pred_group, voxel_ml,
                               pred_diam, size_strata_mm)
    row.update(_stratum_counts(ref_frame, pred_frame, result, size_strata_mm))
    lesions = pd.concat([ref_frame, pred_frame], ignore_index=True)
    lesions.insert(0, "series_id", series_id)
    return ScanEvaluation(series_id, row, result, lesions, _figure_slice(reference, prediction, ref_comps, pred_comps))


def _overlap_counts(
    reference: np.ndarray,
    prediction: np.ndarray,
    ref_comps: LesionComponents,
    pred_comps: LesionComponents,
    overlap: np.ndarray,
    result: MatchResult,
    voxel_ml: float,
) -> dict[str, Any]:
    """Liver and lesion Dice, detection counts, voxel counts and lesion volumes of one scan pair (row columns)."""
    ref_liver = int(np.count_nonzero(reference))
    pred_liver = int(np.count_nonzero(prediction))
    liver_inter = int(np.count_nonzero(np.logical_and(reference, prediction)))
    ref_voxels = int(ref_comps.voxel_counts.sum())
    pred_voxels = int(pred_comps.voxel_counts.sum())
    lesion_inter = int(overlap.sum())
    return {
        "dice_liver": dice_from_counts(liver_inter, ref_liver, pred_liver),
        "dice_lesion": dice_from_counts(lesion_inter, ref_voxels, pred_voxels),
        "lesion_both_empty": ref_voxels == 0 and pred_voxels == 0,
        **result.counts(),
        "sensitivity": result.sensitivity,
        "ppv": result.ppv,
        "ref_lesion_voxels": ref_voxels,
        "pred_lesion_voxels": pred_voxels,
        "lesion_intersection_voxels": lesion_inter,
        "ref_liver_voxels": ref_liver,
        "pred_liver_voxels": pred_liver,
        "liver_intersection_voxels": liver_inter,
        "ref_lesion_volume_ml": ref_voxels * voxel_ml,
        "pred_lesion_volume_ml": pred_voxels * voxel_ml,
    }


def _stratum_counts(
    ref_frame: pd.DataFrame, pred_frame: pd.DataFrame, result: MatchResult, size_strata_mm: Sequence[float]
) -> dict[str, int]:
    """``n_ref_<stratum>``, ``tp_<stratum>``, ``n_pred_<stratum>``, ``fp_<stratum>`` for every size stratum."""
    counts: dict[str, int] = {}
    for name in stratum_names(size_strata_mm):
        in_ref = (ref_frame["stratum"] == name).to_numpy()
        in_pred = (pred_frame["stratum"] == name).to_numpy()
        counts[f"n_ref_{name}"] = int(in_ref.sum())
        counts[f"tp_{name}"] = int((in_ref & result.ref_detected).sum())
        counts[f"n_pred_{name}"] = int(in_pred.sum())
        counts[f"fp_{name}"] = int((in_pred & ~result.pred_correct).sum())
    return counts


def _figure_slice(reference: np.ndarray, prediction: np.ndarray, ref_comps: LesionComponents,
                  pred_comps: LesionComponents) -> int | None:
    """Axial slice through the largest reference lesion (else largest predicted lesion, else most liver)."""
    for comps in (ref_comps, pred_comps):
        if comps.count:
            return int(round(comps.centroids_zyx[int(np.argmax(comps.voxel_counts)), 0]))
    liver_per_slice = np.count_nonzero(reference.reshape(reference.shape[0], -1), axis=1)
    if liver_per_slice.any():
        return int(np.argmax(liver_per_slice))
    return None
