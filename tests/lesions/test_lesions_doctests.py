"""The docstring examples of the lesions package run and give the documented results."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["components", "overlap", "matching", "dice", "scan_metrics", "cohort_metrics", "figures"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"livermets.lesions.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
