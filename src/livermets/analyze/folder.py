"""Output folders that appear whole or not at all.

A folder is built under a hidden sibling name (``.NAME.partial-XXXX``) and renamed onto its final name only when every
file in it has been written, so an existing output folder is always complete: a killed job leaves only a partial
sibling, which :func:`remove_partials` deletes and the job redoes.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> with staged_folder(root / "case") as tmp:
...     _ = (tmp / "a.txt").write_text("x")
>>> sorted(p.name for p in root.iterdir())
['case']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from livermets.atomic import process_umask
from livermets.errors import UserInputError

PARTIAL_MARK = ".partial-"


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; on success it replaces ``out``, on any error it is deleted.

    Raises
    ------
    UserInputError
        ``out`` exists and ``overwrite`` is false.
    """
    final = Path(out)
    if final.exists() and not overwrite:
        raise UserInputError(f"{final}: output folder exists (use --overwrite to replace it)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}{PARTIAL_MARK}", dir=final.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~process_umask())
        _replace_folder(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_folder(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` onto ``final``; an existing ``final`` is moved aside first and deleted afterwards."""
    if not final.exists():
        os.replace(tmp, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
    os.replace(final, old / final.name)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def remove_partials(parent: str | os.PathLike[str]) -> list[Path]:
    """Delete the partial folders a killed job left in ``parent``; returns what was removed."""
    folder = Path(parent)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(".") and
               (PARTIAL_MARK in p.name or ".old-" in p.name)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
