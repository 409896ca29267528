"""Study-level tumour burden: how many liver lesions, how large, which enhancement pattern.

Drawn without any anatomy or grid, so the NE-score model (:mod:`livermets.synth.nescore`) can be evaluated for
thousands of studies without rendering. Lesion positions are chosen later, inside each patient's liver.

Default numbers follow the paper's cohort (Table 1: lesions per scan median 10, range 1-148; about a quarter of scans
without hepatic lesions) and the task's 3-60 mm size range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("hypo", "rim", "hyper")


@dataclass(frozen=True)
class BurdenModel:
    """Parameters of the lesion count/size/kind distribution (per study).

    Counts: 0 with probability ``p_no_lesion``, else round(lognormal(log(count_median), count_sigma)) clipped to
    1..``max_count``. Diameters (equivalent-sphere, mm): lognormal(log(diameter_median_mm), diameter_sigma) clipped to
    ``diameter_range_mm``; with probability ``p_dominant`` the first lesion is a dominant one, uniform 25-60 mm.
    """

    p_no_lesion: float = 0.15
    count_median: float = 10.0
    count_sigma: float = 1.0
    max_count: int = 150
    diameter_median_mm: float = 9.0
    diameter_sigma: float = 0.55
    diameter_range_mm: tuple[float, float] = (3.0, 60.0)
    p_dominant: float = 0.35
    dominant_range_mm: tuple[float, float] = (25.0, 60.0)
    kind_probabilities: tuple[float, float, float] = (0.70, 0.15, 0.15)  # hypo, rim, hyper


@dataclass(frozen=True)
class LesionDraw:
    """Lesions of one study before placement: diameters (mm), axis ratios (n, 3; geometric mean 1), kinds."""

    diameters_mm: np.ndarray
    axis_ratios: np.ndarray
    kinds: np.ndarray  # indices into KINDS

    @property
    def count(self) -> int:
        return int(self.diameters_mm.size)

    @property
    def volume_ml(self) -> float:
        """Model tumour burden: sum of the ellipsoid volumes (pi/6 d^3), in ml."""
        return float(np.sum(np.pi / 6.0 * self.diameters_mm.astype(np.float64) ** 3) / 1000.0)


def sample_counts(rng: np.random.Generator, n: int, model: BurdenModel) -> np.ndarray:
    """Lesion counts of ``n`` studies."""
    present = rng.random(n) >= model.p_no_lesion
    raw = np.rint(rng.lognormal(np.log(model.count_median), model.count_sigma, n))
    return np.where(present, np.clip(raw, 1, model.max_count), 0).astype(np.int64)


def sample_diameters(rng: np.random.Generator, counts: np.ndarray, model: BurdenModel) -> np.ndarray:
    """Concatenated diameters (mm) for studies with ``counts`` lesions each."""
    total = int(counts.sum())
    low, high = model.diameter_range_mm
    diameters = np.clip(rng.lognormal(np.log(model.diameter_median_mm), model.diameter_sigma, total), low, high)
    dominant = rng.random(counts.size) < model.p_dominant
    dominant_size = rng.uniform(*model.dominant_range_mm, counts.size)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = dominant & (counts > 0)
    diameters[starts[has]] = dominant_size[has]
    return diameters


def sample_lesions(rng: np.random.Generator, model: BurdenModel | None = None) -> LesionDraw:
    """Draw the lesions of one study.

    Examples
    --------
    >>> draw = sample_lesions(np.random.default_rng(0))
    >>> draw.count >= 0 and bool(np.all((draw.diameters_mm >= 3) & (draw.diameters_mm <= 60)))
    True
    """
    model = model or BurdenModel()
    counts = sample_counts(rng, 1, model)
    diameters = sample_diameters(rng, counts, model)
    n = diameters.size
    log_ratios = rng.normal(0.0, 0.18, (n, 3))
    ratios = np.exp(log_ratios - log_ratios.mean(axis=1, keepdims=True))
    kinds = rng.choice(len(KINDS), size=n, p=np.asarray(model.kind_probabilities))
    return LesionDraw(diameters, ratios, kinds)


def sample_volumes(rng: np.random.Generator, n: int, model: BurdenModel | None = None) -> np.ndarray:
    """Model burdens (ml) of ``n`` independent studies, vectorised (same distribution as :func:`sample_lesions`)."""
    model = model or BurdenModel()
    counts = sample_counts(rng, n, model)
    diameters = sample_diameters(rng, counts, model)
    volumes = np.zeros(n)
    owners = np.repeat(np.arange(n), counts)
    np.add.at(volumes, owners, np.pi / 6.0 * diameters**3 / 1000.0)
    return volumes
