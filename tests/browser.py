"""A real headless Chromium for tests of HTML output (Selenium with Debian's chromium and chromium-driver).

Selenium always gets the driver path explicitly, so Selenium Manager never tries to download a browser or a driver.
Without chromium or chromedriver a test using :func:`require_browser` (the ``browser`` fixture of
``tests/conftest.py``) is skipped on a developer machine and fails with ``CI=true``, like the shared-data tests.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = "apt-get install chromium chromium-driver"
WINDOW = (1280, 2000)


def require_browser() -> None:
    """Skip (fail under ``CI=true``) unless chromium, chromedriver and selenium are all installed."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -r requirements.lock)")
    if not missing:
        return
    message = f"headless browser tests need {', '.join(missing)} (run `{INSTALL_HINT}` as root, or `make browser`)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def make_driver() -> Any:
    """A headless Chrome webdriver on Debian's chromium, browser console log enabled, window 1280x2000."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_window_size(*WINDOW)
    driver.set_page_load_timeout(60)
    return driver


def _wait_ready(driver: Any, timeout: float = 30.0) -> None:
    """Wait until ``document.readyState`` is ``complete``."""
    deadline = time.monotonic() + timeout
    while driver.execute_script("return document.readyState") != "complete":
        if time.monotonic() > deadline:
            raise TimeoutError("page did not finish loading")
        time.sleep(0.05)


_IMAGES_JS = """
return Array.from(document.images).map(img => ({
    id: img.id, complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
    src_scheme: img.getAttribute('src').split(':')[0]}));
"""

_VISIBLE_TEXT_JS = "return document.body.innerText;"


def check_report(driver: Any, html_path: Path, screenshot_path: Path) -> dict[str, Any]:
    """Open ``html_path`` in ``driver`` and return what a reader would see.

    Returns
    -------
    dict
        ``severe_logs`` (browser console entries of level SEVERE), ``images`` (per ``<img>``: id, complete,
        naturalWidth, naturalHeight, src_scheme), ``images_ok`` (every image complete with naturalWidth > 0),
        ``lesion_rows`` (rows of ``#lesions tbody`` other than the no-lesion row), ``no_lesion_rows``, ``text`` (the
        page's visible text), ``title`` and ``screenshot`` (the PNG written).
    """
    driver.get(Path(html_path).resolve().as_uri())
    _wait_ready(driver)
    severe = [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    images = driver.execute_script(_IMAGES_JS)
    lesion_rows = driver.execute_script(
        "return document.querySelectorAll('#lesions tbody tr:not(.no-lesion)').length;")
    no_lesion_rows = driver.execute_script("return document.querySelectorAll('#lesions tbody tr.no-lesion').length;")
    screenshot = Path(screenshot_path)
    if not driver.save_screenshot(str(screenshot)):
        raise RuntimeError(f"screenshot not written: {screenshot}")
    return {
        "severe_logs": severe,
        "images": images,
        "images_ok": bool(images) and all(img["complete"] and img["naturalWidth"] > 0 for img in images),
        "lesion_rows": int(lesion_rows),
        "no_lesion_rows": int(no_lesion_rows),
        "text": driver.execute_script(_VISIBLE_TEXT_JS),
        "title": driver.title,
        "screenshot": screenshot,
    }
