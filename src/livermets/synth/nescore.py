"""Synthetic NE scores linked to tumour burden through a Gaussian copula.

For each study a latent normal ``u = r * z_b + sqrt(1 - r^2) * e`` is formed from ``z_b``, the normal score of the
study's model tumour burden (probability integral transform against a fixed reference sample of the burden model,
randomised within ties such as "no lesion"), and noise ``e`` that is partly shared by the studies of one patient.
``r = 2 sin(pi * rho_s / 6)`` turns the requested Spearman correlation ``rho_s`` (``--burden-link``, default 0.25 as in
the paper's Figure 3) into the Pearson correlation of the latent normals, so Spearman(burden, score) equals ``rho_s``
in expectation. The score is ``2 Phi(scale * (u - t)) - 1`` in (-1, 1) with ``t = Phi^-1(1 - positive_fraction)``;
hence ``ne_class = score > 0`` is positive with probability ``positive_fraction`` (default 0.75, the paper's ~3:1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

from livermets.errors import ParameterError, UserInputError
from livermets.synth.burden import BurdenModel, sample_volumes

REFERENCE_SIZE = 20000
REFERENCE_SEED = 20250101


@dataclass(frozen=True)
class NEScoreModel:
    """Parameters: target Spearman ``burden_link``, ``positive_fraction``, patient-shared noise fraction, scale."""

    burden_link: float = 0.25
    positive_fraction: float = 0.75
    patient_share: float = 0.5
    scale: float = 0.3

    def __post_init__(self) -> None:
        if not -1.0 <= self.burden_link <= 1.0:
            raise ParameterError("{burden_link} {value} must lie in [-1, 1] (a Spearman correlation)",
                                 value=self.burden_link)
        if not 0.0 < self.positive_fraction < 1.0:
            raise UserInputError(f"positive fraction {self.positive_fraction} must lie strictly between 0 and 1")

    @property
    def latent_correlation(self) -> float:
        """Pearson correlation of the latent normals giving Spearman ``burden_link``."""
        return float(2.0 * np.sin(np.pi * self.burden_link / 6.0))

    @property
    def threshold(self) -> float:
        return float(stats.norm.ppf(1.0 - self.positive_fraction))


@lru_cache(maxsize=8)
def reference_volumes(model: BurdenModel) -> np.ndarray:
    """Sorted model burdens (ml) of a fixed-seed reference sample: the marginal CDF used for the copula."""
    return np.sort(sample_volumes(np.random.default_rng(REFERENCE_SEED), REFERENCE_SIZE, model))


def burden_normal_score(volume_ml: float, uniform: float, model: BurdenModel) -> float:
    """Normal score of a burden: Phi^-1 of its reference CDF value, randomised by ``uniform`` within ties."""
    reference = reference_volumes(model)
    n = reference.size
    low = int(np.searchsorted(reference, volume_ml, side="left"))
    high = int(np.searchsorted(reference, volume_ml, side="right"))
    position = (low + uniform * max(high - low, 1)) / n
    return float(stats.norm.ppf(np.clip(position, 0.5 / n, 1.0 - 0.5 / n)))


def ne_score(z_burden: float, patient_noise: float, study_noise: float, model: NEScoreModel) -> tuple[float, float]:
    """(score in (-1, 1), latent u) for a study from its burden normal score and two standard-normal noises."""
    r = model.latent_correlation
    noise = np.sqrt(model.patient_share) * patient_noise + np.sqrt(1.0 - model.patient_share) * study_noise
    latent = r * z_burden + np.sqrt(1.0 - r * r) * noise
    score = 2.0 * stats.norm.cdf(model.scale * (latent - model.threshold)) - 1.0
    return float(score), float(latent)


def simulate_scores(n_studies: int, seed: int, model: NEScoreModel | None = None,
                    burden: BurdenModel | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(burdens ml, scores) of ``n_studies`` independent single-study patients, without rendering any image.

    Examples
    --------
    >>> volumes, scores = simulate_scores(2000, seed=1)
    >>> 0.65 < float(np.mean(scores > 0)) < 0.85
    True
    """
    model = model or NEScoreModel()
    burden = burden or BurdenModel()
    rng = np.random.default_rng(seed)
    volumes = sample_volumes(rng, n_studies, burden)
    uniforms, patient, study = rng.random(n_studies), rng.standard_normal(n_studies), rng.standard_normal(n_studies)
    scores = np.array([ne_score(burden_normal_score(v, u, burden), p, s, model)[0]
                       for v, u, p, s in zip(volumes, uniforms, patient, study, strict=True)])
    return volumes, scores
