"""The cohort outputs of ``run``, rebuilt from the finished series folders: tables, figures, cohort report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from livermets.atomic import write_csv, write_json
from livermets.featuretable import order_columns
from livermets.figures import LESION_COLOUR, new_figure, save_figure

QC_COLUMNS = ["liver_ml", "lesion_ml", "n_lesions", "n_speckles", "n_lesions_outside_liver", "hu_min", "hu_max",
              "liver_edge_fraction"]


def _ids(job: Any) -> dict[str, Any]:
    return {"series_id": job.series_id, "study_id": job.ids.get("unique_scandate"),
            "patient_id": job.ids.get("unique_pt"), "ne_score_known": job.ids.get("NE_Score")}


def collect_tables(jobs: Sequence[Any]) -> dict[str, pd.DataFrame]:
    """Stack the per-series outputs of finished jobs, in manifest order.

    Returns ``summary`` (with study_id, patient_id and the manifest's NE score when known), ``lesions``,
    ``features`` (published schema), ``qc`` and ``predictions`` (NE probability, class, fold spread; series with a
    phenotype prediction only) frames.
    """
    parts: dict[str, list[pd.DataFrame]] = {"summary": [], "lesions": [], "features": [], "qc": [],
                                            "predictions": []}
    for job in jobs:
        folder = Path(job.out)
        if not (folder / "report.json").is_file():
            continue
        ids = _ids(job)
        summary = pd.read_csv(folder / "summary.csv", dtype={"series_id": "string", "qc_flags": "string"})
        parts["summary"].append(summary.drop(columns="series_id").assign(**ids)[[*ids, *summary.columns[1:]]])
        lesions = pd.read_csv(folder / "lesions.csv")
        parts["lesions"].append(lesions.assign(series_id=job.series_id, patient_id=ids["patient_id"]))
        if (folder / "features.csv").is_file():
            parts["features"].append(pd.read_csv(folder / "features.csv"))
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        if report["phenotype"] is not None and report["phenotype"]["probability"] is not None:
            phenotype = report["phenotype"]
            parts["predictions"].append(pd.DataFrame([{**ids, **{c: phenotype[c] for c in PREDICTION_COLUMNS},
                                                       "flags": ";".join(phenotype["flags"])}]))
        qc = report["qc"]
        parts["qc"].append(pd.DataFrame([{"series_id": job.series_id, **{c: qc.get(c) for c in QC_COLUMNS},
                                          "flags": ";".join(qc.get("flag_codes", []))}]))
    tables = {key: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame() for key, frames in parts.items()}
    if not tables["lesions"].empty:
        first = ["series_id", "patient_id"]
        tables["lesions"] = tables["lesions"][first + [c for c in tables["lesions"].columns if c not in first]]
    if not tables["features"].empty:
        tables["features"] = order_columns(tables["features"])
    return tables


PREDICTION_COLUMNS = ["probability", "predicted_class", "threshold", "fold_probability_min", "fold_probability_max",
                      "fold_probability_std", "n_features_outside_training_range", "max_outside_range"]


def burden_vs_ne_figure(summary: pd.DataFrame, statistics: list[dict[str, Any]] | None = None) -> Any:
    """Total lesion volume against the predicted NE probability and, where the manifest has it, the NE score.

    Grey dots are series, coloured dots patient means (log volume axis; a volume of 0 is not drawn). Each panel's
    title gives the patient-level statistic of :func:`livermets.analyze.cohort_stats.burden_statistics` (computed
    here when ``statistics`` is not given): Spearman rho, its 95% CI, p and n as patients, studies and series.
    """
    from livermets.analyze.cohort_stats import VOLUME_COLUMN, burden_statistics
    from livermets.stats.clustered import patient_means

    panels = statistics if statistics is not None else burden_statistics(summary)
    fig, axes = new_figure(1, len(panels), figsize=(5.6 * len(panels), 4.8))
    for ax, panel in zip(axes[0], panels, strict=True):
        series = summary.assign(**{c: pd.to_numeric(summary[c], errors="coerce")
                                   for c in (VOLUME_COLUMN, panel["column"])})
        means = patient_means(series, [VOLUME_COLUMN, panel["column"]], "patient_id")
        drawn = series[(series[VOLUME_COLUMN] > 0) & series[panel["column"]].notna()]
        not_drawn = int((means[VOLUME_COLUMN] <= 0).sum())
        means = means[means[VOLUME_COLUMN] > 0]
        if drawn.empty:  # matplotlib cannot put empty scatters on a log axis
            ax.text(0.5, 0.5, "no series with a lesion volume > 0 and a value", transform=ax.transAxes, ha="center")
        else:
            ax.scatter(drawn[VOLUME_COLUMN], drawn[panel["column"]], s=10, color="0.6", label="series")
            ax.scatter(means[VOLUME_COLUMN], means[panel["column"]], s=30, color=LESION_COLOUR, edgecolor="black",
                       linewidth=0.4, label="patient mean")
            ax.set_xscale("log")
            ax.legend(loc="best", fontsize=8)
        if not_drawn:
            ax.text(0.02, 0.02, f"{not_drawn} patient{'s' * (not_drawn > 1)} with volume 0 not drawn (log axis)",
                    transform=ax.transAxes, fontsize=7)
        ax.set_xlabel("total lesion volume (mL, log scale)")
        ax.set_ylabel(panel["name"])
        ax.set_title(f"{panel['name']} vs tumour burden\n{panel['sentence'].replace('; n = ', chr(10) + 'n = ')}")
        ax.grid(alpha=0.3)
    return fig


def timelines_figure(summary: pd.DataFrame, max_patients: int = 12) -> Any | None:
    """Per-patient burden and NE probability across studies (study_id order); ``None`` without repeat studies."""
    counts = summary.groupby("patient_id")["study_id"].nunique()
    patients = sorted(counts[counts > 1].index.astype(str))[:max_patients]
    if not patients:
        return None
    fig, grid = new_figure(1, 2, figsize=(11, 4.4))
    axes = grid[0]
    for patient in patients:
        rows = summary[summary["patient_id"].astype(str) == patient]
        per_study = rows.groupby("study_id")[["total_lesion_volume_ml", "ne_probability"]].max().sort_index()
        x = np.arange(1, len(per_study) + 1)
        axes[0].plot(x, per_study["total_lesion_volume_ml"], marker="o", label=patient)
        axes[1].plot(x, per_study["ne_probability"], marker="o", label=patient)
    axes[0].set_ylabel("total lesion volume (mL)")
    axes[1].set_ylabel("predicted NE probability")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("study number (in study_id order)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, title="patient", loc="best")
    fig.suptitle(f"Per-patient timelines ({len(patients)} patients with repeat studies)")
    return fig


def write_cohort_outputs(jobs: Sequence[Any], out: Path, failures: list[dict[str, str]],
                         phenotype_model: dict[str, Any] | None = None) -> dict[str, pd.DataFrame]:
    """Write summary/lesions/features/qc tables, ``cohort_stats.json``, the figures and ``cohort_report.html``.

    ``phenotype_model`` (``model, classifier, protocol, cv_performance``; ``None``: the run predicts no NE phenotype)
    is what the report's caveats say about the phenotype model.
    """
    from livermets.analyze.cohort_stats import AGGREGATION, burden_statistics, cohort_caveats, series_reports
    from livermets.stats.clustered import N_BOOT, SEED

    tables = collect_tables(jobs)
    for name, frame in tables.items():
        write_csv(out / f"{name}.csv", frame)
    statistics = burden_statistics(tables["summary"]) if not tables["summary"].empty else []
    caveats = cohort_caveats(tables, series_reports(jobs), phenotype_model)
    cohort_stats = {"aggregation": AGGREGATION.format(n_boot=N_BOOT, seed=SEED), "burden_vs_ne": statistics,
                    "caveats": caveats}
    write_json(out / "cohort_stats.json", cohort_stats)
    figures = {}
    if not tables["summary"].empty:
        figures["burden_vs_ne"] = save_figure(burden_vs_ne_figure(tables["summary"], statistics),
                                              out / "burden_vs_ne.png").name
        timelines = timelines_figure(tables["summary"])
        if timelines is not None:
            figures["timelines"] = save_figure(timelines, out / "timelines.png").name
    from livermets.analyze.cohort_html import write_cohort_html

    write_cohort_html(tables, figures, failures, len(jobs), out, cohort_stats)
    return tables
