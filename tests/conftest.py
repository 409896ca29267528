"""Shared test fixtures.

Real data is never copied into the repository: a test that needs it calls ``shared_data(...)``, which finds the file
of the data registry (:mod:`livermets.data`) in ``$LIVERMETS_DATA_DIR`` (CI's mirror; ``../shared/data`` when unset
and present) or in the data home, checked by SHA-256. A missing file skips the test with one message naming the
command that fetches it; with ``CI=true`` it fails. ``shared_paper(...)`` reads the paper's reference values from
``../shared/paper`` (or ``paper/`` beside the mirror folder) the same way.
The ``browser`` fixture (a headless Chromium, see ``tests/browser.py``) is skipped or failed the same way when Debian's
chromium or chromium-driver is missing.
"""

from __future__ import annotations

import locale
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _data_roots() -> list[Path]:
    """Where registered data files are looked for: ``$LIVERMETS_DATA_DIR`` (CI's mirror), else ``../shared/data``
    when it exists (the developers' layout), then the user's data home (``livermets data fetch``), taken before the
    tests point ``LIVERMETS_HOME`` to an empty folder."""
    from livermets.data import data_home, mirror_dir

    mirror = mirror_dir() or (SHARED / "data" if (SHARED / "data").is_dir() else None)
    return [*([mirror] if mirror is not None else []), data_home()]


DATA_ROOTS = _data_roots()


def _missing(message: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _paper_file(parts: tuple[str, ...]) -> Path:
    """A file of the paper's folder: ``../shared/paper``, or ``paper/`` beside the mirror folder (CI's layout)."""
    mirror = os.environ.get("LIVERMETS_DATA_DIR")
    roots = [SHARED / "paper", *([Path(mirror).expanduser().parent / "paper"] if mirror else [])]
    for root in roots:
        if root.joinpath(*parts).exists():
            return root.joinpath(*parts)
    _missing(f"paper file not found: {'/'.join(parts)} (tests read the paper's reference values from "
             f"{' or '.join(map(str, roots))})")


def _require_data(relative: str) -> Path:
    from livermets.data import dataset_of, locate

    found = locate(relative, DATA_ROOTS)
    if found is None:
        _missing(f"data not found: {relative} (fetch it with `livermets data fetch {dataset_of(relative).name}`, or "
                 "set LIVERMETS_DATA_DIR to a folder that holds it)")
    return found


def pytest_report_header() -> str:
    """The OpenBLAS kernel of this run (scripts/kernel_tests.py checks it is the one it asked for)."""
    from livermets.phenotype.pinned import blas_kernels

    return f"OpenBLAS kernel: {blas_kernels()}"


@pytest.fixture(autouse=True)
def _keep_ctype_locale() -> Iterator[None]:
    """Restore LC_CTYPE after every test: SimpleITK's DICOM writer sets it to "C", after which text decoding of
    subprocess output (``subprocess.run(text=True)``) in later tests would expect ASCII."""
    ctype = locale.setlocale(locale.LC_CTYPE)
    yield
    locale.setlocale(locale.LC_CTYPE, ctype)


@pytest.fixture(scope="session")
def _empty_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("livermets_home")


@pytest.fixture(autouse=True)
def _livermets_home(_empty_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees an empty models home (``LIVERMETS_HOME``), never the user's: a model installed on the
    developer's machine must not change which model a test uses. Tests that install models set their own."""
    monkeypatch.setenv("LIVERMETS_HOME", str(_empty_home))


@pytest.fixture(scope="session")
def shared_data() -> Callable[..., Path]:
    """Return a function mapping a registered data path (``lits_tiny``, ``volume.nii.gz``) to its checked local copy
    in the mirror folder or the data home (skip, or fail with ``CI=true``, if missing)."""

    def get(*parts: str) -> Path:
        return _require_data("/".join(parts))

    return get


@pytest.fixture(scope="session")
def shared_paper() -> Callable[..., Path]:
    """Files below ``../shared/paper`` (or ``paper/`` beside ``$LIVERMETS_DATA_DIR``); skip/fail as ``shared_data``."""

    def get(*parts: str) -> Path:
        return _paper_file(parts)

    return get


@pytest.fixture
def contacted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every address this process connects a socket to; any non-loopback address fails the test at once."""
    seen: list[Any] = []
    real = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        seen.append(address)
        host = address[0] if isinstance(address, tuple) else address
        assert host in ("127.0.0.1", "::1", "localhost"), f"connection beyond loopback: {address}"
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield seen
    assert all(a[0] == "127.0.0.1" for a in seen if isinstance(a, tuple)), seen


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium webdriver (Debian's chromium + chromedriver; skip, or fail with ``CI=true``, if missing).

    See ``tests/browser.py``; ``check_report`` there opens a page and collects what the tests assert on.
    """
    from browser import make_driver, require_browser

    require_browser()
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()
