"""3D-IRCADb-01: one folder ``3Dircadb1.N`` per patient with the CT and binary masks as DICOM series.

Layout of a patient folder (the archives ``PATIENT_DICOM.zip`` and ``MASKS_DICOM.zip`` must be unzipped first)::

    3Dircadb1.N/PATIENT_DICOM/image_0 ... image_K          the CT (DICOM files without extension)
    3Dircadb1.N/MASKS_DICOM/liver/image_0 ...              liver mask, 0/255, on the CT's grid
    3Dircadb1.N/MASKS_DICOM/livertumor01/ ...              one folder per tumour (also livertumor, livertumors,
                                                           livertumor1, liver_tumour2, ...)

The label is 1 where the liver mask is set and 2 where any liver-tumour mask is set (a tumour wins over the liver,
and a tumour voxel outside the liver mask is still 2), on the CT's grid. Other masks (vessels, cysts, other organs)
are not imported. Each folder is one patient.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from livermets.cohort.importers.common import Case, label_on_grid, patient_from, safe_id, walk_folders
from livermets.errors import UserInputError
from livermets.imaging import geometry, io

PATIENT_FOLDER = re.compile(r"^3Dircadb1\.(\d+)$", re.IGNORECASE)
TUMOUR_MASK = re.compile(r"^liver[ _-]?tumou?rs?[ _-]?\d*$", re.IGNORECASE)
LIVER_MASK = "liver"


def find_cases(src: Path, patient_regex: re.Pattern[str] | None = None) -> list[Case]:
    """The patient folders below ``src`` (by number); series id ``3Dircadb1_N``, split ``train``.

    Raises
    ------
    UserInputError
        No patient folder, or one without ``PATIENT_DICOM`` or without a liver mask folder (also when only the
        zip archives are there).
    """
    folders = sorted(walk_folders(src, PATIENT_FOLDER), key=_number)
    if not folders:
        raise UserInputError(f"{src}: no 3D-IRCADb-01 patient folders found (3Dircadb1.N with PATIENT_DICOM and "
                             "MASKS_DICOM)")
    cases = []
    for folder in folders:
        ct_folder = _required_folder(folder, "PATIENT_DICOM")
        masks = _required_folder(folder, "MASKS_DICOM")
        liver = next((p for p in sorted(masks.iterdir()) if p.is_dir() and p.name.lower() == LIVER_MASK), None)
        if liver is None:
            raise UserInputError(f"{masks}: no '{LIVER_MASK}' mask folder")
        tumours = [p for p in sorted(masks.iterdir()) if p.is_dir() and TUMOUR_MASK.match(p.name)]
        series_id = safe_id(folder.name.replace(".", "_"))
        cases.append(Case(
            series_id=series_id,
            patient_id=patient_from(series_id, patient_regex, str(folder)),
            split="train",
            source=str(ct_folder.relative_to(src)),
            load=functools.partial(_load, ct_folder, liver, tuple(tumours)),
            details={"liver_mask": str(liver.relative_to(src)),
                     "tumour_masks": [str(p.relative_to(src)) for p in tumours]},
        ))
    return cases


def _number(folder: Path) -> int:
    match = PATIENT_FOLDER.match(folder.name)
    return int(match.group(1)) if match else -1


def _required_folder(folder: Path, name: str) -> Path:
    path = folder / name
    if path.is_dir():
        return path
    if (folder / f"{name}.zip").is_file():
        raise UserInputError(f"{folder / (name + '.zip')}: unzip this archive into {name}/ first")
    raise UserInputError(f"{folder}: no {name} folder")


def _load(ct_folder: Path, liver: Path, tumours: tuple[Path, ...]) -> tuple[sitk.Image, sitk.Image]:
    ct = io.read_image(ct_folder)
    array = np.zeros(tuple(reversed(ct.GetSize())), np.uint8)
    array[_mask(ct, ct_folder, liver)] = 1
    for tumour in tumours:
        array[_mask(ct, ct_folder, tumour)] = 2
    return ct, label_on_grid(array, ct)


def _mask(ct: sitk.Image, ct_folder: Path, folder: Path) -> np.ndarray:
    """The binary (z, y, x) mask of a mask series (any non-zero value), after checking it lies on the CT's grid."""
    mask = io.read_image(folder)
    geometry.check_same_geometry(ct, mask, str(ct_folder), str(folder))
    return sitk.GetArrayViewFromImage(mask) > 0
