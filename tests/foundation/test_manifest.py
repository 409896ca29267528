"""Cohort manifest: loading, path resolution, every validation rule, summary counts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from livermets.cohort import manifest as mf
from livermets.cohort.summary import cohort_summary
from livermets.errors import UserInputError


def _write(tmp_path: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _row(series: str, study: str, patient: str, **extra) -> dict:
    return {"series_id": series, "study_id": study, "patient_id": patient, "image": f"images/{series}.nii.gz", **extra}


@pytest.fixture
def cohort_dir(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    for sid in ("a1", "a2", "b1", "c1"):
        (tmp_path / "images" / f"{sid}.nii.gz").write_bytes(b"x")
    return tmp_path


def test_valid_manifest_loads_with_resolved_paths_and_extra_columns(cohort_dir: Path):
    rows = [
        _row("a1", "A_1", "A", ne_score=0.2, ne_class=1, sample_type="biopsy", split="train", scanner="GE"),
        _row("a2", "A_1", "A", ne_score=0.2, ne_class=1, sample_type="biopsy", split="train", scanner="GE"),
        _row("b1", "B_1", "B", ne_score=-0.1, ne_class=0, sample_type="cfDNA", split="test", scanner="Siemens"),
    ]
    frame = mf.load_manifest(_write(cohort_dir, rows))
    assert frame["image"].iloc[0] == str(cohort_dir.resolve() / "images" / "a1.nii.gz")
    assert frame["scanner"].tolist() == ["GE", "GE", "Siemens"]
    assert frame["sample_type"].tolist() == ["biopsy", "biopsy", "cfdna"]
    assert frame["ne_class"].tolist() == [1, 1, 0]


def test_every_problem_is_reported_not_just_the_first(cohort_dir: Path):
    rows = [
        _row("a1", "A_1", "A", ne_score=0.3, ne_class=0, split="train", sample_type="tissue"),
        _row("a1", "A_2", "A", ne_score=0.1, ne_class=1, split="test", sample_type="biopsy"),
        _row("zz", "Z_1", "Z", ne_score=0.1, ne_class=1, split="holdout", sample_type="biopsy"),
    ]
    problems = [str(p) for p in mf.find_problems(mf.read_manifest(_write(cohort_dir, rows)))]
    text = "\n".join(problems)
    assert "duplicate series_id 'a1' (rows 1, 2)" in text
    assert "patient 'A' appears in several splits (test, train)" in text
    assert "row 1, column ne_class: ne_class 0 disagrees with ne_score 0.3" in text
    assert "row 1, column sample_type: unknown sample_type 'tissue'" in text
    assert "row 3, column image: file not found" in text
    assert "row 3, column split: unknown split 'holdout'" in text
    assert len(problems) == 6


def test_missing_columns_are_all_named(tmp_path: Path):
    path = _write(tmp_path, [{"series_id": "a", "image": "x.nii.gz"}])
    with pytest.raises(UserInputError, match="missing required column\\(s\\) study_id, patient_id"):
        mf.read_manifest(path)


def test_load_manifest_raises_with_all_problems(cohort_dir: Path):
    rows = [_row("a1", "A_1", "A", split="train"), _row("a2", "A_2", "A", split="val")]
    with pytest.raises(UserInputError) as info:
        mf.load_manifest(_write(cohort_dir, rows))
    assert "1 problem(s)" in str(info.value) and "'A' appears in several splits (train, val)" in str(info.value)


def test_summary_counts_match_an_independent_count(cohort_dir: Path):
    rows = [
        _row("a1", "A_1", "A", ne_score=0.2, ne_class=1, split="train", n_lesions=3),
        _row("a2", "A_1", "A", ne_score=0.2, ne_class=1, split="train", n_lesions=4),
        _row("b1", "B_1", "B", ne_score=-0.1, ne_class=0, split="test", n_lesions=0),
        _row("c1", "C_1", "C", ne_score=0.5, ne_class=1, split="test", n_lesions=12),
    ]
    frame = mf.load_manifest(_write(cohort_dir, rows))
    table = cohort_summary(frame)
    assert list(table.index) == ["train", "test", "all"]
    parts = [("train", frame[frame.split == "train"]), ("test", frame[frame.split == "test"]), ("all", frame)]
    for split, part in parts:
        assert table.loc[split, "patients"] == part.patient_id.nunique()
        assert table.loc[split, "studies"] == part.study_id.nunique()
        assert table.loc[split, "series"] == len(part)
        assert table.loc[split, "ne_positive_series"] == int((part.ne_score > 0).sum())
    assert table.loc["all", "series_without_lesions"] == 1
    assert table.loc["all", "lesions_median"] == 4.0 and table.loc["all", "lesions_max"] == 12


def test_ids_that_look_like_missing_values_are_kept(tmp_path: Path):
    (tmp_path / "nan.nii.gz").write_bytes(b"x")
    rows = [{"series_id": "nan", "study_id": "NA", "patient_id": "None", "image": "nan.nii.gz"}]
    frame = mf.load_manifest(_write(tmp_path, rows))
    assert frame.loc[0, ["series_id", "study_id", "patient_id"]].tolist() == ["nan", "NA", "None"]


def test_merge_keeps_paths_valid_and_refuses_shared_patients(cohort_dir: Path, tmp_path: Path):
    first = _write(cohort_dir, [_row("a1", "A1", "A", label="images/a2.nii.gz"), _row("b1", "B1", "B")])
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    second = _write(other_dir, [{**_row("c1", "C1", "C"), "image": str(cohort_dir / "images" / "c1.nii.gz")}])
    merged = mf.merge_manifests([first, second])
    assert list(merged["series_id"]) == ["a1", "b1", "c1"]
    assert all(Path(p).is_file() for p in merged["image"])  # relative paths resolved against their own manifest
    assert merged["label"].isna().tolist() == [False, True, True]  # missing column stays empty
    with pytest.raises(UserInputError, match="patient id 'A'"):
        mf.merge_manifests([first, first])
    with pytest.raises(UserInputError, match="at least two"):
        mf.merge_manifests([first])


def _volume(path: Path, size: tuple[int, int, int], spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0)) -> str:
    import SimpleITK as sitk

    image = sitk.Image(list(size), sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path.name


def test_validate_finds_label_maps_off_the_image_grid_from_headers(tmp_path: Path, monkeypatch, capsys):
    from cli_helpers import run_cli

    rows = [
        _row("ok", "st1", "p1", image=_volume(tmp_path / "a.nii.gz", (16, 16, 48)),
             label=_volume(tmp_path / "a_seg.nii.gz", (16, 16, 48))),
        _row("slices", "st2", "p2", image=_volume(tmp_path / "b.nii.gz", (16, 16, 48)),
             label=_volume(tmp_path / "b_seg.nii.gz", (16, 16, 96))),
        _row("shifted", "st3", "p3", image=_volume(tmp_path / "c.nii.gz", (16, 16, 8)),
             label=_volume(tmp_path / "c_seg.nrrd", (16, 16, 8), spacing=(1.0, 1.0, 2.5), origin=(0.0, 5.0, 0.0))),
    ]
    manifest = _write(tmp_path, rows)
    problems = [str(p) for p in mf.find_geometry_problems(mf.read_manifest(manifest))]
    assert len(problems) == 2
    assert problems[0].startswith("row 2, column label: label map ")
    assert "size (16, 16, 48) vs (16, 16, 96)" in problems[0]
    assert problems[1].startswith("row 3, column label: ")
    assert "spacing (1.0, 1.0, 2.0) vs (1.0, 1.0, 2.5)" in problems[1]
    assert "origin (0.0, 0.0, 0.0) vs (0.0, 5.0, 0.0)" in problems[1]
    capsys.readouterr()
    assert run_cli(monkeypatch, "cohort", "validate", manifest) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": row ")[1][:1] for line in err[:2]] == ["2", "3"] and "2 problems in 3 rows" in err[2]
    assert run_cli(monkeypatch, "cohort", "validate", manifest, "--no-geometry") == 0
    assert run_cli(monkeypatch, "cohort", "validate", _write(tmp_path, rows[:1], "good.csv")) == 0
