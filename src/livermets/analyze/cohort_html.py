"""``cohort_report.html``: one self-contained page over a ``run`` (figures embedded, links to the series reports).

Above the figures the page gives what limits its numbers (:func:`livermets.analyze.cohort_stats.cohort_caveats`): the
segmentation model (with the shipped model's warning), the phenotype model's patient-grouped AUC, the NE predictions
outside the training range or with disagreeing folds, and the series without an NE probability. Every statistic
states its n as patients, studies and series.
"""

from __future__ import annotations

import base64
import datetime as _dt
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from livermets import __version__
from livermets.analyze.html import trust_wording
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


def _caveat_lines(caveats: dict[str, Any]) -> dict[str, Any]:
    """Sentences of the caveats section (``None`` for a part that does not apply)."""
    segmentation = caveats["segmentation"]
    models = ", ".join(f"{name} ({n} series)" for name, n in segmentation["models"].items()) or "—"
    lines: dict[str, Any] = {"segmentation": models, "segmentation_warning": segmentation["warning"],
                             "phenotype": None, "predictions": None, "gated": None}
    model = caveats["phenotype_model"]
    if model is None:
        return lines
    cv = model.get("cv_performance")
    lines["phenotype"] = (f"{model.get('classifier') or '—'}, {model.get('protocol') or '—'} protocol: "
                          + (f"patient-grouped {cv['n_folds']}-fold cross-validated ROC AUC {cv['auc']:.2f} on "
                             f"{cv['n_patients']} patients ({cv['n_rows']} rows): {trust_wording(cv['auc'])}."
                             if cv else f"{trust_wording(None)}."))
    predictions = caveats["predictions"]
    lines["predictions"] = (f"{predictions['n_out_of_range']} of {predictions['n']} NE predictions have features "
                            "outside the range the model was trained on (extrapolations); "
                            f"{predictions['n_fold_disagreement']} of {predictions['n']} have fold disagreement "
                            f"({predictions['fold_disagreement_rule']}).")
    gated = caveats["gated"]
    reasons = "; ".join(f"{reason}: {n}" for reason, n in gated["reasons"].items())
    lines["gated"] = (f"{gated['n_gated']} of {gated['n_series']} analysed series ({_fmt(100 * gated['share'], 0)} %) "
                      "have no NE probability" + (f" ({reasons})." if reasons else "."))
    return lines


def write_cohort_html(tables: dict[str, pd.DataFrame], figures: dict[str, str], failures: list[dict[str, str]],
                      n_series: int, out: Path, cohort_stats: dict[str, Any]) -> Path:
    """Render the cohort report into ``out / "cohort_report.html"`` (atomically).

    ``cohort_stats`` is what ``cohort_stats.json`` holds: ``aggregation``, ``burden_vs_ne`` (patient-level
    statistics) and ``caveats``.
    """
    env = jinja2.Environment(loader=jinja2.PackageLoader("livermets.analyze", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    summary = tables["summary"]
    flagged = 0 if summary.empty else int(summary["qc_flags"].fillna("").astype(str).ne("").sum())
    caveats = cohort_stats["caveats"]
    html = env.get_template("cohort.html.j2").render(
        n_series=n_series, n_done=len(summary), n_lesions=len(tables["lesions"]), n_flagged=flagged,
        units=caveats["units"], caveats=_caveat_lines(caveats), statistics=cohort_stats["burden_vs_ne"],
        aggregation=cohort_stats["aggregation"],
        figures={key: _data_uri(out / name) for key, name in figures.items()},
        series=[] if summary.empty else _series_rows(summary), failures=failures, version=__version__,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    return write_text(out / "cohort_report.html", html)
