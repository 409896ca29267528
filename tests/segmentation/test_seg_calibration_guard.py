"""The lesion-threshold calibration never accepts more false positives per validation scan than the limit."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from livermets.segmentation.monai.validation import _choose_threshold

THRESHOLDS = (None, 0.5, 0.3, 0.1)


def _table(dice: list[float], fp_per_scan: list[float], n_ref: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"threshold": ["argmax", 0.5, 0.3, 0.1], "mean_val_lesion_dice": dice,
                         "f1": dice, "n_ref": n_ref, "fp_per_scan": fp_per_scan})


def test_best_dice_among_thresholds_under_the_limit() -> None:
    table = _table([0.40, 0.45, 0.60, 0.70], [0.5, 1.0, 4.0, 40.0])
    assert _choose_threshold(table, THRESHOLDS, "lesion_dice", 5.0) == 2  # 0.1 has the best Dice but 40 FP/scan
    assert _choose_threshold(table, THRESHOLDS, "lesion_dice", 1.0) == 1
    assert _choose_threshold(table, THRESHOLDS, "lesion_dice", None) == 3  # no limit: plain best Dice


def test_no_threshold_under_the_limit_warns_and_keeps_the_fewest(caplog: pytest.LogCaptureFixture) -> None:
    table = _table([0.40, 0.45, 0.60, 0.70], [9598.0, 300.0, 800.0, 2000.0])
    with caplog.at_level(logging.WARNING):
        assert _choose_threshold(table, THRESHOLDS, "lesion_dice", 5.0) == 1
    assert "no lesion threshold keeps" in caplog.text and "300.0 per scan" in caplog.text


def test_without_validation_lesions_the_argmax_is_kept_if_allowed() -> None:
    table = _table([np.nan] * 4, [0.0, 0.0, 1.0, 3.0], n_ref=0)
    assert _choose_threshold(table, THRESHOLDS, "lesion_dice", 5.0) == 0


def test_the_limit_is_part_of_the_config() -> None:
    from livermets.errors import UserInputError
    from livermets.segmentation.config import load_config

    assert load_config("cpu").train.max_fp_per_scan == 5.0
    assert load_config("default").train.max_fp_per_scan == 3.0
    with pytest.raises(UserInputError, match="max_fp_per_scan"):
        load_config("cpu", **{"train.max_fp_per_scan": -1})
