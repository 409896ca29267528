"""Patient-level burden statistics: checked against scipy on patient means computed by hand, and unchanged when
every series is duplicated (which changes the study-level statistic the paper used)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cli_helpers import run_cli
from livermets.stats.burden import burden_statistics
from livermets.stats.clustered import clustered_spearman

CSV = ("nih_mip_msclc", "Final_ResampledClassificationData.csv")
VOLUME = "original_shape_VoxelVolume"
CI_KEYS = ("spearman_rho", "spearman_p", "spearman_low95", "spearman_high95", "ranksum_stat", "ranksum_p",
           "mannwhitney_u", "mannwhitney_p", "n_patients", "n_positive", "n_negative", "n_tied_class")


@pytest.fixture(scope="module")
def paper_table(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data(*CSV)).copy()


def _by_hand(frame: pd.DataFrame) -> dict[str, tuple[float, float, int]]:
    """First row of each study, then per patient: mean volume, mean NE score, NE class of most studies (-1: tie)."""
    seen, rows = set(), defaultdict(list)
    for record in frame.to_dict("records"):
        if record["unique_scandate"] not in seen:
            seen.add(record["unique_scandate"])
            rows[str(record["unique_pt"])].append(record)
    out = {}
    for patient, records in rows.items():
        positives = sum(r["NE_Class"] == 1 for r in records)
        negatives = len(records) - positives
        majority = 1 if positives > negatives else (0 if negatives > positives else -1)
        out[patient] = (sum(r[VOLUME] for r in records) / len(records),
                        sum(r["NE_Score"] for r in records) / len(records), majority)
    return out


def test_patient_level_equals_scipy_on_patient_means_computed_by_hand(paper_table: pd.DataFrame) -> None:
    result = burden_statistics(paper_table, n_boot=300)["all"]
    patients = _by_hand(paper_table)
    volume = np.array([v[0] for v in patients.values()])
    score = np.array([v[1] for v in patients.values()])
    majority = np.array([v[2] for v in patients.values()])
    assert (result["n"], result["n_patients"], result["n_studies"], result["n_series"]) == (50, 50, 118, 227)
    rho, p_value = stats.spearmanr(volume, score)
    assert result["spearman_rho"] == pytest.approx(rho, abs=1e-12)
    assert result["spearman_p"] == pytest.approx(p_value, rel=1e-9)
    assert result["spearman_p"] > 0.05 > 0.0060  # the study-level p (paper: 0.0059) counts studies as independent
    assert (result["n_positive"], result["n_negative"], result["n_tied_class"]) == (
        (majority == 1).sum(), (majority == 0).sum(), (majority == -1).sum())
    mwu = stats.mannwhitneyu(volume[majority == 1], volume[majority == 0], alternative="two-sided")
    assert result["mannwhitney_u"] == mwu.statistic and result["mannwhitney_p"] == pytest.approx(mwu.pvalue)


def test_patient_bootstrap_ci_equals_a_loop_over_scipy(paper_table: pd.DataFrame) -> None:
    """The CI: patients (sorted by id) drawn with default_rng(seed).integers, scipy's Spearman on each draw."""
    result = burden_statistics(paper_table, n_boot=300, seed=7)["all"]
    patients = _by_hand(paper_table)
    order = sorted(patients)
    volume = np.array([patients[p][0] for p in order])
    score = np.array([patients[p][1] for p in order])
    draws = np.random.default_rng(7).integers(0, len(order), size=(300, len(order)))
    rhos = np.array([stats.spearmanr(volume[d], score[d]).statistic for d in draws])
    rhos = rhos[np.isfinite(rhos)]
    assert result["spearman_low95"] == pytest.approx(np.percentile(rhos, 2.5), abs=1e-9)
    assert result["spearman_high95"] == pytest.approx(np.percentile(rhos, 97.5), abs=1e-9)
    assert result["spearman_low95"] < result["spearman_rho"] < result["spearman_high95"]


def _duplicated(frame: pd.DataFrame, new_studies: bool) -> pd.DataFrame:
    """Every series twice (new series ids, same patient; with ``new_studies`` new study ids too and rows shuffled)."""
    copy = frame.assign(File="dup_" + frame["File"])
    if new_studies:
        copy["unique_scandate"] = "dup_" + copy["unique_scandate"]
    both = pd.concat([frame, copy], ignore_index=True)
    return both.sample(frac=1.0, random_state=3).reset_index(drop=True) if new_studies else both


@pytest.mark.parametrize(("new_studies", "choice"), [(False, "first"), (True, "largest")])
def test_duplicating_every_series_changes_no_p_value_or_ci(paper_table: pd.DataFrame, new_studies: bool,
                                                           choice: str) -> None:
    """Shuffled rows take ``largest``: ``first`` is by definition the first series of a study in table order."""
    frame = paper_table.assign(sample_type=np.where(paper_table.index % 3 == 0, "biopsy", "cfdna"))
    before = burden_statistics(frame, choice, n_boot=200)
    after = burden_statistics(_duplicated(frame, new_studies), choice, n_boot=200)
    for subset in ("all", "biopsy", "cfdna"):
        assert {k: after[subset][k] for k in CI_KEYS} == pytest.approx({k: before[subset][k] for k in CI_KEYS},
                                                                       rel=1e-12, abs=1e-12), subset
        assert after[subset]["n_series"] == 2 * before[subset]["n_series"]
    if new_studies:  # the same duplication does move the study-level statistic, which ignores the clustering
        study_before, study_after = (burden_statistics(t, choice, level="study")["all"]
                                     for t in (frame, _duplicated(frame, True)))
        assert study_after["n"] == 2 * study_before["n"] and study_after["spearman_p"] < study_before["spearman_p"]


def test_clustered_spearman_ignores_row_order_and_non_finite_rows() -> None:
    rng = np.random.default_rng(1)
    patients = np.repeat(np.arange(8).astype(str), 3)
    x, y = rng.normal(size=24), rng.normal(size=24)
    x[5] = np.nan
    result = clustered_spearman(x, y, patients, n_boot=100)
    order = rng.permutation(24)
    assert clustered_spearman(x[order], y[order], patients[order], n_boot=100) == result
    keep = np.isfinite(x)
    means = pd.DataFrame({"x": x[keep], "y": y[keep], "p": patients[keep]}).groupby("p").mean()
    assert result["rho"] == pytest.approx(stats.spearmanr(means["x"], means["y"]).statistic, abs=1e-12)
    assert result["n_patients"] == 8 and np.isnan(clustered_spearman(x[:6], y[:6], patients[:6])["rho"])


def test_stats_burden_cli_is_patient_level_by_default(shared_data, tmp_path, monkeypatch, capsys) -> None:
    features = shared_data(*CSV)
    assert run_cli(monkeypatch, "stats", "burden", "--features", features, "--out", tmp_path / "p",
                   "--n-boot", "200") == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("patient level, n = 50 patients (118 studies, 227 series): Spearman rho 0.258 (95% CI")
    saved = json.loads((tmp_path / "p" / "burden_stats.json").read_text())
    assert saved["level"] == "patient" and saved["n_boot"] == 200 and "mean over its studies" in saved["aggregation"]
    assert (tmp_path / "p" / "burden.png").stat().st_size > 1000
    assert run_cli(monkeypatch, "stats", "burden", "--features", features, "--out", tmp_path / "s",
                   "--level", "study") == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("study level (ignores clustering), n = 118 studies (50 patients, 227 series): "
                           "Spearman rho 0.251 (p 0.0060)")  # the paper's Figure 3: 0.252, p 0.0059
    saved = json.loads((tmp_path / "s" / "burden_stats.json").read_text())
    assert saved["level"] == "study" and saved["clustering"].startswith("ignores clustering")


@pytest.mark.parametrize("name", ["livermets.stats.clustered", "livermets.stats.burden",
                                  "livermets.analyze.cohort_stats"])
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_stats_failure_states_patients_studies_and_series(shared_data, tmp_path, monkeypatch, capsys) -> None:
    table = pd.read_csv(shared_data(*CSV))
    test = table[table["Group"] == "test"]
    wrong = np.arange(len(test)) % 4 == 0
    pd.DataFrame({"File": test["File"], "predicted_class": np.where(wrong, 1 - test["NE_Class"], test["NE_Class"]),
                  "probability": 0.5}).to_csv(tmp_path / "p.csv", index=False)
    assert run_cli(monkeypatch, "stats", "failure", "--features", shared_data(*CSV), "--predictions",
                   tmp_path / "p.csv", "--out", tmp_path / "f") == 0
    units = (test["unique_pt"].nunique(), test["unique_scandate"].nunique(), len(test))
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"{wrong.sum()} of {len(test)} series misclassified; n = {units[0]} patients ({units[1]} studies, "
        f"{units[2]} series) (descriptive, no test)")
    saved = json.loads((tmp_path / "f" / "failure_stats.json").read_text())
    assert saved["units"] == {"n_patients": units[0], "n_studies": units[1], "n_series": units[2]}
