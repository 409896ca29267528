"""DICOM SEG collections (e.g. TCIA Colorectal-Liver-Metastases): CT series plus DICOM Segmentation objects.

Every file below the dataset folder is read as DICOM (header only); files pydicom cannot read are skipped. Each SEG
(Modality ``SEG``) is matched to the series it segments through its Referenced Series Sequence (or, without one,
through the SOP Instance UIDs its frames were derived from); that series must be in the dataset folder, in one folder.
The label map is built frame by frame on the CT's grid by :func:`livermets.imaging.dicom_seg.seg_label_array`
(frames placed by their referenced SOP Instance UID, or by Image Position (Patient)).

Segments are mapped by their Segment Label, then by their coded type (see :func:`segment_classifier`): tumour,
lesion, metastasis, cancer... -> 2; vessels, ducts and the future liver remnant -> ignored; liver -> 1; other coded
segments as in :func:`livermets.imaging.dicom_seg.coded_segment_label`; anything else is ignored. The patient id is
the DICOM PatientID (pseudonymous in public collections such as TCIA's); the PatientName is never read. CT series
that no SEG references are not imported (they are counted in ``import.json``).
"""

from __future__ import annotations

import functools
import logging
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from livermets.cohort.importers.common import Case, label_on_grid, patient_from, safe_id, short_hash, walk_files
from livermets.errors import ParameterError, UserInputError
from livermets.imaging import dicom_seg, io
from livermets.imaging.dicom_seg import LESION_SEGMENT, LIVER_SEGMENT, SegmentClassifier

log = logging.getLogger(__name__)

LESION_WORDS = re.compile(r"tumou?r|lesion|metasta|cancer|neoplas|carcinoma|malignan", re.IGNORECASE)
IGNORED_WORDS = re.compile(r"vessel|vein|venous|arter|portal|hepatic|cava|duct|bil(e|iary)|remnant", re.IGNORECASE)
LIVER_WORDS = re.compile(r"liver", re.IGNORECASE)
IMAGE_MODALITIES = ("CT", "MR", "PT")
_SCAN_TAGS = ["Modality", "SeriesInstanceUID", "SOPInstanceUID"]


@dataclass
class DicomIndex:
    """What a scan of the dataset folder found: SEG files, folders of each series, instance -> series."""

    segs: list[Path] = field(default_factory=list)
    series_folders: dict[str, set[Path]] = field(default_factory=lambda: defaultdict(set))
    instance_series: dict[str, str] = field(default_factory=dict)
    series_modality: dict[str, str] = field(default_factory=dict)
    skipped_files: int = 0


def parse_segment_map(segment_map: Mapping[str, int] | None) -> list[tuple[re.Pattern[str], int]]:
    """User rules ``{regex: label}`` (regex matched in full against the Segment Label, case-insensitively).

    Raises
    ------
    ParameterError
        A pattern that is not a regular expression or a label other than 0 (ignore), 1 (liver), 2 (lesion).
    """
    rules = []
    for pattern, value in (segment_map or {}).items():
        if value not in (0, LIVER_SEGMENT, LESION_SEGMENT):
            raise ParameterError("{segment_map}: {pattern!r} -> {value!r}: the label must be 0 (ignore), 1 (liver) "
                                 "or 2 (lesion)", pattern=pattern, value=value)
        try:
            rules.append((re.compile(pattern, re.IGNORECASE), int(value)))
        except re.error as exc:
            raise ParameterError("{segment_map}: {pattern!r} is not a regular expression ({reason})", pattern=pattern,
                                 reason=exc) from None
    return rules


def segment_classifier(segment_map: Mapping[str, int] | None = None) -> SegmentClassifier:
    """The segment -> label mapping of the importer: user rules first, then label keywords, then codes.

    Examples
    --------
    >>> classify = segment_classifier({"Liver_Remnant": 1})
    """
    rules = parse_segment_map(segment_map)

    def classify(description: hd.seg.SegmentDescription) -> int:
        label = str(description.segment_label or "")
        for pattern, value in rules:
            if pattern.fullmatch(label):
                return value
        if LESION_WORDS.search(label):
            return LESION_SEGMENT
        if IGNORED_WORDS.search(label):
            return 0
        if LIVER_WORDS.search(label):
            return LIVER_SEGMENT
        return dicom_seg.coded_segment_label(description)

    return classify


def scan(src: Path) -> DicomIndex:
    """Read the header of every file below ``src`` (a few tags only); non-DICOM files are counted and skipped."""
    index = DicomIndex()
    for path in walk_files(src):
        if path.name.upper() == "DICOMDIR":
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_SCAN_TAGS)
        except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
            index.skipped_files += 1
            continue
        modality, series = str(ds.get("Modality", "") or ""), str(ds.get("SeriesInstanceUID", "") or "")
        if modality == "SEG":
            index.segs.append(path)
        elif series:
            index.series_folders[series].add(path.parent)
            index.instance_series[str(ds.get("SOPInstanceUID", "") or "")] = series
            index.series_modality[series] = modality
        else:
            index.skipped_files += 1
    return index


def find_cases(
    src: Path, patient_regex: re.Pattern[str] | None = None, segment_map: Mapping[str, int] | None = None
) -> tuple[list[Case], dict[str, Any]]:
    """One case per SEG file; returns the cases and counts for ``import.json``.

    Series id ``<patient_id>_<8 hex digits of the series' UID hash>``, study id likewise from the Study Instance
    UID; split ``train``.

    Raises
    ------
    UserInputError
        No SEG found, a SEG without PatientID, referencing a series not in ``src`` (or several, or one spread over
        several folders), two SEGs of one series, or a SEG without a liver segment.
    """
    classify = segment_classifier(segment_map)
    index = scan(src)
    if not index.segs:
        raise UserInputError(f"{src}: no DICOM SEG files (Modality SEG) found")
    cases: list[Case] = []
    segmented: dict[str, Path] = {}
    not_deidentified = 0
    for path in index.segs:
        header = _read_header(path)
        series_uid = _referenced_series(header, path, index, src)
        if series_uid in segmented:
            raise UserInputError(f"{path}: segments the same CT series as {segmented[series_uid]} (keep one)")
        segmented[series_uid] = path
        not_deidentified += str(header.get("PatientIdentityRemoved", "")).upper() != "YES"
        cases.append(_case(src, path, header, series_uid, index, classify, patient_regex))
    if not_deidentified:
        log.warning("%d of %d SEG files are not marked PatientIdentityRemoved=YES: their PatientID becomes the "
                    "patient_id in the manifest; make sure these ids are pseudonymous", not_deidentified, len(cases))
    unsegmented = [uid for uid in set(index.series_folders) - set(segmented)
                   if index.series_modality.get(uid) in IMAGE_MODALITIES]
    counts = {"seg_files": len(index.segs), "image_series_without_seg": len(unsegmented),
              "skipped_files": index.skipped_files, "seg_not_marked_deidentified": not_deidentified}
    return cases, counts


def _read_header(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise UserInputError(f"{path}: cannot read the DICOM SEG header ({exc})") from None


def _referenced_series(header: Dataset, path: Path, index: DicomIndex, src: Path) -> str:
    """The one SeriesInstanceUID the SEG segments that is present in ``src`` (and in one folder there)."""
    referenced = [str(item.SeriesInstanceUID) for item in header.get("ReferencedSeriesSequence", [])
                  if "SeriesInstanceUID" in item]
    if not referenced:  # no Referenced Series Sequence: the instances its frames were derived from
        instances = {str(source.ReferencedSOPInstanceUID)
                     for group in header.get("PerFrameFunctionalGroupsSequence", [])
                     for derivation in group.get("DerivationImageSequence", [])
                     for source in derivation.get("SourceImageSequence", [])}
        referenced = sorted({index.instance_series[uid] for uid in instances if uid in index.instance_series})
        if not referenced:
            raise UserInputError(f"{path}: references no CT series found in {src}")
    present = [uid for uid in dict.fromkeys(referenced) if uid in index.series_folders]
    if not present:
        raise UserInputError(f"{path}: references CT series {referenced[0]}, which is not in {src}")
    if len(present) > 1:
        raise UserInputError(f"{path}: references {len(present)} series in {src}; one SEG per CT series is supported")
    folders = index.series_folders[present[0]]
    if len(folders) > 1:
        raise UserInputError(f"{path}: its CT series is spread over {len(folders)} folders "
                             f"({', '.join(sorted(map(str, folders)))[:200]}); put it in one folder")
    return present[0]


def _segment_labels(header: Dataset, path: Path, classify: SegmentClassifier) -> dict[str, int]:
    """Segment Label -> imported label for each segment; a SEG needs at least one liver segment."""
    mapping: dict[str, int] = {}
    for item in header.get("SegmentSequence", []):
        try:
            description = hd.seg.SegmentDescription.from_dataset(item)
        except (AttributeError, ValueError, TypeError, KeyError) as exc:
            raise UserInputError(f"{path}: segment {item.get('SegmentNumber', '?')} is not a valid segment "
                                 f"description ({exc})") from None
        mapping[f"{int(item.SegmentNumber)} {description.segment_label}"] = classify(description)
    if LIVER_SEGMENT not in mapping.values():
        listed = ", ".join(f"{name} -> {value}" for name, value in mapping.items())
        raise ParameterError("{path}: no liver segment ({listed}); map one with {segment_map}", path=path,
                             listed=listed[:200])
    return mapping


def _case(
    src: Path, path: Path, header: Dataset, series_uid: str, index: DicomIndex, classify: SegmentClassifier,
    patient_regex: re.Pattern[str] | None,
) -> Case:
    patient = str(header.get("PatientID", "") or "").strip()
    if not patient:
        raise UserInputError(f"{path}: no PatientID (the patient id of the manifest)")
    patient = patient_from(patient, patient_regex, str(path))
    segments = _segment_labels(header, path, classify)
    folder = next(iter(index.series_folders[series_uid]))
    study = str(header.get("StudyInstanceUID", "") or "")
    return Case(
        series_id=safe_id(f"{patient}_{short_hash(series_uid)}"),
        patient_id=patient,
        split="train",
        source=str(folder.relative_to(src)),
        load=functools.partial(_load, path, folder, series_uid, classify),
        study_id=f"{patient}_{short_hash(study)}" if study else None,
        details={"seg_file": str(path.relative_to(src)), "ct_series_uid": series_uid, "segments": segments},
    )


def _load(
    seg_path: Path, folder: Path, series_uid: str, classify: SegmentClassifier
) -> tuple[sitk.Image, sitk.Image]:
    ct = io.read_image(folder, series_uid=series_uid)
    source = dicom_seg.load_source_series(folder, series_uid)
    seg = dicom_seg.read_seg(seg_path)
    if (int(seg.Rows), int(seg.Columns)) != (ct.GetSize()[1], ct.GetSize()[0]):
        raise UserInputError(f"{seg_path}: frames of {seg.Rows}x{seg.Columns} pixels do not fit the CT's "
                             f"{ct.GetSize()[1]}x{ct.GetSize()[0]} slices in {folder}")
    array = dicom_seg.seg_label_array(seg, source, seg_path, classify)
    return ct, label_on_grid(array, ct)
