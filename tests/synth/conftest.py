"""Fixtures for the synth tests: one small cohort per session (tiny grid, generated once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from livermets.synth.cohort import CohortConfig, generate_cohort

TINY_PATIENTS = 5
TINY_SEED = 11


@pytest.fixture(scope="session")
def tiny_config() -> CohortConfig:
    return CohortConfig(patients=TINY_PATIENTS, seed=TINY_SEED, size="tiny")


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory, tiny_config: CohortConfig) -> Path:
    """A 5-patient tiny cohort (about 20 series), generated with one worker."""
    out = tmp_path_factory.mktemp("synth") / "cohort"
    generate_cohort(out, tiny_config, workers=1)
    return out
