"""Write docs/cli.md, the command-line reference, from the Typer app: every command's usage, help and options.

Run after changing a command (``make`` is not needed)::

    .venv/bin/python scripts/cli_reference.py            # rewrites docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check    # exit 1 if docs/cli.md is out of date

Each section is the command's ``--help`` at 80 columns, exactly as ``livermets ... --help`` prints it;
tests/foundation/test_cli_reference.py fails when docs/cli.md differs from what this script renders.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from reference_page import main
from typer.testing import CliRunner

from livermets.cli import app

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
WIDTH = "80"

HEADER = """# Command-line reference

Every `livermets` command with its usage, help and options, as `livermets ... --help` prints them. This page is
generated from the command-line app by `scripts/cli_reference.py` (a test fails when it is out of date); the
pages linked from the [README](../README.md) explain what the commands compute and write, and the
[Python API reference](api.md) the functions behind them.

Exit codes of every command ([reliability](reliability.md) says what each guarantees):

| code | meaning |
| --- | --- |
| 0 | done; also a batch with failed series under `--allow-failures` |
| 1 | internal error: a bug, printed with its traceback (please report it) |
| 2 | bad input or usage: one `error:` line naming the file, column, row or option; nothing written |
| 3 | finished with failures (`run`, `seg predict --manifest`, `radiomics extract`): see the failure table |
| 130 | interrupted (Ctrl-C): the last line is the exact command that resumes, for the commands that resume |
"""


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the app, groups before their sub-commands, sub-commands in alphabetical order."""
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from command_paths(sub, (*path, name))


def help_text(path: tuple[str, ...]) -> str:
    """``livermets <path> --help`` at 80 columns."""
    done = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": WIDTH}, prog_name="livermets")
    if done.exit_code != 0:
        raise RuntimeError(f"livermets {' '.join(path)} --help failed: {done.output}")
    return done.output.rstrip() + "\n"


def anchor(title: str) -> str:
    """GitHub's heading anchor of ``title`` (lower case, spaces to hyphens, punctuation dropped)."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def render() -> str:
    """The whole of docs/cli.md."""
    paths = list(command_paths(typer.main.get_command(app)))
    titles = [" ".join(("livermets", *path)) for path in paths]
    contents = [f"{'  ' * (len(path) - 1)}- [`{title}`](#{anchor(title)})" for path, title in zip(paths, titles,
                                                                                                  strict=True)
                if path]
    sections = [f"## {title}\n\n```text\n{help_text(path)}```\n" for path, title in zip(paths, titles, strict=True)]
    return HEADER + "\n" + "\n".join(contents) + "\n\n" + "\n".join(sections)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], render, REFERENCE, Path(__file__).name))
