"""The command lines shown in README.md and docs/*.md name commands and options that exist.

Every line of a ```console or ```bash block that starts with ``$ livermets `` or ``livermets `` (continued over
lines ending in ``\\``) is resolved in the Typer app: the words after ``livermets`` must name a command, and every
option (``--name``, ``--name=value``, ``-x``; an option in ``[...]`` is optional but must exist too) must be one of
that command's options. Comments (``# ...``) and shell redirections end the command.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

import livermets.cli

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*```(\w*)")
SHELL_END = {">", ">>", "|", "&&", ";", "2>", "<"}


@dataclass(frozen=True)
class Example:
    where: str
    words: tuple[str, ...]


def command_lines(path: Path) -> list[Example]:
    """The ``livermets`` command lines of the console/bash blocks of ``path`` (words after ``livermets``)."""
    examples: list[Example] = []
    language: str | None = None
    lines = path.read_text(encoding="utf-8").splitlines()
    number = 0
    while number < len(lines):
        line, number = lines[number], number + 1
        fence = FENCE.match(line)
        if fence:
            language = None if language is not None else fence.group(1)
            continue
        text = line.strip().removeprefix("$ ")
        if language not in ("console", "bash") or not text.startswith("livermets "):
            continue
        start = number
        while text.endswith("\\") and number < len(lines):
            text, number = text[:-1] + " " + lines[number].strip(), number + 1
        words = []
        for word in shlex.split(text, comments=True)[1:]:
            if word in SHELL_END:
                break
            words.append(word)
        examples.append(Example(f"{path.relative_to(REPO)}:{start}", tuple(words)))
    return examples


EXAMPLES = [example for path in DOCUMENTS for example in command_lines(path)]


def is_group(command: Any) -> bool:
    """Typer's (vendored click) groups have sub-commands."""
    return hasattr(command, "commands")


def resolve(words: tuple[str, ...]) -> tuple[Any, list[str], list[str]]:
    """The command the words name, its path and the option words given to it (brackets removed)."""
    command = typer.main.get_command(livermets.cli.app)
    path = ["livermets"]
    options = []
    for word in words:
        word = word.strip("[]")
        if is_group(command) and not word.startswith("-") and word in command.commands:
            command = command.commands[word]
            path.append(word)
        elif re.match(r"^--?[A-Za-z]", word):
            options.append(word.split("=", 1)[0])
    return command, path, options


def test_the_docs_show_command_lines():
    assert len(EXAMPLES) >= 40
    assert {example.where.split(":")[0] for example in EXAMPLES} >= {"README.md", "docs/phenotype.md"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.where for example in EXAMPLES])
def test_documented_command_exists_with_its_options(example):
    command, path, options = resolve(example.words)
    assert not is_group(command), f"{example.where}: '{' '.join(path)}' is a group, not a command"
    known = {name for param in command.params for name in (*param.opts, *param.secondary_opts)} | {"--help"}
    unknown = [option for option in options if option not in known]
    assert not unknown, f"{example.where}: {' '.join(path)} has no option {', '.join(unknown)}"
