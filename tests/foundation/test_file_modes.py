"""Outputs get the permissions the user's umask gives (not the 0600 of a temporary file)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from livermets.analyze.folder import staged_folder
from livermets.atomic import write_csv, write_json


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_files_and_staged_folders_honour_the_umask(umask: int, tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives under this umask
    csv = write_csv(tmp_path / "table.csv", pd.DataFrame({"a": [1]}))
    js = write_json(tmp_path / "r.json", {"a": 1})
    assert _mode(csv) == _mode(js) == _mode(plain) == 0o666 & ~umask
    with staged_folder(tmp_path / "case") as folder:
        write_json(folder / "report.json", {"ok": True})
    assert _mode(tmp_path / "case") == 0o777 & ~umask
    assert _mode(tmp_path / "case" / "report.json") == 0o666 & ~umask
