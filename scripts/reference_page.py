"""Shared command line of the generated reference pages (scripts/cli_reference.py, scripts/api_reference.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from livermets.atomic import write_text


def main(argv: list[str], render: Callable[[], str], page: Path, script: str) -> int:
    """Rewrite ``page`` with ``render()``; with ``--check`` only report (exit 1) that it is out of date."""
    text = render()
    if argv == ["--check"]:
        current = page.read_text(encoding="utf-8") if page.exists() else ""
        if current != text:
            print(f"{page} is out of date: run {script} to regenerate it", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(f"usage: {script} [--check]", file=sys.stderr)
        return 2
    write_text(page, text)
    print(f"wrote {page}")
    return 0
