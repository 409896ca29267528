"""DICOM Segmentation (SEG) of a liver/lesion label map, written and read with highdicom.

The SEG is a BINARY segmentation with two segments that reference the slices of the CT series they were derived
from, so that a PACS or viewer (3D Slicer, OHIF) shows them on top of the CT:

* segment 1 "Liver": the whole liver **including** its lesions (label > 0), as a radiologist outlines an organ;
* segment 2 "Liver lesion": the lesions (label == 2), anatomic region liver.

Frames map to source slices by index: the label's z index ``k`` (SimpleITK's (z, y, x) array order) is the ``k``-th
file of the series in the order SimpleITK/GDCM sorts it (:func:`livermets.imaging.dicom.choose_series`), and
highdicom records that file's SOP Instance UID and Image Position (Patient) for the frame. The writer checks the
label's grid against every slice's position before writing.

Series whose files lack UIDs (anonymisers sometimes blank them) get deterministic UIDs derived from the file
contents, in memory only: the input files are never changed. Reading the same folder back derives the same UIDs, so
:func:`read_dicom_seg` finds its frames again; a PACS cannot link such a SEG to the original series.
"""

from __future__ import annotations

import hashlib
import io as _io
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, MRImageStorage

from livermets import __version__
from livermets.atomic import atomic_path
from livermets.errors import UserInputError
from livermets.imaging import dicom

log = logging.getLogger(__name__)

LIVER_SEGMENT = 1
LESION_SEGMENT = 2
SEG_SERIES_NUMBER = 900  # series number of the SEG (clear of the scanner's usual 1..~20)
LIVER_RGB = (31, 119, 180)  # the figures' liver blue
LESION_RGB = (255, 127, 14)  # the figures' lesion orange

# A slice must lie this close to where the label's grid puts it (DICOM text round-off is ~1e-6 mm).
POSITION_TOL_MM = 0.05
SPACING_TOL_MM = 1e-3
DIRECTION_TOL = 1e-4

SegmentClassifier = Callable[[hd.seg.SegmentDescription], int]
"""Maps a segment's description to 1 (liver), 2 (lesion) or 0 (ignore)."""

_UID_NAMESPACE = uuid.UUID("4f6c9a52-0d1e-5b7a-9c3e-6c1a2b3d4e5f")  # fixed: generated UIDs are reproducible
_SOP_CLASS_BY_MODALITY = {"CT": CTImageStorage, "MR": MRImageStorage}
_GEOMETRY_ATTRIBUTES = ("Rows", "Columns", "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient")
# Type 2 attributes highdicom copies from the first source image (empty is allowed, absent is not).
_TYPE2_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                     "StudyDate", "StudyTime", "ReferringPhysicianName")


@dataclass(frozen=True)
class SourceSeries:
    """Headers of a series' slices in SimpleITK's order, with UIDs filled in where the files had none.

    ``generated`` names the UID attributes that were derived from file contents (empty when the files had all).
    """

    folder: Path
    series: dicom.DicomSeries
    datasets: tuple[Dataset, ...]
    generated: tuple[str, ...]

    @property
    def sop_instance_uids(self) -> list[str]:
        return [str(ds.SOPInstanceUID) for ds in self.datasets]


def write_dicom_seg(
    label: sitk.Image,
    series_folder: str | Path,
    out_path: str | Path,
    *,
    series_uid: str | None = None,
    model_name: str = "livermets",
    software_version: str = __version__,
    series_description: str = "livermets liver and lesion",
    omit_empty_frames: bool = True,
) -> Path:
    """Write a liver/lesion label map as a DICOM Segmentation referencing the CT series it was made on.

    Parameters
    ----------
    label
        UInt8 label map, 0 background, 1 liver, 2 lesion, on exactly the grid that
        :func:`livermets.imaging.io.read_image` gives for ``series_folder`` (same size, spacing, origin, direction).
    series_folder
        Folder holding the source DICOM series (never modified).
    out_path
        Output ``.dcm`` file, written atomically.
    series_uid
        For a folder with several series: the SeriesInstanceUID the label belongs to (default: most slices).
    model_name
        Algorithm name recorded in each segment's Algorithm Identification Sequence (family: Artificial
        Intelligence).
    software_version
        Software and algorithm version recorded in the SEG.
    series_description
        Series Description of the SEG series.
    omit_empty_frames
        Leave out frames with no voxel of a segment (compact; the default). A segment without any voxel, e.g. no
        lesion, is still described in the SEG with no frames; a label map that is empty everywhere is written with
        all frames. ``False`` writes every frame of both segments, for viewers that need them.

    Returns
    -------
    pathlib.Path
        ``out_path``.

    Raises
    ------
    UserInputError
        A folder without DICOM, label values outside 0..2, or a label grid that does not match the series.

    Notes
    -----
    Segment 1 "Liver" is label > 0 (the liver including its lesions); segment 2 "Liver lesion" is label == 2, so
    the two segments overlap. The SEG's own Series and SOP Instance UIDs are new on every call (two different
    segmentations of one series must never share a UID); UIDs generated for a source series without UIDs are
    deterministic.

    Examples
    --------
    >>> from livermets.imaging import io
    >>> ct = io.read_image("ct_dicom/")  # doctest: +SKIP
    >>> label = io.read_label("label.nii.gz")  # doctest: +SKIP
    >>> write_dicom_seg(label, "ct_dicom/", "seg.dcm", model_name="default")  # doctest: +SKIP
    PosixPath('seg.dcm')
    """
    folder = Path(series_folder)
    source = load_source_series(folder, series_uid)
    array = _label_array(label, folder)
    _check_grid(label, source)
    if source.generated:
        log.warning("%s: the DICOM series has no %s; the SEG references UIDs generated from the file contents, so a "
                    "PACS cannot link it to the original series", folder, ", ".join(source.generated))
    stacked = np.stack([array > 0, array == LESION_SEGMENT], axis=-1).astype(np.uint8)
    omit = omit_empty_frames and bool(stacked.any())  # an all-empty map keeps its frames (highdicom would warn)
    seg = _segmentation(source, stacked, model_name, software_version, series_description, omit)
    with atomic_path(out_path) as tmp:
        seg.save_as(tmp)
    log.info("wrote DICOM SEG %s (%d frames; liver %d voxels, lesion %d voxels)", out_path,
             int(seg.NumberOfFrames), int(stacked[..., 0].sum()), int(stacked[..., 1].sum()))
    return Path(out_path)


def read_dicom_seg(
    path: str | Path,
    series_folder: str | Path,
    series_uid: str | None = None,
    *,
    classify: SegmentClassifier | None = None,
) -> sitk.Image:
    """Read a DICOM SEG back into a 0/1/2 UInt8 label map on the grid of its source series.

    By default (:func:`coded_segment_label`) segments whose property type is Liver become 1, segments in the category
    Morphologically Abnormal Structure (lesions, tumours, metastases) become 2 and override the liver; other segments
    (e.g. further organs in a multi-organ SEG) are ignored. Frames are placed by the source SOP Instance UIDs they
    reference; a SEG that references none of the series' instances (e.g. made before the series was re-identified)
    is placed by its frames' Image Position (Patient) instead.

    Parameters
    ----------
    path
        DICOM Segmentation file.
    series_folder
        Folder of the source CT series (the grid of the result).
    series_uid
        For a folder with several series: the SeriesInstanceUID (default: most slices).
    classify
        Maps a segment description to 1 (liver), 2 (lesion) or 0 (ignored); default :func:`coded_segment_label`.

    Returns
    -------
    SimpleITK.Image
        UInt8 label map with the geometry :func:`livermets.imaging.io.read_image` gives for ``series_folder``.

    Raises
    ------
    UserInputError
        Not a readable DICOM SEG, no liver or lesion segment, or frames that lie on no slice of the series.

    Examples
    --------
    >>> label = read_dicom_seg("seg.dcm", "ct_dicom/")  # doctest: +SKIP
    >>> sitk.WriteImage(label, "label.nii.gz")  # doctest: +SKIP
    """
    folder = Path(series_folder)
    source = load_source_series(folder, series_uid)
    array = seg_label_array(read_seg(path), source, Path(path), classify)
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(dicom.read_series(source.series))
    return image


def coded_segment_label(description: hd.seg.SegmentDescription) -> int:
    """The default segment mapping: 1 for property type Liver (SCT 10200004), 2 for the category Morphologically
    Abnormal Structure (SCT 49755003: lesions, tumours, metastases), 0 (ignored) for anything else."""
    kind, category = description.segmented_property_type, description.segmented_property_category
    if (kind.value, kind.scheme_designator) == (codes.SCT.Liver.value, "SCT"):
        return LIVER_SEGMENT
    if (category.value, category.scheme_designator) == (codes.SCT.MorphologicallyAbnormalStructure.value, "SCT"):
        return LESION_SEGMENT
    return 0


def seg_label_array(
    seg: hd.seg.Segmentation, source: SourceSeries, path: str | Path, classify: SegmentClassifier | None = None
) -> np.ndarray:
    """The (z, y, x) UInt8 label array of ``seg`` on the slices of ``source`` (lesion 2 wins over liver 1).

    ``seg`` comes from :func:`read_seg`, ``source`` from :func:`load_source_series`; ``path`` names the SEG in
    errors. Frames are placed by their referenced SOP Instance UIDs, or by position when they reference none of the
    series' instances. FRACTIONAL segments count where their value is at least 0.5.

    Raises
    ------
    UserInputError
        No segment maps to liver or lesion, or a frame lies on no slice of the series.
    """
    path = Path(path)
    liver, lesion = _classify_segments(seg, path, classify or coded_segment_label)
    referenced = {uids[2] for uids in seg.get_source_image_uids()}
    if referenced & set(source.sop_instance_uids):
        masks = _masks_by_instance(seg, source, liver + lesion)
    else:
        log.info("%s references none of the instances in %s; placing its frames by position", path, source.folder)
        masks = _masks_by_position(seg, source, liver + lesion, path)
    array = np.zeros(masks.shape[:3], np.uint8)
    array[masks[..., : len(liver)].any(axis=-1)] = LIVER_SEGMENT
    array[masks[..., len(liver):].any(axis=-1)] = LESION_SEGMENT
    return array


def load_source_series(folder: str | Path, series_uid: str | None = None) -> SourceSeries:
    """Read the headers of a series (no pixel data) in SimpleITK's slice order and fill in missing UIDs.

    Missing or empty SOP Instance UIDs are derived from each file's bytes, missing Study, Series and Frame of
    Reference UIDs from all files' bytes (``2.25.`` UIDs from a name-based UUID), so the same files always give the
    same UIDs. A missing SOP Class UID is taken from the file meta information or the modality; absent patient and
    study attributes that highdicom copies into the SEG are added empty.

    Raises
    ------
    UserInputError
        No DICOM series in ``folder``, an unreadable file, or a SOP class that cannot be determined.
    """
    folder = Path(folder)
    series = dicom.choose_series(folder, series_uid)
    datasets: list[Dataset] = []
    digests: list[str] = []
    for name in series.files:
        data = Path(name).read_bytes()
        digests.append(hashlib.sha256(data).hexdigest())
        try:
            ds = pydicom.dcmread(_io.BytesIO(data), stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError) as exc:
            raise UserInputError(f"{folder}: {Path(name).name} is not readable as DICOM ({exc})") from None
        missing = [keyword for keyword in _GEOMETRY_ATTRIBUTES if not ds.get(keyword)]
        if missing:
            raise UserInputError(f"{folder}: {Path(name).name} has no {', '.join(missing)} (needed to place frames)")
        datasets.append(ds)
    generated = _fill_missing(datasets, digests, folder)
    return SourceSeries(folder, series, tuple(datasets), generated)


def _derived_uid(kind: str, digest: str) -> str:
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, f'livermets:{kind}:{digest}').int}"


def _fill_missing(datasets: list[Dataset], digests: list[str], folder: Path) -> tuple[str, ...]:
    """Fill empty UIDs and absent type 2 attributes in place; return the names of the UIDs that were generated."""
    series_digest = hashlib.sha256("".join(digests).encode()).hexdigest()
    generated: list[str] = []
    for ds, digest in zip(datasets, digests, strict=True):
        if not str(ds.get("SOPInstanceUID", "") or "").strip():
            ds.SOPInstanceUID = _derived_uid("instance", digest)
            generated.append("SOPInstanceUID")
        for keyword, kind in (("StudyInstanceUID", "study"), ("SeriesInstanceUID", "series"),
                              ("FrameOfReferenceUID", "frame-of-reference")):
            if not str(ds.get(keyword, "") or "").strip():
                setattr(ds, keyword, _derived_uid(kind, series_digest))
                generated.append(keyword)
        if not str(ds.get("SOPClassUID", "") or "").strip():
            ds.SOPClassUID = _sop_class(ds, folder)
        for keyword in _TYPE2_ATTRIBUTES:
            if keyword not in ds:
                setattr(ds, keyword, "")
    return tuple(dict.fromkeys(generated))


def _sop_class(ds: Dataset, folder: Path) -> str:
    meta = getattr(ds, "file_meta", None)
    from_meta = str(meta.get("MediaStorageSOPClassUID", "") or "").strip() if meta is not None else ""
    if from_meta:
        return from_meta
    modality = str(ds.get("Modality", "") or "")
    if modality in _SOP_CLASS_BY_MODALITY:
        return str(_SOP_CLASS_BY_MODALITY[modality])
    raise UserInputError(f"{folder}: the DICOM files have no SOP Class UID and modality {modality!r} implies none")


def _label_array(label: sitk.Image, folder: Path) -> np.ndarray:
    """The label's (z, y, x) array after checking it is a 3D scalar integer map with values in 0..2."""
    if label.GetDimension() != 3 or label.GetNumberOfComponentsPerPixel() != 1:
        raise UserInputError(f"{folder}: the label map must be a 3D scalar image to write a DICOM SEG")
    array = sitk.GetArrayViewFromImage(label)
    if not np.issubdtype(array.dtype, np.integer):
        raise UserInputError(f"{folder}: the label map must hold integers 0/1/2 (got {array.dtype})")
    if array.size and (array.min() < 0 or array.max() > LESION_SEGMENT):  # min/max: cheap on CT-sized maps
        bad = np.unique(array[(array < 0) | (array > LESION_SEGMENT)])
        raise UserInputError(f"{folder}: label values {bad[:10].tolist()} outside 0 background, 1 liver, 2 lesion")
    return np.asarray(array)


def _check_grid(label: sitk.Image, source: SourceSeries) -> None:
    """Raise unless slice ``k`` of ``label`` lies where the series' ``k``-th file is (size, spacing, direction)."""
    first = source.datasets[0]
    expected_size = (int(first.Columns), int(first.Rows), len(source.datasets))
    if label.GetSize() != expected_size:
        _grid_error(source, f"label size {label.GetSize()} vs series {expected_size} (columns, rows, slices)")
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    if not np.allclose(label.GetSpacing()[:2], (column_spacing, row_spacing), rtol=0, atol=SPACING_TOL_MM):
        _grid_error(source, f"label pixel spacing {label.GetSpacing()[:2]} vs series {(column_spacing, row_spacing)}")
    direction = np.asarray(label.GetDirection()).reshape(3, 3)
    label_orientation = np.concatenate([direction[:, 0], direction[:, 1]])
    for k, ds in enumerate(source.datasets):
        orientation = np.asarray(ds.ImageOrientationPatient, float)
        if not np.allclose(orientation, label_orientation, rtol=0, atol=DIRECTION_TOL):
            _grid_error(source, f"slice {k}: orientation {orientation.round(5).tolist()} vs label "
                                f"{label_orientation.round(5).tolist()}")
        position = np.asarray(ds.ImagePositionPatient, float)
        expected = np.asarray(label.TransformIndexToPhysicalPoint((0, 0, k)))
        if np.linalg.norm(position - expected) > POSITION_TOL_MM:
            _grid_error(source, f"slice {k} lies at {position.round(3).tolist()} but the label puts it at "
                                f"{expected.round(3).tolist()}")


def _grid_error(source: SourceSeries, reason: str) -> None:
    raise UserInputError(f"{source.folder}: label grid does not match the DICOM series ({reason})")


def _segment_descriptions(model_name: str, version: str) -> list[hd.seg.SegmentDescription]:
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model_name[:64], family=codes.DCM.ArtificialIntelligence, version=version[:64]
    )
    liver = hd.seg.SegmentDescription(
        segment_number=LIVER_SEGMENT, segment_label="Liver",
        segmented_property_category=codes.cid7150.AnatomicalStructure, segmented_property_type=codes.cid7151.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(*LIVER_RGB),
    )
    lesion = hd.seg.SegmentDescription(
        segment_number=LESION_SEGMENT, segment_label="Liver lesion",
        segmented_property_category=codes.cid7150.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.cid7151.NeoplasmSecondary,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        anatomic_regions=[codes.SCT.Liver], display_color=hd.color.CIELabColor.from_rgb(*LESION_RGB),
    )
    return [liver, lesion]


def _segmentation(
    source: SourceSeries, stacked: np.ndarray, model_name: str, version: str, description: str, omit_empty: bool
) -> hd.seg.Segmentation:
    """The highdicom Segmentation; frame ``k`` of ``stacked`` (z, y, x, segment) belongs to ``source.datasets[k]``."""
    try:
        return hd.seg.Segmentation(
            source_images=list(source.datasets),
            pixel_array=stacked,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=_segment_descriptions(model_name, version),
            series_instance_uid=hd.UID(),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="livermets",
            manufacturer_model_name="livermets",
            software_versions=version[:64],
            device_serial_number="none",
            series_description=description[:64],
            content_description=f"Liver and liver lesions by {model_name}"[:64],
            content_label="LIVERMETS",
            content_qualification=hd.ContentQualificationValues.RESEARCH,
            omit_empty_frames=omit_empty,
        )
    except (ValueError, AttributeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"{source.folder}: cannot build a DICOM SEG from this series ({first[:200]})") from None


def read_seg(path: str | Path) -> hd.seg.Segmentation:
    """Read a DICOM Segmentation file with highdicom.

    Raises
    ------
    UserInputError
        The file does not exist or is not a readable DICOM SEG.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: file does not exist")
    try:
        return hd.seg.segread(path)
    except (InvalidDicomError, ValueError, AttributeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"{path}: not a readable DICOM Segmentation ({first[:200]})") from None


def _classify_segments(
    seg: hd.seg.Segmentation, path: Path, classify: SegmentClassifier
) -> tuple[list[int], list[int]]:
    """Segment numbers that ``classify`` maps to liver (1) and to lesion (2)."""
    liver, lesion, other = [], [], []
    for number in seg.segment_numbers:
        description = seg.get_segment_description(number)
        value = classify(description)
        if value == LIVER_SEGMENT:
            liver.append(number)
        elif value == LESION_SEGMENT:
            lesion.append(number)
        else:
            other.append(f"{number} {description.segment_label!r}")
    if not liver and not lesion:
        raise UserInputError(f"{path}: no liver or lesion segment (segments: {', '.join(other)[:200]})")
    if other:
        log.info("%s: ignoring segments that are neither liver nor lesion: %s", path, ", ".join(other))
    return liver, lesion


def _fractional(seg: hd.seg.Segmentation) -> bool:
    return str(seg.get("SegmentationType", "")) == "FRACTIONAL"


def _masks_by_instance(seg: hd.seg.Segmentation, source: SourceSeries, numbers: Sequence[int]) -> np.ndarray:
    """(z, y, x, segment) masks, slice ``k`` taken from the frames that reference source instance ``k``."""
    fractional = _fractional(seg)
    pixels = np.asarray(seg.get_pixels_by_source_instance(
        source.sop_instance_uids, segment_numbers=list(numbers), assert_missing_frames_are_empty=True,
        skip_overlap_checks=True, dtype=np.float32 if fractional else np.uint8,
    ))
    return pixels >= 0.5 if fractional else pixels > 0


def _masks_by_position(
    seg: hd.seg.Segmentation, source: SourceSeries, numbers: Sequence[int], path: Path
) -> np.ndarray:
    """(z, y, x, segment) masks, each frame placed on the slice at its Image Position (Patient)."""
    first = source.datasets[0]
    rows, columns = int(first.Rows), int(first.Columns)
    if (int(seg.Rows), int(seg.Columns)) != (rows, columns):
        raise UserInputError(f"{path}: frames of {seg.Rows}x{seg.Columns} pixels do not fit the series' "
                             f"{rows}x{columns} slices")
    shared = seg.SharedFunctionalGroupsSequence[0]
    if "PlaneOrientationSequence" in shared:
        orientation = np.asarray(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
        if not np.allclose(orientation, np.asarray(first.ImageOrientationPatient, float), atol=DIRECTION_TOL):
            raise UserInputError(f"{path}: frame orientation {orientation.round(5).tolist()} differs from the "
                                 f"slices of {source.folder}")
    positions = np.array([np.asarray(ds.ImagePositionPatient, float) for ds in source.datasets])
    masks = np.zeros((len(source.datasets), rows, columns, len(numbers)), bool)
    frames = np.asarray(seg.pixel_array).reshape(-1, rows, columns)
    # Stored FRACTIONAL values run 0..MaximumFractionalValue; a voxel counts from half of it on.
    threshold = float(seg.MaximumFractionalValue) / 2 if _fractional(seg) else 0.0
    for index, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        if number not in numbers:
            continue
        position = np.asarray(group.PlanePositionSequence[0].ImagePositionPatient, float)
        distances = np.linalg.norm(positions - position, axis=1)
        k = int(np.argmin(distances))
        if distances[k] > POSITION_TOL_MM:
            raise UserInputError(f"{path}: frame {index + 1} at {position.round(3).tolist()} lies on no slice of "
                                 f"{source.folder}")
        masks[k, :, :, list(numbers).index(number)] |= frames[index] > threshold
    return masks
