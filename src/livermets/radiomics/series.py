"""One manifest series → its feature row(s) in the published schema, or a one-line failure reason.

:func:`run_series` never raises for bad data: an unreadable file, a label map with unexpected values, image/label
geometry mismatch, NaN voxels, an empty ROI ("no lesion", as the paper excluded its false-negative volumes) or a
PyRadiomics error become :attr:`SeriesResult.failure`, so that one bad series never stops a cohort job. So does a
mask with more lesion components than :attr:`ExtractionOptions.max_lesions` (counted once with cc3d, before any
feature is computed): thousands of specks are a failed segmentation, not a series to describe.

Examples
--------
>>> task = SeriesTask(key="s1.nii.gz", series_id="s1", image="s1.nii.gz", label="s1_seg.nii.gz",
...                   ids={"File": "s1.nii.gz"})
>>> run_series(task, ExtractionOptions()).failure  # doctest: +ELLIPSIS
's1.nii.gz: file or folder does not exist'
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cc3d
import nibabel as nib
import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.errors import ParameterError, UserInputError
from livermets.featuretable import ID_COLUMNS, LESION_COUNT_COLUMN, TARGET_COLUMNS
from livermets.imaging.geometry import check_same_geometry
from livermets.imaging.io import read_image, read_label
from livermets.lesions.components import LESION_VALUE, LIVER_VALUE
from livermets.radiomics.extractor import extract_roi, make_extractor
from livermets.radiomics.per_lesion import extract_lesions

Roi = Literal["lesion", "liver"]
LesionCount = Literal["published", "components"]

NO_LESION = "no lesion"
"""Failure reason of a series whose lesion mask is empty (the paper's 6 false-negative volumes)."""


@dataclass(frozen=True)
class ExtractionOptions:
    """How every series of a job is processed.

    Validated when created (:class:`~livermets.errors.ParameterError` naming the parameter).

    Attributes
    ----------
    params
        PyRadiomics parameter YAML (``None``: the packaged paper settings).
    roi
        ``lesion``: all voxels of label 2 (the paper); ``liver``: labels 1 and 2 (whole liver incl. lesions).
    per_lesion
        One row per connected lesion instead of one row per series.
    crop
        Crop around the ROI before PyRadiomics (identical features, cost ∝ ROI; see :mod:`.extractor`).
    lesion_count
        ``published``: ``Num_Lesions`` = components + 1, the convention of the published table (it equals
        PyRadiomics' 26-connected ``VolumeNum`` + 1 in all 227 rows, i.e. cc3d's labels *including background*);
        ``components``: the number of 26-connected components.
    max_lesions
        A series whose lesion mask has more 26-connected components than this is not computed but recorded as a
        failure (:attr:`SeriesResult.too_many_lesions` holds the count); ``0``: no limit.
    single_thread
        Run SimpleITK with one thread (set by the runner for parallel workers).
    """

    params: str | None = None
    roi: Roi = "lesion"
    per_lesion: bool = False
    crop: bool = True
    lesion_count: LesionCount = "published"
    max_lesions: int = 200
    single_thread: bool = False

    def __post_init__(self) -> None:
        if self.roi not in ("lesion", "liver"):
            raise ParameterError("{roi} must be 'lesion' or 'liver' (got {value!r})", value=self.roi)
        if self.lesion_count not in ("published", "components"):
            raise ParameterError("{lesion_count} must be 'published' or 'components' (got {value!r})",
                                 value=self.lesion_count)
        if self.per_lesion and self.roi != "lesion":
            raise ParameterError("{per_lesion} works with {roi} lesion only")
        if isinstance(self.max_lesions, bool) or not isinstance(self.max_lesions, int) or self.max_lesions < 0:
            raise ParameterError("{max_lesions} must be 0 (no limit) or more (got {value})", value=self.max_lesions)


@dataclass(frozen=True)
class SeriesTask:
    """One series to process: ``key`` identifies it in the output (the ``File`` column)."""

    key: str
    series_id: str
    image: str
    label: str | None
    ids: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeriesResult:
    """Rows of one series (empty on failure), the failure reason, lesion voxels and wall time (s).

    ``too_many_lesions`` is the lesion component count when the series was skipped for exceeding
    :attr:`ExtractionOptions.max_lesions` (``None`` otherwise).
    """

    key: str
    series_id: str
    rows: list[dict[str, Any]]
    failure: str | None
    lesion_voxels: int = 0
    seconds: float = 0.0
    too_many_lesions: int | None = None


class SeriesFailure(Exception):
    """A series that cannot be processed; the message is the reason written to the failures file."""


class TooManyLesions(SeriesFailure):
    """The lesion mask has more components than ``max_lesions``; ``count`` is their number."""

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message)
        self.count = count


def lesion_component_count(lesion: np.ndarray) -> int:
    """Number of 26-connected components of a boolean mask (one cc3d pass).

    Examples
    --------
    >>> mask = np.zeros((3, 6, 6), dtype=bool); mask[1, 1, 1] = mask[1, 4, 4] = mask[2, 2, 2] = True
    >>> lesion_component_count(mask)
    2
    """
    binary = np.ascontiguousarray(lesion, dtype=bool)
    _, count = cc3d.connected_components(binary, connectivity=26, return_N=True, binary_image=True)
    return int(count)


def check_lesion_limit(count: int, max_lesions: int, label_path: str | None) -> None:
    """Raise :class:`TooManyLesions` when ``count`` exceeds ``max_lesions`` (``0``: no limit)."""
    if max_lesions and count > max_lesions:
        raise TooManyLesions(
            f"{label_path}: {count} lesion components (26-connected), more than max_lesions = {max_lesions}; "
            "not computed", count,
        )


def manifest_ids(row: pd.Series | dict[str, Any]) -> dict[str, Any]:
    """Published id and target columns of one manifest row.

    ``File`` = image file (or folder) name, ``unique_scandate`` = study_id, ``unique_pt`` = patient_id,
    ``NE_Score`` = ne_score, ``NE_Class`` = ne_class, ``NE_Status`` = ``positive``/``negative`` from ne_class,
    ``Group`` = split. Missing optional values stay empty (NaN).

    Examples
    --------
    >>> manifest_ids({"image": "/d/P1_S1.nii.gz", "study_id": "P1_20200101", "patient_id": "P1",
    ...               "ne_score": 0.4, "ne_class": 1, "split": "train"})["NE_Status"]
    'positive'
    """

    def get(name: str) -> Any:
        value = row.get(name) if hasattr(row, "get") else None
        return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value

    ne_class = get("ne_class")
    status = None if ne_class is None else ("positive" if int(ne_class) == 1 else "negative")
    return {
        "File": Path(str(get("image"))).name,
        "unique_scandate": get("study_id"),
        "unique_pt": get("patient_id"),
        "NE_Score": math.nan if get("ne_score") is None else float(get("ne_score")),
        "NE_Status": status,
        "NE_Class": None if ne_class is None else int(ne_class),
        "Group": get("split"),
    }


def load_series(task: SeriesTask) -> tuple[sitk.Image, sitk.Image]:
    """Read and check image and label map; raise :class:`SeriesFailure` with the reason."""
    if task.label is None:
        raise SeriesFailure("no label map (manifest has no label for this series and no --masks folder given)")
    try:
        image = read_image(task.image)
        label = read_label(task.label, allowed=(0, LIVER_VALUE, LESION_VALUE))
        check_same_geometry(image, label, task.image, task.label)
    except UserInputError as exc:
        raise SeriesFailure(str(exc)) from None
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        n_nan = max(int(np.isnan(sitk.GetArrayViewFromImage(image)).sum()), _nifti_nan_count(task.image))
        if n_nan:
            raise SeriesFailure(f"{task.image}: image has {n_nan} NaN voxel(s)")
    return image, label


def _nifti_nan_count(path: str) -> int:
    """NaN voxels of a floating-point NIfTI file, read with nibabel.

    ITK's NIfTI reader silently turns NaN into 0, so SimpleITK alone cannot see them.
    """
    if not path.lower().endswith((".nii", ".nii.gz")):
        return 0
    image: Any = nib.load(path)
    if not np.issubdtype(image.get_data_dtype(), np.floating):
        return 0
    return int(np.isnan(np.asanyarray(image.dataobj)).sum())


def run_series(task: SeriesTask, options: ExtractionOptions) -> SeriesResult:
    """Process one series; every data problem becomes ``failure`` (never raises for bad input)."""
    if options.single_thread:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    start = time.perf_counter()
    try:
        image, label = load_series(task)
    except SeriesFailure as exc:
        return SeriesResult(task.key, task.series_id, [], str(exc), 0, time.perf_counter() - start)
    return series_features(task, image, label, options, start)


def series_features(
    task: SeriesTask, image: sitk.Image, label: sitk.Image, options: ExtractionOptions, start: float | None = None
) -> SeriesResult:
    """Features of one series from an image and label map already read and checked (same grid, labels 0/1/2).

    Like :func:`run_series`, every data problem becomes ``failure``; ``task.image``/``task.label`` only name the
    series in messages. ``start`` is the :func:`time.perf_counter` time the series' work began (default: now).
    """
    start = time.perf_counter() if start is None else start
    lesion_voxels = 0
    try:
        label_array = sitk.GetArrayViewFromImage(label)
        lesion = label_array == LESION_VALUE
        lesion_voxels = int(lesion.sum())
        if options.roi == "lesion" and lesion_voxels == 0:
            raise SeriesFailure(NO_LESION)
        n_lesions = lesion_component_count(lesion) if lesion_voxels else 0
        check_lesion_limit(n_lesions, options.max_lesions, task.label)
        extractor = make_extractor(options.params)
        if options.per_lesion:
            rows = [{**_ids_only(task.ids), **row, **_targets(task.ids)}
                    for row in extract_lesions(image, label, extractor, crop=options.crop)]
        else:
            rows = [_series_row(task, image, label_array, lesion, n_lesions, extractor, options)]
    except SeriesFailure as exc:
        count = exc.count if isinstance(exc, TooManyLesions) else None
        return SeriesResult(task.key, task.series_id, [], str(exc), lesion_voxels, time.perf_counter() - start,
                            count)
    except UserInputError:  # a bad --params file concerns every series: stop the job
        raise
    except Exception as exc:  # a cohort job records any other failure of one series and goes on
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        return SeriesResult(task.key, task.series_id, [], reason, lesion_voxels, time.perf_counter() - start)
    return SeriesResult(task.key, task.series_id, rows, None, lesion_voxels, time.perf_counter() - start)


def _series_row(
    task: SeriesTask,
    image: sitk.Image,
    label_array: np.ndarray,
    lesion: np.ndarray,
    n_lesions: int,
    extractor: Any,
    options: ExtractionOptions,
) -> dict[str, Any]:
    roi = lesion if options.roi == "lesion" else label_array > 0
    if not roi.any():
        raise SeriesFailure(f"no {options.roi}")
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    mask.CopyInformation(image)
    try:
        features = extract_roi(image, mask, extractor, crop=options.crop)
    except ValueError as exc:
        raise SeriesFailure(f"PyRadiomics: {' '.join(str(exc).split())[:300]}") from None
    count = n_lesions
    if options.lesion_count == "published":
        count += 1
    return {**_ids_only(task.ids), **features, LESION_COUNT_COLUMN: count, **_targets(task.ids)}


def _ids_only(ids: dict[str, Any]) -> dict[str, Any]:
    return {c: ids.get(c) for c in ID_COLUMNS}


def _targets(ids: dict[str, Any]) -> dict[str, Any]:
    return {c: ids.get(c) for c in TARGET_COLUMNS}
