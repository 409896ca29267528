"""Cohort job: resuming, kill safety, failures file, exit codes, process pool and Dask give the same table."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from livermets import cli
from livermets.cohort.manifest import load_manifest
from livermets.featuretable import ALL_COLUMNS, read_feature_table
from livermets.radiomics import runner
from livermets.radiomics.runner import build_tasks, failures_path, parts_dir, run_extraction
from livermets.radiomics.series import NO_LESION, ExtractionOptions


def _tasks(manifest: Path, rows: slice | None = None) -> list[Any]:
    frame = load_manifest(manifest, check_files=False)
    return build_tasks(frame if rows is None else frame.iloc[rows])


def _run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["livermets", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return int(exit_info.value.code or 0)


def test_resume_computes_only_new_series(small_cohort: Callable[..., Path], tmp_path: Path) -> None:
    manifest = small_cohort(4)
    out = tmp_path / "features.csv"
    first = run_extraction(_tasks(manifest, slice(0, 2)), out, workers=1, show_progress=False)
    assert (first.attempted, first.succeeded, first.already_done) == (2, 2, 0)
    before = pd.read_csv(out)
    second = run_extraction(_tasks(manifest), out, workers=1, show_progress=False)
    assert (second.attempted, second.succeeded, second.already_done) == (2, 2, 2)
    after = pd.read_csv(out)
    assert list(after.columns) == ALL_COLUMNS
    assert after["File"].tolist() == [t.key for t in _tasks(manifest)]  # manifest order
    pd.testing.assert_frame_equal(after.iloc[:2], before)  # finished rows are kept, not recomputed
    third = run_extraction(_tasks(manifest), out, workers=1, show_progress=False)
    assert third.attempted == 0
    read_feature_table(out, targets=["NE_Score", "NE_Class", "Group"])  # the phenotype stage reads it


def test_hard_kill_before_merge_loses_no_finished_series(
    small_cohort: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = small_cohort(4)
    out = tmp_path / "features.csv"
    real_merge = runner.merge_parts
    calls = {"n": 0}

    def killed_at_final_merge(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:  # the merge after the loop: the process dies here
            raise KeyboardInterrupt
        return real_merge(*args, **kwargs)

    real_run_series = runner.run_series
    done = {"n": 0}

    def dies_on_third(*args: Any, **kwargs: Any) -> Any:
        done["n"] += 1
        if done["n"] == 3:
            raise KeyboardInterrupt  # killed while computing the third series
        return real_run_series(*args, **kwargs)

    monkeypatch.setattr(runner, "merge_parts", killed_at_final_merge)
    monkeypatch.setattr(runner, "run_series", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_extraction(_tasks(manifest), out, workers=1, show_progress=False)
    assert not out.exists()
    assert len(list(parts_dir(out).glob("*.csv"))) == 2  # the two finished series are on disk
    monkeypatch.undo()
    resumed = run_extraction(_tasks(manifest), out, workers=1, show_progress=False)
    assert (resumed.already_done, resumed.attempted) == (2, 2)
    assert len(pd.read_csv(out)) == 4
    assert not parts_dir(out).exists()


def test_part_write_killed_midway_is_redone_not_read(small_cohort: Callable[..., Path], tmp_path: Path) -> None:
    """A kill inside the write of a part file leaves its empty hidden temporary in the parts folder; the next run
    must neither read it as a part nor keep it, and must compute that series again."""
    manifest = small_cohort(2)
    out = tmp_path / "features.csv"
    reference = run_extraction(_tasks(manifest), tmp_path / "reference.csv", workers=1, show_progress=False)
    assert reference.succeeded == 2
    parts = parts_dir(out)
    parts.mkdir()
    first = pd.read_csv(tmp_path / "reference.csv").iloc[:1]
    first.to_csv(runner._part_path(parts, str(first["File"].iloc[0])), index=False)
    stale = parts / f".{runner._part_path(parts, 'other').name}.ab12cd34.tmp.csv"
    stale.write_bytes(b"")
    resumed = run_extraction(_tasks(manifest), out, workers=1, show_progress=False)
    assert (resumed.already_done, resumed.attempted, resumed.succeeded) == (1, 1, 1)
    assert not parts.exists()
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(tmp_path / "reference.csv"))


def test_output_write_killed_midway_leaves_no_temporary_after_the_resume(small_cohort: Callable[..., Path],
                                                                         tmp_path: Path) -> None:
    """A kill inside the final write of the table, the failures or the provenance leaves a hidden temporary beside
    them; the next run removes it (and only what belongs to its own outputs)."""
    manifest = small_cohort(1)
    out = tmp_path / "features.csv"
    run_extraction(_tasks(manifest), out, workers=1, show_progress=False)
    stale = [tmp_path / f".{name}.ab12cd34.tmp.csv" for name in ("features.csv", "features.failures.csv")]
    stale.append(tmp_path / ".features.provenance.json.ab12cd34.tmp.json")
    other = tmp_path / ".other.csv.ab12cd34.tmp.csv"
    for path in (*stale, other):
        path.write_bytes(b"half")
    resumed = run_extraction(_tasks(manifest), out, workers=1, show_progress=False)
    assert (resumed.already_done, resumed.attempted) == (1, 0)
    assert [p.exists() for p in stale] == [False, False, False] and other.exists()


def test_crash_while_writing_keeps_previous_file(
    small_cohort: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = small_cohort(3)
    out = tmp_path / "features.csv"
    run_extraction(_tasks(manifest, slice(0, 1)), out, workers=1, show_progress=False)
    previous = out.read_bytes()
    real_to_csv = pd.DataFrame.to_csv

    def crash_midway(self: pd.DataFrame, path: Any = None, *args: Any, **kwargs: Any) -> Any:
        if len(self) > 1:  # the merged table: write half of it, then die
            real_to_csv(self.iloc[: len(self) // 2], path, *args, **kwargs)
            raise OSError("disk full")
        return real_to_csv(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        run_extraction(_tasks(manifest), out, workers=1, show_progress=False)
    assert out.read_bytes() == previous  # never a half-written table
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".features.csv")]  # no temp files left
    monkeypatch.undo()
    resumed = run_extraction(_tasks(manifest), out, workers=1, show_progress=False)
    assert resumed.attempted == 0  # the two series computed before the crash were kept as parts
    assert len(pd.read_csv(out)) == 3


def _write_bad_series(root: Path, manifest: Path) -> Path:
    """Add one series per kind of bad input to a copy of ``manifest``; return the new manifest."""
    frame = pd.read_csv(manifest)
    good = frame.iloc[0]
    image = sitk.ReadImage(str(manifest.parent / good["image"]))
    label = sitk.ReadImage(str(manifest.parent / good["label"]))
    label_array = sitk.GetArrayFromImage(label)
    rows = []

    def add(name: str, img: sitk.Image | None, lab: sitk.Image | None, raw_image: bytes | None = None) -> None:
        image_path, label_path = root / f"{name}.nii.gz", root / f"{name}_seg.nii.gz"
        if raw_image is not None:
            image_path.write_bytes(raw_image)
        elif img is not None:
            sitk.WriteImage(img, str(image_path))
        if lab is not None:
            sitk.WriteImage(lab, str(label_path))
        rows.append({**good.to_dict(), "series_id": name, "image": str(image_path), "label": str(label_path)})

    def label_from(array: np.ndarray, reference: sitk.Image = image) -> sitk.Image:
        out = sitk.GetImageFromArray(array.astype(np.uint8))
        out.CopyInformation(reference)
        return out

    add("corrupt", None, label, raw_image=b"\x1f\x8b not really a NIfTI file")
    nan_image = sitk.GetArrayFromImage(image).astype(np.float32)
    nan_image[5, 20, 20] = np.nan
    nan_img = sitk.GetImageFromArray(nan_image)
    nan_img.CopyInformation(image)
    add("nanvoxel", nan_img, label)
    shifted = label_from(label_array)
    shifted.SetSpacing((1.0, 1.0, 2.5))
    add("mismatch", image, shifted)
    add("nolesion", image, label_from(np.where(label_array == 2, 1, label_array)))
    add("badlabels", image, label_from(np.where(label_array == 2, 7, label_array)))
    sitk.WriteImage(sitk.Image(32, 32, sitk.sitkUInt8), str(root / "slice.png"))
    rows.append({**rows[-1], "series_id": "png", "image": str(root / "slice.png")})
    bad = pd.concat([frame.iloc[:1], pd.DataFrame(rows)], ignore_index=True)
    bad["image"] = [str((manifest.parent / p) if not Path(p).is_absolute() else p) for p in bad["image"]]
    bad["label"] = [str((manifest.parent / p) if not Path(p).is_absolute() else p) for p in bad["label"]]
    path = root / "bad_manifest.csv"
    bad.to_csv(path, index=False)
    return path


def test_bad_series_are_recorded_and_the_rest_continue(
    small_cohort: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _write_bad_series(tmp_path, small_cohort(1))
    out = tmp_path / "features.csv"
    argv = ["radiomics", "extract", "--manifest", str(manifest), "--out", str(out), "--workers", "1"]
    capsys.readouterr()
    code = _run_cli(argv, monkeypatch)
    assert code == 3  # finished with failures
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"5 of 7 series failed; failure table: " \
                                                              f"{failures_path(out)}"
    assert len(pd.read_csv(out)) == 1
    reasons = pd.read_csv(failures_path(out)).set_index("File")["reason"]
    assert set(reasons.index) == {"corrupt.nii.gz", "nanvoxel.nii.gz", "mismatch.nii.gz", "nolesion.nii.gz",
                                  "badlabels.nii.gz", "slice.png"}
    assert "corrupt.nii.gz: corrupted: not gzip data" in reasons["corrupt.nii.gz"]  # the reader's integrity check
    assert "1 NaN voxel" in reasons["nanvoxel.nii.gz"]
    assert "spacing" in reasons["mismatch.nii.gz"] and "mismatch_seg.nii.gz" in reasons["mismatch.nii.gz"]
    assert reasons["nolesion.nii.gz"] == NO_LESION
    assert "unexpected label values [7]" in reasons["badlabels.nii.gz"]
    assert "slice.png" in reasons["slice.png"] and "3D" in reasons["slice.png"]
    assert _run_cli([*argv, "--allow-failures"], monkeypatch) == 0  # the failed series are retried, and fail again
    assert len(pd.read_csv(failures_path(out))) == 6

    # A lesion-free series is no failure: exit code 0.
    lesion_free = tmp_path / "lesion_free.csv"
    frame = pd.read_csv(manifest)
    frame[frame["series_id"].isin([frame["series_id"].iloc[0], "nolesion"])].to_csv(lesion_free, index=False)
    assert _run_cli(["radiomics", "extract", "--manifest", str(lesion_free), "--out", str(tmp_path / "f2.csv"),
                     "--workers", "1"], monkeypatch) == 0


def test_exit_code_2_when_no_series_could_be_processed(
    small_cohort: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _write_bad_series(tmp_path, small_cohort(1))
    only_bad = tmp_path / "only_bad.csv"
    pd.read_csv(manifest).iloc[1:].to_csv(only_bad, index=False)
    out = tmp_path / "none.csv"
    capsys.readouterr()
    before = set(tmp_path.rglob("*"))
    code = _run_cli(["radiomics", "extract", "--manifest", str(only_bad), "--out", str(out), "--workers", "1"],
                    monkeypatch)
    assert code == 2
    captured = capsys.readouterr()
    lines = (captured.err + captured.out).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no series could be processed: ")
    assert "(and 4 more failed series); 1 series without lesion" in lines[0]  # an empty mask is not a failure
    assert set(tmp_path.rglob("*")) == before  # no new file: the reasons are in the error line


def test_process_pool_and_dask_give_the_serial_table(small_cohort: Callable[..., Path], tmp_path: Path) -> None:
    manifest = small_cohort(3)
    serial, pool, dask = tmp_path / "serial.csv", tmp_path / "pool.csv", tmp_path / "dask.csv"
    run_extraction(_tasks(manifest), serial, workers=1, show_progress=False)
    run_extraction(_tasks(manifest), pool, workers=2, show_progress=False)
    summary = run_extraction(_tasks(manifest, slice(0, 2)), dask, workers=2, scheduler="local", show_progress=False)
    assert summary.succeeded == 2
    expected = pd.read_csv(serial)
    pd.testing.assert_frame_equal(pd.read_csv(pool), expected)
    pd.testing.assert_frame_equal(pd.read_csv(dask), expected.iloc[:2])


def test_bad_params_file_is_a_user_error(small_cohort: Callable[..., Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = small_cohort(1)
    params = tmp_path / "params.yaml"
    params.write_text("setting:\n  binWidthh: 25\n")
    code = _run_cli(["radiomics", "extract", "--manifest", str(manifest), "--out", str(tmp_path / "f.csv"),
                     "--params", str(params)], monkeypatch)
    assert code == 2


def test_liver_roi(small_cohort: Callable[..., Path], tmp_path: Path) -> None:
    manifest = small_cohort(1)
    lesion_out, liver_out = tmp_path / "lesion.csv", tmp_path / "liver.csv"
    run_extraction(_tasks(manifest), lesion_out, workers=1, show_progress=False)
    run_extraction(_tasks(manifest), liver_out, ExtractionOptions(roi="liver"), workers=1, show_progress=False)
    lesion, liver = pd.read_csv(lesion_out).iloc[0], pd.read_csv(liver_out).iloc[0]
    label = sitk.ReadImage(str(manifest.parent / "labels" / "P000_S0.nii.gz"))
    array = sitk.GetArrayViewFromImage(label)
    assert liver["diagnostics_Mask-original_VoxelNum"] == int((array > 0).sum())
    assert lesion["diagnostics_Mask-original_VoxelNum"] == int((array == 2).sum())
    assert liver["Num_Lesions"] == lesion["Num_Lesions"]  # still counted on the lesion label


def test_predicted_masks_replace_the_manifest_labels(small_cohort: Callable[..., Path], tmp_path: Path) -> None:
    manifest = small_cohort(2)
    frame = load_manifest(manifest, check_files=False)
    masks = tmp_path / "predictions"
    masks.mkdir()
    first = frame.iloc[0]
    label = sitk.ReadImage(str(first["label"]))
    array = sitk.GetArrayFromImage(label)
    kept = np.zeros_like(array)
    lesion_voxels = np.argwhere(array == 2)
    z, y, x = lesion_voxels[len(lesion_voxels) // 2]
    kept[z - 1 : z + 2, y - 2 : y + 3, x - 2 : x + 3] = 2  # a "prediction": a small box inside the true lesion
    predicted = sitk.GetImageFromArray(kept)
    predicted.CopyInformation(label)
    sitk.WriteImage(predicted, str(masks / f"{first['series_id']}_seg.nii.gz"))
    out = tmp_path / "features.csv"
    summary = run_extraction(build_tasks(frame, masks), out, workers=1, show_progress=False)
    assert (summary.succeeded, summary.failed) == (1, 1)  # the second series has no prediction file
    row = pd.read_csv(out).iloc[0]
    assert row["diagnostics_Mask-original_VoxelNum"] == 3 * 5 * 5
    reason = pd.read_csv(failures_path(out))["reason"].iloc[0]
    assert f"{frame.iloc[1]['series_id']}_seg.nii.gz" in reason and "does not exist" in reason


def test_cli_split_restricts_the_series(small_cohort: Callable[..., Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from livermets.cli import app

    manifest = small_cohort(6)
    expected = load_manifest(manifest, check_files=False).query("split == 'test'")["image"].map(lambda p: Path(p).name)
    out = tmp_path / "features.csv"
    result = CliRunner().invoke(app, ["radiomics", "extract", "--manifest", str(manifest), "--out", str(out),
                                      "--split", "test", "-j", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(pd.read_csv(out)["File"]) == sorted(expected)
    assert len(expected) == 2


def test_a_lesion_free_series_is_counted_as_no_lesion_not_as_failed(
    small_cohort: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = small_cohort(1)
    frame = pd.read_csv(manifest)
    label = sitk.ReadImage(str(manifest.parent / frame["label"][0]))
    empty = sitk.GetImageFromArray(np.where(sitk.GetArrayFromImage(label) == 2, 1, sitk.GetArrayFromImage(label))
                                   .astype(np.uint8))
    empty.CopyInformation(label)
    sitk.WriteImage(empty, str(tmp_path / "free_seg.nii.gz"))
    shutil.copy(manifest.parent / frame["image"][0], tmp_path / "free.nii.gz")
    extra = {**frame.iloc[0].to_dict(), "series_id": "free", "image": str(tmp_path / "free.nii.gz"),
             "label": str(tmp_path / "free_seg.nii.gz")}
    frame["image"] = [str(manifest.parent / p) for p in frame["image"]]
    frame["label"] = [str(manifest.parent / p) for p in frame["label"]]
    pd.concat([frame, pd.DataFrame([extra])]).to_csv(tmp_path / "m.csv", index=False)
    capsys.readouterr()
    code = _run_cli(["radiomics", "extract", "--manifest", str(tmp_path / "m.csv"), "--out",
                     str(tmp_path / "f.csv"), "-j", "1"], monkeypatch)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "1 series computed, 0 already there, 1 without lesion, 0 failed" in captured.out
    assert "free" not in captured.err and "no lesion" not in captured.err  # no per-series warning
    failures = pd.read_csv(tmp_path / "f.failures.csv")
    assert failures[["series_id", "reason"]].values.tolist() == [["free", "no lesion"]]
