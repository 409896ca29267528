"""Study-level bootstrap: every sample takes exactly one series per study, vectorised over samples.

The paper (notebook 4) draws, for each of 1000 samples and each study in sorted order, one series with
``np.random.choice(series, size=1, replace=False)`` after ``np.random.seed(822)``. :func:`study_bootstrap_indices`
with ``draw="paper"`` consumes the legacy generator in exactly that order (``choice(..., replace=False)`` is
``permutation(n)[:1]`` in numpy's legacy RandomState), so it selects the same series; ``draw="fast"`` uses one
vectorised call of a ``numpy.random.Generator`` instead. Metrics are then computed on index arrays, never by
filtering a DataFrame per sample.

Examples
--------
>>> import numpy as np
>>> idx = study_bootstrap_indices(np.array(["a", "a", "b", "c", "c"]), n_boot=3, seed=1)
>>> idx.shape
(3, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from livermets.errors import UserInputError
from livermets.phenotype.metrics import METRICS, metrics_matrix

PAPER_SEED = 822
PAPER_N_BOOT = 1000


def study_bootstrap_indices(
    studies: ArrayLike, n_boot: int = PAPER_N_BOOT, seed: int = PAPER_SEED, draw: str = "paper"
) -> NDArray[np.intp]:
    """Row indices of ``n_boot`` samples, each holding one series per study: shape ``(n_boot, n_studies)``.

    Parameters
    ----------
    studies
        Study id of every row (series); rows of one study are candidates in their table order.
    n_boot, seed
        Number of samples and the seed.
    draw
        ``"paper"`` (legacy ``np.random.seed`` stream, the notebook's drawing order) or ``"fast"``
        (``numpy.random.default_rng``, fully vectorised).
    """
    study_ids = np.asarray(studies)
    if study_ids.size == 0:
        raise UserInputError("bootstrap: no rows to sample")
    if n_boot < 1:
        raise UserInputError(f"bootstrap: n_boot must be >= 1, got {n_boot}")
    unique, inverse = np.unique(study_ids, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if draw == "paper":
        state = np.random.RandomState(seed)
        offsets = np.empty((n_boot, unique.size), dtype=np.intp)
        sizes = counts.tolist()
        for sample in range(n_boot):
            row = offsets[sample]
            for study, size in enumerate(sizes):
                row[study] = state.permutation(size)[0]
    elif draw == "fast":
        rng = np.random.default_rng(seed)
        offsets = (rng.random((n_boot, unique.size)) * counts).astype(np.intp)
    else:
        raise UserInputError(f"bootstrap: unknown draw {draw!r} (use 'paper' or 'fast')")
    return order[starts + offsets]


def cluster_bootstrap_indices(clusters: ArrayLike, n_boot: int, seed: int) -> list[NDArray[np.intp]]:
    """Patient-level (cluster) bootstrap: resample clusters with replacement, keep all their rows.

    Returns one index array per sample (lengths differ with cluster sizes).
    """
    cluster_ids = np.asarray(clusters)
    unique, inverse = np.unique(cluster_ids, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(unique.size)]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, unique.size, size=(n_boot, unique.size))
    return [np.concatenate([members[k] for k in row]) for row in draws]


@dataclass
class BootstrapResult:
    """Per-sample metric values and their summary (nanmean, 2.5/97.5 nanquantiles, NaN counts)."""

    samples: dict[str, NDArray[np.float64]]
    n_boot: int
    undefined: dict[str, int] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """One row per metric: ``metric, mean, low95, high95, n_undefined``."""
        rows = []
        for name in METRICS:
            values = self.samples[name]
            finite = values[~np.isnan(values)]
            if finite.size:
                low, high = (float(q) for q in np.quantile(finite, [0.025, 0.975]))
                mean = float(finite.mean())
            else:
                mean = low = high = float("nan")
            rows.append(
                {"metric": name, "mean": mean, "low95": low, "high95": high, "n_undefined": int(np.isnan(values).sum())}
            )
        return pd.DataFrame(rows)


def bootstrap_metrics(
    truth: ArrayLike, predicted: ArrayLike, probability: ArrayLike, indices: NDArray[np.intp]
) -> BootstrapResult:
    """Metrics on every bootstrap sample given by the rows of ``indices`` (``(n_boot, n_per_sample)``)."""
    y = np.asarray(truth)
    c = np.asarray(predicted)
    p = np.asarray(probability, dtype=float)
    samples = metrics_matrix(y[indices], c[indices], p[indices])
    undefined = {name: int(np.isnan(values).sum()) for name, values in samples.items()}
    return BootstrapResult(samples=samples, n_boot=int(indices.shape[0]), undefined=undefined)
