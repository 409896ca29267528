"""Every command's --help reads at 80 columns: no line wider, no option name or help text cut short."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from livermets.cli import app


def _paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _paths(sub, (*path, name))


def test_help_of_every_command_fits_80_columns_without_truncation() -> None:
    runner = CliRunner()
    paths = list(_paths(typer.main.get_command(app)))
    assert len(paths) > 30  # every stage is registered
    for path in paths:
        done = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, prog_name="livermets")
        assert done.exit_code == 0, (path, done.output)
        wide = [line for line in done.output.splitlines() if len(line) > 80]
        assert not wide, f"livermets {' '.join(path)} --help: {wide[0]!r}"
        assert "\u2026" not in done.output, f"livermets {' '.join(path)} --help cuts text short"
        assert "Usage: livermets" in done.output
