"""Import public liver datasets as a livermets cohort: NIfTI CTs, LiTS label maps and a manifest.

Formats: ``lits`` (LiTS challenge), ``msd`` (Medical Segmentation Decathlon Task03_Liver), ``ircad``
(3D-IRCADb-01) and ``dicom-seg`` (CT series with DICOM Segmentation objects, e.g. TCIA Colorectal-Liver-Metastases);
one module each, sharing the writer in :mod:`livermets.cohort.importers.common`. The output folder holds
``images/<series_id>.nii.gz``, ``labels/<series_id>.nii.gz`` (UInt8, 0 background, 1 liver, 2 lesion, on exactly
the CT's grid), ``manifest.csv`` (accepted by ``livermets cohort validate``) and ``import.json``.

Examples
--------
>>> from livermets.cohort.importers import import_dataset
>>> result = import_dataset("LiTS/", "cohorts/lits", "lits")  # doctest: +SKIP
>>> result.counts["series"]  # doctest: +SKIP
131
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from livermets.atomic import PARTIAL_MARK
from livermets.cohort.importers.common import (
    Case,
    ImportResult,
    check_ids,
    check_source,
    compile_patient_regex,
    write_cohort,
)
from livermets.errors import ParameterError, UserInputError

log = logging.getLogger(__name__)

FORMATS = ("lits", "msd", "ircad", "dicom-seg")

__all__ = ["FORMATS", "ImportResult", "import_dataset"]


def import_dataset(
    src: str | Path,
    out: str | Path,
    fmt: str,
    *,
    patient_regex: str | None = None,
    segment_map: Mapping[str, int] | None = None,
    overwrite: bool = False,
    command: str | None = None,
) -> ImportResult:
    """Import the dataset in ``src`` (layout ``fmt``) into the cohort folder ``out``.

    Every case is found and paired first; then each CT and label map is read (integrity-checked), checked against
    the other and written. The folder is built under a hidden sibling name and appears only when complete: a
    failure leaves no ``out`` and nothing beside it; a kill leaves only the hidden ``.OUT.partial-*`` folder, which
    the next import to ``out`` deletes (an interrupted import is redone from the start, not resumed).

    Parameters
    ----------
    src
        The folder the dataset was unpacked into.
    out
        Output cohort folder (must not exist unless ``overwrite``).
    fmt
        One of :data:`FORMATS`.
    patient_regex
        Derive patient ids from the default id (the series id; the PatientID for ``dicom-seg``): its named group
        ``patient``, else its first group, else the whole match (``re.search``).
    segment_map
        ``dicom-seg`` only: ``{regex: label}`` rules applied to the Segment Label (full match, case-insensitive)
        before the built-in mapping; label 0 ignores the segment, 1 liver, 2 lesion.
    overwrite
        Replace an existing ``out``.
    command
        The command line, recorded in ``import.json``'s provenance.

    Returns
    -------
    ImportResult
        Output folder, manifest path and counts.

    Raises
    ------
    UserInputError
        Missing ``src``, no case of the format, an image without its label, a label on another grid, a SEG
        referencing a series not in ``src``, an invalid ``patient_regex``/``segment_map``, or ``out`` existing.
    """
    src_path, out_path = check_source(src), Path(out)
    if fmt not in FORMATS:
        raise ParameterError("{fmt}: unknown format {value!r} (one of {choices})", value=fmt,
                             choices=", ".join(FORMATS))
    if segment_map and fmt != "dicom-seg":
        raise ParameterError("{segment_map}: applies to {fmt} dicom-seg only")
    _check_out(src_path, out_path, overwrite)
    _remove_killed_imports(out_path)
    regex = compile_patient_regex(patient_regex)
    cases, found = _find(src_path, fmt, regex, segment_map)
    check_ids(cases, patient_regex)
    log.info("%s: %d %s series found", src_path, len(cases), fmt)
    record = _record(src_path, fmt, patient_regex, segment_map, command, found)
    return write_cohort(cases, out_path, record=record, overwrite=overwrite, patient_regex=patient_regex)


def _check_out(src: Path, out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise ParameterError("{out}: output folder exists (use {overwrite} to replace it)", out=out)
    resolved_src, resolved_out = src.resolve(), out.resolve()
    if resolved_out == resolved_src or resolved_out in resolved_src.parents or resolved_src in resolved_out.parents:
        raise UserInputError(f"{out}: the output folder must lie outside the dataset folder {src}")


def _remove_killed_imports(out: Path) -> None:
    """Delete the hidden staging folders (``.NAME.partial-*``, ``.NAME.old-*``) a killed import to ``out`` left."""
    if not out.parent.is_dir():
        return
    for path in sorted(out.parent.iterdir()):
        if path.is_dir() and (path.name.startswith(f".{out.name}{PARTIAL_MARK}")
                              or path.name.startswith(f".{out.name}.old-")):
            log.info("removing %s, left by an import that was killed", path)
            shutil.rmtree(path, ignore_errors=True)


def _find(
    src: Path, fmt: str, regex: re.Pattern[str] | None, segment_map: Mapping[str, int] | None
) -> tuple[list[Case], dict[str, Any]]:
    if fmt == "lits":
        from livermets.cohort.importers import lits

        return lits.find_cases(src, regex), {}
    if fmt == "msd":
        from livermets.cohort.importers import msd

        cases = msd.find_cases(src, regex)
        meta = msd.check_dataset_json(msd.task_folder(src))
        return cases, {"dataset_json": {k: meta[k] for k in ("name", "reference", "licence", "release") if k in meta}}
    if fmt == "ircad":
        from livermets.cohort.importers import ircad

        return ircad.find_cases(src, regex), {}
    from livermets.cohort.importers import dicomseg  # highdicom only when needed

    cases, counts = dicomseg.find_cases(src, regex, segment_map)
    return cases, {"dicom": counts}


def _record(
    src: Path, fmt: str, patient_regex: str | None, segment_map: Mapping[str, int] | None, command: str | None,
    found: dict[str, Any],
) -> dict[str, Any]:
    from livermets.provenance import provenance

    parameters = {"format": fmt, "source": str(src.resolve()), "patient_regex": patient_regex,
                  "segment_map": dict(segment_map) if segment_map else None}
    return {"format": fmt, "source": str(src.resolve()), **found,
            "provenance": provenance(parameters, command)}
