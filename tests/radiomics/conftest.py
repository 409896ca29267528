"""Fixtures of the radiomics tests."""

from radiomics_synthetic import small_cohort

__all__ = ["small_cohort"]
