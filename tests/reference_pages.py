"""Load the scripts that generate the reference pages (docs/cli.md, docs/api.md) and compare a page with them."""

from __future__ import annotations

import difflib
import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (scripts/ on the import path, as when the script runs)."""
    scripts = str(REPO / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_page_up_to_date(name: str, page: str) -> None:
    """``docs/<page>`` equals what ``scripts/<name>.py`` renders; the failure shows the diff and the command."""
    expected = load_script(name).render()
    current = (REPO / "docs" / page).read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(current.splitlines(True), expected.splitlines(True), f"docs/{page}",
                                        "rendered", n=1))
    assert current == expected, f"docs/{page} is out of date: run .venv/bin/python scripts/{name}.py\n{diff}"
