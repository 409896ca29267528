"""docs/api.md is what scripts/api_reference.py renders from the stage packages' docstrings (regenerate it after a
change), and every public name has a docstring."""

from __future__ import annotations

import difflib
import functools
import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
REGENERATE = ".venv/bin/python scripts/api_reference.py"


@functools.cache
def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_reference", REPO / "scripts" / "api_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_up_to_date():
    expected = _script().render()
    current = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(current.splitlines(True), expected.splitlines(True), "docs/api.md",
                                        "rendered", n=1))
    assert current == expected, f"docs/api.md is out of date: run {REGENERATE}\n{diff}"


def test_every_public_name_has_a_docstring():
    missing = _script().missing_docstrings()
    assert not missing, ("public names without a docstring (a constant's is the string under its assignment): "
                         + ", ".join(missing))


def test_every_stage_package_is_documented():
    stages = _script().stages()
    expected = ("cohort", "imaging", "synth", "segmentation.nnunet", "lesions", "radiomics", "phenotype", "stats",
                "reproduce", "analyze")
    assert set(expected) <= set(stages) and "cohort.importers" not in stages, stages


def test_api_reference_renders_sections_signatures_and_examples():
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    for heading in ("## `livermets.cohort`", "### `livermets.phenotype.evaluate_to_folder`",
                    "### `livermets.segmentation.nnunet.NnunetSegmenter`", "#### `Analyzer.analyze`"):
        assert heading in text
    section = text.split("### `livermets.imaging.read_image`")[1].split("\n### ")[0]
    assert "read_image(path: str | Path, series_uid: str | None = None) -> sitk.Image" in section
    assert "**Raises**" in section and "- `UserInputError` — " in section
    assert "```python\n>>> img = read_image(\"ct.nii.gz\")\n" in section
    assert " at 0x" not in text and str(REPO) not in text
