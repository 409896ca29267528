"""``livermets run``: cohort tables, resume after kill -9 with identical outputs, failures, Dask workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from cli_helpers import run_cli
from livermets.analyze.cohort import RunSummary, run_cohort
from livermets.analyze.single import AnalyzeOptions
from livermets.segmentation.engines.threads import engine_threads

SERIES_FILES = ("summary.csv", "lesions.csv", "features.csv")
COHORT_FILES = ("summary.csv", "lesions.csv", "features.csv", "qc.csv", "predictions.csv")


@pytest.fixture(scope="module")
def reference(three_series: Path, ne_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path,
                                                                                                      RunSummary]:
    """An uninterrupted run of the three series in this process (1 worker)."""
    out = tmp_path_factory.mktemp("run_ref") / "run"
    return out, run_cohort(three_series, out, AnalyzeOptions(phenotype_model=ne_model), workers=1)


def assert_same_outputs(a: Path, b: Path, series: list[str]) -> None:
    """Same label maps (voxels and grid) and the same tables, series by series and for the cohort."""
    for sid in series:
        la, lb = (sitk.ReadImage(str(root / "series" / sid / "label.nii.gz")) for root in (a, b))
        assert np.array_equal(sitk.GetArrayFromImage(la), sitk.GetArrayFromImage(lb)), sid
        assert la.GetOrigin() == lb.GetOrigin() and la.GetSpacing() == lb.GetSpacing()
        for name in SERIES_FILES:
            pd.testing.assert_frame_equal(pd.read_csv(a / "series" / sid / name),
                                          pd.read_csv(b / "series" / sid / name), check_exact=True)
    for name in COHORT_FILES:
        pd.testing.assert_frame_equal(pd.read_csv(a / name), pd.read_csv(b / name), check_exact=True)


def test_cohort_tables_stack_the_series(reference: tuple[Path, RunSummary], three_series: Path) -> None:
    out, summary = reference
    manifest = pd.read_csv(three_series, dtype=str)
    assert (summary.n_series, summary.n_analysed, summary.failures) == (3, 3, [])
    table = pd.read_csv(out / "summary.csv", dtype={"series_id": str, "patient_id": str})
    assert table["series_id"].tolist() == manifest["series_id"].tolist()
    assert table["patient_id"].tolist() == manifest["patient_id"].tolist()
    lesions = pd.read_csv(out / "lesions.csv", dtype={"series_id": str})
    counts = lesions.groupby("series_id").size().reindex(table["series_id"], fill_value=0)
    assert counts.tolist() == table["lesion_count"].tolist()
    features = pd.read_csv(out / "features.csv")
    assert features["unique_pt"].astype(str).tolist() == manifest["patient_id"].tolist()  # manifest ids carried
    assert np.allclose(features["NE_Score"], manifest["ne_score"].astype(float))
    given = table["ne_status"] == "given"  # a withheld probability is empty, with its reason
    assert given.any() and table.loc[given, "ne_probability"].notna().all()
    assert table.loc[~given, "ne_probability"].isna().all() and table.loc[~given, "ne_reason"].notna().all()
    predictions = pd.read_csv(out / "predictions.csv", dtype={"series_id": str})
    assert predictions["series_id"].tolist() == table.loc[given, "series_id"].tolist()
    assert np.allclose(predictions["probability"], table.loc[given, "ne_probability"])
    assert (out / "cohort_report.html").stat().st_size > 10_000 and (out / "burden_vs_ne.png").is_file()
    assert pd.read_csv(out / "failures.csv").empty


def test_second_run_redoes_nothing(reference: tuple[Path, RunSummary], three_series: Path, ne_model: Path) -> None:
    out, _ = reference
    label = out / "series" / pd.read_csv(three_series, dtype=str).loc[0, "series_id"] / "label.nii.gz"
    before = label.stat().st_mtime_ns
    stale = out / ".summary.csv.ab12cd34.tmp.csv"  # what a kill inside the write of a cohort table leaves
    stale.write_bytes(b"half")
    again = run_cohort(three_series, out, AnalyzeOptions(phenotype_model=ne_model), workers=1)
    assert (again.n_done_before, again.n_analysed) == (3, 0)
    assert label.stat().st_mtime_ns == before
    assert not stale.exists()


def test_kill_9_then_resume_gives_identical_outputs(reference: tuple[Path, RunSummary], three_series: Path,
                                                    ne_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "livermets", "-q", "run", "--manifest", str(three_series), "--out", str(out),
               "--phenotype-model", str(ne_model), "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    series = out / "series"
    while time.monotonic() < deadline and process.poll() is None:
        done = [p for p in series.iterdir() if not p.name.startswith(".")] if series.is_dir() else []
        if done:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(p.name for p in series.iterdir() if not p.name.startswith("."))
    assert 1 <= len(finished) < 3 and not (out / "summary.csv").exists()
    resumed = run_cohort(three_series, out, AnalyzeOptions(phenotype_model=ne_model), workers=1)
    assert resumed.n_done_before == len(finished) and resumed.n_analysed == 3 - len(finished)
    assert not [p for p in series.iterdir() if p.name.startswith(".")]  # partial folder removed
    ids = pd.read_csv(three_series, dtype=str)["series_id"].tolist()
    assert_same_outputs(reference[0], out, ids)


def test_two_dask_workers_give_the_same_outputs(reference: tuple[Path, RunSummary], three_series: Path,
                                                ne_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "dask"
    summary = run_cohort(three_series, out, AnalyzeOptions(phenotype_model=ne_model), workers=2, scheduler="local")
    assert summary.n_analysed == 3 and summary.failures == []
    parameters = json.loads((out / "run.json").read_text())["provenance"]["parameters"]
    assert parameters["threads"] == engine_threads(None, workers=2)  # the cores shared by the 2 workers
    assert_same_outputs(reference[0], out, pd.read_csv(three_series, dtype=str)["series_id"].tolist())


def test_broken_series_are_listed_the_others_finish_and_the_exit_code_is_3(three_series: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A truncated CT and a PNG given as a CT: the good series is written, failures.csv names both, the last line
    says so and the exit code is 3; with --allow-failures (the failed series are retried, and fail again) 0."""
    manifest = pd.read_csv(three_series, dtype=str)
    broken, png = tmp_path / "broken.nii.gz", tmp_path / "slice.png"
    broken.write_bytes(Path(manifest.loc[1, "image"]).read_bytes()[:500])  # truncated gzip
    sitk.WriteImage(sitk.Image(32, 32, sitk.sitkUInt8), str(png))
    manifest.loc[1, "image"], manifest.loc[2, "image"] = str(broken), str(png)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "run"
    argv = ["run", "--manifest", tmp_path / "manifest.csv", "--out", out, "--workers", "1"]
    capsys.readouterr()
    assert run_cli(monkeypatch, *argv) == 3
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"2 of 3 series failed; failure table: {out / 'failures.csv'}"
    good, *bad = manifest["series_id"]
    assert (out / "series" / good / "report.html").is_file() and (out / "cohort_report.html").is_file()
    assert pd.read_csv(out / "summary.csv", dtype=str)["series_id"].tolist() == [good]
    failures = pd.read_csv(out / "failures.csv", dtype=str)
    assert failures["series_id"].tolist() == bad
    assert "broken.nii.gz" in failures.loc[0, "reason"] and "slice.png" in failures.loc[1, "reason"]
    assert not any((out / "series" / series_id).exists() for series_id in bad)
    assert run_cli(monkeypatch, *argv, "--allow-failures") == 0
    assert pd.read_csv(out / "failures.csv", dtype=str)["series_id"].tolist() == bad


def test_cohort_report_in_a_real_browser(reference: tuple[Path, RunSummary], three_series: Path, ne_model: Path,
                                         tmp_path: Path) -> None:
    """The page loads whole and shows its caveats, each counted again here from the run's own tables."""
    from browser import make_driver, require_browser

    require_browser()
    out, _ = reference
    driver = make_driver()
    try:
        driver.get((out / "cohort_report.html").resolve().as_uri())
        images = driver.execute_script("return Array.from(document.images).map(i => i.naturalWidth);")
        links = driver.execute_script(
            "return Array.from(document.querySelectorAll('#series tbody a')).map(a => a.href);")
        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        caveats = driver.execute_script("return document.getElementById('caveats').innerText;")
        statistics = driver.execute_script("return document.getElementById('statistics').innerText;")
        text = driver.execute_script("return document.body.innerText;")
    finally:
        driver.quit()
    assert severe == [] and images and all(width > 0 for width in images)
    assert len(links) == 3 and all(Path(link.removeprefix("file://")).is_file() for link in links)
    _check_caveats(" ".join(caveats.split()), out, ne_model)
    manifest = pd.read_csv(three_series, dtype=str)
    units = f"{manifest['patient_id'].nunique()} patients, {manifest['study_id'].nunique()} studies, 3 series"
    assert units.startswith("2 patients") and units in " ".join(text.split())
    assert "n = " + units.replace(", ", " (", 1) + ")" in statistics  # per panel, as patients (studies, series)


def _check_caveats(caveats: str, out: Path, ne_model: Path) -> None:
    import json

    from livermets.phenotype.caveats import FOLD_DISAGREEMENT

    predictions = pd.read_csv(out / "predictions.csv")
    n = len(predictions)
    outside = int((predictions["n_features_outside_training_range"] > 0).sum())
    disagree = int((predictions["fold_probability_max"] - predictions["fold_probability_min"]
                    >= FOLD_DISAGREEMENT).sum())
    assert f"{outside} of {n} NE predictions have features outside the range" in caveats
    assert f"{disagree} of {n} have fold disagreement" in caveats
    summary = pd.read_csv(out / "summary.csv")
    gated = int(summary["ne_probability"].isna().sum())
    assert f"{gated} of {len(summary)} analysed series ({100 * gated / len(summary):.0f} %) have no NE probability" \
        in caveats
    segmentation = [json.loads(p.read_text())["segmentation"] for p in sorted(out.glob("series/*/report.json"))]
    assert f"Segmentation model: {segmentation[0]['model_name']} (3 series)" in caveats
    assert ("trained on synthetic CT" in caveats) == segmentation[0]["shipped_default"]
    cv = json.loads((ne_model / "config.json").read_text())["cv_performance"]
    assert (f"patient-grouped {cv['n_folds']}-fold cross-validated ROC AUC {cv['auc']:.2f} on {cv['n_patients']} "
            "patients") in caveats
