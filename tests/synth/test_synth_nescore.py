"""NE score model: Spearman(tumour burden, score) matches --burden-link within 3 standard errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from livermets.errors import UserInputError
from livermets.synth.nescore import NEScoreModel, simulate_scores

N_STUDIES = 4000


def _spearman_se(rho: float, n: int) -> float:
    # Bonett & Wright (2000): var(atanh r_s) ~ (1 + r^2 / 2) / (n - 3); delta method back to r_s.
    return float((1 - rho**2) * np.sqrt((1 + rho**2 / 2) / (n - 3)))


@pytest.mark.parametrize(("target", "seed"), [(0.25, 1), (0.0, 2), (0.6, 3), (-0.3, 4)])
def test_spearman_matches_burden_link(target: float, seed: int) -> None:
    volumes, scores = simulate_scores(N_STUDIES, seed=seed, model=NEScoreModel(burden_link=target))
    rho = stats.spearmanr(volumes, scores).statistic
    assert abs(rho - target) < 3 * _spearman_se(target, N_STUDIES)


def test_scores_lie_in_range_and_classes_are_three_to_one() -> None:
    _, scores = simulate_scores(N_STUDIES, seed=5)
    assert np.all((scores > -1) & (scores < 1))
    positive = float(np.mean(scores > 0))
    assert abs(positive - 0.75) < 3 * np.sqrt(0.75 * 0.25 / N_STUDIES)


def test_bad_burden_link_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="^burden_link 1.5 must lie in"):
        NEScoreModel(burden_link=1.5)
