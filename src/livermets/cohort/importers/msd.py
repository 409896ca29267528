"""Medical Segmentation Decathlon, Task03_Liver: ``imagesTr/liver_N.nii.gz`` with ``labelsTr/liver_N.nii.gz``.

Labels are 0 background, 1 liver, 2 cancer, i.e. LiTS labels (Task03 is LiTS re-packaged). ``imagesTs`` holds the
test volumes without labels: they become rows without a label in split ``test``. macOS resource forks (``._*``) that
the archive carries are skipped. Each case is its own patient. ``src`` may be the task folder or the folder that
holds ``Task03_Liver``.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from livermets.cohort.importers.common import Case, patient_from, read_matching_label
from livermets.errors import UserInputError
from livermets.imaging import io

TASK = "Task03_Liver"
CASE = re.compile(r"^liver_(\d+)\.nii(?:\.gz)?$")
LIVER_NAMES = ("liver",)
LESION_NAMES = ("cancer", "tumour", "tumor", "lesion")


def task_folder(src: Path) -> Path:
    """``src`` itself, or ``src/Task03_Liver`` when ``src`` holds the task folder rather than being it."""
    nested = src / TASK
    return nested if not (src / "imagesTr").is_dir() and nested.is_dir() else src


def find_cases(src: Path, patient_regex: re.Pattern[str] | None = None) -> list[Case]:
    """Training cases (split ``train``) then test cases (split ``test``, no label); series id ``liver_N``.

    Raises
    ------
    UserInputError
        No case found, a training image without its label (or the reverse), or a ``dataset.json`` whose labels are
        not background/liver/cancer.
    """
    root = task_folder(src)
    check_dataset_json(root)
    train = _numbered(root / "imagesTr")
    labels = _numbered(root / "labelsTr")
    test = _numbered(root / "imagesTs")
    if not train and not labels and not test:
        raise UserInputError(f"{src}: no MSD Task03_Liver cases found (imagesTr/liver_N.nii.gz with "
                             "labelsTr/liver_N.nii.gz, imagesTs/liver_N.nii.gz)")
    for number, image in sorted(train.items()):
        if number not in labels:
            raise UserInputError(f"{image}: no labelsTr/{image.name} for this training image")
    for number, label in sorted(labels.items()):
        if number not in train:
            raise UserInputError(f"{label}: no imagesTr/{label.name} for this label map")
    cases = [_case(root, image, labels[number], "train", patient_regex) for number, image in sorted(train.items())]
    cases += [_case(root, image, None, "test", patient_regex) for _, image in sorted(test.items())]
    return cases


def check_dataset_json(root: Path) -> dict[str, Any]:
    """The task's ``dataset.json`` (empty when absent), after checking that label 1 is liver and 2 a lesion.

    Raises
    ------
    UserInputError
        ``dataset.json`` cannot be parsed, or its labels say another task (another label meaning).
    """
    path = root / "dataset.json"
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{path}: cannot parse ({exc})") from None
    labels = {str(k): str(v).lower() for k, v in (meta.get("labels") or {}).items()} if isinstance(meta, dict) else {}
    if labels and not (any(n in labels.get("1", "") for n in LIVER_NAMES)
                       and any(n in labels.get("2", "") for n in LESION_NAMES)):
        raise UserInputError(f"{path}: labels {labels} are not 1 liver, 2 cancer (not MSD Task03_Liver)")
    return meta if isinstance(meta, dict) else {}


def _numbered(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        match = CASE.match(path.name)
        if match is None or not path.is_file():
            continue  # also skips macOS "._liver_N.nii.gz" resource forks
        number = int(match.group(1))
        if number in found:
            raise UserInputError(f"{path}: case {number} also in {found[number]} (keep one of the two)")
        found[number] = path
    return found


def _case(root: Path, image: Path, label: Path | None, split: str, regex: re.Pattern[str] | None) -> Case:
    series_id = image.name.split(".")[0]
    details = {} if label is None else {"label_source": str(label.relative_to(root))}
    return Case(series_id=series_id, patient_id=patient_from(series_id, regex, str(image)), split=split,
                source=str(image.relative_to(root)), load=functools.partial(_load, image, label),
                labelled=label is not None, details=details)


def _load(image: Path, label: Path | None) -> tuple[sitk.Image, sitk.Image | None]:
    ct = io.read_image(image)
    return ct, None if label is None else read_matching_label(ct, image, label)
