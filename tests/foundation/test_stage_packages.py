"""Every stage package re-exports its public API in ``__all__``, imported on first use (PEP 562).

Importing a stage package must stay light (``livermets --help`` imports every stage's CLI): no torch, scikit-learn
or SimpleITK until a name is used.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types

import pytest

STAGES = ("analyze", "cohort", "imaging", "synth", "lesions", "radiomics", "phenotype", "stats", "reproduce",
          "segmentation", "segmentation.nnunet")
HEAVY = ("torch", "sklearn", "SimpleITK")


@pytest.mark.parametrize("stage", STAGES)
def test_every_public_name_resolves(stage):
    package = importlib.import_module(f"livermets.{stage}")
    names = package.__all__
    assert names and list(names) == sorted(set(names)), f"livermets.{stage}.__all__ must be sorted, without repeats"
    for name in names:
        value = getattr(package, name)
        assert not isinstance(value, types.ModuleType), f"livermets.{stage}.{name} is a submodule, not an API name"
        assert getattr(value, "__name__", name) == name or not callable(value), f"livermets.{stage}.{name}"
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        package.not_a_name  # noqa: B018


def test_importing_the_stage_packages_imports_no_heavy_library():
    code = (
        "import importlib, json, sys\n"
        f"for stage in {STAGES!r}:\n"
        "    importlib.import_module('livermets.' + stage)\n"
        f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
