"""The cohort manifest (CSV): schema, loading and validation.

One row per CT series. Required columns: ``series_id, study_id, patient_id, image``. Optional: ``label`` (label map,
LiTS labels 0/1/2), ``ne_score`` (float, -1..1), ``ne_class`` (0/1, must equal ``ne_score > 0``), ``sample_type``
(``biopsy`` or ``cfdna``), ``split`` (``train``, ``val``, ``test``). Extra columns are kept. Relative paths resolve
against the manifest's folder.

Examples
--------
>>> from livermets.cohort.manifest import load_manifest
>>> frame = load_manifest("cohort/manifest.csv")  # doctest: +SKIP
>>> frame[["series_id", "split"]].head()  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from livermets.errors import UserInputError
from livermets.imaging.geometry import DIRECTION_TOL, ORIGIN_TOL_MM, SPACING_TOL_MM

REQUIRED_COLUMNS = ("series_id", "study_id", "patient_id", "image")
OPTIONAL_COLUMNS = ("label", "ne_score", "ne_class", "sample_type", "split")
MANIFEST_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
PATH_COLUMNS = ("image", "label")
TEXT_COLUMNS = ("series_id", "study_id", "patient_id", "image", "label", "sample_type", "split")
SAMPLE_TYPES = ("biopsy", "cfdna")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Problem:
    """One validation finding; ``row`` is the 1-based data row (header excluded), ``None`` for file-wide problems."""

    message: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return (", ".join(where) + ": " if where else "") + self.message


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read the CSV with ids kept as strings and paths resolved; checks only that it parses and has the columns.

    Raises
    ------
    UserInputError
        Unreadable file or missing required columns (all of them named).
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: manifest not found")
    try:
        # Only empty cells are missing: ids such as "NA" or "nan" are legitimate strings.
        frame = pd.read_csv(path, dtype={c: "string" for c in TEXT_COLUMNS}, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: cannot parse manifest CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserInputError(f"{path}: missing required column(s) {', '.join(missing)}")
    base = path.resolve().parent
    for column in PATH_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].map(lambda v: _resolve(base, v), na_action="ignore")
    frame.attrs["path"] = str(path)
    return frame


def _resolve(base: Path, value: str) -> str:
    p = Path(str(value).strip())
    return str(p if p.is_absolute() else (base / p))


def find_problems(frame: pd.DataFrame, check_files: bool = True) -> list[Problem]:
    """Every problem in a manifest (not just the first), in row order per check."""
    problems: list[Problem] = []
    rows = pd.RangeIndex(1, len(frame) + 1)

    for column in REQUIRED_COLUMNS:
        for row in rows[frame[column].isna().to_numpy() | (frame[column].astype("string").str.strip() == "")
                        .fillna(True).to_numpy()]:
            problems.append(Problem("empty value", int(row), column))

    duplicated = frame["series_id"].duplicated(keep=False) & frame["series_id"].notna()
    for sid, group in frame[duplicated].groupby("series_id"):
        listed = ", ".join(str(i + 1) for i in group.index)
        problems.append(Problem(f"duplicate series_id {sid!r} (rows {listed})", None, "series_id"))

    # A study belongs to one patient.
    study_patients = frame.dropna(subset=["study_id", "patient_id"]).groupby("study_id")["patient_id"].nunique()
    for study in study_patients[study_patients > 1].index:
        problems.append(Problem(f"study {study!r} is assigned to several patients", None, "study_id"))

    if check_files:
        for column in PATH_COLUMNS:
            if column not in frame.columns:
                continue
            for i, value in enumerate(frame[column]):
                if pd.isna(value):
                    if column == "image":
                        continue  # reported above as empty
                    continue
                p = Path(value)
                if not p.exists():
                    problems.append(Problem(f"file not found: {p}", i + 1, column))
                elif p.is_file() and not _readable(p):
                    problems.append(Problem(f"file not readable: {p}", i + 1, column))

    if "split" in frame.columns:
        split = frame["split"].astype("string").str.strip().str.lower()
        bad = split.notna() & ~split.isin(SPLITS)
        for j in np.flatnonzero(bad.to_numpy()):
            i = int(j)
            problems.append(Problem(f"unknown split {frame['split'].iloc[i]!r} (allowed: {', '.join(SPLITS)})",
                                    int(i) + 1, "split"))
        by_patient = frame.assign(_split=split).dropna(subset=["patient_id", "_split"]).groupby("patient_id")["_split"]
        for patient, splits in by_patient.unique().items():
            if len(splits) > 1:
                problems.append(Problem(
                    f"patient {patient!r} appears in several splits ({', '.join(sorted(splits))}): data leakage",
                    None, "split"))

    if "sample_type" in frame.columns:
        st = frame["sample_type"].astype("string").str.strip().str.lower()
        for j in np.flatnonzero((st.notna() & ~st.isin(SAMPLE_TYPES)).to_numpy()):
            i = int(j)
            problems.append(Problem(f"unknown sample_type {frame['sample_type'].iloc[i]!r} "
                                    f"(allowed: {', '.join(SAMPLE_TYPES)})", int(i) + 1, "sample_type"))

    problems.extend(_ne_problems(frame))
    return problems


def _ne_problems(frame: pd.DataFrame) -> list[Problem]:
    problems: list[Problem] = []
    score = None
    if "ne_score" in frame.columns:
        score = pd.to_numeric(frame["ne_score"], errors="coerce")
        for i in np.flatnonzero((score.isna() & frame["ne_score"].notna()).to_numpy()):
            problems.append(Problem(f"ne_score {frame['ne_score'].iloc[i]!r} is not a number", int(i) + 1, "ne_score"))
        for i in np.flatnonzero(((score < -1) | (score > 1)).to_numpy()):
            problems.append(Problem(f"ne_score {score.iloc[i]} outside [-1, 1]", int(i) + 1, "ne_score"))
    if "ne_class" in frame.columns:
        cls = pd.to_numeric(frame["ne_class"], errors="coerce")
        invalid = frame["ne_class"].notna() & ~cls.isin([0, 1])
        for i in np.flatnonzero(invalid.to_numpy()):
            problems.append(Problem(f"ne_class {frame['ne_class'].iloc[i]!r} is not 0 or 1", int(i) + 1, "ne_class"))
        if score is not None:
            both = score.notna() & cls.isin([0, 1])
            disagree = both & ((score > 0).astype(int) != cls)
            for i in np.flatnonzero(disagree.to_numpy()):
                problems.append(Problem(
                    f"ne_class {int(cls.iloc[i])} disagrees with ne_score {score.iloc[i]} (class is 1 iff score > 0)",
                    int(i) + 1, "ne_class"))
    return problems


@dataclass(frozen=True)
class HeaderGeometry:
    """Size, spacing, origin and direction read from an image header (no voxels); DICOM folders give the size only."""

    size: tuple[int, ...]
    spacing: tuple[float, ...] | None = None
    origin: tuple[float, ...] | None = None
    direction: tuple[float, ...] | None = None


def header_geometry(path: str | Path) -> HeaderGeometry:
    """The geometry in ``path``'s header (a file SimpleITK reads), without reading its voxels.

    For a DICOM series folder only the size is taken (in-plane size of the first file, number of slices): the
    slice positions are checked when the series is read.

    Raises
    ------
    RuntimeError
        The header cannot be read (SimpleITK's error).
    """
    import SimpleITK as sitk

    path = Path(path)
    if path.is_dir():
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path))
        if not files:
            raise RuntimeError("no DICOM series in the folder")
        first = sitk.ImageFileReader()
        first.SetFileName(files[0])
        first.ReadImageInformation()
        return HeaderGeometry((*first.GetSize()[:2], len(files)))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return HeaderGeometry(tuple(reader.GetSize()), tuple(reader.GetSpacing()), tuple(reader.GetOrigin()),
                          tuple(reader.GetDirection()))


def _geometry_differences(image: HeaderGeometry, label: HeaderGeometry) -> list[str]:
    diffs = [] if image.size == label.size else [f"size {image.size} vs {label.size}"]
    for name, a, b, tol in (("spacing", image.spacing, label.spacing, SPACING_TOL_MM),
                            ("origin", image.origin, label.origin, ORIGIN_TOL_MM),
                            ("direction", image.direction, label.direction, DIRECTION_TOL)):
        if a is not None and b is not None and not np.allclose(a, b, rtol=0, atol=tol):
            diffs.append(f"{name} {tuple(round(v, 4) for v in a)} vs {tuple(round(v, 4) for v in b)}")
    return diffs


def find_geometry_problems(frame: pd.DataFrame) -> list[Problem]:
    """Rows whose label map's grid differs from the image's (size, spacing, origin, direction), from headers only.

    Tolerances are those of ``imaging check`` (:mod:`livermets.imaging.geometry`); rows without a label or with a
    missing file are skipped (the file checks of :func:`find_problems` report those). A header that cannot be read
    is a problem of its own.
    """
    if "label" not in frame.columns:
        return []
    problems: list[Problem] = []
    for i, (image, label) in enumerate(zip(frame["image"], frame["label"], strict=True)):
        if pd.isna(image) or pd.isna(label) or not Path(image).exists() or not Path(label).is_file():
            continue
        geometries = []
        for column, path in (("image", image), ("label", label)):
            try:
                geometries.append(header_geometry(path))
            except RuntimeError as exc:
                problems.append(Problem(f"cannot read the header of {path} ({str(exc).strip().splitlines()[-1]})",
                                        i + 1, column))
        if len(geometries) == 2:
            diffs = _geometry_differences(*geometries)
            if diffs:
                problems.append(Problem(f"label map {label} is not on the image's grid: " + "; ".join(diffs),
                                        i + 1, "label"))
    return problems


def _readable(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.read(1)
        return True
    except OSError:
        return False


LISTED_PROBLEMS = 3
"""Problems named in the one-line error of :func:`load_manifest`."""


def load_manifest(path: str | Path, check_files: bool = True) -> pd.DataFrame:
    """Read and validate a manifest; raise one :class:`UserInputError` (one line) naming its problems.

    The message lists the first :data:`LISTED_PROBLEMS` problems, separated by ``;``; ``livermets cohort validate``
    prints every problem. Numeric columns ``ne_score``/``ne_class`` are converted; ``split`` and ``sample_type`` are
    lower-cased.
    """
    frame = read_manifest(path)
    problems = find_problems(frame, check_files=check_files)
    if problems:
        listed = "; ".join(str(p) for p in problems[:LISTED_PROBLEMS])
        more = (f"; and {len(problems) - LISTED_PROBLEMS} more (`livermets cohort validate {path}` lists them)"
                if len(problems) > LISTED_PROBLEMS else "")
        raise UserInputError(f"{path}: {len(problems)} problem(s): {listed}{more}")
    return normalise(frame)


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed copy: numeric NE columns, lower-case split and sample_type, stripped ids."""
    out = frame.copy()
    for column in ("series_id", "study_id", "patient_id"):
        out[column] = out[column].astype("string").str.strip()
    if "ne_score" in out.columns:
        out["ne_score"] = pd.to_numeric(out["ne_score"], errors="coerce")
    if "ne_class" in out.columns:
        out["ne_class"] = pd.to_numeric(out["ne_class"], errors="coerce").astype("Int64")
    for column in ("split", "sample_type"):
        if column in out.columns:
            out[column] = out[column].astype("string").str.strip().str.lower()
    return out


def select_split(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """Rows of one split (compared stripped and in lower case), the one split selector of every command.

    Raises
    ------
    UserInputError
        The manifest has no ``split`` column, or no row of that split.
    """
    where = frame.attrs.get("path", "manifest")
    if "split" not in frame.columns:
        raise UserInputError(f"{where}: no 'split' column (needed to select {split!r})")
    wanted = split.strip().lower()
    selected = frame[frame["split"].astype("string").str.strip().str.lower() == wanted]
    if selected.empty:
        raise UserInputError(f"{where}: no rows with split == {wanted!r}")
    return selected


def merge_manifests(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate manifests (paths resolved against each manifest's folder, so they stay valid anywhere).

    Columns are the union (missing values empty); series ids must stay unique and a patient id must not appear in
    two manifests.

    Examples
    --------
    >>> merged = merge_manifests(["realistic/manifest.csv", "phantoms/manifest.csv"])  # doctest: +SKIP
    """
    if len(paths) < 2:
        raise UserInputError("merge needs at least two manifests")
    frames = [read_manifest(p) for p in paths]
    for (path_a, a), (path_b, b) in itertools.combinations(zip(paths, frames, strict=True), 2):
        shared = sorted(set(a["patient_id"].astype(str)) & set(b["patient_id"].astype(str)))
        if shared:
            raise UserInputError(f"{path_b}: patient id {shared[0]!r} also appears in {path_a}")
    merged = pd.concat(frames, ignore_index=True)
    duplicated = merged["series_id"][merged["series_id"].duplicated()]
    if not duplicated.empty:
        raise UserInputError(f"series id {duplicated.iloc[0]!r} appears in more than one manifest")
    return merged
