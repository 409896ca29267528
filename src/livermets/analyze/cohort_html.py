"""``cohort_report.html``: one self-contained page over a ``run`` (figures embedded, links to the series reports)."""

from __future__ import annotations

import base64
import datetime as _dt
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from livermets import __version__
from livermets.atomic import write_text


def _fmt(value: Any, digits: int) -> str:
    number = pd.to_numeric(value, errors="coerce")
    return "—" if pd.isna(number) else f"{float(number):.{digits}f}"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _series_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for row in summary.to_dict("records"):
        flags = row.get("qc_flags")
        rows.append({"series_id": row["series_id"], "patient_id": row.get("patient_id") or "—",
                     "liver": _fmt(row["liver_volume_ml"], 1), "lesion_count": int(row["lesion_count"]),
                     "lesion": _fmt(row["total_lesion_volume_ml"], 2), "ne": _fmt(row.get("ne_probability"), 2),
                     "qc_flags": flags if isinstance(flags, str) and flags else "—"})
    return rows


def write_cohort_html(tables: dict[str, pd.DataFrame], figures: dict[str, str], failures: list[dict[str, str]],
                      n_series: int, out: Path) -> Path:
    """Render the cohort report into ``out / "cohort_report.html"`` (atomically)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("livermets.analyze", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    summary = tables["summary"]
    flagged = 0 if summary.empty else int(summary["qc_flags"].fillna("").astype(str).ne("").sum())
    html = env.get_template("cohort.html.j2").render(
        n_series=n_series, n_done=len(summary), n_lesions=len(tables["lesions"]), n_flagged=flagged,
        figures={key: _data_uri(out / name) for key, name in figures.items()},
        series=[] if summary.empty else _series_rows(summary), failures=failures, version=__version__,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    return write_text(out / "cohort_report.html", html)
