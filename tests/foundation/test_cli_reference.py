"""docs/cli.md is what scripts/cli_reference.py renders from the command-line app (regenerate it after a change)."""

from __future__ import annotations

from reference_pages import REPO, assert_page_up_to_date


def test_cli_reference_is_up_to_date():
    assert_page_up_to_date("cli_reference", "cli.md")


def test_cli_reference_covers_every_command_and_option():
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for heading in ("## livermets phenotype evaluate", "## livermets reproduce paper", "## livermets seg predict"):
        assert heading in text
    assert "--protocol <str>" in text.split("## livermets phenotype evaluate")[1].split("## ")[0]
