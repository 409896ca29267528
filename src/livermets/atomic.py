"""Write files so that a reader never sees a half-written output, and a failed command leaves no output at all.

Every output is written to a temporary file in the destination folder and then renamed over the final path
(``os.replace`` is atomic on POSIX within one file system). Output folders that must appear whole are built under a
hidden sibling name and renamed (:func:`staged_folder`). A command whose outputs appear one by one (a resumable
cohort job) runs under :func:`removed_on_failure`: when it fails, every output path that did not exist before is
deleted again. A kill (SIGKILL) can leave only temporary files and partial folders behind, which
:func:`remove_stale_temporaries` and :func:`remove_partials` delete when the job is run again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from livermets.errors import EXIT_FAILURES, ParameterError

if TYPE_CHECKING:
    import pandas as pd

PARTIAL_MARK = ".partial-"
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp")  # the names atomic_path gives its temporary files
F = TypeVar("F", bound=Callable[..., Any])


def process_umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``; elsewhere briefly set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    ``suffix`` defaults to the full suffix of ``path`` (e.g. ``.nii.gz``) so that libraries choosing a format by
    extension (SimpleITK, nibabel, matplotlib) write the right one.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "x.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "x.txt").read_text()
    'hello'
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(final.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp creates 0600; give the file the permissions a plain open() would
            tmp.chmod(0o666 & ~process_umask())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN written as null)."""
    return write_text(path, json.dumps(_nan_to_none(obj), indent=2, sort_keys=False, default=str) + "\n")


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame, index: bool = False) -> Path:
    """Atomically write a DataFrame as CSV."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=index)
    return Path(path)


def append_csv_rows(path: str | os.PathLike[str], frame: pd.DataFrame) -> Path:
    """Append rows to a CSV so that a kill at any moment leaves either the old or the new complete file.

    The whole file is rewritten through a temporary file (cohort tables are small next to the work per row), which
    also keeps the column order of the existing file; new columns are appended at the end.
    """
    import pandas as pd  # imported on use: the command line starts without it

    final = Path(path)
    if final.exists() and final.stat().st_size > 0:
        old = pd.read_csv(final)
        columns = list(old.columns) + [c for c in frame.columns if c not in old.columns]
        frame = pd.concat([old, frame], ignore_index=True)[columns]
    return write_csv(final, frame)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; on success it replaces ``out``, on any error it is deleted.

    The folder is built under a hidden sibling name (``.NAME.partial-XXXX``) and renamed onto its final name only
    when every file in it has been written, so an existing output folder is always complete: a killed job leaves
    only a partial sibling, which :func:`remove_partials` deletes.

    Raises
    ------
    ParameterError
        ``out`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with staged_folder(root / "case") as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> sorted(p.name for p in root.iterdir())
    ['case']
    """
    final = Path(out)
    if final.exists() and not overwrite:
        raise ParameterError("{out}: output folder exists (use {overwrite} to replace it)", out=final)
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
    """Delete the partial folders a killed :func:`staged_folder` left in ``parent``; returns what was removed."""
    folder = Path(parent)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(".") and
               (PARTIAL_MARK in p.name or ".old-" in p.name)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def remove_stale_temporaries(folder: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Delete the temporary files a killed :func:`atomic_path` left in ``folder`` (only those of ``name`` if given).

    Call it when a job starts on its own output, before any writer runs: a temporary file of a live writer in the
    same folder would be deleted too.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / ".x.csv.ab12cd34.tmp.csv").write_text("half")
    >>> [p.name for p in remove_stale_temporaries(d)]
    ['.x.csv.ab12cd34.tmp.csv']
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    prefix = None if name is None else f".{name}."
    removed = [p for p in root.iterdir() if p.is_file() and _TEMPORARY.match(p.name)
               and (prefix is None or p.name.startswith(prefix))]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _first_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist yet (what writing ``path`` would create)."""
    if path.exists() or path.is_symlink():
        return None
    missing = path.absolute()
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    return missing


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _succeeded(exc: BaseException) -> bool:
    """True for a clean exit raised as an exception (``typer.Exit()`` / ``SystemExit(0)``), or a batch that finished
    with failures (:data:`~livermets.errors.EXIT_FAILURES`: what succeeded stays)."""
    code = getattr(exc, "exit_code", getattr(exc, "code", 1))
    return code in (0, None, EXIT_FAILURES)


@contextlib.contextmanager
def removed_on_failure(*paths: str | os.PathLike[str] | None) -> Iterator[None]:
    """When the block fails, delete what it created at ``paths``: the paths that did not exist before (with their
    missing parent folders), and the new entries inside those that were existing folders.

    Files that existed are kept, also when the block replaced them. Only a failure counts (any ``Exception``): a
    ``KeyboardInterrupt`` leaves the outputs as a kill would, for the job to be resumed. ``None`` entries are ignored.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from livermets.errors import UserInputError
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> try:
    ...     with removed_on_failure(d / "new" / "out.csv", d):
    ...         _ = write_text(d / "new" / "out.csv", "partial")
    ...         _ = write_text(d / "side.txt", "partial")
    ...         raise UserInputError("late failure")
    ... except UserInputError:
    ...     pass
    >>> sorted(d.iterdir())
    []
    """
    given = [Path(p) for p in paths if p is not None]
    created = [m for p in given if (m := _first_missing(p)) is not None]
    folders = {p: set(p.rglob("*")) for p in given if p.is_dir()}
    try:
        yield
    except Exception as exc:
        if not _succeeded(exc):
            for path in created:
                _delete(path)
            for folder, before in folders.items():
                for path in sorted(set(folder.rglob("*")) - before, key=lambda q: len(q.parts)):
                    if path.exists() or path.is_symlink():
                        _delete(path)
        raise


def outputs(*names: str) -> Callable[[F], F]:
    """Decorate a command so that the outputs given in its keyword arguments ``names`` vanish when it fails.

    See :func:`removed_on_failure`; the decorated function keeps its signature (Typer reads it).
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with removed_on_failure(*(kwargs.get(name) for name in names)):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
