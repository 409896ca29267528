"""``livermets seg export-nnunet``: nnU-Net v2 raw dataset, patient-grouped folds, geometry, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from cli_helpers import one_error_line, run_cli
from livermets.cli import flag_names
from livermets.errors import ParameterError
from livermets.segmentation.nnunet.cli import export_nnunet
from livermets.segmentation.nnunet.dataset import case_identifiers, dataset_folder_name

PATIENTS = ["A", "A", "B", "C", "C", "C", "D", "E", "F", "F"]
SERIES = ["s/1", "s_1", "s 2", "C.1", "C.2", "C.3", "D", "E", "F1", "F2"]  # s/1 and s_1 sanitise alike


def _geometry(image: sitk.Image) -> tuple[object, ...]:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def _assert_same_image(written: Path, source: Path) -> None:
    a, b = sitk.ReadImage(str(written)), sitk.ReadImage(str(source))
    assert a.GetSize() == b.GetSize()
    for got, expected in zip(_geometry(a)[1:], _geometry(b)[1:], strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))


@pytest.fixture(scope="module")
def grouped_export(nnunet_cohort_factory, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """10 train series of 6 patients (no val split) + 1 test series, exported with 3 folds; flipped axes."""
    manifest = nnunet_cohort_factory(["train"] * 10 + ["test"], patients=PATIENTS + ["G"], series_ids=SERIES + ["T"],
                                     direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    out = tmp_path_factory.mktemp("export") / "raw"
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert run_cli(monkeypatch, "seg", "export-nnunet", "--manifest", manifest, "--out", out, "--dataset-id", 42,
                       "--name", "Phantoms", "--folds", 3) == 0
    return manifest, out / "Dataset042_Phantoms"


def test_dataset_json_and_files(grouped_export: tuple[Path, Path]) -> None:
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    _, folder = grouped_export
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT"}
    assert dataset["labels"] == {"background": 0, "liver": 1, "lesion": 2}
    assert dataset["numTraining"] == 10 and dataset["file_ending"] == ".nii.gz"
    # nnU-Net's own file discovery finds every training case with its label
    found = get_filenames_of_train_images_and_targets(str(folder), dataset)
    assert sorted(found) == sorted(case_identifiers(SERIES))
    assert all(Path(entry["label"]).is_file() and len(entry["images"]) == 1 for entry in found.values())
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == ["T_0000.nii.gz"]
    assert len(set(found)) == 10  # s/1 and s_1 got distinct ids


def test_folds_are_grouped_by_patient(grouped_export: tuple[Path, Path]) -> None:
    _, folder = grouped_export
    splits = json.loads((folder / "splits_final.json").read_text())
    patient_of = dict(zip(case_identifiers(SERIES), PATIENTS, strict=True))
    assert len(splits) == 3
    val_sets = [set(fold["val"]) for fold in splits]
    assert set().union(*val_sets) == set(patient_of)  # every case validated once ...
    assert sum(len(v) for v in val_sets) == len(patient_of)  # ... and only once
    val_patients = [{patient_of[c] for c in v} for v in val_sets]
    for i, fold in enumerate(splits):
        assert set(fold["train"]) | val_sets[i] == set(patient_of)
        assert not {patient_of[c] for c in fold["train"]} & val_patients[i]
        for j in range(i):
            assert not val_patients[i] & val_patients[j]


def test_written_images_and_labels_keep_the_source_geometry(grouped_export: tuple[Path, Path]) -> None:
    manifest, folder = grouped_export
    frame = pd.read_csv(manifest)
    for row, case in zip(frame.itertuples(), case_identifiers(frame["series_id"].tolist()), strict=True):
        subset = "imagesTs" if row.split == "test" else "imagesTr"
        _assert_same_image(folder / subset / f"{case}_0000.nii.gz", manifest.parent / row.image)
        if row.split != "test":
            label = folder / "labelsTr" / f"{case}.nii.gz"
            _assert_same_image(label, manifest.parent / row.label)
            assert sitk.ReadImage(str(label)).GetPixelID() == sitk.sitkUInt8
    cases = pd.read_csv(folder / "livermets_cases.csv")
    assert cases["series_id"].tolist() == frame["series_id"].tolist()


def test_val_split_is_the_one_fold(nnunet_cohort_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    manifest = nnunet_cohort_factory(["train", "train", "val", "train", "val", "test"])
    assert run_cli(monkeypatch, "seg", "export-nnunet", "--manifest", manifest, "--out", tmp_path / "raw") == 0
    assert "5 training case(s), 1 test case(s), 1 fold(s)" in capsys.readouterr().out
    splits = json.loads((tmp_path / "raw" / "Dataset501_LiverMets" / "splits_final.json").read_text())
    assert splits == [{"train": ["S00", "S01", "S03"], "val": ["S02", "S04"]}]


def _unlabelled_train_row(manifest: Path) -> None:
    frame = pd.read_csv(manifest)
    frame.loc[1, "label"] = None
    frame.to_csv(manifest, index=False)


def _label_value_three(manifest: Path) -> None:
    label = sitk.ReadImage(str(manifest.parent / "label01.nii.gz"))
    array = sitk.GetArrayFromImage(label)
    array[array == 2] = 3
    bad = sitk.GetImageFromArray(array)
    bad.CopyInformation(label)
    sitk.WriteImage(bad, str(manifest.parent / "label01.nii.gz"))


def _shifted_label(manifest: Path) -> None:
    label = sitk.ReadImage(str(manifest.parent / "label02.nii.gz"))
    label.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(label, str(manifest.parent / "label02.nii.gz"))


@pytest.mark.parametrize(("spoil", "args", "expected"), [
    (_unlabelled_train_row, ["--folds", "2"], "no label for a train row"),
    (_label_value_three, ["--folds", "2"], "unexpected label values [3]"),
    (_shifted_label, ["--folds", "2"], "geometry mismatch"),
    (None, ["--folds", "5"], "--folds 5: only 4 training patient(s)"),
    (None, ["--folds", "1"], "--folds 1: need at least 2 folds"),
    (None, ["--dataset-id", "1000"], "--dataset-id 1000"),
])
def test_bad_input_is_one_line_and_leaves_no_output(spoil, args: list[str], expected: str, nnunet_cohort_factory,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    manifest = nnunet_cohort_factory(["train"] * 4 + ["test"])
    if spoil is not None:
        spoil(manifest)
    code = run_cli(monkeypatch, "seg", "export-nnunet", "--manifest", manifest, "--out", tmp_path / "raw", *args)
    assert expected in one_error_line(code, capsys)
    assert not (tmp_path / "raw").exists()


def test_library_errors_name_parameters_that_the_command_shows_as_flags() -> None:
    with pytest.raises(ParameterError, match=r"^dataset_id 1000: nnU-Net dataset ids have three digits") as info:
        dataset_folder_name(1000)
    assert info.value.render(flag_names(export_nnunet)).startswith("--dataset-id 1000: ")
    with pytest.raises(ParameterError, match=r"^name 'a b': use letters"):
        dataset_folder_name(1, "a b")


def test_existing_dataset_is_kept_without_overwrite(nnunet_cohort_factory, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    manifest = nnunet_cohort_factory(["train", "train", "val"])
    assert run_cli(monkeypatch, "seg", "export-nnunet", "--manifest", manifest, "--out", tmp_path) == 0
    capsys.readouterr()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = run_cli(monkeypatch, "seg", "export-nnunet", "--manifest", manifest, "--out", tmp_path, "--name", "Other")
    assert "Dataset501_LiverMets with the same dataset id" in one_error_line(code, capsys)
    code = run_cli(monkeypatch, "seg", "export-nnunet", "--manifest", manifest, "--out", tmp_path)
    assert "output folder exists" in one_error_line(code, capsys)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
