"""The published feature-table schema (one row per CT series), shared by radiomics and phenotype stages.

The column names and their order are those of the paper's ``Final_ResampledClassificationData.csv``
(152 columns): three id columns, 37 ``diagnostics_*`` columns written by PyRadiomics 3.0.1, the 108 model
features (107 ``original_*`` radiomics + ``Num_Lesions``) and four target/split columns. A test checks these
lists against the real file.

Examples
--------
>>> len(FEATURE_COLUMNS), len(DIAGNOSTICS_COLUMNS), len(ALL_COLUMNS)
(108, 37, 152)
>>> FEATURE_COLUMNS[0], FEATURE_COLUMNS[-1]
('original_shape_Elongation', 'Num_Lesions')
>>> feature_group("original_glszm_ZoneVariance")
'glszm'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from livermets.errors import UserInputError

ID_COLUMNS: list[str] = ["File", "unique_scandate", "unique_pt"]
"""Series file name, study id (patient + scan date) and patient id."""

TARGET_COLUMNS: list[str] = ["NE_Score", "NE_Status", "NE_Class", "Group"]
"""Continuous NE score, ``positive``/``negative``, 1/0 class, and the ``train``/``val``/``test`` split."""

DIAGNOSTICS_COLUMNS: list[str] = [
    "diagnostics_Versions_PyRadiomics",
    "diagnostics_Versions_Numpy",
    "diagnostics_Versions_SimpleITK",
    "diagnostics_Versions_PyWavelet",
    "diagnostics_Versions_Python",
    "diagnostics_Configuration_Settings",
    "diagnostics_Configuration_EnabledImageTypes",
    "diagnostics_Image-original_Hash",
    "diagnostics_Image-original_Dimensionality",
    "diagnostics_Image-original_Spacing",
    "diagnostics_Image-original_Size",
    "diagnostics_Image-original_Mean",
    "diagnostics_Image-original_Minimum",
    "diagnostics_Image-original_Maximum",
    "diagnostics_Mask-original_Hash",
    "diagnostics_Mask-original_Spacing",
    "diagnostics_Mask-original_Size",
    "diagnostics_Mask-original_BoundingBox",
    "diagnostics_Mask-original_VoxelNum",
    "diagnostics_Mask-original_VolumeNum",
    "diagnostics_Mask-original_CenterOfMassIndex",
    "diagnostics_Mask-original_CenterOfMass",
    "diagnostics_Image-interpolated_Spacing",
    "diagnostics_Image-interpolated_Size",
    "diagnostics_Image-interpolated_Mean",
    "diagnostics_Image-interpolated_Minimum",
    "diagnostics_Image-interpolated_Maximum",
    "diagnostics_Mask-interpolated_Spacing",
    "diagnostics_Mask-interpolated_Size",
    "diagnostics_Mask-interpolated_BoundingBox",
    "diagnostics_Mask-interpolated_VoxelNum",
    "diagnostics_Mask-interpolated_VolumeNum",
    "diagnostics_Mask-interpolated_CenterOfMassIndex",
    "diagnostics_Mask-interpolated_CenterOfMass",
    "diagnostics_Mask-interpolated_Mean",
    "diagnostics_Mask-interpolated_Minimum",
    "diagnostics_Mask-interpolated_Maximum",
]
"""PyRadiomics' diagnostic columns in published order (informational; never used as model features)."""

_SHAPE = [
    "Elongation",
    "Flatness",
    "LeastAxisLength",
    "MajorAxisLength",
    "Maximum2DDiameterColumn",
    "Maximum2DDiameterRow",
    "Maximum2DDiameterSlice",
    "Maximum3DDiameter",
    "MeshVolume",
    "MinorAxisLength",
    "Sphericity",
    "SurfaceArea",
    "SurfaceVolumeRatio",
    "VoxelVolume",
]
_FIRSTORDER = [
    "10Percentile",
    "90Percentile",
    "Energy",
    "Entropy",
    "InterquartileRange",
    "Kurtosis",
    "Maximum",
    "MeanAbsoluteDeviation",
    "Mean",
    "Median",
    "Minimum",
    "Range",
    "RobustMeanAbsoluteDeviation",
    "RootMeanSquared",
    "Skewness",
    "TotalEnergy",
    "Uniformity",
    "Variance",
]
_GLCM = [
    "Autocorrelation",
    "ClusterProminence",
    "ClusterShade",
    "ClusterTendency",
    "Contrast",
    "Correlation",
    "DifferenceAverage",
    "DifferenceEntropy",
    "DifferenceVariance",
    "Id",
    "Idm",
    "Idmn",
    "Idn",
    "Imc1",
    "Imc2",
    "InverseVariance",
    "JointAverage",
    "JointEnergy",
    "JointEntropy",
    "MCC",
    "MaximumProbability",
    "SumAverage",
    "SumEntropy",
    "SumSquares",
]
_GLDM = [
    "DependenceEntropy",
    "DependenceNonUniformity",
    "DependenceNonUniformityNormalized",
    "DependenceVariance",
    "GrayLevelNonUniformity",
    "GrayLevelVariance",
    "HighGrayLevelEmphasis",
    "LargeDependenceEmphasis",
    "LargeDependenceHighGrayLevelEmphasis",
    "LargeDependenceLowGrayLevelEmphasis",
    "LowGrayLevelEmphasis",
    "SmallDependenceEmphasis",
    "SmallDependenceHighGrayLevelEmphasis",
    "SmallDependenceLowGrayLevelEmphasis",
]
_GLRLM = [
    "GrayLevelNonUniformity",
    "GrayLevelNonUniformityNormalized",
    "GrayLevelVariance",
    "HighGrayLevelRunEmphasis",
    "LongRunEmphasis",
    "LongRunHighGrayLevelEmphasis",
    "LongRunLowGrayLevelEmphasis",
    "LowGrayLevelRunEmphasis",
    "RunEntropy",
    "RunLengthNonUniformity",
    "RunLengthNonUniformityNormalized",
    "RunPercentage",
    "RunVariance",
    "ShortRunEmphasis",
    "ShortRunHighGrayLevelEmphasis",
    "ShortRunLowGrayLevelEmphasis",
]
_GLSZM = [
    "GrayLevelNonUniformity",
    "GrayLevelNonUniformityNormalized",
    "GrayLevelVariance",
    "HighGrayLevelZoneEmphasis",
    "LargeAreaEmphasis",
    "LargeAreaHighGrayLevelEmphasis",
    "LargeAreaLowGrayLevelEmphasis",
    "LowGrayLevelZoneEmphasis",
    "SizeZoneNonUniformity",
    "SizeZoneNonUniformityNormalized",
    "SmallAreaEmphasis",
    "SmallAreaHighGrayLevelEmphasis",
    "SmallAreaLowGrayLevelEmphasis",
    "ZoneEntropy",
    "ZonePercentage",
    "ZoneVariance",
]
_NGTDM = ["Busyness", "Coarseness", "Complexity", "Contrast", "Strength"]

FEATURE_CLASSES: dict[str, list[str]] = {
    "shape": _SHAPE,
    "firstorder": _FIRSTORDER,
    "glcm": _GLCM,
    "gldm": _GLDM,
    "glrlm": _GLRLM,
    "glszm": _GLSZM,
    "ngtdm": _NGTDM,
}
"""PyRadiomics feature names per feature class, in published order (14, 18, 24, 14, 16, 16, 5 = 107)."""

RADIOMICS_COLUMNS: list[str] = [
    f"original_{cls}_{name}" for cls, names in FEATURE_CLASSES.items() for name in names
]
"""The 107 ``original_*`` PyRadiomics features in published order."""

LESION_COUNT_COLUMN = "Num_Lesions"
"""Connected-component count of the lesion mask (the 108th model feature)."""

FEATURE_COLUMNS: list[str] = [*RADIOMICS_COLUMNS, LESION_COUNT_COLUMN]
"""The 108 model features, ``original_shape_Elongation`` … ``Num_Lesions``, in published order."""

ALL_COLUMNS: list[str] = [*ID_COLUMNS, *DIAGNOSTICS_COLUMNS, *FEATURE_COLUMNS, *TARGET_COLUMNS]
"""All 152 columns of the published feature table in published order."""

SPLIT_VALUES = ("train", "val", "test")
"""Allowed values of the ``Group`` column."""

TUMOUR_VOLUME_COLUMN = "original_shape_VoxelVolume"
"""Tumour burden of the paper's Figure 3: volume of the predicted lesion mask (mm³, 1 mm resampling)."""


def feature_group(column: str) -> str:
    """Feature class of a model feature (``shape``, ``firstorder``, ``glcm``, …, or ``lesion count``).

    Examples
    --------
    >>> feature_group("original_shape_MeshVolume"), feature_group("Num_Lesions")
    ('shape', 'lesion count')
    """
    if column == LESION_COUNT_COLUMN:
        return "lesion count"
    parts = column.split("_")
    if len(parts) >= 3 and parts[0] == "original" and parts[1] in FEATURE_CLASSES:
        return parts[1]
    raise UserInputError(f"not a model feature column: {column!r}")


def _row_label(frame: pd.DataFrame, position: int) -> str:
    # CSV line numbers count the header as line 1; name the series too when the File column exists.
    label = f"row {position + 2}"
    if "File" in frame.columns:
        label += f" (File={frame['File'].iloc[position]})"
    return label


def validate_feature_table(
    frame: pd.DataFrame,
    source: str = "feature table",
    *,
    targets: Sequence[str] = (),
    require_ids: bool = True,
    features: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Check a feature table and return it with numeric feature columns as float64 (``attrs["source"]`` = ``source``,
    for later messages: :func:`table_source`).

    Parameters
    ----------
    frame
        The table (one row per series).
    source
        Name used in error messages (usually the file path).
    targets
        Which of :data:`TARGET_COLUMNS` must be present and valid (e.g. ``["NE_Class", "Group"]``).
    require_ids
        Require :data:`ID_COLUMNS` (file, study and patient ids).
    features
        Feature columns to require (default all 108 :data:`FEATURE_COLUMNS`).

    Raises
    ------
    UserInputError
        Naming the first missing column, or the column and row of a non-numeric, NaN or infinite value.
    """
    required: list[str] = list(features) if features is not None else list(FEATURE_COLUMNS)
    if require_ids:
        required = [*ID_COLUMNS, *required]
    unknown_targets = [t for t in targets if t not in TARGET_COLUMNS]
    if unknown_targets:
        raise UserInputError(
            f"unknown target column {unknown_targets[0]!r}; expected one of {TARGET_COLUMNS}"
        )
    required += list(targets)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserInputError(f"{source}: missing column {missing[0]!r}{more}")
    if len(frame) == 0:
        raise UserInputError(f"{source}: no rows")
    frame = frame.copy()
    frame.attrs["source"] = source
    _to_finite_floats(frame, [c for c in required if c in FEATURE_COLUMNS or c in ("NE_Score", "NE_Class")], source)
    if require_ids:
        _check_ids(frame, source)
    if "NE_Class" in targets:
        _check_values(frame, "NE_Class", [0.0, 1.0], "is not 0 or 1", source)
        frame["NE_Class"] = frame["NE_Class"].astype(int)
    if "Group" in targets:
        _check_values(frame, "Group", SPLIT_VALUES, f"is not one of {list(SPLIT_VALUES)}", source)
    return frame


def _to_finite_floats(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Convert ``columns`` of ``frame`` to float64 in place; name the first non-numeric, NaN or infinite value."""
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            raw = frame[column].iloc[position]
            raw = raw.item() if isinstance(raw, np.generic) else raw  # 'nan', not 'np.float64(nan)'
            raise UserInputError(
                f"{source}: column {column!r}, {_row_label(frame, position)}: "
                f"value {raw!r} is not a finite number ({int(bad.sum())} bad value(s) in this column)"
            )
        frame[column] = values.astype(float)


def _check_ids(frame: pd.DataFrame, source: str) -> None:
    """Name the first empty file, study or patient id."""
    for column in ID_COLUMNS:
        empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if empty.any():
            position = int(np.flatnonzero(empty.to_numpy())[0])
            raise UserInputError(f"{source}: column {column!r}, {_row_label(frame, position)}: empty id")


def _check_values(frame: pd.DataFrame, column: str, allowed: Sequence[object], reason: str, source: str) -> None:
    """Name the first value of ``column`` outside ``allowed`` (``reason`` ends the message)."""
    bad = ~frame[column].isin(allowed)
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserInputError(
            f"{source}: column {column!r}, {_row_label(frame, position)}: "
            f"value {frame[column].iloc[position]!r} {reason}"
        )


def table_source(frame: pd.DataFrame) -> str:
    """The file a validated feature table came from (``"feature table"`` when unknown), for error messages."""
    return str(frame.attrs.get("source", "feature table"))


def read_csv_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a feature table CSV without validating it; a missing or unparsable file is one UserInputError line."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"feature table not found: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def read_feature_table(
    path: str | os.PathLike[str],
    *,
    targets: Sequence[str] = (),
    require_ids: bool = True,
    features: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read and validate a feature-table CSV (see :func:`validate_feature_table` for the checks).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("File,unique_scandate,unique_pt\\nA,B,C\\n")
    >>> read_feature_table(p)
    Traceback (most recent call last):
    ...
    livermets.errors.UserInputError: ...t.csv: missing column 'original_shape_Elongation' (and 107 more)
    """
    frame = read_csv_table(path)
    return validate_feature_table(
        frame, str(path), targets=targets, require_ids=require_ids, features=features
    )


def order_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with the published columns first in published order, any extra columns after them."""
    known = [c for c in ALL_COLUMNS if c in frame.columns]
    extra = [c for c in frame.columns if c not in ALL_COLUMNS]
    return frame[known + extra]
