"""Bad input to every command group: exit code 2, one ``error:`` line naming the file/column/row and the problem,
no traceback, and no new file or folder anywhere (the output location, the inputs).

Each case builds its inputs in its own ``tmp_path`` (tiny synthetic data from ``conftest.py``) and returns the command
line plus the fragments the error line must contain. Cases whose names start with ``integrity_`` rely on the image
integrity checks of ``livermets.imaging`` (truncated or corrupt files that SimpleITK alone would read or misreport).
"""

from __future__ import annotations

import locale
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from badinput_data import Inputs, feature_table, tree, write_like

from cli_helpers import one_error_line, run_cli
from livermets.segmentation.default_model import DEFAULT_MODEL_DIR

Case = tuple[list[object], list[str]]  # command line, fragments of the error line
CASES: dict[str, Callable[[Inputs, Path], Case]] = {}


def case(function: Callable[[Inputs, Path], Case]) -> Callable[[Inputs, Path], Case]:
    CASES[function.__name__] = function
    return function


def _ct(inputs: Inputs) -> sitk.Image:
    return sitk.ReadImage(str(inputs.ct))


def _label_array(inputs: Inputs) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(inputs.label)))


def _manifest(inputs: Inputs, tmp: Path, **changes: object) -> Path:
    """The shared manifest with absolute paths, columns changed (a list sets per row) or dropped (value None)."""
    frame = pd.read_csv(inputs.manifest)
    for column in ("image", "label"):
        frame[column] = [str(inputs.manifest.parent / p) for p in frame[column]]
    for column, value in changes.items():
        if value is None:
            frame = frame.drop(columns=[column])
        else:
            frame[column] = value
    path = tmp / "manifest.csv"
    frame.to_csv(path, index=False)
    return path


def _features(tmp: Path, name: str = "features.csv", **changes: object) -> Path:
    table = feature_table()
    for column, value in changes.items():
        if value is None:
            table = table.drop(columns=[column])
        else:
            table[column] = value
    table.to_csv(tmp / name, index=False)
    return tmp / name


def _model_copy(tmp: Path, source: Path = DEFAULT_MODEL_DIR) -> Path:
    model = tmp / "model"
    model.mkdir()
    for name in ("config.yaml", "model.safetensors"):
        shutil.copy(source / name, model / name)
    return model


def _dicom_series(image: sitk.Image, folder: Path, series_uid: str) -> Path:
    """``image`` as a CT DICOM series (one Int16 file per slice) with the given SeriesInstanceUID.

    SimpleITK's DICOM writer sets the C library's LC_CTYPE to "C" (later tests decoding subprocess output as text
    would read ASCII); the locale is restored.
    """
    ctype = locale.setlocale(locale.LC_CTYPE)
    try:
        return _write_series(image, folder, series_uid)
    finally:
        locale.setlocale(locale.LC_CTYPE, ctype)


def _write_series(image: sitk.Image, folder: Path, series_uid: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    image = sitk.Cast(image, sitk.sitkInt16)
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        tags = {"0008|0060": "CT", "0020|000d": "1.2.826.0.1.3680043.8.498.1", "0020|000e": series_uid,
                "0008|0018": f"{series_uid}.{k + 1}", "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
                "0020|0037": "1\\0\\0\\0\\1\\0", "0028|1052": "0", "0028|1053": "1",
                "0008|0016": "1.2.840.10008.5.1.4.1.1.2"}
        for key, value in tags.items():
            plane.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{series_uid[-1]}_{k:03d}.dcm"))
        writer.Execute(plane)
    return folder


# --- imaging -------------------------------------------------------------------------------------------------------

@case
def integrity_imaging_info_truncated_nifti(inputs: Inputs, tmp: Path) -> Case:
    data = inputs.ct.read_bytes()
    (tmp / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    return ["imaging", "info", tmp / "cut.nii.gz"], ["cut.nii.gz"]


@case
def integrity_imaging_convert_nrrd_data_cut(inputs: Inputs, tmp: Path) -> Case:
    sitk.WriteImage(_ct(inputs), str(tmp / "ct.nrrd"), useCompression=False)
    data = (tmp / "ct.nrrd").read_bytes()
    (tmp / "ct.nrrd").write_bytes(data[: len(data) - 5000])
    return ["imaging", "convert", tmp / "ct.nrrd", tmp / "out" / "ct.nii.gz"], ["ct.nrrd"]


@case
def integrity_lesions_table_flipped_gzip_byte(inputs: Inputs, tmp: Path) -> Case:
    data = bytearray(inputs.label.read_bytes())
    data[-6] ^= 0xFF  # the gzip trailer's CRC-32 no longer matches
    (tmp / "label.nii.gz").write_bytes(bytes(data))
    return ["lesions", "table", tmp / "label.nii.gz", "--out", tmp / "out" / "lesions.csv"], ["label.nii.gz"]


@case
def imaging_info_folder_without_dicom(inputs: Inputs, tmp: Path) -> Case:
    (tmp / "scans").mkdir()
    (tmp / "scans" / "notes.txt").write_text("not DICOM")
    return ["imaging", "info", tmp / "scans"], ["scans", "no DICOM series"]


@case
def imaging_convert_two_series_other_uid(inputs: Inputs, tmp: Path) -> Case:
    small = sitk.Image(16, 16, 4, sitk.sitkInt16) - 1000
    _dicom_series(small, tmp / "dicom", "1.2.826.0.1.3680043.8.498.21")
    _dicom_series(small + 40, tmp / "dicom", "1.2.826.0.1.3680043.8.498.22")
    return (["imaging", "convert", tmp / "dicom", tmp / "out" / "ct.nii.gz", "--series-uid", "1.2.3"],
            ["dicom", "no series with uid 1.2.3", "498.21", "498.22"])


@case
def imaging_convert_unknown_output_format(inputs: Inputs, tmp: Path) -> Case:
    return ["imaging", "convert", inputs.ct, tmp / "out" / "ct.txt"], ["ct.txt", "output must be a file ending in"]


@case
def imaging_check_label_of_another_size(inputs: Inputs, tmp: Path) -> Case:
    label = write_like(_label_array(inputs)[:, :, :-4], _ct(inputs), tmp / "label.nii.gz")
    return ["imaging", "check", inputs.ct, label], ["label.nii.gz", "size"]


@case
def imaging_check_label_of_another_spacing(inputs: Inputs, tmp: Path) -> Case:
    label = write_like(_label_array(inputs), _ct(inputs), tmp / "label.nii.gz", spacing=(1.0, 1.0, 2.0))
    return ["imaging", "check", inputs.ct, label], ["label.nii.gz", "spacing"]


@case
def imaging_check_label_of_another_origin(inputs: Inputs, tmp: Path) -> Case:
    label = write_like(_label_array(inputs), _ct(inputs), tmp / "label.nii.gz", origin=(5.0, 0.0, 0.0))
    return ["imaging", "check", inputs.ct, label], ["label.nii.gz", "origin"]


@case
def imaging_check_float_labels(inputs: Inputs, tmp: Path) -> Case:
    label = write_like(_label_array(inputs).astype(np.float32) * 0.5, _ct(inputs), tmp / "label.nii.gz")
    return ["imaging", "check", inputs.ct, label], ["label.nii.gz", "non-integer"]


@case
def imaging_check_label_value_3(inputs: Inputs, tmp: Path) -> Case:
    array = _label_array(inputs)
    array[0, 0, 0] = 3
    label = write_like(array, _ct(inputs), tmp / "label.nii.gz")
    return ["imaging", "check", inputs.ct, label], ["label.nii.gz", "unexpected label values [3]"]


@case
def imaging_seg_to_nifti_file_not_dicom(inputs: Inputs, tmp: Path) -> Case:
    (tmp / "seg.dcm").write_bytes(b"not a DICOM file at all")
    _dicom_series(sitk.Image(16, 16, 4, sitk.sitkInt16) - 1000, tmp / "ct", "1.2.826.0.1.3680043.8.498.31")
    return (["imaging", "seg-to-nifti", tmp / "seg.dcm", "--series", tmp / "ct", "--out", tmp / "out" / "l.nii.gz"],
            ["seg.dcm"])


# --- lesions ---------------------------------------------------------------------------------------------------------

@case
def lesions_table_label_not_on_the_ct_grid(inputs: Inputs, tmp: Path) -> Case:
    label = write_like(_label_array(inputs)[:-2], _ct(inputs), tmp / "label.nii.gz")
    return (["lesions", "table", label, "--image", inputs.ct, "--out", tmp / "out" / "lesions.csv"],
            ["label.nii.gz", "size"])


@case
def lesions_table_unknown_connectivity(inputs: Inputs, tmp: Path) -> Case:
    return ["lesions", "table", inputs.label, "--connectivity", "7", "--out", tmp / "out.csv"], ["connectivity"]


# --- seg -----------------------------------------------------------------------------------------------------------

@case
def seg_predict_intensities_0_to_255(inputs: Inputs, tmp: Path) -> Case:
    sitk.WriteImage(sitk.Cast(sitk.RescaleIntensity(_ct(inputs), 0, 255), sitk.sitkUInt8), str(tmp / "export.nii.gz"))
    return (["seg", "predict", "--image", tmp / "export.nii.gz", "--out", tmp / "pred"],
            ["export.nii.gz", "do not look like CT"])


@case
def integrity_seg_predict_truncated_ct(inputs: Inputs, tmp: Path) -> Case:
    data = inputs.ct.read_bytes()
    (tmp / "ct.nii.gz").write_bytes(data[: len(data) * 3 // 4])
    return ["seg", "predict", "--image", tmp / "ct.nii.gz", "--out", tmp / "pred"], ["ct.nii.gz"]


@case
def seg_predict_model_without_config(inputs: Inputs, tmp: Path) -> Case:
    model = _model_copy(tmp)
    (model / "config.yaml").unlink()
    return (["seg", "predict", "--model", model, "--image", inputs.ct, "--out", tmp / "pred"],
            ["model", "not a trained model folder", "config.yaml"])


@case
def seg_predict_model_without_weights(inputs: Inputs, tmp: Path) -> Case:
    model = _model_copy(tmp)
    (model / "model.safetensors").unlink()
    return (["seg", "predict", "--model", model, "--image", inputs.ct, "--out", tmp / "pred"],
            ["model", "model.safetensors"])


@case
def seg_predict_weights_with_flipped_bytes(inputs: Inputs, tmp: Path) -> Case:
    model = _model_copy(tmp)
    data = bytearray((model / "model.safetensors").read_bytes())
    for offset in (len(data) // 2, len(data) // 2 + 101, len(data) - 7):  # inside the tensor data
        data[offset] ^= 0x55
    (model / "model.safetensors").write_bytes(bytes(data))
    return (["seg", "predict", "--model", model, "--image", inputs.ct, "--out", tmp / "pred"],
            ["model.safetensors", "checksum"])


@case
def seg_predict_weights_cut_short(inputs: Inputs, tmp: Path) -> Case:
    model = _model_copy(tmp)
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 3])
    return (["seg", "predict", "--model", model, "--image", inputs.ct, "--out", tmp / "pred"],
            ["model.safetensors", "not a readable safetensors"])


@case
def seg_predict_config_with_unknown_key(inputs: Inputs, tmp: Path) -> Case:
    model = _model_copy(tmp)
    config = yaml.safe_load((model / "config.yaml").read_text())
    config["inference"]["sharpen"] = True
    (model / "config.yaml").write_text(yaml.safe_dump(config))
    return (["seg", "predict", "--model", model, "--image", inputs.ct, "--out", tmp / "pred"],
            ["config.yaml", "inference.sharpen"])


@case
def seg_predict_config_with_bad_value(inputs: Inputs, tmp: Path) -> Case:
    model = _model_copy(tmp)
    config = yaml.safe_load((model / "config.yaml").read_text())
    config["inference"]["overlap"] = 3.0
    (model / "config.yaml").write_text(yaml.safe_dump(config))
    return (["seg", "predict", "--model", model, "--image", inputs.ct, "--out", tmp / "pred"],
            ["config.yaml", "inference.overlap"])


@case
def seg_predict_duplicate_series_ids(inputs: Inputs, tmp: Path) -> Case:
    manifest = _manifest(inputs, tmp, series_id=["s1", "s1", "s2", "s3", "s4", "s5"])
    return (["seg", "predict", "--manifest", manifest, "--out", tmp / "pred"],
            ["manifest.csv", "duplicate series_id 's1'"])


@case
def seg_predict_unknown_blend_mode(inputs: Inputs, tmp: Path) -> Case:
    return (["seg", "predict", "--image", inputs.ct, "--blend", "median", "--out", tmp / "pred"],
            ["--blend median: expected one of gaussian, constant"])


@case
def seg_evaluate_predictions_named_without_seg(inputs: Inputs, tmp: Path) -> Case:
    (tmp / "pred").mkdir()
    frame = pd.read_csv(inputs.manifest)
    for series_id, label in zip(frame["series_id"], frame["label"], strict=True):
        (tmp / "pred" / f"{series_id}.nii.gz").write_bytes((inputs.manifest.parent / label).read_bytes())
    return (["seg", "evaluate", "--pred-dir", tmp / "pred", "--manifest", inputs.manifest, "--out", tmp / "eval"],
            [f"no prediction for any of the {len(frame)} labelled series",
             f"found {len(frame)} file(s) named <series_id>.nii.gz like {sorted(frame['series_id'])[0]}.nii.gz",
             "expected <series_id>_seg.nii.gz"])


@case
def seg_evaluate_predictions_of_another_size(inputs: Inputs, tmp: Path) -> Case:
    (tmp / "pred").mkdir()
    frame = pd.read_csv(inputs.manifest)
    for series_id, label in zip(frame["series_id"], frame["label"], strict=True):
        reference = sitk.ReadImage(str(inputs.manifest.parent / label))
        write_like(sitk.GetArrayFromImage(reference)[:, 2:], reference, tmp / "pred" / f"{series_id}_seg.nii.gz")
    return (["seg", "evaluate", "--pred-dir", tmp / "pred", "--manifest", inputs.manifest, "--out", tmp / "eval"],
            ["nothing could be evaluated", "geometry mismatch", f"{frame['series_id'][0]}.nii.gz"])


@case
def seg_evaluate_prediction_with_label_3(inputs: Inputs, tmp: Path) -> Case:
    (tmp / "pred").mkdir()
    frame = pd.read_csv(inputs.manifest).head(1)
    frame["label"] = [str(inputs.manifest.parent / p) for p in frame["label"]]
    frame["image"] = [str(inputs.manifest.parent / p) for p in frame["image"]]
    frame.to_csv(tmp / "one.csv", index=False)
    array = _label_array(inputs)
    array[array == 2] = 3
    write_like(array, _ct(inputs), tmp / "pred" / f"{frame['series_id'][0]}_seg.nii.gz")
    return (["seg", "evaluate", "--pred-dir", tmp / "pred", "--manifest", tmp / "one.csv", "--out", tmp / "eval"],
            ["nothing could be evaluated", "unexpected label values [3]"])


@case
def seg_train_patient_in_two_splits(inputs: Inputs, tmp: Path) -> Case:
    manifest = _manifest(inputs, tmp, split=["train", "train", "val", "val", "train", "train"])
    return (["seg", "train", "--model", "unet", "--manifest", manifest, "--out", tmp / "model"],
            ["manifest.csv", "SYN-001", "several splits", "leakage"])


@case
def seg_train_empty_masks(inputs: Inputs, tmp: Path) -> Case:
    empty = write_like(np.zeros_like(_label_array(inputs)), _ct(inputs), tmp / "empty.nii.gz")
    manifest = _manifest(inputs, tmp, label=str(empty), split=["train", "train", "train", "train", "val", "val"],
                         patient_id=["A", "A", "A", "A", "B", "B"], study_id=["a1", "a1", "a2", "a2", "b1", "b1"])
    return (["seg", "train", "--model", "unet", "--manifest", manifest, "--out", tmp / "model", "--iterations", "1"],
            ["empty.nii.gz"])


@case
def seg_train_unknown_network(inputs: Inputs, tmp: Path) -> Case:
    return (["seg", "train", "--model", "vnet", "--manifest", inputs.manifest, "--out", tmp / "model"],
            ["--model 'vnet'", "unet"])


# --- radiomics -----------------------------------------------------------------------------------------------------

@case
def radiomics_extract_empty_lesion_masks(inputs: Inputs, tmp: Path) -> Case:
    no_lesion = write_like(np.where(_label_array(inputs) == 2, 1, _label_array(inputs)).astype(np.uint8),
                           _ct(inputs), tmp / "nolesion.nii.gz")
    frame = pd.read_csv(inputs.manifest).head(1)
    frame["image"], frame["label"] = str(inputs.ct), str(no_lesion)
    frame.to_csv(tmp / "one.csv", index=False)
    return (["radiomics", "extract", "--manifest", tmp / "one.csv", "--out", tmp / "out" / "features.csv", "-j", "1"],
            ["no series could be processed", frame["series_id"][0], "no lesion"])


@case
def radiomics_extract_unknown_roi(inputs: Inputs, tmp: Path) -> Case:
    return (["radiomics", "extract", "--manifest", inputs.manifest, "--out", tmp / "f.csv", "--roi", "spleen"],
            ["--roi", "spleen"])


@case
def radiomics_extract_manifest_without_image_column(inputs: Inputs, tmp: Path) -> Case:
    manifest = _manifest(inputs, tmp, image=None)
    return (["radiomics", "extract", "--manifest", manifest, "--out", tmp / "out" / "f.csv"],
            ["manifest.csv", "missing required column(s) image"])


@case
def radiomics_extract_bad_parameter_file(inputs: Inputs, tmp: Path) -> Case:
    (tmp / "params.yaml").write_text("setting:\n  binWidth: -3\n  noSuchSetting: 1\n")
    return (["radiomics", "extract", "--manifest", inputs.manifest, "--params", tmp / "params.yaml",
             "--out", tmp / "out" / "f.csv"], ["params.yaml"])


@case
def radiomics_aggregate_missing_columns(inputs: Inputs, tmp: Path) -> Case:
    pd.DataFrame({"File": ["a.nii.gz"], "lesion_id": [1]}).to_csv(tmp / "lesions.csv", index=False)
    return (["radiomics", "aggregate", "--lesions", tmp / "lesions.csv", "--out", tmp / "out" / "series.csv"],
            ["lesions.csv", "column"])


# --- phenotype -----------------------------------------------------------------------------------------------------

@case
def phenotype_evaluate_nan_feature(inputs: Inputs, tmp: Path) -> Case:
    values = feature_table()["original_firstorder_Mean"].to_numpy(copy=True)
    values[6] = np.nan
    features = _features(tmp, original_firstorder_Mean=values)
    return (["phenotype", "evaluate", "--features", features, "--out", tmp / "eval", "--n-jobs", "1"],
            ["features.csv", "'original_firstorder_Mean'", "row 8", "not a finite number"])


@case
def phenotype_train_infinite_feature(inputs: Inputs, tmp: Path) -> Case:
    values = feature_table()["original_glcm_Idm"].to_numpy(copy=True)
    values[2] = np.inf
    features = _features(tmp, original_glcm_Idm=values)
    return (["phenotype", "train", "--features", features, "--out", tmp / "model", "--n-jobs", "1"],
            ["features.csv", "'original_glcm_Idm'", "row 4", "inf"])


@case
def phenotype_evaluate_one_class(inputs: Inputs, tmp: Path) -> Case:
    features = _features(tmp, NE_Class=1, NE_Score=0.5)
    return (["phenotype", "evaluate", "--features", features, "--out", tmp / "eval", "--n-jobs", "1",
             "--n-permutations", "2", "--n-boot", "2"], ["features.csv", "one class"])


@case
def phenotype_train_one_class_paper(inputs: Inputs, tmp: Path) -> Case:
    features = _features(tmp, NE_Class=0, NE_Score=-0.5)
    return (["phenotype", "train", "--features", features, "--out", tmp / "model", "--protocol", "paper",
             "--n-jobs", "1"], ["features.csv", "one class"])


@case
def phenotype_evaluate_unknown_protocol(inputs: Inputs, tmp: Path) -> Case:
    return (["phenotype", "evaluate", "--features", inputs.features, "--out", tmp / "eval", "--protocol", "foo"],
            ["protocol 'foo'", "grouped"])


@case
def phenotype_train_missing_target_column(inputs: Inputs, tmp: Path) -> Case:
    features = _features(tmp, NE_Class=None)
    return (["phenotype", "train", "--features", features, "--out", tmp / "model", "--n-jobs", "1"],
            ["features.csv", "missing column 'NE_Class'"])


@case
def phenotype_predict_model_without_config(inputs: Inputs, tmp: Path) -> Case:
    shutil.copytree(inputs.ne_model, tmp / "model")
    (tmp / "model" / "config.json").unlink()
    return (["phenotype", "predict", "--model", tmp / "model", "--features", inputs.features,
             "--out", tmp / "out" / "p.csv"], ["model", "config.json not found"])


@case
def phenotype_predict_config_bad_json(inputs: Inputs, tmp: Path) -> Case:
    shutil.copytree(inputs.ne_model, tmp / "model")
    text = (tmp / "model" / "config.json").read_text()
    (tmp / "model" / "config.json").write_text(text[: len(text) // 2])
    return (["phenotype", "predict", "--model", tmp / "model", "--features", inputs.features,
             "--out", tmp / "out" / "p.csv"], ["config.json", "not valid JSON"])


@case
def phenotype_predict_fold_file_cut_short(inputs: Inputs, tmp: Path) -> Case:
    shutil.copytree(inputs.ne_model, tmp / "model")
    data = (tmp / "model" / "fold_2.skops").read_bytes()
    (tmp / "model" / "fold_2.skops").write_bytes(data[: len(data) // 2])
    return (["phenotype", "predict", "--model", tmp / "model", "--features", inputs.features,
             "--out", tmp / "out" / "p.csv"], ["fold_2.skops"])


@case
def phenotype_predict_missing_feature_column(inputs: Inputs, tmp: Path) -> Case:
    features = _features(tmp, original_shape_Sphericity=None)
    return (["phenotype", "predict", "--model", inputs.ne_model, "--features", features, "--out", tmp / "p.csv"],
            ["features.csv", "original_shape_Sphericity"])


@case
def phenotype_evaluate_bad_option_type(inputs: Inputs, tmp: Path) -> Case:
    return (["phenotype", "evaluate", "--features", inputs.features, "--out", tmp / "eval", "--n-jobs", "many"],
            ["--n-jobs"])


# --- stats, reproduce ----------------------------------------------------------------------------------------------

@case
def stats_burden_missing_volume_column(inputs: Inputs, tmp: Path) -> Case:
    features = _features(tmp, original_shape_VoxelVolume=None)
    return (["stats", "burden", "--features", features, "--out", tmp / "stats"],
            ["features.csv", "original_shape_VoxelVolume"])


@case
def stats_burden_unknown_choice(inputs: Inputs, tmp: Path) -> Case:
    return (["stats", "burden", "--features", inputs.features, "--out", tmp / "stats", "--choice", "median"],
            ["median"])


@case
def stats_burden_unknown_level(inputs: Inputs, tmp: Path) -> Case:
    return (["stats", "burden", "--features", inputs.features, "--out", tmp / "stats", "--level", "series"],
            ["--level", "'series'", "patient, study"])


@case
def stats_failure_predictions_without_probability(inputs: Inputs, tmp: Path) -> Case:
    pd.DataFrame({"File": feature_table()["File"], "predicted_class": 1}).to_csv(tmp / "p.csv", index=False)
    return (["stats", "failure", "--features", inputs.features, "--predictions", tmp / "p.csv",
             "--out", tmp / "stats"], ["p.csv", "missing column 'probability'"])


@case
def reproduce_paper_unknown_tables(inputs: Inputs, tmp: Path) -> Case:
    return (["reproduce", "paper", "--features", inputs.features, "--out", tmp / "repro", "--tables", "5"],
            ["--tables", "5"])


@case
def reproduce_paper_nan_feature(inputs: Inputs, tmp: Path) -> Case:
    values = feature_table()["original_shape_Flatness"].to_numpy(copy=True)
    values[4] = np.nan
    features = _features(tmp, original_shape_Flatness=values)
    return (["reproduce", "paper", "--features", features, "--out", tmp / "repro", "--tables", "4"],
            ["features.csv", "'original_shape_Flatness'", "row 6"])


# --- cohort, synth -------------------------------------------------------------------------------------------------

@case
def cohort_validate_duplicate_series_ids(inputs: Inputs, tmp: Path) -> Case:
    manifest = _manifest(inputs, tmp, series_id=["a", "b", "c", "c", "d", "e"])
    return ["cohort", "validate", manifest], ["manifest.csv", "duplicate series_id 'c'", "rows 3, 4"]


@case
def cohort_validate_patient_in_two_splits(inputs: Inputs, tmp: Path) -> Case:
    manifest = _manifest(inputs, tmp, split=["train", "train", "train", "train", "test", "test"])
    return ["cohort", "validate", manifest], ["manifest.csv", "'SYN-001' appears in several splits (test, train)"]


@case
def cohort_merge_patient_in_both_manifests(inputs: Inputs, tmp: Path) -> Case:
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    first = _manifest(inputs, tmp / "a")
    second = _manifest(inputs, tmp / "b", series_id=[f"x{i}" for i in range(6)])
    return ["cohort", "merge", first, second, "--out", tmp / "out" / "merged.csv"], ["SYN-001", "also appears"]


@case
def cohort_summary_missing_column(inputs: Inputs, tmp: Path) -> Case:
    manifest = _manifest(inputs, tmp, patient_id=None)
    return (["cohort", "summary", manifest, "--out", tmp / "out" / "summary.csv"],
            ["manifest.csv", "missing required column(s) patient_id"])


@case
def synth_unknown_size(inputs: Inputs, tmp: Path) -> Case:
    return ["synth", "--out", tmp / "cohort", "--size", "huge", "--patients", "1"], ["huge"]


@case
def synth_realistic_labels_of_another_size(inputs: Inputs, tmp: Path) -> Case:
    array = _label_array(inputs) * 5  # liver 5 as TotalSegmentator
    labels = write_like(array[:, :-3].astype(np.uint8), _ct(inputs), tmp / "labels.nii.gz")
    return (["synth", "--mode", "realistic", "--source-ct", inputs.ct, "--source-labels", labels, "--patients", "1",
             "--out", tmp / "realistic"], ["labels.nii.gz"])


# --- analyze, run --------------------------------------------------------------------------------------------------

@case
def analyze_intensities_0_to_255(inputs: Inputs, tmp: Path) -> Case:
    sitk.WriteImage(sitk.Cast(sitk.RescaleIntensity(_ct(inputs), 0, 255), sitk.sitkUInt8), str(tmp / "export.nrrd"))
    return ["analyze", tmp / "export.nrrd", "--out", tmp / "report"], ["export.nrrd", "CT"]


@case
def analyze_phenotype_model_bad_json(inputs: Inputs, tmp: Path) -> Case:
    shutil.copytree(inputs.ne_model, tmp / "ne")
    (tmp / "ne" / "config.json").write_text("{\"protocol\": ")
    return ["analyze", inputs.ct, "--phenotype-model", tmp / "ne", "--out", tmp / "report"], ["config.json"]


@case
def run_duplicate_series_ids(inputs: Inputs, tmp: Path) -> Case:
    manifest = _manifest(inputs, tmp, series_id=["a", "a", "b", "c", "d", "e"])
    return ["run", "--manifest", manifest, "--out", tmp / "run", "--workers", "1"], ["manifest.csv", "'a'"]


def test_enough_cases_over_every_command_group() -> None:
    groups = {name.removeprefix("integrity_").split("_")[0] for name in CASES}
    assert len(CASES) >= 40
    assert groups >= {"synth", "cohort", "imaging", "lesions", "seg", "phenotype", "stats", "reproduce", "radiomics",
                      "analyze", "run"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(name: str, inputs: Inputs, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    argv, fragments = CASES[name](inputs, tmp_path)
    before = tree(tmp_path, inputs.root)
    capsys.readouterr()
    message = one_error_line(run_cli(monkeypatch, *argv), capsys)
    for fragment in fragments:
        assert fragment in message
    assert tree(tmp_path, inputs.root) == before, "new files or folders after a failed command"


def test_a_bad_ct_met_late_is_a_failure_of_its_series(inputs: Inputs, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """seg predict writes the first series, then meets a CT whose compressed data end early (found when it is read):
    the others are kept, failures.csv names it, exit code 3 (0 with --allow-failures). When no series succeeds, exit
    2, one error line, and the existing output folder holds only what it held before."""
    ct = _ct(inputs)
    sitk.WriteImage(ct[12:52, 12:52, 14:30], str(tmp_path / "small.nii.gz"))  # one sliding window: fast
    data = inputs.ct.read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) * 3 // 4])
    manifest = _manifest(inputs, tmp_path)
    frame = pd.read_csv(manifest).head(2)
    frame["image"] = [str(tmp_path / "small.nii.gz"), str(tmp_path / "cut.nii.gz")]
    frame.to_csv(manifest, index=False)
    frame.tail(1).to_csv(tmp_path / "only_cut.csv", index=False)
    out = tmp_path / "pred"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    before = tree(tmp_path, inputs.root)
    capsys.readouterr()
    argv = ["seg", "predict", "--out", out, "--device", "cpu", "--manifest"]
    message = one_error_line(run_cli(monkeypatch, *argv, tmp_path / "only_cut.csv"), capsys)
    assert message.startswith("error: no series could be segmented: ") and "cut.nii.gz: truncated" in message
    assert tree(tmp_path, inputs.root) == before

    code = run_cli(monkeypatch, *argv, manifest)
    captured = capsys.readouterr()
    assert code == 3 and "Traceback" not in captured.err
    assert captured.out.strip().splitlines()[-1] == f"1 of 2 series failed; failure table: {out / 'failures.csv'}"
    small, cut = frame["series_id"]
    assert sorted(p.name for p in out.iterdir()) == sorted(["notes.txt", "predictions.csv", "failures.csv",
                                                            f"{small}_seg.nii.gz", f"{small}.qc.json"])
    failures = pd.read_csv(out / "failures.csv", dtype=str)
    assert failures["series_id"].tolist() == [cut] and "cut.nii.gz: truncated" in failures.loc[0, "reason"]
    assert pd.read_csv(out / "predictions.csv", dtype=str)["series_id"].tolist() == [small]
    assert run_cli(monkeypatch, *argv, manifest, "--allow-failures") == 0
