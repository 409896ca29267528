"""docs/cli.md is what scripts/cli_reference.py renders from the command-line app (regenerate it after a change)."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("cli_reference", REPO / "scripts" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date():
    expected = _script().render()
    current = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(current.splitlines(True), expected.splitlines(True), "docs/cli.md",
                                        "rendered", n=1))
    assert current == expected, f"docs/cli.md is out of date: run .venv/bin/python scripts/cli_reference.py\n{diff}"


def test_cli_reference_covers_every_command_and_option():
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for heading in ("## livermets phenotype evaluate", "## livermets reproduce paper", "## livermets seg predict"):
        assert heading in text
    assert "--protocol <str>" in text.split("## livermets phenotype evaluate")[1].split("## ")[0]
