"""Code shape: no function or method in src/livermets is longer than 80 lines.

Length = ``end_lineno - lineno + 1`` of every ``def``/``async def`` (decorators excluded, docstring included), nested
functions counted on their own. A long function is split into named steps rather than listed here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "livermets"
MAX_LINES = 80


def _function_lengths(path: Path, package: Path = PACKAGE) -> Iterator[tuple[str, int, int]]:
    """``(qualified name, length, first line)`` of every function in ``path``, methods and nested ones included."""
    module = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}.{child.name}"
                yield name, child.end_lineno - child.lineno + 1, child.lineno
                yield from walk(child, name)
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}.{child.name}")
            else:
                yield from walk(child, prefix)

    yield from walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), module)


def _all_lengths() -> list[tuple[str, int, str]]:
    return [
        (name, length, f"{path.relative_to(PACKAGE.parents[1])}:{line}")
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, length, line in _function_lengths(path)
    ]


def test_no_function_is_longer_than_80_lines():
    too_long = [
        f"{name} ({length} lines, {where})"
        for name, length, where in _all_lengths()
        if length > MAX_LINES
    ]
    assert not too_long, f"functions over {MAX_LINES} lines (split them into named steps): " + "; ".join(too_long)


def test_the_measure_sees_methods_nested_functions_and_decorators(tmp_path):
    source = tmp_path / "livermets" / "sample.py"
    source.parent.mkdir()
    source.write_text(
        "import functools\n"
        "@functools.cache\n"
        "def outer():\n"
        "    def inner():\n"
        "        return 1\n"
        "    return inner\n"
        "class Shape:\n"
        "    async def area(self):\n"
        "        return 0\n"
    )
    found = {name: length for name, length, _ in _function_lengths(source, package=source.parent)}
    assert found == {"livermets.sample.outer": 4, "livermets.sample.outer.inner": 2, "livermets.sample.Shape.area": 2}
