"""--max-lesions: a speckled mask is not computed; alone it is a user error (exit 2), in a cohort a recorded failure."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import cc3d
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from livermets import cli
from livermets.cohort.manifest import load_manifest
from livermets.errors import UserInputError
from livermets.radiomics.runner import build_tasks, failures_path, run_extraction
from livermets.radiomics.series import ExtractionOptions, lesion_component_count


def _run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["livermets", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return int(exit_info.value.code or 0)


def _speckle(label_path: Path, n_specks: int) -> int:
    """Add ``n_specks`` isolated one-voxel lesions inside the liver of a label map; return its lesion components."""
    label = sitk.ReadImage(str(label_path))
    array = sitk.GetArrayFromImage(label)
    added = 0
    for z, y, x in np.argwhere(array == 1)[::97]:
        if added == n_specks:
            break
        box = array[max(z - 1, 0) : z + 2, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
        if (box == 2).any():
            continue
        array[z, y, x] = 2
        added += 1
    assert added == n_specks
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(label)
    sitk.WriteImage(out, str(label_path))
    count = int(cc3d.connected_components(array == 2, connectivity=26, return_N=True)[1])
    assert count == lesion_component_count(array == 2)
    return count


def _one_series(small_cohort: Callable[..., Path], tmp_path: Path, n_specks: int) -> tuple[Path, Path, int]:
    manifest = small_cohort(2)
    frame = pd.read_csv(manifest)
    single = manifest.parent / "single.csv"  # image paths are relative to the manifest
    frame.iloc[:1].to_csv(single, index=False)
    label_path = manifest.parent / frame.loc[0, "label"]
    return single, label_path, _speckle(label_path, n_specks)


def test_a_single_series_over_the_limit_is_a_user_error(
    small_cohort: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    manifest, label_path, count = _one_series(small_cohort, tmp_path, n_specks=12)
    assert count == 13
    out = tmp_path / "features.csv"
    capsys.readouterr()
    code = _run_cli(["radiomics", "extract", "--manifest", str(manifest), "--out", str(out), "-j", "1",
                     "--max-lesions", "10"], monkeypatch)
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert str(label_path) in errors[0] and "13 lesion components" in errors[0] and "--max-lesions 10" in errors[0]
    assert "Traceback" not in errors[0]
    assert not out.exists() and not failures_path(out).exists()  # a failed run leaves no new file

    code = _run_cli(["radiomics", "extract", "--manifest", str(manifest), "--out", str(out), "-j", "1",
                     "--max-lesions", "0"], monkeypatch)
    assert code == 0
    row = pd.read_csv(out).iloc[0]
    assert row["Num_Lesions"] == count + 1  # published convention: components + 1
    assert pd.read_csv(failures_path(out)).empty


def test_at_the_limit_is_computed(small_cohort: Callable[..., Path], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, _, count = _one_series(small_cohort, tmp_path, n_specks=4)
    out = tmp_path / "features.csv"
    code = _run_cli(["radiomics", "extract", "--manifest", str(manifest), "--out", str(out), "-j", "1",
                     "--max-lesions", str(count)], monkeypatch)
    assert code == 0
    assert len(pd.read_csv(out)) == 1


def test_in_a_cohort_the_series_is_a_failure_and_the_others_continue(
    small_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    manifest = small_cohort(3)
    frame = load_manifest(manifest, check_files=False)
    count = _speckle(Path(frame["label"].iloc[1]), n_specks=8)
    out = tmp_path / "features.csv"
    summary = run_extraction(build_tasks(frame), out, ExtractionOptions(max_lesions=5), workers=1,
                             show_progress=False)
    assert (summary.succeeded, summary.failed) == (2, 1)
    assert summary.too_many_lesions == [(str(frame["label"].iloc[1]), count)]
    failures = pd.read_csv(failures_path(out))
    assert failures["series_id"].tolist() == [frame["series_id"].iloc[1]]
    assert f"{count} lesion components" in failures["reason"].iloc[0]
    assert sorted(pd.read_csv(out)["File"]) == sorted(Path(p).name for p in frame["image"].iloc[[0, 2]])


def test_the_limit_also_guards_per_lesion_extraction(small_cohort: Callable[..., Path], tmp_path: Path) -> None:
    manifest, _, count = _one_series(small_cohort, tmp_path, n_specks=6)
    frame = load_manifest(manifest, check_files=False)
    summary = run_extraction(build_tasks(frame), tmp_path / "lesions.csv",
                             ExtractionOptions(per_lesion=True, max_lesions=count - 1), workers=1,
                             show_progress=False)
    assert summary.failed == 1 and summary.too_many_lesions[0][1] == count


def test_negative_limits_are_rejected(small_cohort: Callable[..., Path], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserInputError, match="max_lesions"):
        ExtractionOptions(max_lesions=-1)
    code = _run_cli(["radiomics", "extract", "--manifest", str(small_cohort(1)), "--out", str(tmp_path / "f.csv"),
                     "--max-lesions", "-3"], monkeypatch)
    assert code == 2
