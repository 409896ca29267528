"""Shared test fixtures.

Real data lives in ``../shared/data`` beside the repository and is never copied into it. A test that needs it calls
``shared_data(...)``: on a developer machine a missing file skips the test with a message; with ``CI=true`` it fails.
The ``browser`` fixture (a headless Chromium, see ``tests/browser.py``) is skipped or failed the same way when Debian's
chromium or chromium-driver is missing.
"""

from __future__ import annotations

import locale
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = f"shared data not found: {path} (see DEVELOPERS/README: tests read ../shared/data)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


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
    """Return a function mapping a path below ``../shared/data`` to an existing Path (skip/fail if missing)."""

    def get(*parts: str) -> Path:
        return _require(SHARED.joinpath("data", *parts))

    return get


@pytest.fixture(scope="session")
def shared_paper() -> Callable[..., Path]:
    """Like ``shared_data`` for files below ``../shared/paper``."""

    def get(*parts: str) -> Path:
        return _require(SHARED.joinpath("paper", *parts))

    return get


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
