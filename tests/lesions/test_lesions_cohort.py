"""Table 3 aggregation, patient-level bootstrap, and ``livermets seg evaluate`` end to end (incl. bad input)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from livermets.lesions.cohort_metrics import _weighted_medians, bootstrap_cis, table3, table3_markdown
from livermets.lesions.scan_metrics import stratum_names


def _per_scan() -> pd.DataFrame:
    """Five scans of three patients in two datasets (numbers chosen by hand)."""
    return pd.DataFrame({
        "series_id": ["a1", "a2", "b1", "c1", "c2"],
        "patient_id": ["pa", "pa", "pb", "pc", "pc"],
        "dataset": ["lits", "lits", "lits", "msclc", "msclc"],
        "dice_lesion": [0.8, 0.4, 0.6, 1.0, 0.5],
        "dice_liver": [0.95, 0.9, 0.93, 0.96, 0.94],
        "lesion_both_empty": [False, False, False, True, False],
        "n_ref": [4, 2, 4, 0, 5], "n_pred": [4, 1, 5, 0, 3], "tp": [3, 1, 4, 0, 2],
        "fn": [1, 1, 0, 0, 3], "fp": [1, 0, 1, 0, 1],
        "sensitivity": [0.75, 0.5, 1.0, np.nan, 0.4], "ppv": [0.75, 1.0, 0.8, np.nan, 2 / 3],
        "ref_lesion_voxels": [100, 50, 80, 0, 60], "pred_lesion_voxels": [90, 30, 100, 0, 40],
        "lesion_intersection_voxels": [76, 16, 54, 0, 25], "missing_prediction": [False] * 5,
    })


def test_table3_values_by_hand() -> None:
    """lits group: sensitivity (3+1+4)/(4+2+4) = 0.8, PPV 8/(8+2) = 0.8, median Dice of 0.8/0.4/0.6 = 0.6,
    global Dice 2*146/(230+220), FP/scan 2/3 (0-1). msclc: the both-empty scan is counted but not in the median."""
    table = table3(_per_scan(), group_by="dataset", n_boot=0).set_index("group")
    lits = table.loc["lits"]
    assert lits["sensitivity"] == pytest.approx(0.8) and lits["ppv"] == pytest.approx(0.8)
    assert lits["median_dice_lesion"] == pytest.approx(0.6)
    assert lits["global_dice_lesion"] == pytest.approx(2 * 146 / 450)
    assert lits["fp_per_scan_mean"] == pytest.approx(2 / 3)
    assert (lits["fp_per_scan_min"], lits["fp_per_scan_max"]) == (0, 1)
    assert lits["sensitivity_mean_per_scan"] == pytest.approx(0.75)
    assert (lits["n_scans"], lits["n_patients"], lits["n_ref_lesions"]) == (3, 2, 10)
    msclc = table.loc["msclc"]
    assert msclc["median_dice_lesion"] == pytest.approx(0.5)
    assert (msclc["n_scans_lesion_both_empty"], msclc["n_scans_with_lesions"]) == (1, 1)
    assert table.loc["all", "n_scans"] == 5
    assert table.loc["msclc", "dice_per_case_lesion"] == pytest.approx((1.0 + 0.5) / 2)  # LiTS: both-empty = 1
    markdown = table3_markdown(table.reset_index())
    assert "| Median lesion Dice (scans with lesions) | 0.600 |" in markdown


def test_weighted_median_equals_repeated_median() -> None:
    rng = np.random.default_rng(0)
    values = rng.random(7)
    weights = rng.integers(0, 4, size=(50, 7))
    weights[:, 0] += 1
    expected = [np.median(np.repeat(values, w)) for w in weights]
    np.testing.assert_allclose(_weighted_medians(values, weights), expected)


def test_bootstrap_matches_naive_patient_resampling() -> None:
    """Same draws (seeded generator), recomputed by concatenating the drawn patients' scans with pandas."""
    frame = _per_scan()
    cis = bootstrap_cis(frame, n_boot=300, seed=7)
    rng = np.random.default_rng(7)
    patients = np.unique(frame["patient_id"])
    draws = rng.integers(0, len(patients), size=(300, len(patients)))
    sens, med = [], []
    for draw in draws:
        sample = pd.concat([frame[frame["patient_id"] == patients[i]] for i in draw])
        sens.append(sample["tp"].sum() / sample["n_ref"].sum())
        med.append(sample.loc[sample["n_ref"] > 0, "dice_lesion"].median())
    assert cis["sensitivity_ci_low"] == pytest.approx(np.quantile(sens, 0.025))
    assert cis["sensitivity_ci_high"] == pytest.approx(np.quantile(sens, 0.975))
    assert cis["median_dice_lesion_ci_low"] == pytest.approx(np.nanquantile(med, 0.025))
    assert cis == bootstrap_cis(frame, n_boot=300, seed=7)  # reproducible


def test_stratum_names() -> None:
    assert stratum_names([10]) == ["lt10mm", "ge10mm"]
    with pytest.raises(ValueError):
        stratum_names([10, 5])


# --- end to end -------------------------------------------------------------------------------------------


def _write(array: np.ndarray, path: Path, like: sitk.Image) -> str:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    sitk.WriteImage(image, str(path))
    return str(path)


@pytest.fixture()
def cohort(tmp_path: Path, shared_data: Callable[..., Path]) -> dict[str, Path]:
    """Three series of two patients built from the real LiTS case: s1 perfect, s2 shifted, s3 missing."""
    label = sitk.ReadImage(str(shared_data("lits_tiny", "segmentation.nii.gz")), sitk.sitkUInt8)
    ct = sitk.ReadImage(str(shared_data("lits_tiny", "volume.nii.gz")))
    ref = sitk.GetArrayFromImage(label)
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    rows = []
    for series, patient in (("s1", "p1"), ("s2", "p1"), ("s3", "p2")):
        rows.append({"series_id": series, "study_id": f"{patient}-st", "patient_id": patient,
                     "image": _write(sitk.GetArrayFromImage(ct), tmp_path / "ref" / f"{series}_ct.nii.gz", ct),
                     "label": _write(ref, tmp_path / "ref" / f"{series}.nii.gz", label), "dataset": "lits"})
    _write(ref, tmp_path / "pred" / "s1_seg.nii.gz", label)
    _write(np.roll(ref, 1, axis=2), tmp_path / "pred" / "s2_seg.nii.gz", label)
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    return {"root": tmp_path, "manifest": tmp_path / "manifest.csv", "pred": tmp_path / "pred", "ref": ref}  # type: ignore[dict-item]


@dataclass
class _Run:
    returncode: int
    stderr: str


@pytest.fixture()
def cli(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., _Run]:
    """Run ``livermets.cli.main`` in-process (exit code and stderr as from the console script)."""

    def run(*args: str) -> _Run:
        from livermets.cli import main

        monkeypatch.setattr(sys, "argv", ["livermets", *args])
        capfd.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return _Run(code, capfd.readouterr().err)

    return run


def test_seg_evaluate_end_to_end(cohort: dict[str, Path], cli: Callable[..., _Run]) -> None:
    out = cohort["root"] / "eval"
    result = cli("seg", "evaluate", "--pred-dir", str(cohort["pred"]), "--manifest", str(cohort["manifest"]),
                  "--out", str(out), "--rule", "lits", "--size-strata", "10", "--figures", "--n-boot", "50")
    assert result.returncode == 0, result.stderr
    per_scan = pd.read_csv(out / "per_scan.csv").set_index("series_id")
    assert per_scan.loc["s1", "tp"] == 9 and per_scan.loc["s1", "dice_lesion"] == 1.0
    # s3 has no prediction: listed, without metrics, and left out of Table 3 (one warning line says so).
    assert bool(per_scan.loc["s3", "missing_prediction"]) and per_scan.loc["s3", ["fn", "dice_lesion"]].isna().all()
    assert "(s3): left out of the metrics" in " ".join(result.stderr.split())
    assert (out / "per_scan.csv").read_text().splitlines()[1].split(",")[5] == "9"  # counts stay whole numbers
    table = pd.read_csv(out / "table3.csv")
    assert table.loc[0, "n_ref_lesions"] == 18 and table.loc[0, "rule"] == "lits"
    assert (table.loc[0, "n_scans"], table.loc[0, "n_missing_left_out"], table.loc[0, "n_missing_predictions"]) \
        == (2, 1, 0)
    assert table.loc[0, "tp"] == per_scan["tp"].sum()
    assert table.loc[0, "n_ref_lt10mm"] + table.loc[0, "n_ref_ge10mm"] == 18
    assert (out / "table3.md").read_text().count("|") > 20
    assert "| Missing predictions left out of the metrics | 1 |" in (out / "table3.md").read_text()
    assert (out / "figures" / "s2.png").stat().st_size > 1000
    lesions = pd.read_csv(out / "per_lesion.csv")
    assert set(lesions["status"]) <= {"TP", "FN", "FP"} and len(lesions[lesions["side"] == "reference"]) == 18
    assert (lesions["longest_axial_diameter_mm"] > 0).all()

    # Rerun into the same folder after replacing one prediction: only that series is evaluated again.
    label = sitk.ReadImage(str(cohort["pred"] / "s1_seg.nii.gz"))
    _write(np.roll(cohort["ref"], 1, axis=1), cohort["pred"] / "s1_seg.nii.gz", label)  # type: ignore[arg-type]
    rerun = cli("seg", "evaluate", "--pred-dir", str(cohort["pred"]), "--manifest", str(cohort["manifest"]),
                "--out", str(out), "--rule", "lits", "--size-strata", "10", "--figures", "--n-boot", "50")
    assert rerun.returncode == 0 and "reused 1 unchanged series" in rerun.stderr, rerun.stderr
    again = pd.read_csv(out / "per_scan.csv").set_index("series_id")
    assert again.loc["s1", "tp"] < 9
    pd.testing.assert_series_equal(again.loc["s2"], per_scan.loc["s2"])

    skipped = cli("seg", "evaluate", "--pred-dir", str(cohort["pred"]), "--manifest", str(cohort["manifest"]),
                   "--out", str(cohort["root"] / "eval2"), "--skip-missing", "--n-boot", "0")
    assert skipped.returncode == 0 and "WARNING" not in skipped.stderr
    assert list(pd.read_csv(cohort["root"] / "eval2" / "per_scan.csv")["series_id"]) == ["s1", "s2"]
    assert list(pd.read_csv(cohort["root"] / "eval2" / "skipped.csv")["series_id"]) == ["s3"]

    # --missing-as-empty: s3 is an empty prediction, all 9 of its lesions false negatives.
    empty = cli("seg", "evaluate", "--pred-dir", str(cohort["pred"]), "--manifest", str(cohort["manifest"]),
                "--out", str(cohort["root"] / "eval3"), "--missing-as-empty", "--n-boot", "0")
    assert empty.returncode == 0 and "(s3): counted as empty predictions" in " ".join(empty.stderr.split())
    as_empty = pd.read_csv(cohort["root"] / "eval3" / "per_scan.csv").set_index("series_id")
    assert as_empty.loc["s3", "fn"] == 9 and as_empty.loc["s3", "tp"] == 0
    table = pd.read_csv(cohort["root"] / "eval3" / "table3.csv")
    assert (table.loc[0, "n_ref_lesions"], table.loc[0, "n_missing_predictions"], table.loc[0, "n_missing_left_out"]) \
        == (27, 1, 0)


def test_seg_evaluate_names_missing_predictions_in_one_line(cohort: dict[str, Path],
                                                             cli: Callable[..., _Run]) -> None:
    """Seven series without a prediction: one warning with their count and the first five ids."""
    manifest = pd.read_csv(cohort["manifest"])
    extra = pd.concat([manifest.iloc[[2]].assign(series_id=f"s{k}") for k in range(4, 10)], ignore_index=True)
    pd.concat([manifest, extra], ignore_index=True).to_csv(cohort["root"] / "more.csv", index=False)
    out = cohort["root"] / "eval"
    result = cli("seg", "evaluate", "--pred-dir", str(cohort["pred"]), "--manifest", str(cohort["root"] / "more.csv"),
                 "--out", str(out), "--n-boot", "0")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1
    assert "7 of 9 series have no prediction <series_id>_seg.nii.gz" in " ".join(result.stderr.split())
    assert "(s3, s4, s5, s6, s7, ...)" in " ".join(result.stderr.split())
    per_scan = pd.read_csv(out / "per_scan.csv")
    assert per_scan["series_id"].tolist() == ["s1", "s2", "s3", *(f"s{k}" for k in range(4, 10))]
    assert per_scan["missing_prediction"].tolist() == [False, False] + [True] * 7
    assert pd.read_csv(out / "table3.csv").loc[0, "n_scans"] == 2


def test_seg_evaluate_of_a_wrongly_named_folder_is_exit_2(cohort: dict[str, Path], cli: Callable[..., _Run]) -> None:
    """Predictions named <series_id>.nii.gz: no prediction found, one line naming the pattern and what is there."""
    wrong = cohort["root"] / "wrong"
    wrong.mkdir()
    for path in cohort["pred"].glob("*_seg.nii.gz"):
        (wrong / path.name.replace("_seg", "")).write_bytes(path.read_bytes())
    (wrong / "other_seg.nii.gz").write_bytes(path.read_bytes())  # of a series not in the manifest: no warning
    out = cohort["root"] / "eval"
    base = ["seg", "evaluate", "--manifest", str(cohort["manifest"]), "--out", str(out), "--pred-dir"]
    result = cli(*base, str(wrong))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0] == (f"error: {wrong}: no prediction for any of the 3 labelled series of {cohort['manifest']}: "
                        "found 3 file(s), 2 of them named <series_id>.nii.gz like s1.nii.gz; expected "
                        "<series_id>_seg.nii.gz (e.g. s1_seg.nii.gz)")
    assert not out.exists()
    empty = cohort["root"] / "empty"
    empty.mkdir()
    result = cli(*base, str(empty), "--missing-as-empty")
    assert result.returncode == 2 and "the folder holds no files; expected <series_id>_seg.nii.gz" in result.stderr
    both = cli(*base, str(cohort["pred"]), "--missing-as-empty", "--skip-missing")
    assert both.returncode == 2 and "--skip-missing and --missing-as-empty exclude each other" in both.stderr


def test_seg_evaluate_bad_input(cohort: dict[str, Path], cli: Callable[..., _Run]) -> None:
    """Different geometry, label value 3, missing prediction: scans skipped; nothing evaluable: exit code 2 and one
    line naming every reason, no output folder."""
    label = sitk.ReadImage(str(cohort["manifest"].parent / "ref" / "s1.nii.gz"))
    bad_values = cohort["ref"].copy()
    bad_values[0, 0, 0] = 3
    _write(bad_values, cohort["pred"] / "s1_seg.nii.gz", label)
    shifted_origin = sitk.ReadImage(str(cohort["pred"] / "s2_seg.nii.gz"))
    shifted_origin.SetOrigin((0.0, 0.0, 10.0))
    sitk.WriteImage(shifted_origin, str(cohort["pred"] / "s2_seg.nii.gz"))
    out = cohort["root"] / "bad"
    result = cli("seg", "evaluate", "--pred-dir", str(cohort["pred"]), "--manifest", str(cohort["manifest"]),
                  "--out", str(out), "--skip-missing")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "unexpected label values [3]" in result.stderr
    assert "geometry mismatch" in result.stderr and "nothing could be evaluated" in result.stderr
    assert "missing prediction" in result.stderr and not out.exists()

    wrong_rule = cli("seg", "evaluate", "--pred-dir", str(cohort["pred"]), "--manifest", str(cohort["manifest"]),
                      "--out", str(out), "--rule", "dice")
    assert wrong_rule.returncode == 2 and "--rule" in wrong_rule.stderr


def test_lesions_table_cli(cohort: dict[str, Path], cli: Callable[..., _Run]) -> None:
    out = cohort["root"] / "lesions.csv"
    ref = cohort["manifest"].parent / "ref"
    result = cli("lesions", "table", str(ref / "s1.nii.gz"), "--image", str(ref / "s1_ct.nii.gz"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    assert len(table) == 9 and table["hu_mean"].notna().all()
