"""Figure 3 statistics on the real table: Spearman(tumour volume, NE score) over one series per study (the paper's
study-level analysis, ``level="study"``)."""

from __future__ import annotations

import json

import pandas as pd
from scipy import stats

from livermets.stats.burden import burden_statistics, one_series_per_study

CSV = ("nih_mip_msclc", "Final_ResampledClassificationData.csv")


def test_spearman_matches_paper(shared_data, shared_paper):
    frame = pd.read_csv(shared_data(*CSV))
    reference = json.loads(shared_paper("reference_values.json").read_text())["figure3_tumor_burden_vs_ne"]["all"]
    result = burden_statistics(frame, choice="first", level="study")
    assert result["all"]["n"] == 118 and result["level"] == "study"
    assert (result["all"]["n_patients"], result["all"]["n_studies"], result["all"]["n_series"]) == (50, 118, 227)
    assert abs(result["all"]["spearman_rho"] - reference["spearman_rho"]) <= 0.005
    assert abs(result["all"]["spearman_p"] - reference["spearman_p"]) <= 0.001
    assert "cfdna" not in result and "note" in result


def test_one_series_per_study_and_sample_type_split(shared_data):
    frame = pd.read_csv(shared_data(*CSV)).copy()  # copy: defragment the 152-column frame before adding one
    studies = one_series_per_study(frame, "last")
    assert studies["unique_scandate"].is_unique and len(studies) == 118
    frame = frame.assign(sample_type=(frame.index % 2).map({0: "biopsy", 1: "cfDNA"}))
    result = burden_statistics(frame, choice="first", level="study")
    subset = one_series_per_study(frame).query("sample_type == 'biopsy'")
    rho = stats.spearmanr(subset["original_shape_VoxelVolume"], subset["NE_Score"]).statistic
    assert abs(result["biopsy"]["spearman_rho"] - rho) < 1e-12
    assert result["biopsy"]["n"] + result["cfdna"]["n"] == 118
