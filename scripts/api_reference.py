"""Write docs/api.md, the Python API reference, from the stage packages: every name of each package's ``__all__``.

Run after changing a public name, its signature or its docstring::

    .venv/bin/python scripts/api_reference.py            # rewrites docs/api.md
    .venv/bin/python scripts/api_reference.py --check    # exit 1 if docs/api.md is out of date

Each package gets the first paragraph of its docstring and a table of its names; each name its kind, its signature
(annotations as written in the source) and its numpydoc docstring as Markdown, and a class its own public methods
and properties. tests/foundation/test_api_reference.py fails when docs/api.md differs from what this script renders
or when a public name has no docstring. Rendering imports every stage (torch, scikit-learn, SimpleITK): a few
seconds.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

from reference_page import main

import livermets

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "api.md"
ORDER = ("cohort", "imaging", "synth", "segmentation", "segmentation.nnunet", "segmentation.engines", "lesions",
         "radiomics", "phenotype", "stats", "reproduce", "analyze")
"""Pipeline order of the stage packages; a stage package not listed here comes after them (alphabetically)."""
WIDTH = 100
"""Signatures longer than this are written one parameter per line."""

HEADER = """# Python API reference

Every public name of the stage packages with its signature and docstring: `from livermets.<stage> import <name>`
imports it (the names are loaded on first use, so importing a package loads no numerical library). This page is
generated from the docstrings by `scripts/api_reference.py` (a test fails when it is out of date); the
[command-line reference](cli.md) lists the commands built on these functions.
"""

DEFINITION_SECTIONS = {"Parameters", "Other Parameters", "Attributes", "Returns", "Yields", "Receives", "Raises",
                       "Warns", "Warnings", "See Also", "Methods"}
ROLE = re.compile(r":(?:[a-z]+:)?(?:func|class|data|mod|attr|meth|obj|exc|const|term):`(~?)([^`]+)`")
LITERAL = re.compile(r"``(.+?)``", re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
DOCS_PAGE = re.compile(r"(?<![\w/])docs/([\w-]+\.md)\b")
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
DOCTEST_DIRECTIVE = re.compile(r"\s*# doctest:.*$")


# ---------------------------------------------------------------------------------------------------------------
# docstrings to Markdown


def inline(text: str) -> str:
    """reST inline markup as Markdown: roles and ````literals```` as code spans, ``<`` escaped outside code and
    ``docs/<page>.md`` as a link."""
    text = ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)
    text = LITERAL.sub(lambda m: f"`` {m.group(1)} ``" if "`" in m.group(1) else f"`{m.group(1)}`", text)
    pieces = []
    last = 0
    for match in CODE_SPAN.finditer(text):
        pieces.append(_plain(text[last:match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(_plain(text[last:]))
    return "".join(pieces)


def _plain(text: str) -> str:
    """Text outside code spans: ``<`` escaped, ``docs/<page>.md`` linked (this page is in docs/)."""
    return DOCS_PAGE.sub(r"[docs/\1](\1)", text.replace("<", "&lt;"))


def fence(lines: list[str], language: str) -> list[str]:
    """A fenced code block of ``lines`` (dedented, doctest directives dropped)."""
    body = textwrap.dedent("\n".join(DOCTEST_DIRECTIVE.sub("", line) for line in lines)).splitlines()
    return [f"```{language}", *body, "```"]


def prose(lines: list[str]) -> list[str]:
    """Free text: paragraphs and lists as they are, doctest and ``::`` literal blocks fenced."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            out.append("")
            i += 1
            continue
        end = i + 1
        if lines[i].lstrip().startswith(">>>"):
            while end < len(lines) and lines[end].strip():
                end += 1
            block = fence(lines[i:end], "python")
        elif _literal(lines, i):
            while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
                end += 1
            text = lines[i].rstrip()[:-2]
            text = text.rstrip() if text.endswith(" ") or not text.strip() else text + ":"
            block = ([inline(text), ""] if text else []) + fence(_trim(lines[i + 1:end]), "text")
        else:
            while end < len(lines) and lines[end].strip() and not lines[end].lstrip().startswith(">>>") \
                    and not _literal(lines, end - 1):
                end += 1
            out.extend(inline("\n".join(lines[i:end])).split("\n"))
            i = end
            continue
        out.extend([""] if out and out[-1] else [])
        out.extend(block)
        out.extend([""] if end < len(lines) and lines[end].strip() else [])
        i = end
    return out


def _literal(lines: list[str], i: int) -> bool:
    """Whether ``lines[i]`` ends with ``::`` and a blank line follows (an reST literal block)."""
    return lines[i].rstrip().endswith("::") and i + 1 < len(lines) and not lines[i + 1].strip()


def _trim(lines: list[str]) -> list[str]:
    """``lines`` without leading and trailing blank lines."""
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def term(text: str) -> str:
    """A definition term (``name``, ``a, b``, ``name : type`` or a type) with the names as code."""
    names, _, kind = text.partition(" : ")
    names = ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), names)
    rendered = ", ".join(f"`{name.strip()}`" for name in names.split(",") if name.strip())
    return rendered + (f" ({inline(kind.strip())})" if kind.strip() else "")


def definitions(lines: list[str]) -> list[str]:
    """A numpydoc definition section (terms at column 0, indented descriptions) as a Markdown list."""
    out: list[str] = []
    items: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.strip() and not line[0].isspace():
            items.append((line.strip(), []))
        elif items:
            items[-1][1].append(line)
        elif line.strip():
            out.extend(prose([line]))
    for name, description in items:
        body = prose(_trim(textwrap.dedent("\n".join(description)).splitlines()))
        if body and not body[0].startswith("```"):
            out.append(f"- {term(name)} — {body[0]}")
            body = body[1:]
        else:
            out.append(f"- {term(name)}")
        out.extend(f"  {line}" if line else "" for line in body)
    return out


def sections(doc: str) -> list[tuple[str, list[str]]]:
    """``doc`` split at its numpydoc section headings (a title underlined with dashes); the first title is ``""``."""
    lines = doc.splitlines()
    found: list[tuple[str, list[str]]] = [("", [])]
    i = 0
    while i < len(lines):
        line = lines[i]
        underline = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if line.strip() and not line[0].isspace() and len(underline) >= 3 and set(underline) == {"-"} \
                and len(underline) == len(line.strip()):
            found.append((line.strip(), []))
            i += 2
            continue
        found[-1][1].append(line)
        i += 1
    return found


def markdown(doc: str) -> str:
    """A cleaned numpydoc docstring as Markdown: sections under bold titles, definitions as lists."""
    out: list[str] = []
    for title, lines in sections(doc):
        lines = _trim(lines)
        if title:
            out.extend(["", f"**{title}**", ""])
        if lines:
            out.extend(definitions(lines) if title in DEFINITION_SECTIONS else prose(lines))
    return "\n".join(_trim(out)) + "\n" if out else ""


# ---------------------------------------------------------------------------------------------------------------
# signatures and docstrings of the public names


def annotation(value: Any) -> str:
    """An annotation as written in the source (``from __future__ import annotations`` keeps it a string)."""
    return value if isinstance(value, str) else inspect.formatannotation(value)


def default(value: Any) -> str:
    """``repr`` of a default value, without memory addresses."""
    return ADDRESS.sub("", repr(value))


def parameter(param: inspect.Parameter) -> str:
    """One parameter as in a ``def`` line: ``*args``, ``name: type = default``, ``name=default``."""
    prefix = "*" if param.kind is param.VAR_POSITIONAL else "**" if param.kind is param.VAR_KEYWORD else ""
    text = prefix + param.name
    if param.annotation is not param.empty:
        text += f": {annotation(param.annotation)}"
    if param.default is not param.empty:
        text += f" = {default(param.default)}" if param.annotation is not param.empty else f"={default(param.default)}"
    return text


def signature_text(name: str, signature: inspect.Signature, returns: bool = True) -> str:
    """``name(parameters) -> return``, one parameter per line when longer than :data:`WIDTH`."""
    params = list(signature.parameters.values())
    parts = []
    for i, param in enumerate(params):
        before = params[i - 1].kind if i else None
        if param.kind is param.KEYWORD_ONLY and before not in (param.KEYWORD_ONLY, param.VAR_POSITIONAL):
            parts.append("*")
        parts.append(parameter(param))
        after = params[i + 1].kind if i + 1 < len(params) else None
        if param.kind is param.POSITIONAL_ONLY and after is not param.POSITIONAL_ONLY:
            parts.append("/")
    tail = ""
    if returns and signature.return_annotation is not signature.empty:
        tail = f" -> {annotation(signature.return_annotation)}"
    line = f"{name}({', '.join(parts)}){tail}"
    if len(line) <= WIDTH or not parts:
        return line
    return f"{name}(\n" + "".join(f"    {part},\n" for part in parts) + f"){tail}"


def own_doc(value: Any) -> str:
    """The object's own docstring, cleaned (not a base class's, not the one ``dataclass`` makes up)."""
    if inspect.isclass(value):
        doc = vars(value).get("__doc__")
        if dataclasses.is_dataclass(value) and isinstance(doc, str) and doc.startswith(f"{value.__name__}("):
            doc = None
    else:
        doc = getattr(inspect.unwrap(value), "__doc__", None) if callable(value) else None
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else ""


def attribute_doc(module: ModuleType, name: str) -> tuple[str, str | None]:
    """The docstring written under the module-level assignment of ``name`` and its annotation (``("", None)``)."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return "", None
    body = tree.body
    for statement, following in zip(body, body[1:], strict=False):
        targets = statement.targets if isinstance(statement, ast.Assign) else \
            [statement.target] if isinstance(statement, ast.AnnAssign) else []
        if not any(isinstance(target, ast.Name) and target.id == name for target in targets):
            continue
        kind = ast.unparse(statement.annotation) if isinstance(statement, ast.AnnAssign) else None
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) \
                and isinstance(following.value.value, str):
            return inspect.cleandoc(following.value.value), kind
        return "", kind
    return "", None


def constant_doc(package: ModuleType, name: str, value: Any) -> tuple[str, str | None]:
    """Docstring and annotation of a constant, from the module of ``package`` that assigns it."""
    prefix = package.__name__ + "."
    for module_name in sorted(sys.modules):
        module = sys.modules[module_name]
        if (module_name == package.__name__ or module_name.startswith(prefix)) \
                and getattr(module, name, None) is value:
            doc, kind = attribute_doc(module, name)
            if doc or kind:
                return doc, kind
    return "", None


def kind_of(value: Any) -> str:
    """``class``, ``dataclass``, ``function`` or ``constant``."""
    if inspect.isclass(value):
        return "dataclass" if dataclasses.is_dataclass(value) else "class"
    return "function" if callable(value) else "constant"


def stages() -> list[str]:
    """The stage packages (``cohort``, ``segmentation.nnunet``, ...): every livermets package whose ``__init__.py``
    assigns ``__all__`` and a lazy ``__getattr__``, in :data:`ORDER`."""
    root = Path(livermets.__file__).parent
    found: list[str] = []
    for init in root.rglob("__init__.py"):
        assigned: set[str] = set()
        for node in ast.parse(init.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            assigned.update(target.id for target in targets if isinstance(target, ast.Name))
        if {"__all__", "__getattr__"} <= assigned:
            found.append(".".join(init.parent.relative_to(root).parts))
    return sorted(found, key=lambda stage: (ORDER.index(stage) if stage in ORDER else len(ORDER), stage))


def public_names() -> list[tuple[ModuleType, str, Any]]:
    """``(package, name, value)`` of every name in every stage package's ``__all__``, in ``__all__`` order."""
    found: list[tuple[ModuleType, str, Any]] = []
    for stage in stages():
        package = importlib.import_module(f"livermets.{stage}")
        found.extend((package, name, getattr(package, name)) for name in package.__all__)
    return found


def missing_docstrings() -> list[str]:
    """Qualified public names without a docstring (constants: no string under their assignment)."""
    missing = []
    for package, name, value in public_names():
        doc = constant_doc(package, name, value)[0] if kind_of(value) == "constant" else own_doc(value)
        if not doc:
            missing.append(f"{package.__name__}.{name}")
    return missing


# ---------------------------------------------------------------------------------------------------------------
# the page


def anchor(title: str) -> str:
    """GitHub's heading anchor of ``title`` (lower case, spaces to hyphens, punctuation dropped)."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def first_paragraph(doc: str) -> str:
    """The first paragraph of ``doc`` on one line."""
    return " ".join(line.strip() for line in doc.strip().split("\n\n")[0].splitlines())


def signature_block(name: str, value: Any) -> str:
    """The fenced signature of a class or function (``name`` alone when it has none); a class's parameters carry
    the annotations of its fields as written (pydantic's signature holds evaluated ones)."""
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return f"```python\n{name}\n```\n"
    if inspect.isclass(value):
        written: dict[str, Any] = {}
        for klass in reversed(value.__mro__):
            written.update(vars(klass).get("__annotations__", {}))
        signature = signature.replace(parameters=[
            param.replace(annotation=written[param.name]) if isinstance(written.get(param.name), str) else param
            for param in signature.parameters.values()])
    return f"```python\n{signature_text(name, signature, returns=not inspect.isclass(value))}\n```\n"


def member_section(cls: type, name: str, member: Any) -> str | None:
    """A class's own public method or property as a level-4 section (``None`` for other attributes)."""
    title = f"#### `{cls.__name__}.{name}`\n\n"
    if isinstance(member, property):
        returns = inspect.signature(member.fget).return_annotation if member.fget else inspect.Signature.empty
        kind = f": {annotation(returns)}" if returns is not inspect.Signature.empty else ""
        return title + f"*property*\n\n```python\n{name}{kind}\n```\n" + _doc_part(own_doc(member.fget))
    if isinstance(member, (classmethod, staticmethod)):
        label, function = type(member).__name__, member.__func__
        signature = inspect.signature(getattr(cls, name))
    elif inspect.isfunction(member):
        label, function = "method", member
        signature = inspect.signature(member)
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    else:
        return None
    block = f"```python\n{signature_text(name, signature)}\n```\n"
    return title + f"*{label}*\n\n" + block + _doc_part(own_doc(function))


def _doc_part(doc: str) -> str:
    """The Markdown of ``doc`` preceded by a blank line ("" without a docstring)."""
    return "\n" + markdown(doc) if doc else ""


def members(cls: type) -> list[str]:
    """Sections of the public methods and properties ``cls`` defines itself (not dataclass fields), in order."""
    fields = {field.name for field in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    found = []
    for name, member in vars(cls).items():
        if name.startswith("_") or name in fields:
            continue
        section = member_section(cls, name, member)
        if section is not None:
            found.append(section)
    return found


def name_section(package: ModuleType, name: str, value: Any) -> str:
    """The section of one public name: kind, signature, docstring (and a class's members)."""
    kind = kind_of(value)
    text = f"### `{package.__name__}.{name}`\n\n*{kind}*\n\n"
    if kind == "constant":
        doc, written = constant_doc(package, name, value)
        shown = default(value)
        shown = shown if len(shown) <= WIDTH else f"{type(value).__name__}(...)"
        text += f"```python\n{name}{f': {written}' if written else ''} = {shown}\n```\n" + _doc_part(doc)
        return text
    text += signature_block(name, value) + _doc_part(own_doc(value))
    if inspect.isclass(value):
        text += "".join("\n" + section for section in members(value))
    return text


def package_section(package: ModuleType, names: list[tuple[str, Any]]) -> str:
    """One stage package: the first paragraph of its docstring, a table of its names, then every name."""
    rows = []
    for name, value in names:
        doc = constant_doc(package, name, value)[0] if kind_of(value) == "constant" else own_doc(value)
        summary = inline(first_paragraph(doc)).replace("|", "\\|")
        rows.append(f"| [`{name}`](#{anchor(f'{package.__name__}.{name}')}) | {kind_of(value)} | {summary} |")
    table = "| name | kind | summary |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    intro = inline(first_paragraph(package.__doc__ or ""))
    sections = "\n".join(name_section(package, name, value) for name, value in names)
    return f"## `{package.__name__}`\n\n{intro}\n\n{table}\n{sections}"


def render() -> str:
    """The whole of docs/api.md."""
    grouped: dict[str, tuple[ModuleType, list[tuple[str, Any]]]] = {}
    for package, name, value in public_names():
        grouped.setdefault(package.__name__, (package, []))[1].append((name, value))
    contents = "\n".join(f"- [`{title}`](#{anchor(title)})" for title in grouped)
    sections = "\n".join(package_section(package, names) for package, names in grouped.values())
    return HEADER + "\n" + contents + "\n\n" + sections


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], render, REFERENCE, Path(__file__).name))
