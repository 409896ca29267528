"""Calibrate a model folder's lesion probability threshold on its validation scans (after training, or again later).

Training with ``train.calibrate_lesion_threshold`` calibrates at every validation epoch (from the same pass as the
validation Dice) and saves the calibration of the best epoch with :func:`save_calibration`; ``livermets seg
calibrate`` (:func:`calibrate_model`) does the same for a trained model, optionally by another
``train.calibration_metric``, without retraining. Both write ``lesion_threshold.csv`` (one row per threshold, see
:func:`livermets.segmentation.monai.validation.validate`) and set ``inference.lesion_threshold`` in
``config.yaml``, each file atomically.

Examples
--------
>>> from livermets.segmentation.monai.calibrate import calibrate_model
>>> threshold, table = calibrate_model("models/unet", "cohort/manifest.csv", metric="lesion_f1")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from monai.data import DataLoader, Dataset

from livermets.atomic import write_csv
from livermets.cohort.manifest import load_manifest
from livermets.errors import UserInputError
from livermets.segmentation.checks import training_frames
from livermets.segmentation.config import SegConfig, load_config, save_config
from livermets.segmentation.device import mixed_precision, resolve_device
from livermets.segmentation.model_files import CONFIG_FILE, THRESHOLD_FILE, WEIGHTS_FILE
from livermets.segmentation.monai.networks import build_network, load_weights
from livermets.segmentation.monai.transforms import IMAGE, LABEL, eval_transforms
from livermets.segmentation.monai.validation import THRESHOLDS, Validation, validate

log = logging.getLogger(__name__)

_SHOWN = ["mean_val_lesion_dice", "sensitivity", "ppv", "f1"]


def save_calibration(model_dir: Path, cfg: SegConfig, result: Validation) -> None:
    """Write ``result``'s table to ``lesion_threshold.csv`` and its threshold into ``config.yaml`` (each atomically)."""
    assert result.table is not None and result.chosen is not None
    write_csv(model_dir / THRESHOLD_FILE, result.table)
    cfg.inference.lesion_threshold = result.threshold
    save_config(cfg, model_dir / CONFIG_FILE)
    log.info("lesion threshold %s by %s: validation lesion Dice %.3f, sensitivity %.3f, PPV %.3f, F1 %.3f "
             "(argmax: %.3f, %.3f, %.3f, %.3f); table in %s",
             "argmax" if result.threshold is None else result.threshold, cfg.train.calibration_metric,
             *result.chosen[_SHOWN], *result.table.iloc[0][_SHOWN], THRESHOLD_FILE)


def calibrate_model(
    model_dir: str | Path, manifest: str | Path, metric: str | None = None, device: str = "auto"
) -> tuple[float | None, pd.DataFrame]:
    """Calibrate a trained model folder on the validation rows of ``manifest`` (as training chose them).

    Parameters
    ----------
    model_dir
        Folder written by ``livermets seg train``.
    manifest
        Manifest with ``image``, ``label`` and ``split``; the ``val`` rows (or, without them, the same
        patient-grouped share of ``train`` that training held out, from the saved seed and ``val_fraction``).
    metric
        ``lesion_dice`` or ``lesion_f1``; ``None`` keeps the saved ``train.calibration_metric``. The choice is saved.
    device
        ``auto``, ``cpu`` or ``cuda``.

    Returns
    -------
    tuple
        The threshold (``None``: argmax) and the per-threshold table written to ``lesion_threshold.csv``.
    """
    model_dir = Path(model_dir)
    if not (model_dir / WEIGHTS_FILE).is_file():
        raise UserInputError(f"{model_dir}: no {WEIGHTS_FILE}; train the model first (livermets seg train)")
    overrides = {"train.calibration_metric": metric} if metric is not None else {}
    cfg = load_config(model_dir / CONFIG_FILE, **overrides)
    _, val_frame = training_frames(load_manifest(manifest), cfg.train.val_fraction, cfg.train.seed, str(manifest))
    files = [{IMAGE: str(r.image), LABEL: str(r.label)} for r in val_frame.itertuples()]
    loader = DataLoader(Dataset(files, eval_transforms(cfg, with_label=True)), batch_size=1)
    torch_device = resolve_device(device)
    network = build_network(cfg).to(torch_device)
    load_weights(network, model_dir / WEIGHTS_FILE)
    result = validate(network, loader, cfg, torch_device, mixed_precision(torch_device, cfg.train.amp), THRESHOLDS)
    save_calibration(model_dir, cfg, result)
    assert result.table is not None
    return result.threshold, result.table
