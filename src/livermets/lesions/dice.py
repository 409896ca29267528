"""Dice coefficients with explicit conventions for empty masks.

``dice = 2 |P & R| / (|P| + |R|)``. When both masks are empty the scan is *trivially perfect*: Dice is 1.0 and the
scan is flagged (``both_empty``) so that cohort summaries can count it separately instead of letting it inflate a
median. When only one mask is empty the Dice is 0.0.

Examples
--------
>>> dice_from_counts(intersection=30, size_a=40, size_b=50)
0.6666666666666666
>>> dice_from_counts(0, 0, 0)
1.0
"""

from __future__ import annotations

import numpy as np


def dice_from_counts(intersection: int | float, size_a: int | float, size_b: int | float) -> float:
    """Dice from voxel counts; 1.0 when both masks are empty."""
    total = float(size_a) + float(size_b)
    return 1.0 if total == 0 else 2.0 * float(intersection) / total


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary masks of the same shape (1.0 if both are empty)."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    return dice_from_counts(int(np.count_nonzero(a & b)), int(np.count_nonzero(a)), int(np.count_nonzero(b)))
