"""Export a livermets manifest as an nnU-Net v2 raw dataset with patient-grouped cross-validation folds.

Layout written below ``OUT`` (the nnU-Net ``nnUNet_raw`` folder)::

    OUT/Dataset<NNN>_<Name>/
      dataset.json              channel_names {"0": "CT"}, labels background 0 / liver 1 / lesion 2,
                                numTraining, file_ending ".nii.gz"
      imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz   labelled train and val rows
      imagesTs/<case>_0000.nii.gz                           test rows
      splits_final.json         nnU-Net's folds [{"train": [...], "val": [...]}, ...], grouped by patient_id
      livermets_cases.csv       case id -> series_id, patient_id, split, source image and label, fold it validates

The folds are the manifest's own ``val`` split when it has one (a single fold), otherwise ``folds`` patient-grouped
folds (scikit-learn's ``GroupKFold``, shuffled with ``seed``): no patient is in two folds' validation sets, nor in the
training and validation cases of one fold. nnU-Net uses ``splits_final.json`` when it lies in the preprocessed
dataset folder (``livermets seg train --model nnunet`` puts it there); otherwise it would draw its own random,
patient-blind split.

Labels use nnU-Net's plain-label convention (softmax over background, liver, lesion; the Medical Segmentation
Decathlon's liver task has the same three labels), not region-based training.

Examples
--------
>>> from livermets.segmentation.nnunet.dataset import export_nnunet_dataset
>>> export_nnunet_dataset("cohort/manifest.csv", "nnunet_raw", dataset_id=501, folds=5)  # doctest: +SKIP
PosixPath('nnunet_raw/Dataset501_LiverMets')
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd
import SimpleITK as sitk

from livermets.atomic import staged_folder, write_csv, write_json
from livermets.cohort.manifest import load_manifest
from livermets.errors import ParameterError, UserInputError
from livermets.imaging.geometry import check_same_geometry
from livermets.imaging.io import read_image, read_label, write_image, write_label
from livermets.progress import track
from livermets.segmentation.checks import check_ct_intensities

log = logging.getLogger(__name__)

DEFAULT_DATASET_ID = 501
DEFAULT_NAME = "LiverMets"
CHANNEL_NAMES = {"0": "CT"}
LABELS = {"background": 0, "liver": 1, "lesion": 2}
FILE_ENDING = ".nii.gz"
SPLITS_FILE = "splits_final.json"
CASES_FILE = "livermets_cases.csv"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class ExportPlan:
    """What an export writes, decided from the manifest alone (no image is read).

    ``cases`` has one row per exported manifest row: case_id, series_id, patient_id, split, image, label and
    ``training`` (True for imagesTr/labelsTr, False for imagesTs); ``splits`` is nnU-Net's list of folds.
    """

    dataset_name: str
    cases: pd.DataFrame
    splits: list[dict[str, list[str]]]
    source: str


def dataset_folder_name(dataset_id: int, name: str = DEFAULT_NAME) -> str:
    """nnU-Net's dataset folder name, e.g. ``Dataset501_LiverMets``.

    Examples
    --------
    >>> dataset_folder_name(7, "LiTS")
    'Dataset007_LiTS'
    """
    if not 1 <= int(dataset_id) <= 999:
        raise ParameterError("{dataset_id} {value}: nnU-Net dataset ids have three digits (1..999)", value=dataset_id)
    if not _NAME.match(name):
        raise ParameterError("{name} {value!r}: use letters, digits, '_' and '-' (starting with a letter or digit)",
                             value=name)
    return f"Dataset{int(dataset_id):03d}_{name}"


def case_identifiers(series_ids: Sequence[str]) -> list[str]:
    """nnU-Net case ids from series ids: characters other than letters, digits, ``-`` and ``_`` become ``_``; ids
    that would collide get a short hash of their series id appended, so every case id is unique.

    Examples
    --------
    >>> case_identifiers(["S01", "a/b", "a_b"])
    ['S01', 'a_b-3ec69c85', 'a_b-eb2980a5']
    """
    base = [re.sub(r"[^A-Za-z0-9_-]", "_", str(s)).strip("_") or "case" for s in series_ids]
    counts = pd.Series(base).value_counts()
    ids = [b if counts[b] == 1 else f"{b}-{hashlib.sha1(str(s).encode()).hexdigest()[:8]}"
           for b, s in zip(base, series_ids, strict=True)]
    if len(set(ids)) != len(ids):  # a hash suffix equal to another series' plain id: hash every id
        ids = [f"{b}-{hashlib.sha1(str(s).encode()).hexdigest()[:8]}" for b, s in zip(base, series_ids, strict=True)]
    return ids


def grouped_splits(cases: pd.DataFrame, folds: int, seed: int = 0) -> list[dict[str, list[str]]]:
    """nnU-Net folds over the training cases: the ``val`` split as one fold, else ``folds`` patient-grouped folds.

    Parameters
    ----------
    cases
        Training cases with columns case_id, patient_id and split (``train`` or ``val``).
    folds
        Number of folds when there is no ``val`` split (at least 2, at most the number of patients).
    seed
        Shuffling seed of the grouped folds.
    """
    is_val = cases["split"] == "val"
    if is_val.any():
        return [{"train": sorted(cases.loc[~is_val, "case_id"]), "val": sorted(cases.loc[is_val, "case_id"])}]
    patients = cases["patient_id"].astype(str)
    if folds < 2:
        raise ParameterError("{folds} {value}: need at least 2 folds when the manifest has no 'val' split", value=folds)
    if folds > patients.nunique():
        raise ParameterError("{folds} {value}: only {patients} training patient(s) to split into folds", value=folds,
                             patients=patients.nunique())
    from sklearn.model_selection import GroupKFold

    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    ids = cases["case_id"].to_numpy()
    return [{"train": sorted(ids[train].tolist()), "val": sorted(ids[val].tolist())}
            for train, val in splitter.split(ids, groups=patients.to_numpy())]


def plan_export(manifest: str | Path, dataset_id: int = DEFAULT_DATASET_ID, folds: int = 5,
                name: str = DEFAULT_NAME, seed: int = 0) -> ExportPlan:
    """Read and check the manifest, choose case ids and folds (see :class:`ExportPlan`).

    Raises
    ------
    UserInputError
        Invalid manifest, no ``split`` column, no train rows, a train/val row without label, bad folds.
    """
    source = str(manifest)
    dataset_name = dataset_folder_name(dataset_id, name)
    frame = load_manifest(manifest)
    if "split" not in frame.columns:
        raise UserInputError(f"{source}: nnU-Net export needs a 'split' column (train / val / test)")
    frame = frame[frame["split"].notna()].copy()
    training = frame["split"].isin(["train", "val"])
    if not (frame["split"] == "train").any():
        raise UserInputError(f"{source}: no rows with split == 'train'")
    labels = frame["label"] if "label" in frame.columns else pd.Series(pd.NA, index=frame.index)
    unlabelled = frame[training & labels.isna()]
    if not unlabelled.empty:
        raise UserInputError(f"{source}: series {unlabelled['series_id'].iloc[0]}: no label for a "
                             f"{unlabelled['split'].iloc[0]} row ({len(unlabelled)} such row(s)); train and val rows "
                             "need label maps")
    cases = pd.DataFrame({
        "case_id": case_identifiers(frame["series_id"].tolist()), "series_id": frame["series_id"].astype(str),
        "patient_id": frame["patient_id"].astype(str), "split": frame["split"].astype(str),
        "image": frame["image"].astype(str), "label": labels.where(training, pd.NA), "training": training,
    }).reset_index(drop=True)
    splits = grouped_splits(cases[cases["training"]], folds, seed)
    return ExportPlan(dataset_name, cases, splits, source)


def dataset_json(plan: ExportPlan) -> dict[str, Any]:
    """nnU-Net v2's dataset.json for an export."""
    return {
        "name": plan.dataset_name.split("_", 1)[1],
        "description": f"livermets export of {plan.source}",
        "channel_names": CHANNEL_NAMES,
        "labels": LABELS,
        "numTraining": int(plan.cases["training"].sum()),
        "file_ending": FILE_ENDING,
        "overwrite_image_reader_writer": "SimpleITKIO",
    }


def _write_case(row: Any, folder: Path) -> None:
    """Write one case's image (and label for a training case) with the CT's exact geometry."""
    image = read_image(row.image)
    check_ct_intensities(image, row.image)
    subfolder = "imagesTr" if row.training else "imagesTs"
    write_image(image, folder / subfolder / f"{row.case_id}_0000{FILE_ENDING}")
    if row.training:
        label = read_label(row.label)
        check_same_geometry(image, label, row.image, row.label)
        label.CopyInformation(image)  # bit-identical headers (nnU-Net compares them)
        write_label(label, folder / "labelsTr" / f"{row.case_id}{FILE_ENDING}")


def _header(path: str) -> sitk.ImageFileReader | None:
    """The image file's header (size, spacing, origin, direction) without its voxels; None for a DICOM folder or an
    unreadable header (reading the image reports those)."""
    if not Path(path).is_file():
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    return reader


def check_training_labels(plan: ExportPlan) -> None:
    """Label values (0/1/2) of every training case and their geometry against the CT's header, before anything is
    written (a bad label then fails the export at once, with one message and no progress output)."""
    training = plan.cases[plan.cases["training"]]
    for image_path, label_path in zip(training["image"].astype(str), training["label"].astype(str), strict=True):
        label = read_label(label_path)
        header = _header(image_path)
        if header is not None:  # the reader has the geometry getters of an image
            check_same_geometry(cast(sitk.Image, header), label, image_path, label_path)


def _fold_column(plan: ExportPlan) -> list[str]:
    folds_of = {case: str(i) for i, fold in enumerate(plan.splits) for case in fold["val"]}
    return [folds_of.get(case, "") for case in plan.cases["case_id"]]


def write_export(plan: ExportPlan, out: str | Path, overwrite: bool = False) -> Path:
    """Write the planned dataset to ``out/<dataset_name>`` (built in a staged folder: all or nothing).

    Raises
    ------
    UserInputError
        The dataset folder exists (without ``overwrite``), another dataset in ``out`` has the same id, or an image or
        label fails its checks (CT intensities, label values 0/1/2, geometry equal to the CT's).
    """
    out = Path(out)
    prefix = plan.dataset_name.split("_", 1)[0] + "_"
    clash = sorted(p.name for p in out.glob(f"{prefix}*") if p.name != plan.dataset_name) if out.is_dir() else []
    if clash:
        raise ParameterError("{folder}: already holds {clash} with the same dataset id (choose another {dataset_id})",
                             folder=str(out), clash=clash[0])
    if (out / plan.dataset_name).exists() and not overwrite:
        raise ParameterError("{folder}: output folder exists (use {overwrite} to replace it)",
                             folder=str(out / plan.dataset_name))
    check_training_labels(plan)
    with staged_folder(out / plan.dataset_name, overwrite=overwrite) as tmp:
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (tmp / sub).mkdir()
        for row in track(list(plan.cases.itertuples()), "nnU-Net export"):
            _write_case(row, tmp)
        write_json(tmp / "dataset.json", dataset_json(plan))
        write_json(tmp / SPLITS_FILE, plan.splits)
        write_csv(tmp / CASES_FILE, plan.cases.drop(columns="training").assign(
            subset=["imagesTr" if t else "imagesTs" for t in plan.cases["training"]], val_fold=_fold_column(plan)))
    log.info("%s: %d training case(s), %d test case(s), %d fold(s)", out / plan.dataset_name,
             int(plan.cases["training"].sum()), int((~plan.cases["training"]).sum()), len(plan.splits))
    return out / plan.dataset_name


def export_nnunet_dataset(manifest: str | Path, out: str | Path, dataset_id: int = DEFAULT_DATASET_ID,
                          folds: int = 5, name: str = DEFAULT_NAME, seed: int = 0, overwrite: bool = False) -> Path:
    """Export a manifest as the nnU-Net v2 raw dataset ``out/Dataset<NNN>_<name>`` (see the module docstring).

    Parameters
    ----------
    manifest
        Cohort manifest CSV with image, label (train/val rows) and split.
    out
        nnU-Net raw folder to write the dataset folder into.
    dataset_id
        nnU-Net dataset id (1..999).
    folds
        Patient-grouped folds when the manifest has no ``val`` split.
    name
        Dataset name after the id.
    seed
        Seed of the fold shuffling.
    overwrite
        Replace an existing dataset folder of the same name.

    Returns
    -------
    Path
        The dataset folder.

    Examples
    --------
    >>> folder = export_nnunet_dataset("cohort/manifest.csv", "raw", dataset_id=501)  # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
    ['dataset.json', 'imagesTr', 'imagesTs', 'labelsTr', 'livermets_cases.csv', 'splits_final.json']
    """
    return write_export(plan_export(manifest, dataset_id, folds, name, seed), out, overwrite=overwrite)

