"""Evaluate a folder of predicted label maps against a manifest's reference labels (``livermets seg evaluate``).

Predictions are named ``<series_id>_seg.nii.gz`` in one folder. Each manifest row with a ``label`` is evaluated with
:func:`livermets.lesions.scan_metrics.evaluate_scan`; problems with one series (unreadable file, unexpected label
values, different geometry) are logged as one line each and listed in ``skipped.csv``; when no series can be
evaluated, the command fails with one line naming the first reason and writes nothing. When not one series has its
prediction, the error names the expected file name and what the folder holds instead (a wrong folder or naming).

Series without a prediction are named together in one warning (their count and the first ids) and, by default, left
out of every metric: they are rows of ``per_scan.csv`` with ``missing_prediction = True`` and empty metric columns,
counted in Table 3's ``n_missing_left_out``. ``missing_as_empty`` evaluates them as empty predictions instead (every
reference lesion a false negative; counted in ``n_missing_predictions``); ``skip_missing`` leaves them out of
``per_scan.csv`` too and lists them in ``skipped.csv`` (for predictions of one split only).

Outputs in ``out_dir``: ``per_scan.csv``, ``per_lesion.csv``, ``skipped.csv``, ``table3.csv``, ``table3.md``,
``provenance.json`` and, on request, ``figures/<series_id>.png``. Per-series results are also kept in
``out_dir/.per_series/``: a rerun into the same folder reuses every series whose reference and prediction files
(size, mtime) and per-scan settings (rule, IoU, connectivity, strata) are unchanged, so an interrupted cohort run
resumes where it stopped.

Examples
--------
>>> from livermets.lesions.evaluate import EvaluationSettings, evaluate_cohort
>>> evaluate_cohort("manifest.csv", "predictions/", "eval/", EvaluationSettings(rule="lits"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.atomic import write_csv, write_json, write_text
from livermets.cohort.manifest import load_manifest
from livermets.errors import ParameterError, UserInputError
from livermets.imaging.geometry import check_same_geometry, geometry_differences
from livermets.imaging.io import PREDICTION_SUFFIX, read_image, read_label
from livermets.lesions.cohort_metrics import default_group_column, table3, table3_markdown
from livermets.lesions.components import check_connectivity
from livermets.lesions.matching import RULES
from livermets.lesions.scan_metrics import ScanEvaluation, evaluate_scan, stratum_names
from livermets.progress import track
from livermets.provenance import provenance

log = logging.getLogger(__name__)

LISTED_REASONS = 3
"""Skip reasons named in the one-line error of a cohort in which no series could be evaluated."""
LISTED_IDS = 5
"""Series ids named in the one line about series without a prediction."""
_COUNT_COLUMNS = ("n_ref", "n_pred", "tp", "fn", "fp", "tp_pred", "ref_lesion_voxels", "pred_lesion_voxels",
                  "lesion_intersection_voxels", "ref_liver_voxels", "pred_liver_voxels", "liver_intersection_voxels",
                  "connectivity")
CACHE_FOLDER = ".per_series"
"""Per-series results kept in the output folder so that a rerun (after a crash or with more predictions) only
evaluates series whose files or per-scan settings changed."""


@dataclass(frozen=True)
class EvaluationSettings:
    """Parameters of a cohort evaluation (recorded in ``provenance.json``)."""

    rule: str = "paper"
    iou_threshold: float = 0.5
    connectivity: int = 26
    group_by: str | None = None
    skip_missing: bool = False
    missing_as_empty: bool = False
    size_strata_mm: tuple[float, ...] = ()
    figures: bool = False
    n_boot: int = 1000
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`~livermets.errors.ParameterError` for an invalid parameter."""
        if self.rule not in RULES:
            raise ParameterError("{rule} must be one of {choices} (got {value!r})", choices=list(RULES),
                                 value=self.rule)
        if not 0.0 <= self.iou_threshold < 1.0:
            raise ParameterError("{iou_threshold} must lie in [0, 1) (got {value})", value=self.iou_threshold)
        check_connectivity(self.connectivity)
        if self.skip_missing and self.missing_as_empty:
            raise ParameterError("{skip_missing} and {missing_as_empty} exclude each other")
        if self.n_boot < 0:
            raise ParameterError("{n_boot} must be >= 0 (got {value})", value=self.n_boot)
        try:
            stratum_names(self.size_strata_mm)
        except ValueError as exc:
            raise ParameterError("{size_strata_mm}: {reason}", reason=exc) from exc


def _evaluate_row(row: pd.Series, pred_dir: Path, settings: EvaluationSettings,
                  figure_dir: Path | None) -> ScanEvaluation | str:
    """Evaluate one manifest row; returns the evaluation or the reason it was skipped."""
    series_id = str(row["series_id"])
    if not _has_label(row):
        return "no reference label in the manifest"
    label_path = str(row["label"])
    pred_path = pred_dir / f"{series_id}{PREDICTION_SUFFIX}"
    try:
        reference = read_label(label_path)
        prediction: sitk.Image | None = None
        if pred_path.exists():  # a missing one reaches here only with missing_as_empty: an empty prediction
            prediction = read_label(pred_path)
            differences = geometry_differences(reference, prediction)
            if differences:
                return (f"geometry mismatch between reference {label_path} and prediction {pred_path}: "
                        + "; ".join(differences) + " (predictions must lie on the reference grid; resample with "
                        "`livermets imaging check REFERENCE PREDICTION --resample-label OUT`)")
    except UserInputError as exc:
        return str(exc)
    ref_array = sitk.GetArrayViewFromImage(reference)
    pred_array = sitk.GetArrayViewFromImage(prediction) if prediction is not None else None
    evaluation = evaluate_scan(ref_array, pred_array, reference.GetSpacing(), series_id=series_id,
                               rule=settings.rule, iou_threshold=settings.iou_threshold,
                               connectivity=settings.connectivity, size_strata_mm=settings.size_strata_mm,
                               diameters=True)
    if figure_dir is not None and evaluation.figure_slice is not None:
        from livermets.lesions.figures import overlay_figure  # matplotlib: only when a figure is drawn

        ct = None
        image_path = row.get("image")
        if image_path is not None and not pd.isna(image_path):
            try:
                ct_image = read_image(image_path)
                check_same_geometry(ct_image, reference, str(image_path), str(label_path))
                ct = sitk.GetArrayViewFromImage(ct_image)
            except UserInputError as exc:
                log.warning("%s: figure without CT background (%s)", series_id, exc)
        shown = pred_array if pred_array is not None else np.zeros_like(ref_array)
        overlay_figure(ref_array, shown, evaluation.figure_slice, figure_dir / f"{series_id}.png", ct=ct,
                       spacing_xyz=reference.GetSpacing(), direction=reference.GetDirection(),
                       detection=(evaluation.match.ref_detected, evaluation.match.pred_correct),
                       connectivity=settings.connectivity,
                       title=f"{series_id}: lesion Dice {evaluation.row['dice_lesion']:.2f}, "
                             f"TP {evaluation.row['tp']} FN {evaluation.row['fn']} FP {evaluation.row['fp']} "
                             f"({settings.rule} rule)")
    return evaluation


def _has_label(row: pd.Series) -> bool:
    label = row.get("label")
    return not (label is None or pd.isna(label) or str(label).strip() == "")


def _file_stamp(path: Any) -> list[int] | None:
    if path is None or pd.isna(path):
        return None
    try:
        stat = Path(str(path)).stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _fingerprint(row: pd.Series, pred_dir: Path, settings: EvaluationSettings) -> dict[str, Any]:
    """What a series' per-scan result depends on: the per-scan settings and both files' size and mtime."""
    return {
        "cache_version": 2,
        "rule": settings.rule, "iou_threshold": settings.iou_threshold, "connectivity": settings.connectivity,
        "size_strata_mm": list(settings.size_strata_mm),
        "label": [str(row.get("label")), _file_stamp(row.get("label"))],
        "prediction": _file_stamp(pred_dir / f"{row['series_id']}{PREDICTION_SUFFIX}"),
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _store_cached(cache_dir: Path, series_id: str, fingerprint: dict[str, Any], scan_row: dict[str, Any],
                  lesions: pd.DataFrame) -> None:
    write_csv(cache_dir / f"{series_id}.lesions.csv", lesions)
    # The JSON is written last: its presence marks a complete entry.
    write_json(cache_dir / f"{series_id}.json",
               {"fingerprint": fingerprint, "row": {k: _plain(v) for k, v in scan_row.items()}})


def _load_cached(cache_dir: Path, series_id: str,
                 fingerprint: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame] | None:
    entry = cache_dir / f"{series_id}.json"
    lesions = cache_dir / f"{series_id}.lesions.csv"
    if not entry.exists() or not lesions.exists():
        return None
    try:
        stored = json.loads(entry.read_text(encoding="utf-8"))
        if stored.get("fingerprint") != json.loads(json.dumps(fingerprint)):
            return None
        scan_row = {k: (np.nan if v is None else v) for k, v in stored["row"].items()}
        return scan_row, pd.read_csv(lesions, dtype={"series_id": str})
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return None


def _flush_warnings(pending: list[str], evaluated: bool) -> None:
    """Log the held-back skip warnings once a series has been evaluated; empties ``pending``."""
    if evaluated:
        for message in pending:
            log.warning("%s", message)
        pending.clear()


def evaluate_cohort(manifest: str | Path, pred_dir: str | Path, out_dir: str | Path,
                    settings: EvaluationSettings | None = None) -> pd.DataFrame:
    """Evaluate every labelled series of ``manifest`` against ``pred_dir/<series_id>_seg.nii.gz``; write outputs.

    Returns
    -------
    pandas.DataFrame
        The Table 3 frame (also written to ``out_dir/table3.csv``).

    Raises
    ------
    UserInputError
        Invalid settings, unreadable manifest, missing prediction folder, or no series could be evaluated.
    """
    settings = settings or EvaluationSettings()
    settings.validate()
    pred_dir = Path(pred_dir)
    out_dir = Path(out_dir)
    if not pred_dir.is_dir():
        raise UserInputError(f"{pred_dir}: prediction folder not found")
    frame = load_manifest(manifest)
    group_by = settings.group_by or default_group_column(list(frame.columns))
    if settings.group_by is not None and settings.group_by not in frame.columns:
        raise ParameterError("{group_by}: column {value!r} not in {manifest}", value=settings.group_by,
                             manifest=manifest)
    _check_predictions_exist(frame, pred_dir, manifest)  # before the warning about predictions of other series
    _warn_orphans(frame, pred_dir)
    found = _evaluate_series(frame, pred_dir, out_dir, settings, group_by)
    if not found.evaluated:
        skipped = found.skipped or [{"series_id": s, "reason": "missing prediction"} for s in found.missing]
        listed = "; ".join(f"{s['series_id']}: {s['reason']}" for s in skipped[:LISTED_REASONS])
        more = f"; and {len(skipped) - LISTED_REASONS} more" if len(skipped) > LISTED_REASONS else ""
        raise UserInputError(f"nothing could be evaluated: all {len(frame)} series of {manifest} were skipped: "
                             f"{listed}{more}")
    _report_missing(found, pred_dir, sum(_has_label(row) for _, row in frame.iterrows()), settings)
    first = next(row for row in found.rows if "tp" in row)  # its columns, in order, then any others
    per_scan = pd.DataFrame(found.rows, columns=list(dict.fromkeys([*first, *(k for r in found.rows for k in r)])))
    strata = stratum_names(settings.size_strata_mm)
    table = table3(per_scan, group_by=group_by, n_boot=settings.n_boot, seed=settings.seed, strata=strata)
    table.insert(2, "rule", settings.rule)
    table.insert(3, "iou_threshold", settings.iou_threshold if settings.rule == "lits" else np.nan)
    write_csv(out_dir / "skipped.csv", pd.DataFrame(found.skipped, columns=["series_id", "reason"]))
    write_csv(out_dir / "per_scan.csv", _whole_counts(per_scan))
    write_csv(out_dir / "per_lesion.csv", pd.concat(found.lesion_frames, ignore_index=True))
    write_csv(out_dir / "table3.csv", table)
    write_text(out_dir / "table3.md", table3_markdown(table, title=_table3_title(settings)))
    parameters = {**asdict(settings), "group_by": group_by, "manifest": str(manifest), "pred_dir": str(pred_dir),
                  "n_evaluated": found.evaluated, "n_skipped": len(found.skipped),
                  "n_missing_predictions": len(found.missing)}
    write_json(out_dir / "provenance.json", provenance(parameters, command="livermets seg evaluate"))
    log.info("evaluated %d series (%d skipped, %d without a prediction); wrote %s", found.evaluated,
             len(found.skipped), len(found.missing), out_dir)
    return table


def _whole_counts(per_scan: pd.DataFrame) -> pd.DataFrame:
    """Count columns as whole numbers when rows left out of the metrics leave them empty (no ``9.0`` in the CSV)."""
    out = per_scan.copy()
    for column in out.columns:
        if (column in _COUNT_COLUMNS or column.startswith(("n_ref_", "tp_", "n_pred_", "fp_"))) \
                and out[column].dtype.kind == "f":
            out[column] = out[column].astype("Int64")
    return out


def _warn_orphans(frame: pd.DataFrame, pred_dir: Path) -> None:
    """Warn once about predictions in ``pred_dir`` whose series is not in the manifest (they are ignored)."""
    known = set(frame["series_id"].astype(str))
    orphans = sorted(p.name for p in pred_dir.glob(f"*{PREDICTION_SUFFIX}")
                     if p.name[: -len(PREDICTION_SUFFIX)] not in known)
    if orphans:
        log.warning("%d prediction(s) in %s not in the manifest, ignored (e.g. %s)", len(orphans), pred_dir,
                    orphans[0])


@dataclass
class _Collected:
    """What the series of a cohort gave: per-scan rows (with the left-out missing series), lesion tables, skipped
    series, series without a prediction, held-back skip warnings and the number of cached results reused."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    lesion_frames: list[pd.DataFrame] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # skip warnings wait for a first evaluated series
    reused: int = 0

    @property
    def evaluated(self) -> int:
        return sum("tp" in row for row in self.rows)

    def skip(self, series_id: str, reason: str, warn: bool = True) -> None:
        self.skipped.append({"series_id": series_id, "reason": reason})
        if warn:
            self.pending.append(f"{series_id}: skipped: {reason}")
        _flush_warnings(self.pending, self.evaluated > 0)

    def add(self, scan_row: dict[str, Any], lesions: pd.DataFrame | None, extra: dict[str, Any]) -> None:
        self.rows.append({**scan_row, **extra})
        if lesions is not None:
            self.lesion_frames.append(lesions)
            _flush_warnings(self.pending, True)


def _evaluate_series(frame: pd.DataFrame, pred_dir: Path, out_dir: Path, settings: EvaluationSettings,
                     group_by: str | None) -> _Collected:
    """Evaluate (or reuse from the cache) every manifest row."""
    figure_dir = out_dir / "figures" if settings.figures else None
    cache_dir = out_dir / CACHE_FOLDER
    found = _Collected()
    for _, row in track(list(frame.iterrows()), "evaluating"):
        series_id = str(row["series_id"])
        extra = {"patient_id": row["patient_id"], "study_id": row["study_id"]}
        if group_by is not None:
            extra[group_by] = row[group_by]
        pred_path = pred_dir / f"{series_id}{PREDICTION_SUFFIX}"
        if _has_label(row) and not pred_path.exists() and not settings.missing_as_empty:
            found.missing.append(series_id)
            if settings.skip_missing:
                found.skip(series_id, f"missing prediction {pred_path} (skipped: --skip-missing)", warn=False)
            else:  # listed in per_scan.csv without metrics
                found.add({"series_id": series_id, "missing_prediction": True, "rule": settings.rule,
                           "connectivity": settings.connectivity}, None, extra)
            continue
        fingerprint = _fingerprint(row, pred_dir, settings)
        cached = _load_cached(cache_dir, series_id, fingerprint)
        if cached is not None and (figure_dir is None or (figure_dir / f"{series_id}.png").exists()):
            found.reused += 1
            scan_row, lesions = cached
        else:
            outcome = _evaluate_row(row, pred_dir, settings, figure_dir)
            if isinstance(outcome, str):
                found.skip(series_id, outcome)
                continue
            scan_row, lesions = outcome.row, outcome.lesions
            _store_cached(cache_dir, series_id, fingerprint, scan_row, lesions)
        found.missing += [series_id] if bool(scan_row["missing_prediction"]) else []
        found.add(scan_row, lesions, extra)
    if found.reused:
        log.info("reused %d unchanged series from %s", found.reused, cache_dir)
    return found


def _check_predictions_exist(frame: pd.DataFrame, pred_dir: Path, manifest: str | Path) -> None:
    """Raise when not one labelled series of the manifest has its prediction: a wrong folder or naming."""
    labelled = [str(row["series_id"]) for _, row in frame.iterrows() if _has_label(row)]
    if not labelled or any((pred_dir / f"{s}{PREDICTION_SUFFIX}").exists() for s in labelled):
        return
    raise UserInputError(f"{pred_dir}: no prediction for any of the {len(labelled)} labelled series of {manifest}: "
                         f"{_folder_content(pred_dir, labelled)}; expected <series_id>{PREDICTION_SUFFIX} (e.g. "
                         f"{labelled[0]}{PREDICTION_SUFFIX})")


def _folder_content(folder: Path, series_ids: list[str]) -> str:
    """What a prediction folder holds: ``found 24 file(s) named <series_id>.nii.gz like CASE_000.nii.gz``."""
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        return "the folder holds no files"
    named: dict[str, str] = {}  # file -> what follows the longest series id it starts with
    for name in files:
        ids = [s for s in series_ids if name.startswith(s) and len(name) > len(s)]
        if ids:
            named[name] = name[len(max(ids, key=len)):]
    if len(set(named.values())) != 1:
        return f"found {len(files)} file(s) like {files[0]}"
    suffix, example = next(iter(named.values())), next(iter(named))
    if len(named) == len(files):
        return f"found {len(files)} file(s) named <series_id>{suffix} like {example}"
    return f"found {len(files)} file(s), {len(named)} of them named <series_id>{suffix} like {example}"


def _report_missing(found: _Collected, pred_dir: Path, n_labelled: int, settings: EvaluationSettings) -> None:
    """One line for the series without a prediction: how many, the first few ids and what became of them."""
    if not found.missing:
        return
    ids = ", ".join(found.missing[:LISTED_IDS]) + (", ..." if len(found.missing) > LISTED_IDS else "")
    if settings.skip_missing:
        what = "skipped (--skip-missing), listed in skipped.csv"
    elif settings.missing_as_empty:
        what = "counted as empty predictions: all their reference lesions are false negatives"
    else:
        what = ("left out of the metrics, listed in per_scan.csv with missing_prediction = True (--missing-as-empty "
                "counts them as empty predictions)")
    level = logging.INFO if settings.skip_missing else logging.WARNING
    log.log(level, "%d of %d series have no prediction <series_id>%s in %s (%s): %s", len(found.missing),
            n_labelled, PREDICTION_SUFFIX, pred_dir, ids, what)


def _table3_title(settings: EvaluationSettings) -> str:
    rule_text = (f"LiTS rule, IoU > {settings.iou_threshold:g}" if settings.rule == "lits"
                 else "paper rule (any overlap)")
    return (f"Lesion segmentation metrics ({rule_text}, cc3d connectivity {settings.connectivity}); "
            f"95% CIs: patient-level bootstrap, {settings.n_boot} samples, seed {settings.seed}")
