"""Validation: per-scan Dice on the network grid and the lesion-threshold calibration, from one pass.

:func:`validate` runs :func:`~livermets.segmentation.monai.networks.sliding_window_logits` (as prediction does) over the
validation loader (deterministic preprocessing, labels resampled with the image) once per scan; training calls it at
every validation epoch, ``livermets seg calibrate`` once on a trained model.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from monai.data import DataLoader
from monai.metrics import DiceMetric
from monai.transforms import AsDiscrete

from livermets.lesions.components import LesionComponents, label_components
from livermets.lesions.dice import dice
from livermets.lesions.matching import match_paper
from livermets.lesions.overlap import component_overlaps
from livermets.segmentation.config import CLASS_NAMES, SegConfig
from livermets.segmentation.monai.networks import sliding_window_logits
from livermets.segmentation.monai.transforms import IMAGE, LABEL
from livermets.segmentation.postprocess import LESION, labels_from_probabilities, postprocess_label

log = logging.getLogger(__name__)

#: Lesion thresholds tried by the calibration; ``None`` is the argmax.
THRESHOLDS: tuple[float | None, ...] = (None, 0.7, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1)


def _logits(network: torch.nn.Module, image: torch.Tensor, config: SegConfig, amp: bool) -> torch.Tensor:
    """Float32 logits, with only the network under autocast: an uncached loader preprocesses each scan while it is
    being iterated, and MONAI's resampling under CPU autocast runs in bfloat16 (labels and even grid sizes change).
    """
    with torch.no_grad(), torch.autocast(image.device.type, enabled=amp):
        return sliding_window_logits(network, image, config).float()


def _probabilities(
    network: torch.nn.Module, loader: DataLoader, config: SegConfig, device: torch.device, amp: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(softmax (3, x, y, z), label (x, y, z)) per validation scan."""
    network.eval()
    for batch in loader:
        probs = torch.softmax(_logits(network, batch[IMAGE].to(device), config, amp), dim=1).cpu().numpy()
        labels = batch[LABEL].cpu().numpy()
        for p, t in zip(probs, labels, strict=True):
            yield p, t[0]


def _detection_counts(predicted: np.ndarray, reference: LesionComponents) -> tuple[int, int, int]:
    """(reference lesions, detected reference lesions, false-positive predicted lesions) by the any-overlap rule."""
    result = match_paper(component_overlaps(reference, label_components(predicted)))
    return result.n_ref, result.tp, result.fp


@dataclass(frozen=True)
class Validation:
    """One pass over the validation scans.

    ``liver_dice`` and ``lesion_dice`` are mean per-scan Dice of the argmax on the network grid (MONAI
    ``DiceMetric``, no post-processing; scans without lesions leave lesion out). With thresholds, ``table`` has one
    row per threshold (see :func:`validate`) and ``threshold`` is the one with the best
    ``train.calibration_metric`` (``None``: argmax).
    """

    liver_dice: float
    lesion_dice: float
    table: pd.DataFrame | None = None
    threshold: float | None = None
    chosen_row: int = 0

    @property
    def chosen(self) -> pd.Series | None:
        """The table row of ``threshold``."""
        return None if self.table is None else self.table.iloc[self.chosen_row]

    @property
    def lesion_dice_at_threshold(self) -> float:
        """Mean validation lesion Dice after post-processing at ``threshold``: the model as prediction will use it
        (the argmax ``lesion_dice`` without a table)."""
        row = self.chosen
        return self.lesion_dice if row is None else float(row["mean_val_lesion_dice"])


def validate(
    network: torch.nn.Module, loader: DataLoader, config: SegConfig, device: torch.device, amp: bool,
    thresholds: tuple[float | None, ...] = (),
) -> Validation:
    """Argmax Dice and, with ``thresholds`` (e.g. :data:`THRESHOLDS`), the lesion-threshold calibration, from one
    sliding-window pass per validation scan.

    The table has one row per threshold:

    - ``mean_val_lesion_dice`` over the ``n_scans`` scans with lesions, after post-processing
      (:func:`~livermets.segmentation.postprocess.postprocess_label`) as prediction does;
    - ``n_ref``, ``tp``, ``fp``, ``sensitivity``, ``ppv``, ``f1`` and ``fp_per_scan``: lesion detection pooled over
      all ``n_val_scans`` validation scans, lesion-free ones included, with the paper's any-overlap rule
      (:func:`livermets.lesions.matching.match_paper`; connected components with 26-connectivity).

    ``lesion_dice`` chooses the best mean lesion Dice, ``lesion_f1`` the best F1 = 2 TP / (2 TP + FN + FP), which
    also counts false positives in lesion-free livers. Ties go to the earlier threshold in ``thresholds`` (with
    :data:`THRESHOLDS`: the argmax, then the higher threshold, fewer false positives). Without validation lesions the
    argmax is kept.
    """
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    to_pred = AsDiscrete(argmax=True, to_onehot=len(CLASS_NAMES))
    to_true = AsDiscrete(to_onehot=len(CLASS_NAMES))
    inference = config.inference
    spacing = config.preprocess.spacing_mm
    dice_scores: dict[float | None, list[float]] = {t: [] for t in thresholds}
    counts = np.zeros((len(thresholds), 3), dtype=np.int64)  # n_ref, tp, fp per threshold
    n_val_scans = 0
    for probs, truth in _probabilities(network, loader, config, device, amp):
        n_val_scans += 1
        metric(y_pred=[torch.as_tensor(to_pred(torch.from_numpy(probs)))],
               y=[torch.as_tensor(to_true(torch.from_numpy(truth)[None]))])
        if not thresholds:
            continue
        reference = truth == LESION
        reference_lesions = label_components(reference)
        for row, threshold in enumerate(thresholds):
            label = postprocess_label(labels_from_probabilities(probs, threshold), spacing, inference.largest_liver,
                                      inference.lesion_max_distance_mm)
            predicted = label == LESION
            counts[row] += _detection_counts(predicted, reference_lesions)
            if reference.any():
                dice_scores[threshold].append(dice(predicted, reference))
    aggregated = metric.aggregate()
    assert isinstance(aggregated, torch.Tensor)  # reduction="none" without get_not_nans returns one tensor
    scores = aggregated.float().cpu().numpy()  # (cases, [liver, lesion]); NaN where the truth is empty
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: no lesion in any validation scan
        liver, lesion = float(np.nanmean(scores[:, 0])), float(np.nanmean(scores[:, 1]))
    if not thresholds:
        return Validation(liver, lesion)
    n_ref, tp, fp = counts.T
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame({
            "threshold": ["argmax" if t is None else t for t in thresholds],
            "mean_val_lesion_dice": [float(np.mean(s)) if s else math.nan for s in dice_scores.values()],
            "n_scans": [len(s) for s in dice_scores.values()],
            "n_val_scans": n_val_scans, "n_ref": n_ref, "tp": tp, "fp": fp,
            "sensitivity": tp / n_ref, "ppv": tp / (tp + fp), "f1": 2 * tp / (tp + n_ref + fp),
            "fp_per_scan": fp / max(n_val_scans, 1),
        })
    best = _choose_threshold(table, thresholds, config.train.calibration_metric, config.train.max_fp_per_scan)
    return Validation(liver, lesion, table, thresholds[best], best)


def _choose_threshold(table: pd.DataFrame, thresholds: tuple[float | None, ...], metric: str,
                      max_fp_per_scan: float | None) -> int:
    """Row of the best ``metric`` among the thresholds with at most ``max_fp_per_scan`` false positives per scan.

    Without validation lesions the argmax is kept. When no threshold meets the false-positive limit, the one with the
    fewest false positives is kept and a warning says so (an absurd operating point is never chosen silently).
    """
    fp = table["fp_per_scan"].to_numpy(dtype=float)
    allowed = np.ones(len(table), bool) if max_fp_per_scan is None else fp <= max_fp_per_scan
    if not allowed.any():
        best = int(np.argmin(fp))
        log.warning("no lesion threshold keeps the validation false positives at or below %g per scan "
                    "(train.max_fp_per_scan); keeping %s with the fewest (%.1f per scan)", max_fp_per_scan,
                    table["threshold"].iloc[best], fp[best])
        return best
    if not table["n_ref"].iloc[0]:
        argmax = thresholds.index(None) if None in thresholds else 0
        return argmax if allowed[argmax] else int(np.flatnonzero(allowed)[0])
    column = "f1" if metric == "lesion_f1" else "mean_val_lesion_dice"
    scores = np.where(allowed, table[column].to_numpy(dtype=float), np.nan)
    if np.isnan(scores).all():
        return int(np.flatnonzero(allowed)[0])
    return int(np.nanargmax(scores))  # first maximum: argmax, then higher thresholds
