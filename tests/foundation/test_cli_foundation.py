"""The command line as a user runs it: exit codes, one-line errors, JSON output, atomic conversion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import SimpleITK as sitk


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "livermets", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_the_stages():
    result = run("--help")
    assert result.returncode == 0
    for group in ("synth", "cohort", "imaging"):
        assert group in result.stdout


def test_imaging_info_and_convert_dicom_to_nifti(shared_data, tmp_path: Path):
    folder = shared_data("totalsegmentator", "example_ct_dicom")
    info = run("imaging", "info", str(folder))
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["size"] == [512, 512, 20] and data["modality"] == "CT"
    assert data["spacing"] == [0.976562, 0.976562, 2.0]

    out = tmp_path / "ct.nii.gz"
    converted = run("imaging", "convert", str(folder), str(out))
    assert converted.returncode == 0, converted.stderr
    direct = sitk.ImageSeriesReader()
    direct.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    expected = direct.Execute()  # an independent plain SimpleITK read of the series
    nifti = sitk.ReadImage(str(out))
    assert nifti.GetSize() == expected.GetSize()
    assert nifti.GetOrigin() == expected.GetOrigin() and nifti.GetDirection() == expected.GetDirection()
    assert (sitk.GetArrayFromImage(nifti) == sitk.GetArrayFromImage(expected)).all()
    assert {p.name for p in tmp_path.iterdir()} == {"ct.nii.gz"}


def test_imaging_check_mismatch_is_one_line_exit_2(shared_data, tmp_path: Path):
    result = run("imaging", "check", str(shared_data("totalsegmentator", "example_ct_dicom")),
                 str(shared_data("totalsegmentator", "example_seg_dicom.nii.gz")), "--any-labels")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "geometry mismatch" in lines[0] and "Traceback" not in result.stderr

    fixed = tmp_path / "seg_on_dicom_grid.nii.gz"
    resampled = run("imaging", "check", str(shared_data("totalsegmentator", "example_ct_dicom")),
                    str(shared_data("totalsegmentator", "example_seg_dicom.nii.gz")), "--any-labels",
                    "--resample-label", str(fixed))
    assert resampled.returncode == 0, resampled.stderr
    assert run("imaging", "check", str(shared_data("totalsegmentator", "example_ct_dicom")), str(fixed),
               "--any-labels").returncode == 0


def test_unreadable_image_is_one_line_exit_2(tmp_path: Path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x00garbage")
    result = run("imaging", "info", str(bad))
    assert result.returncode == 2
    assert "bad.nii.gz" in result.stderr and "Traceback" not in result.stderr


def test_cohort_validate_reports_every_problem_and_exits_2(tmp_path: Path):
    (tmp_path / "a.nii.gz").write_bytes(b"x")
    rows = [
        {"series_id": "s1", "study_id": "t1", "patient_id": "p1", "image": "a.nii.gz", "split": "train"},
        {"series_id": "s1", "study_id": "t2", "patient_id": "p1", "image": "missing.nii.gz", "split": "test"},
    ]
    manifest = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    result = run("cohort", "validate", str(manifest))
    assert result.returncode == 2
    assert "duplicate series_id 's1'" in result.stderr
    assert "patient 'p1' appears in several splits (test, train)" in result.stderr
    assert "row 2, column image: file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_cohort_missing_column_exit_2(tmp_path: Path):
    manifest = tmp_path / "m.csv"
    pd.DataFrame([{"series_id": "s1", "image": "a.nii.gz"}]).to_csv(manifest, index=False)
    result = run("cohort", "summary", str(manifest))
    assert result.returncode == 2 and "missing required column(s) study_id, patient_id" in result.stderr


def test_ctrl_c_ends_with_one_line_and_exit_code_130(monkeypatch, capsys, tmp_path):
    """Ctrl-C (KeyboardInterrupt inside a command) ends with one line, exit code 130; a command that does not resume
    names no command to run."""
    from cli_helpers import run_cli
    from livermets import cli
    from livermets.cohort import manifest

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(manifest, "read_manifest", interrupted)
    capsys.readouterr()
    assert run_cli(monkeypatch, "cohort", "validate", tmp_path / "m.csv") == cli.EXIT_INTERRUPTED == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == "interrupted: no output is half-written"
    assert "Traceback" not in captured.err and "Aborted" not in captured.err


@pytest.mark.parametrize(("argv", "resuming"), [
    (["-q", "synth", "--out", "my cohort", "--seed", "3"], "livermets -q synth --out 'my cohort' --seed 3 --resume"),
    (["synth", "--out", "c", "--resume"], "livermets synth --out c --resume"),
    (["synth", "--out", "c", "--overwrite"], "livermets synth --out c --overwrite --resume"),
    (["seg", "train", "--model", "unet", "--manifest", "m.csv", "--out", "no such folder"],  # no checkpoint yet
     "livermets seg train --model unet --manifest m.csv --out 'no such folder'"),
    (["seg", "predict", "--manifest", "m.csv", "--out", "p", "--overwrite"], "livermets seg predict --manifest m.csv "
                                                                             "--out p"),
    (["seg", "evaluate", "--pred-dir", "p", "--manifest", "m.csv", "--out", "e"],
     "livermets seg evaluate --pred-dir p --manifest m.csv --out e"),
    (["radiomics", "extract", "--manifest", "m.csv", "--out", "f.csv", "-j", "2"],
     "livermets radiomics extract --manifest m.csv --out f.csv -j 2"),
    (["-v", "run", "--manifest", "m.csv", "--out", "r"], "livermets -v run --manifest m.csv --out r"),
    (["phenotype", "evaluate", "--features", "f.csv", "--out", "e"], None),
    (["analyze", "ct.nii.gz", "--out", "a"], None),
])
def test_the_command_that_resumes(argv, resuming):
    from livermets import cli

    assert cli.resuming_command(argv) == resuming


def test_seg_train_resumes_with_resume_once_it_has_a_checkpoint(tmp_path):
    from livermets import cli

    argv = ["seg", "train", "--model", "unet", "--manifest", "m.csv", f"--out={tmp_path}"]
    assert cli.resuming_command(argv) == "livermets " + " ".join(argv)
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.json").write_text("{}")
    assert cli.resuming_command(argv) == "livermets " + " ".join(argv) + " --resume"


def test_every_resumable_command_exists():
    from livermets import cli

    names = {(group.name, command.name or command.callback.__name__) for group in cli.app.registered_groups
             for command in group.typer_instance.registered_commands}
    names |= {(command.name,) for command in cli.app.registered_commands}
    assert set(cli.RESUMING) <= names
    assert all(cli.command_path([*path, "--out", "x"]) == path for path in cli.RESUMING)
