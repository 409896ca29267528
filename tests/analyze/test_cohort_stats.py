"""The cohort report's statistics and caveats on small cohort tables built here (no segmentation): patient-level
Spearman checked against scipy on patient means computed by hand, unchanged when every series is duplicated."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from livermets.analyze.cohort_html import write_cohort_html
from livermets.analyze.cohort_stats import burden_statistics, cohort_caveats, gate_reason
from livermets.analyze.cohort_tables import burden_vs_ne_figure
from livermets.segmentation.default_model import SHIPPED_MODEL_WARNING

STAT_KEYS = ("rho", "p", "low95", "high95", "n_patients", "n_studies", "n_undefined")


def issue_cohort(seed: int = 0) -> pd.DataFrame:
    """6 patients, 12 studies (2 each), 20 series (two reconstructions for 8 studies), as a run's summary table."""
    rng = np.random.default_rng(seed)
    rows = []
    for study in range(12):
        patient = f"P{study // 2 + 1}"
        for reconstruction in range(2 if study < 8 else 1):
            rows.append({"series_id": f"S{study:02d}_{reconstruction}", "study_id": f"{patient}_T{study % 2}",
                         "patient_id": patient, "total_lesion_volume_ml": float(np.exp(rng.normal(2, 1.5))),
                         "ne_probability": float(rng.uniform()), "ne_score_known": float(rng.uniform(-0.2, 0.4)),
                         "liver_volume_ml": 1500.0, "lesion_count": 3, "qc_flags": ""})
    return pd.DataFrame(rows)


def _patient_means_by_hand(summary: pd.DataFrame, column: str) -> tuple[list[float], list[float]]:
    values = defaultdict(list)
    for row in summary.to_dict("records"):
        if np.isfinite(row["total_lesion_volume_ml"]) and np.isfinite(row[column]):
            values[row["patient_id"]].append((row["total_lesion_volume_ml"], row[column]))
    return ([sum(v for v, _ in pairs) / len(pairs) for pairs in values.values()],
            [sum(y for _, y in pairs) / len(pairs) for pairs in values.values()])


def test_burden_statistics_are_spearman_on_patient_means() -> None:
    summary = issue_cohort()
    summary.loc[3, "ne_probability"] = np.nan  # a series without an NE probability is left out of that panel only
    panels = burden_statistics(summary, n_boot=300)
    assert [p["column"] for p in panels] == ["ne_probability", "ne_score_known"]
    for panel in panels:
        x, y = _patient_means_by_hand(summary, panel["column"])
        expected = stats.spearmanr(x, y)
        assert panel["rho"] == pytest.approx(expected.statistic, abs=1e-12)
        assert panel["p"] == pytest.approx(expected.pvalue, rel=1e-9)
        assert panel["low95"] <= panel["rho"] <= panel["high95"]
    assert (panels[0]["n_patients"], panels[0]["n_studies"], panels[0]["n_series"]) == (6, 12, 19)
    assert panels[1]["sentence"].endswith("n = 6 patients (12 studies, 20 series)")


@pytest.mark.parametrize("new_studies", [False, True])
def test_duplicating_every_series_changes_no_p_value_or_ci(new_studies: bool) -> None:
    summary = issue_cohort(1)
    copy = summary.assign(series_id="dup_" + summary["series_id"])
    if new_studies:
        copy["study_id"] = "dup_" + copy["study_id"]
    doubled = pd.concat([copy, summary], ignore_index=True)
    for before, after in zip(burden_statistics(summary), burden_statistics(doubled), strict=True):
        expected = {k: before[k] for k in STAT_KEYS if k != "n_studies" or not new_studies}
        assert {k: after[k] for k in expected} == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert after["n_series"] == 40


def test_the_figure_titles_the_patient_level_statistic() -> None:
    summary = issue_cohort(2)
    panels = burden_statistics(summary)
    figure = burden_vs_ne_figure(summary, panels)
    title = figure.axes[0].get_title()
    assert f"ρ = {panels[0]['rho']:.2f}" in title and "n = 6 patients (12 studies, 20 series)" in title
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["series", "patient mean"]


def _reports(summary: pd.DataFrame) -> dict[str, dict]:
    reports = {}
    for index, series_id in enumerate(summary["series_id"]):
        features = {"status": "ok", "reason": None} if index % 5 else {"status": "no lesion", "reason": "no lesion"}
        reports[series_id] = {"segmentation": {"model_name": "shipped", "shipped_default": True},
                              "features": features}
    return reports


def test_caveats_count_flags_gated_series_and_name_the_model(tmp_path: Path) -> None:
    summary = issue_cohort(3)
    summary.loc[summary.index % 5 == 0, "ne_probability"] = np.nan  # 4 series without features: no probability
    predicted = summary[summary["ne_probability"].notna()]
    flags = ["out_of_range;fold_disagreement" if i % 2 else "out_of_range" for i in range(len(predicted))]
    tables = {"summary": summary, "lesions": pd.DataFrame({"series_id": summary["series_id"]}),
              "predictions": predicted[["series_id"]].assign(probability=predicted["ne_probability"], flags=flags)}
    cv = {"protocol": "grouped", "metric": "roc_auc", "auc": 0.54, "n_rows": 227, "n_patients": 50, "n_folds": 5}
    model = {"model": "m", "classifier": "LR", "protocol": "grouped", "cv_performance": cv}
    caveats = cohort_caveats(tables, _reports(summary), model)
    assert caveats["segmentation"] == {"models": {"shipped": 20}, "n_shipped": 20, "warning": SHIPPED_MODEL_WARNING}
    assert caveats["predictions"]["n"] == 16
    assert (caveats["predictions"]["n_out_of_range"], caveats["predictions"]["n_fold_disagreement"]) == (16, 8)
    assert caveats["gated"] == {"n_series": 20, "n_gated": 4, "share": 0.2,
                                "reasons": {"no radiomics features (no lesion)": 4}}
    stats_json = {"aggregation": "one value per patient", "burden_vs_ne": burden_statistics(summary),
                  "caveats": caveats}
    text = write_cohort_html(tables, {}, [], 20, tmp_path, stats_json).read_text(encoding="utf-8")
    text = re.sub(r"\s+", " ", text)
    assert "6 patients, 12 studies, 20 series" in text
    assert "patient-grouped 5-fold cross-validated ROC AUC 0.54 on 50 patients" in text
    assert "16 of 16 NE predictions have features outside the range" in text
    assert "8 of 16 have fold disagreement" in text
    assert "4 of 20 analysed series (20 %) have no NE probability (no radiomics features (no lesion): 4)" in text
    assert "Segmentation model: shipped (20 series)" in text and "trained on synthetic CT" in text
    json.dumps(stats_json)  # what cohort_stats.json holds is plain JSON


def test_gate_reason_reads_the_summary_reason_first() -> None:
    ok = {"features": {"status": "ok"}}
    assert gate_reason({"ne_probability": 0.3}, ok) is None
    assert gate_reason({"ne_probability": None, "ne_reason": "liver cut off"}, ok) == "liver cut off"
    assert gate_reason({"ne_probability": np.nan}, {"features": {"status": "failed", "reason": "too many lesions"}}) \
        == "no radiomics features (too many lesions)"


def test_the_figure_of_a_run_without_ne_probabilities_is_drawn(tmp_path: Path) -> None:
    """No phenotype model: the probability panel has no point and says that rho was not computed."""
    from livermets.figures import save_figure

    summary = issue_cohort(4).assign(ne_probability=np.nan, ne_score_known=np.nan)
    figure = burden_vs_ne_figure(summary)
    assert "not computed" in figure.axes[0].get_title() and "n = 0 patients" in figure.axes[0].get_title()
    assert save_figure(figure, tmp_path / "b.png").stat().st_size > 1000
