"""Settings of the grouped protocol and the classifier names, checked without scikit-learn (the command line
validates its options before it reads a table or loads a numerical library)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livermets.errors import ParameterError, UserInputError

MODEL_NAMES: tuple[str, ...] = ("LR", "RF", "XGB")
"""Model short names as in the paper's tables."""


def check_model_name(name: str) -> str:
    """Return the canonical model name or raise a one-line UserInputError."""
    canonical = name.strip().upper()
    if canonical not in MODEL_NAMES:
        raise UserInputError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return canonical


@dataclass(frozen=True)
class GroupedConfig:
    """Settings of the grouped protocol (defaults are the documented protocol), validated when created.

    Parameters
    ----------
    model
        ``LR``, ``RF`` or ``XGB`` (any case; stored in upper case).
    n_splits, inner_splits
        Outer and inner patient-grouped folds (>= 2).
    n_repeats
        Repeats of the outer CV with different split seeds (>= 1).
    n_permutations
        Patient-level label permutations of the permutation test (>= 0; 0: no test).
    n_boot
        Patient-level bootstrap samples of the confidence intervals (>= 1).
    seed
        Seed of splits, permutations and bootstrap (>= 0).
    alphas, lr_cs
        Grids of LASSO alpha and LR's C for the inner CV (positive numbers).
    rf_trees
        Trees of the random forest (>= 1).
    n_jobs
        Parallel jobs (-1: all cores; not 0).

    Raises
    ------
    ParameterError
        A value out of its range, naming the parameter.

    Examples
    --------
    >>> GroupedConfig(model="lr", n_repeats=1).model
    'LR'
    >>> GroupedConfig(n_boot=0)
    Traceback (most recent call last):
    ...
    livermets.errors.ParameterError: n_boot 0: must be a whole number >= 1
    """

    model: str = "LR"
    n_splits: int = 5
    n_repeats: int = 5
    inner_splits: int = 3
    n_permutations: int = 200
    n_boot: int = 1000
    seed: int = 0
    alphas: tuple[float, ...] = (0.01, 0.02)
    lr_cs: tuple[float, ...] = (0.1, 1.0)
    rf_trees: int = 300
    n_jobs: int = -1

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "model", check_model_name(self.model))
        except UserInputError:
            raise ParameterError.about("model", "expected LR, RF or XGB", repr(self.model)) from None
        for name, low in (("n_splits", 2), ("inner_splits", 2), ("n_repeats", 1), ("n_permutations", 0),
                          ("n_boot", 1), ("seed", 0), ("rf_trees", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ParameterError.about(name, f"must be a whole number >= {low}", value)
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, (int, np.integer)) or self.n_jobs == 0:
            raise ParameterError.about("n_jobs", "must be a whole number other than 0 (-1: all cores)", self.n_jobs)
        for name in ("alphas", "lr_cs"):
            values = tuple(getattr(self, name))
            if not values or not all(isinstance(v, (int, float)) and 0 < v < np.inf for v in values):
                raise ParameterError.about(name, "must be one or more positive numbers", values)
            object.__setattr__(self, name, values)
