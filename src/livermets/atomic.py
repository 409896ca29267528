"""Write files so that a reader never sees a half-written output.

Every output is written to a temporary file in the destination folder and then renamed over the final path
(``os.replace`` is atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


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
