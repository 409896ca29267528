"""LiTS (Liver Tumor Segmentation Challenge) training data: ``volume-N.nii`` with ``segmentation-N.nii``.

The files may be ``.nii`` or ``.nii.gz`` and may sit in sub-folders (the challenge ships them as "Training Batch 1"
and "Training Batch 2"). Labels are already LiTS labels 0/1/2. LiTS publishes no patient metadata, so every case is
its own patient (a few LiTS patients have more than one volume; ``patient_regex`` cannot know which). The test
volumes (``test-volume-N.nii``) have no labels and are not imported.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import SimpleITK as sitk

from livermets.cohort.importers.common import Case, numbered_files, patient_from, read_matching_label
from livermets.errors import UserInputError
from livermets.imaging import io

VOLUME = re.compile(r"^volume-(\d+)\.nii(?:\.gz)?$")
SEGMENTATION = re.compile(r"^segmentation-(\d+)\.nii(?:\.gz)?$")


def find_cases(src: Path, patient_regex: re.Pattern[str] | None = None) -> list[Case]:
    """The LiTS cases below ``src``, by case number; series id ``lits_N``, split ``train``.

    Raises
    ------
    UserInputError
        No case found, a volume without its segmentation or the reverse, or a case number found twice.
    """
    volumes = numbered_files(src, VOLUME)
    segmentations = numbered_files(src, SEGMENTATION)
    if not volumes and not segmentations:
        raise UserInputError(f"{src}: no LiTS cases found (volume-N.nii[.gz] with segmentation-N.nii[.gz], also in "
                             "sub-folders)")
    for number, volume in sorted(volumes.items()):
        if number not in segmentations:
            raise UserInputError(f"{volume}: no segmentation-{number}.nii[.gz] for this volume")
    for number, segmentation in sorted(segmentations.items()):
        if number not in volumes:
            raise UserInputError(f"{segmentation}: no volume-{number}.nii[.gz] for this segmentation")
    cases = []
    for number in sorted(volumes):
        series_id = f"lits_{number}"
        volume, segmentation = volumes[number], segmentations[number]
        cases.append(Case(
            series_id=series_id,
            patient_id=patient_from(series_id, patient_regex, str(volume)),
            split="train",
            source=str(volume.relative_to(src)),
            load=functools.partial(_load, volume, segmentation),
            details={"label_source": str(segmentation.relative_to(src))},
        ))
    return cases


def _load(volume: Path, segmentation: Path) -> tuple[sitk.Image, sitk.Image]:
    ct = io.read_image(volume)
    return ct, read_matching_label(ct, volume, segmentation)
