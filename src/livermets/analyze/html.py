"""The analyze report as one self-contained HTML page (Jinja2 template shipped with the package).

:func:`render_report_html` turns a ``report.json`` mapping (schema ``livermets.report/1``, see ``docs/report.md``)
into a page whose figures are embedded as base64 data URIs: no network access, no external CSS, script or font, so
the single file can be mailed or archived. Everything taken from the input (series description, identifiers, file
paths) is HTML-escaped by the template's autoescaping.

Examples
--------
>>> format_number(12.345), format_number(None), format_volume(0.0432), format_percent(0.634)
('12.3', '—', '0.043', '63.4 %')
>>> trust_wording(0.58)
'weak: close to chance (0.5), do not rely on the individual prediction'
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, PackageLoader, Undefined

from livermets.atomic import write_text
from livermets.figures import LESION_COLOUR, LIVER_COLOUR

TEMPLATE_NAME = "report.html.j2"
"""Template file in ``livermets/analyze/templates`` (package data)."""
MISSING = "—"
"""Shown for a value that is null / not applicable."""
_IDENTIFIER_LABELS = {"patient_name": "Patient name", "patient_id": "Patient ID", "study_date": "Study date",
                      "accession_number": "Accession number"}
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _missing(value: Any) -> bool:
    """True for None, a Jinja undefined value, NaN and infinities."""
    if value is None or isinstance(value, Undefined):
        return True
    return isinstance(value, float) and not math.isfinite(value)


def format_number(value: Any, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals (integers as they are, strings unchanged), or ``—`` when missing."""
    if _missing(value):
        return MISSING
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}"


def format_volume(value: Any) -> str:
    """A volume in mL: 1 decimal, 2 significant digits below 0.1 mL (a small lesion never shows as 0.0)."""
    if _missing(value) or isinstance(value, str):
        return format_number(value)
    number = float(value)
    if 0 < abs(number) < 0.1:
        return f"{number:.2g}"
    return f"{number:.1f}"


def format_percent(value: Any, digits: int = 1) -> str:
    """A fraction 0..1 as a percentage (``0.634`` -> ``63.4 %``)."""
    if _missing(value) or isinstance(value, str):
        return format_number(value)
    return f"{100.0 * float(value):.{digits}f} %"


def trust_wording(auc: Any) -> str:
    """How far a cross-validated ROC AUC lets a reader trust the model's prediction for one patient."""
    if _missing(auc):
        return "no cross-validated estimate stored with the model: its reliability is unknown"
    value = float(auc)
    if value < 0.7:
        return "weak: close to chance (0.5), do not rely on the individual prediction"
    if value < 0.8:
        return "moderate: informative for groups of patients, uncertain for one patient"
    if value < 0.9:
        return "good in cross-validation, but not validated on an external cohort"
    return "high in cross-validation; check for overfitting and validate externally before trusting it"


def identifier_label(key: str) -> str:
    """Display name of an identifier key (``patient_id`` -> ``Patient ID``)."""
    return _IDENTIFIER_LABELS.get(key, key.replace("_", " ").capitalize())


def _json(value: Any) -> str:
    """Compact JSON of a parameter value (strings unchanged)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def figure_data_uri(folder: Path, name: Any) -> str | None:
    """``data:`` URI of figure ``name`` in ``folder`` (only its file name is used), or None if it is missing."""
    if _missing(name) or not str(name):
        return None
    path = Path(folder) / Path(str(name)).name
    if not path.is_file():
        return None
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _environment() -> Environment:
    """Jinja2 environment with autoescaping on and the report's number filters."""
    environment = Environment(
        loader=PackageLoader("livermets.analyze", "templates"),
        autoescape=True,
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(num=format_number, vol=format_volume, pct=format_percent, trust=trust_wording,
                               tojson_compact=_json)
    environment.tests["missing"] = _missing
    return environment


def render_report_html(report: Mapping[str, Any], folder: Path) -> str:
    """The report page for ``report`` (a ``report.json`` mapping) with the figures of ``folder`` embedded.

    Parameters
    ----------
    report
        The ``report.json`` content (schema ``livermets.report/1``).
    folder
        Folder holding the PNGs named in ``report["figures"]``; a missing figure is reported on the page.

    Returns
    -------
    str
        One self-contained HTML document.

    Notes
    -----
    The plausibility flags (``report["qc"]["flags"]``) are listed with their codes, followed by the warnings that do
    not repeat a flag's message.
    """
    figures = report.get("figures") or {}
    images = {key: figure_data_uri(Path(folder), name) for key, name in figures.items()}
    lesions = list(report.get("lesions") or [])
    show_probability = any(not _missing(row.get("ne_probability")) for row in lesions) or bool(
        report.get("per_lesion_phenotype"))
    show_segment = any(not _missing(row.get("liver_segment")) for row in lesions)
    flags = list((report.get("qc") or {}).get("flags") or [])
    flag_messages = {flag.get("message") for flag in flags}
    warnings = [text for text in report.get("warnings") or [] if text not in flag_messages]
    identifiers = (report.get("input") or {}).get("identifiers") or {}
    template = _environment().get_template(TEMPLATE_NAME)
    return template.render(
        report=report, images=images, lesions=lesions, show_probability=show_probability, show_segment=show_segment,
        flags=flags, warnings=warnings, identifiers=[(identifier_label(k), v) for k, v in identifiers.items()],
        liver_colour=LIVER_COLOUR, lesion_colour=LESION_COLOUR,
    )


def write_report_html(report: Mapping[str, Any], folder: Path, out_path: str | os.PathLike[str]) -> Path:
    """Render the report (see :func:`render_report_html`) and write it atomically to ``out_path``."""
    return write_text(out_path, render_report_html(report, Path(folder)))
