"""report.html: content, escaping and self-containment (pure Python), and the page in a real headless Chromium."""

from __future__ import annotations

import copy
import fnmatch
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import SimpleITK as sitk
from report_synthetic import make_case, make_report, write_figures

import browser as browser_helpers
from browser import check_report
from livermets.analyze.html import TEMPLATE_NAME, render_report_html, trust_wording, write_report_html
from livermets.lesions.components import label_components

REPO = Path(__file__).resolve().parents[2]
BANNER = "Research use only — not for diagnosis"


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A folder with the real figures of the synthetic case (3 lesions) and its report mapping."""
    folder = tmp_path_factory.mktemp("report")
    ct, label = make_case()
    return folder, make_report(ct, label, write_figures(folder, ct, label))


@pytest.fixture(scope="module")
def empty_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The same case segmented without any lesion, without phenotype model."""
    folder = tmp_path_factory.mktemp("report_empty")
    ct, label = make_case(n_lesions=0)
    return folder, make_report(ct, label, write_figures(folder, ct, label), phenotype=False)


def _lesion_rows(html: str) -> list[str]:
    body = html.split('<table id="lesions">', 1)[1].split("</tbody>", 1)[0].split("<tbody>", 1)[1]
    return re.findall(r"<tr class=\"([^\"]+)\"", body)


def test_series_description_is_escaped(case: tuple[Path, dict[str, Any]]) -> None:
    folder, report = case
    report = copy.deepcopy(report)
    report["input"]["series_description"] = "<script>alert(1)</script>"
    report["series_id"] = "ct<b>01</b>"
    html = render_report_html(report, folder)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "ct&lt;b&gt;01&lt;/b&gt;" in html


def test_page_is_self_contained(case: tuple[Path, dict[str, Any]]) -> None:
    folder, report = case
    html = render_report_html(report, folder)
    assert "http://" not in html and "https://" not in html
    assert "@import" not in html and "url(" not in html
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert references and all(ref.startswith("data:image/png;base64,") for ref in references)
    assert re.search(r'<img id="montage" src="data:image/png;base64,', html)
    assert re.search(r'<img id="coronal" src="data:image/png;base64,', html)


def test_content_in_order(case: tuple[Path, dict[str, Any]]) -> None:
    folder, report = case
    html = render_report_html(report, folder)
    order = ['id="research-use"', 'id="input"', 'id="warnings"', 'id="burden"', 'id="montage"', 'id="coronal"',
             'id="lesions"', 'id="phenotype"', 'id="features"', "<details>", "<footer>"]
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert BANNER in html and "synthetic_01" in html
    assert "liver_volume" in html and "outside the plausible range" in html
    assert "No plausibility warning" not in html
    assert "patient-grouped 5-fold CV ROC AUC 0.58 on 50 patients" in " ".join(html.split())
    assert "weak: close to chance" in html
    assert "63 %" in html and "NE-high" in html
    assert "Created 2026-12-01T12:00:00+00:00" in html
    assert _lesion_rows(html) == ["lesion"] * 3
    assert "Exploratory" not in html and "NE probability (exploratory)</th>" not in html


def test_identifiers_only_when_given(case: tuple[Path, dict[str, Any]]) -> None:
    folder, report = case
    html = render_report_html(report, folder)
    assert "Patient name" not in html and 'class="identifiers"' not in html
    report = copy.deepcopy(report)
    report["input"]["identifiers"] = {"patient_name": "Doe^Jane", "patient_id": "P<1>", "study_date": "20260101",
                                      "accession_number": None}
    html = render_report_html(report, folder)
    assert "Patient name" in html and "Doe^Jane" in html and "P&lt;1&gt;" in html and "20260101" in html
    assert html.count('<tr class="identifiers">') == 4 and "Accession number</th><td>—" in html


def test_no_warning_and_no_phenotype(empty_case: tuple[Path, dict[str, Any]]) -> None:
    folder, report = empty_case
    report = copy.deepcopy(report)
    report["qc"]["flags"] = []
    report["warnings"] = []
    html = render_report_html(report, folder)
    assert "No plausibility warning" in html
    assert "No phenotype model given" in html
    assert _lesion_rows(html) == ["no-lesion"]
    assert "No lesion found" in html


def test_warnings_are_listed(case: tuple[Path, dict[str, Any]]) -> None:
    folder, report = case
    report = copy.deepcopy(report)
    report["warnings"].append("The model extrapolates: slice thickness 7 mm is outside its training range.")
    html = render_report_html(report, folder)
    assert html.count('<li class="qc-flag">') == 1 and html.count('<li class="warning">') == 1  # flag not repeated
    assert html.count("outside the plausible range") == 1
    assert "slice thickness 7 mm" in html


def test_per_lesion_section_only_when_given(tmp_path: Path) -> None:
    ct, label = make_case()
    probabilities = {1: 0.12, 2: 0.81, 3: 0.47}
    report = make_report(ct, label, write_figures(tmp_path, ct, label, probabilities), per_lesion=True)
    html = render_report_html(report, tmp_path)
    assert 'id="per-lesion"' in html and "Exploratory" in html
    assert "NE probability (exploratory)</th>" in html
    for value in ("0.12", "0.81", "0.47"):
        assert f'<td class="n">{value}</td>' in html


def test_numbers_and_missing_values(case: tuple[Path, dict[str, Any]]) -> None:
    folder, report = case
    report = copy.deepcopy(report)
    report["burden"].update(liver_volume_ml=1523.456, lesion_fraction_of_liver=None, largest_diameter_mm=None)
    report["lesions"][0]["volume_ml"] = 0.0432
    html = render_report_html(report, folder)
    assert '<td class="n">1523.5</td>' in html
    assert '<td class="n">0.043</td>' in html
    assert html.count('<td class="n">—</td>') >= 2


@pytest.mark.parametrize(("auc", "words"), [(0.52, "weak"), (0.69, "weak"), (0.75, "moderate"), (0.85, "good"),
                                            (0.95, "overfitting"), (None, "unknown")])
def test_trust_wording(auc: float | None, words: str) -> None:
    assert words in trust_wording(auc)


def test_missing_figure_is_reported(case: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, report = case
    html = render_report_html(report, tmp_path)  # an empty folder
    assert "<img" not in html and "Axial montage not available" in html


def test_write_report_html(case: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    folder, report = case
    out = write_report_html(report, folder, tmp_path / "sub" / "report.html")
    assert out.read_text(encoding="utf-8") == render_report_html(report, folder)
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_missing_browser_skips_or_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str,
                                                  outcome: type[BaseException]) -> None:
    monkeypatch.setattr(browser_helpers, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install chromium chromium-driver"):
        browser_helpers.require_browser()


def test_template_ships_as_package_data() -> None:
    assert resources.files("livermets.analyze").joinpath("templates", TEMPLATE_NAME).is_file()
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["livermets"]
    assert any(fnmatch.fnmatch(f"analyze/templates/{TEMPLATE_NAME}", pattern) for pattern in patterns)


def _open(browser: Any, folder: Path, report: dict[str, Any], out: Path) -> dict[str, Any]:
    html = write_report_html(report, folder, out / "report.html")
    return check_report(browser, html, out / "screenshot.png")


def test_report_in_a_real_browser(browser: Any, case: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    folder, report = case
    facts = _open(browser, folder, report, tmp_path)
    assert facts["severe_logs"] == []
    assert facts["images_ok"], facts["images"]
    assert sorted(img["id"] for img in facts["images"]) == ["coronal", "montage"]
    assert all(img["naturalWidth"] > 0 and img["src_scheme"] == "data" for img in facts["images"])
    assert facts["lesion_rows"] == 3 and facts["no_lesion_rows"] == 0
    banner = browser.find_element(By.ID, "research-use")
    assert banner.is_displayed() and banner.text == BANNER
    assert BANNER in facts["text"]
    shot = facts["screenshot"].read_bytes()
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000


def test_no_lesion_report_in_a_real_browser(
    browser: Any, empty_case: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    folder, report = empty_case
    facts = _open(browser, folder, report, tmp_path)
    assert facts["severe_logs"] == []
    assert facts["images_ok"], facts["images"]
    assert facts["lesion_rows"] == 0 and facts["no_lesion_rows"] == 1
    assert "No lesion found" in facts["text"] and "No phenotype model given" in facts["text"]


def test_synthetic_case_has_three_lesions() -> None:
    """The synthetic case has exactly the three lesions the browser test counts."""
    _, label = make_case()
    assert label_components(sitk.GetArrayViewFromImage(label) == 2).count == 3
