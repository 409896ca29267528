"""The stages form layers: a module imports only from its own stage and the stages below it.

Order (lowest first): the shared modules at the package root (errors, atomic, provenance, ...), ``imaging``,
``cohort``, ``synth``, ``lesions`` (lesion components and detection metrics, which segmentation training uses to
select its checkpoints), ``segmentation``, ``radiomics``, ``phenotype``, ``stats``, ``reproduce``, ``analyze``, and
the command line (``cli.py``, ``__main__.py``) on top. Every import counts, also one inside a function or under
``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "livermets"
LAYERS = ("imaging", "cohort", "synth", "lesions", "segmentation", "radiomics", "phenotype", "stats", "reproduce",
          "analyze", "cli")
TOP = ("cli", "__main__")


def _layer(parts: tuple[str, ...]) -> int:
    """Layer of ``livermets.<parts>``: -1 for a shared root module, len(LAYERS) - 1 for the command line."""
    head = parts[0] if parts else ""
    if head in TOP:
        return LAYERS.index("cli")
    return LAYERS.index(head) if head in LAYERS else -1


def _imports(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    module = path.relative_to(package.parent).with_suffix("").parts
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = module[: len(module) - node.level]
                name = ".".join((*base, node.module)) if node.module else ".".join(base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name == "livermets" or name.startswith("livermets.")]


def _violations(package: Path = PACKAGE) -> list[str]:
    wrong = []
    for path in sorted(package.rglob("*.py")):
        own = _layer(path.relative_to(package).with_suffix("").parts)
        for line, name in _imports(path, package):
            target = _layer(tuple(name.split(".")[1:]))
            if target > own:
                wrong.append(f"{path.relative_to(package.parent)}:{line} imports {name}")
    return wrong


def test_no_stage_imports_a_higher_one():
    wrong = _violations()
    assert not wrong, "a lower layer imports a higher one:\n" + "\n".join(wrong)


def test_the_check_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "livermets"
    (package / "imaging").mkdir(parents=True)
    (package / "imaging" / "io.py").write_text("def f():\n    from livermets.radiomics import x\n")
    (package / "radiomics").mkdir()
    (package / "radiomics" / "x.py").write_text("from livermets.imaging import io\n")
    (package / "errors.py").write_text("import livermets.segmentation\n")
    assert _violations(package) == ["livermets/errors.py:1 imports livermets.segmentation",
                                    "livermets/imaging/io.py:2 imports livermets.radiomics"]
