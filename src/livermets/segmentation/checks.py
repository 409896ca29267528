"""Input checks run before any training or prediction work: CT intensities, labels, splits."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.errors import UserInputError
from livermets.imaging.geometry import check_same_geometry
from livermets.imaging.io import read_image, read_label

log = logging.getLogger(__name__)


def check_ct_intensities(
    image: sitk.Image, name: str, min_ct_hu: float = -200.0, foreground_hu: float = -500.0
) -> None:
    """Reject images whose intensities are not CT Hounsfield units.

    A CT of the abdomen contains air or fat (below about -200 HU) and soft tissue; an 8-bit export (0..255), an MR
    image or a CT stored without its DICOM rescale has no negative values at all.

    Raises
    ------
    UserInputError
        No value below ``min_ct_hu``, or nothing above ``foreground_hu`` (no body to segment).
    """
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    low, high = stats.GetMinimum(), stats.GetMaximum()
    if low >= min_ct_hu:
        raise UserInputError(
            f"{name}: intensities {low:g}..{high:g} do not look like CT in Hounsfield units (no value below "
            f"{min_ct_hu:g} HU, where air and fat lie); an 8-bit export, an MR image or a CT without its rescale?"
        )
    if high <= foreground_hu:
        raise UserInputError(f"{name}: no voxel above {foreground_hu:g} HU, so there is no body to segment")


@dataclass(frozen=True)
class CaseSummary:
    series_id: str
    liver_voxels: int
    lesion_voxels: int


def check_training_case(
    series_id: str, image_path: str, label_path: str, min_ct_hu: float = -200.0, foreground_hu: float = -500.0
) -> CaseSummary:
    """Validate one training/validation case: CT intensities, label values, geometry, non-trivial label."""
    image = read_image(image_path)
    check_ct_intensities(image, image_path, min_ct_hu, foreground_hu)
    label = read_label(label_path)
    check_same_geometry(image, label, image_path, label_path)
    counts = np.bincount(sitk.GetArrayViewFromImage(label).ravel(), minlength=3)
    if counts[1] + counts[2] == 0:
        raise UserInputError(f"{label_path}: label map of series {series_id} is empty (no liver or lesion voxels)")
    if counts[0] == 0:
        raise UserInputError(
            f"{label_path}: label map of series {series_id} has no background voxel (all liver/lesion); wrong file?"
        )
    if counts[1] == 0:
        raise UserInputError(f"{label_path}: label map of series {series_id} has lesion but no liver; wrong file?")
    return CaseSummary(series_id, int(counts[1]), int(counts[2]))


def training_frames(
    frame: pd.DataFrame, val_fraction: float, seed: int, source: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation rows of a manifest; without a ``val`` split, a patient-grouped share of ``train``.

    Raises
    ------
    UserInputError
        No ``label`` column, missing labels in train/val rows, no ``split`` column, or too few training patients.
    """
    if "label" not in frame.columns:
        raise UserInputError(f"{source}: training needs a 'label' column with the liver/lesion label maps")
    if "split" not in frame.columns:
        raise UserInputError(f"{source}: training needs a 'split' column (train / val / test)")
    split = frame["split"].astype("string").str.strip().str.lower()
    train = frame[split == "train"]
    val = frame[split == "val"]
    if train.empty:
        raise UserInputError(f"{source}: no rows with split == 'train'")
    used = pd.concat([train, val])
    missing = used[used["label"].isna()]
    if not missing.empty:
        first = int(missing.index[0]) + 1
        raise UserInputError(
            f"{source}: row {first} (series {missing['series_id'].iloc[0]}): no label for a train/val series "
            f"({len(missing)} such row(s)); training needs every train and val row labelled"
        )
    if val.empty:
        patients = np.array(sorted(train["patient_id"].astype(str).unique()))
        if len(patients) < 2:
            raise UserInputError(
                f"{source}: no 'val' split and only {len(patients)} training patient(s); add val rows to the manifest"
            )
        rng = np.random.default_rng(seed)
        n_val = max(1, round(val_fraction * len(patients)))
        held_out = set(rng.choice(patients, size=n_val, replace=False).tolist())
        is_val = train["patient_id"].astype(str).isin(held_out)
        log.warning(
            "%s has no 'val' split: holding out %d of %d training patients (train.val_fraction = %.2f, seed %d) "
            "for validation", source, n_val, len(patients), val_fraction, seed,
        )
        train, val = train[~is_val], train[is_val]
    return train, val
