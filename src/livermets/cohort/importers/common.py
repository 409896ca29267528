"""What every importer shares: the case record, patient ids, file discovery and the writer of the imported cohort.

An importer finds its cases first (file names and folders only, cheap, every pairing problem reported before anything
is written), then :func:`write_cohort` reads each case, checks it and writes the CT and its label map into a staged
folder that replaces ``out`` only when the manifest is complete and valid.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.atomic import staged_folder, write_csv, write_json
from livermets.cohort import manifest as mf
from livermets.errors import ParameterError, UserInputError
from livermets.imaging import geometry, io

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
REPORT_NAME = "import.json"
IMAGES = "images"
LABELS = "labels"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

Loader = Callable[[], tuple[sitk.Image, sitk.Image | None]]
"""Reads one case: the CT and its UInt8 0/1/2 label map on exactly the CT's grid (``None`` for an unlabelled case)."""


@dataclass(frozen=True)
class Case:
    """One CT series to import: ids, split, where it comes from, and how to read it.

    ``source`` is the image file or folder relative to the dataset folder (recorded in ``import.json``); ``details``
    are further JSON-ready facts for that record (e.g. UIDs).
    """

    series_id: str
    patient_id: str
    split: str
    source: str
    load: Loader
    study_id: str | None = None
    labelled: bool = True
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote: the output folder, its manifest and the counts recorded in ``import.json``."""

    out: Path
    manifest: Path
    counts: dict[str, Any]


def check_source(src: str | Path) -> Path:
    """``src`` as an existing folder, or :class:`UserInputError` naming it."""
    path = Path(src)
    if not path.exists():
        raise UserInputError(f"{path}: dataset folder does not exist")
    if not path.is_dir():
        raise UserInputError(f"{path}: not a folder (give the folder the dataset was unpacked into)")
    return path


def walk_files(root: Path) -> Iterator[Path]:
    """Every file below ``root`` in sorted order, without macOS resource forks (``._*``) and hidden folders."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("._") and not name.startswith("."):
                yield Path(folder) / name


def walk_folders(root: Path, pattern: re.Pattern[str]) -> list[Path]:
    """Folders below ``root`` whose name matches ``pattern`` (not descending into a match), sorted by path."""
    found: list[Path] = []
    for folder, dirs, _ in os.walk(root):
        keep: list[Path] = []
        for name in sorted(dirs):
            if name.startswith("."):
                continue
            (found if pattern.match(name) else keep).append(Path(folder) / name)
        dirs[:] = [p.name for p in keep]
    return sorted(found)


def numbered_files(root: Path, pattern: re.Pattern[str]) -> dict[int, Path]:
    """Files below ``root`` whose name matches ``pattern`` (group 1: the case number), by case number.

    Raises
    ------
    UserInputError
        Two files with the same case number (e.g. ``volume-3.nii`` and ``volume-3.nii.gz``).
    """
    by_number: dict[int, Path] = {}
    for path in walk_files(root):
        match = pattern.match(path.name)
        if match is None:
            continue
        number = int(match.group(1))
        if number in by_number:
            raise UserInputError(f"{path}: case {number} also in {by_number[number]} (keep one of the two)")
        by_number[number] = path
    return by_number


def safe_id(text: str) -> str:
    """``text`` with every run of characters other than letters, digits, ``.``, ``_``, ``-`` replaced by ``_``."""
    cleaned = _UNSAFE.sub("_", text.strip()).strip("._")
    return cleaned or "case"


def short_hash(text: str, length: int = 8) -> str:
    """A stable short hexadecimal digest of ``text`` (names a series or study without its UID)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def compile_patient_regex(patient_regex: str | None) -> re.Pattern[str] | None:
    """Compile ``patient_regex``; :class:`~livermets.errors.ParameterError` when it is not a valid regex."""
    if patient_regex is None:
        return None
    try:
        return re.compile(patient_regex)
    except re.error as exc:
        raise ParameterError("{patient_regex}: {value!r} is not a regular expression ({reason})", value=patient_regex,
                             reason=exc) from None


def patient_from(default: str, regex: re.Pattern[str] | None, where: str) -> str:
    """The patient id of a case: ``default`` or, with ``regex``, its named group ``patient``, else its first group,
    else the whole match, searched in ``default``.

    Raises
    ------
    ParameterError
        ``regex`` finds nothing (or an empty id) in ``default``; ``where`` names the case.

    Examples
    --------
    >>> patient_from("CRLM-CT-1001", re.compile(r"CT-(\\d+)"), "seg.dcm")
    '1001'
    """
    if regex is None:
        return default
    match = regex.search(default)
    if match is None:
        raise ParameterError("{patient_regex}: {value!r} does not match {default!r} ({where})", value=regex.pattern,
                             default=default, where=where)
    if "patient" in regex.groupindex:
        value = match.group("patient")
    else:
        value = match.group(1) if regex.groups else match.group(0)
    if not value:
        raise ParameterError("{patient_regex}: {value!r} gives an empty patient id for {default!r} ({where})",
                             value=regex.pattern, default=default, where=where)
    return str(value)


def label_on_grid(array: np.ndarray, ct: sitk.Image) -> sitk.Image:
    """A UInt8 label image of ``array`` (z, y, x) carrying exactly ``ct``'s size, spacing, origin and direction."""
    return io.label_image(array.astype(np.uint8, copy=False), ct)


def read_matching_label(ct: sitk.Image, ct_path: Path, label_path: Path) -> sitk.Image:
    """Read a 0/1/2 label file, check it lies on ``ct``'s grid and return it with exactly the CT's geometry.

    Raises
    ------
    UserInputError
        Unreadable file, label values other than 0/1/2, or a grid that differs from the CT's (both files named).
    """
    label = io.read_label(label_path)
    geometry.check_same_geometry(ct, label, str(ct_path), str(label_path))
    return label_on_grid(sitk.GetArrayViewFromImage(label), ct)


def check_ids(cases: Sequence[Case], patient_regex: str | None) -> None:
    """Raise :class:`UserInputError` unless series ids are unique and each patient is in one split only (a
    ``patient_regex`` can join a training and a test case)."""
    seen: dict[str, Case] = {}
    splits: dict[str, Case] = {}
    for case in cases:
        if case.series_id in seen:
            raise UserInputError(f"{case.source}: series id {case.series_id!r} also given to "
                                 f"{seen[case.series_id].source}")
        seen[case.series_id] = case
        first = splits.setdefault(case.patient_id, case)
        if first.split != case.split:
            by = f" (patient regex {patient_regex!r})" if patient_regex else ""
            raise UserInputError(f"{case.source}: patient {case.patient_id!r}{by} is in split {case.split!r} but "
                                 f"{first.source} in {first.split!r}; a patient must stay in one split")


def write_cohort(
    cases: Sequence[Case],
    out: str | Path,
    *,
    record: dict[str, Any],
    overwrite: bool = False,
    patient_regex: str | None = None,
) -> ImportResult:
    """Read every case and write ``out/images``, ``out/labels``, ``out/manifest.csv`` and ``out/import.json``.

    Everything is built in a hidden sibling folder that replaces ``out`` only once the manifest passes the checks
    of ``livermets cohort validate`` (:func:`livermets.cohort.manifest.find_problems` and
    :func:`~livermets.cohort.manifest.find_geometry_problems`); any error leaves ``out`` as it was (absent, or the
    previous import with ``overwrite``).

    Parameters
    ----------
    cases
        The cases found by an importer, in manifest order.
    out
        Output folder.
    record
        JSON-ready facts for ``import.json`` (format, source, parameters, provenance); counts are added here.
    overwrite
        Replace an existing ``out``.
    patient_regex
        Named in the error when two cases of one patient fall into different splits.
    """
    out = Path(out)
    check_ids(cases, patient_regex)
    with staged_folder(out, overwrite=overwrite) as tmp:
        rows = []
        for number, case in enumerate(cases, start=1):
            log.info("[%d/%d] importing %s", number, len(cases), case.series_id)
            rows.append(_write_case(case, tmp))
        frame = pd.DataFrame(rows, columns=["series_id", "study_id", "patient_id", "image", "label", "split"])
        write_csv(tmp / MANIFEST_NAME, frame)
        written = mf.read_manifest(tmp / MANIFEST_NAME)
        problems = mf.find_problems(written) + mf.find_geometry_problems(written)
        if problems:  # cannot happen for consistent importers; never publish a manifest `cohort validate` rejects
            raise UserInputError(f"{out / MANIFEST_NAME}: imported manifest is invalid ({problems[0]})")
        counts = _counts(frame)
        write_json(tmp / REPORT_NAME, {**record, "counts": counts,
                                       "series": [{"series_id": c.series_id, "source": c.source, **c.details}
                                                  for c in cases]})
    return ImportResult(out, out / MANIFEST_NAME, counts)


def _write_case(case: Case, folder: Path) -> dict[str, Any]:
    image, label = case.load()
    image_name = f"{IMAGES}/{case.series_id}.nii.gz"
    io.write_image(image, folder / image_name)
    label_name = None
    if label is not None:
        if not geometry.same_geometry(image, label):  # importers put labels on the CT grid; this is their check
            raise RuntimeError(f"{case.series_id}: label not on the CT grid")
        label_name = f"{LABELS}/{case.series_id}.nii.gz"
        io.write_label(label, folder / label_name)
    elif case.labelled:
        raise RuntimeError(f"{case.series_id}: no label read for a labelled case")
    return {"series_id": case.series_id, "study_id": case.study_id or case.series_id, "patient_id": case.patient_id,
            "image": image_name, "label": label_name, "split": case.split}


def _counts(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "series": len(frame),
        "patients": int(frame["patient_id"].nunique()),
        "labelled": int(frame["label"].notna().sum()),
        "unlabelled": int(frame["label"].isna().sum()),
        "by_split": {str(k): int(v) for k, v in frame["split"].value_counts().sort_index().items()},
    }
