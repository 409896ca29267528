"""docs/api.md is what scripts/api_reference.py renders from the stage packages' docstrings (regenerate it after a
change), and every public name has a docstring."""

from __future__ import annotations

from reference_pages import REPO, assert_page_up_to_date, load_script


def test_api_reference_is_up_to_date():
    assert_page_up_to_date("api_reference", "api.md")


def test_every_public_name_has_a_docstring():
    missing = load_script("api_reference").missing_docstrings()
    assert not missing, ("public names without a docstring (a constant's is the string under its assignment): "
                         + ", ".join(missing))


def test_every_stage_package_is_documented():
    stages = load_script("api_reference").stages()
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
