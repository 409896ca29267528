"""Evaluate a folder of predicted label maps against a manifest's reference labels (``livermets seg evaluate``).

Predictions are named ``<series_id>_seg.nii.gz`` in one folder. Each manifest row with a ``label`` is evaluated with
:func:`livermets.lesions.scan_metrics.evaluate_scan`; problems with one series (missing prediction, unreadable file,
unexpected label values, different geometry) are logged as one line each and listed in ``skipped.csv``; when no
series can be evaluated, the command fails with one line naming the first reason and writes nothing. A missing
prediction is evaluated as an empty prediction (every reference lesion a false negative) unless ``skip_missing``.

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
from livermets.lesions.figures import overlay_figure
from livermets.lesions.matching import RULES
from livermets.lesions.scan_metrics import ScanEvaluation, evaluate_scan, stratum_names
from livermets.progress import track
from livermets.provenance import provenance

log = logging.getLogger(__name__)

LISTED_REASONS = 3
"""Skip reasons named in the one-line error of a cohort in which no series could be evaluated."""
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
    label_path = row.get("label")
    if label_path is None or pd.isna(label_path) or str(label_path).strip() == "":
        return "no reference label in the manifest"
    pred_path = pred_dir / f"{series_id}{PREDICTION_SUFFIX}"
    try:
        reference = read_label(label_path)
        prediction: sitk.Image | None = None
        if pred_path.exists():
            prediction = read_label(pred_path)
            differences = geometry_differences(reference, prediction)
            if differences:
                return (f"geometry mismatch between reference {label_path} and prediction {pred_path}: "
                        + "; ".join(differences) + " (predictions must lie on the reference grid; resample with "
                        "`livermets imaging check REFERENCE PREDICTION --resample-label OUT`)")
        elif settings.skip_missing:
            return f"missing prediction {pred_path} (skipped: --skip-missing)"
        else:
            log.warning("%s: missing prediction %s, counted as empty (all reference lesions FN)", series_id,
                        pred_path)
    except UserInputError as exc:
        return str(exc)
    ref_array = sitk.GetArrayViewFromImage(reference)
    pred_array = sitk.GetArrayViewFromImage(prediction) if prediction is not None else None
    evaluation = evaluate_scan(ref_array, pred_array, reference.GetSpacing(), series_id=series_id,
                               rule=settings.rule, iou_threshold=settings.iou_threshold,
                               connectivity=settings.connectivity, size_strata_mm=settings.size_strata_mm,
                               diameters=True)
    if figure_dir is not None and evaluation.figure_slice is not None:
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
    _warn_orphans(frame, pred_dir)
    rows, lesion_frames, skipped = _evaluate_series(frame, pred_dir, out_dir, settings, group_by)
    if not rows:
        listed = "; ".join(f"{s['series_id']}: {s['reason']}" for s in skipped[:LISTED_REASONS])
        more = f"; and {len(skipped) - LISTED_REASONS} more" if len(skipped) > LISTED_REASONS else ""
        raise UserInputError(f"nothing could be evaluated: all {len(frame)} series of {manifest} were skipped: "
                             f"{listed}{more}")
    write_csv(out_dir / "skipped.csv", pd.DataFrame(skipped, columns=["series_id", "reason"]))
    per_scan = pd.DataFrame(rows)
    strata = stratum_names(settings.size_strata_mm)
    table = table3(per_scan, group_by=group_by, n_boot=settings.n_boot, seed=settings.seed, strata=strata)
    table.insert(2, "rule", settings.rule)
    table.insert(3, "iou_threshold", settings.iou_threshold if settings.rule == "lits" else np.nan)
    write_csv(out_dir / "per_scan.csv", per_scan)
    write_csv(out_dir / "per_lesion.csv", pd.concat(lesion_frames, ignore_index=True))
    write_csv(out_dir / "table3.csv", table)
    write_text(out_dir / "table3.md", table3_markdown(table, title=_table3_title(settings)))
    parameters = {**asdict(settings), "group_by": group_by, "manifest": str(manifest), "pred_dir": str(pred_dir),
                  "n_evaluated": len(per_scan), "n_skipped": len(skipped)}
    write_json(out_dir / "provenance.json", provenance(parameters, command="livermets seg evaluate"))
    log.info("evaluated %d series (%d skipped); wrote %s", len(per_scan), len(skipped), out_dir)
    return table


def _warn_orphans(frame: pd.DataFrame, pred_dir: Path) -> None:
    """Warn once about predictions in ``pred_dir`` whose series is not in the manifest (they are ignored)."""
    known = set(frame["series_id"].astype(str))
    orphans = sorted(p.name for p in pred_dir.glob(f"*{PREDICTION_SUFFIX}")
                     if p.name[: -len(PREDICTION_SUFFIX)] not in known)
    if orphans:
        log.warning("%d prediction(s) in %s not in the manifest, ignored (e.g. %s)", len(orphans), pred_dir,
                    orphans[0])


def _evaluate_series(
    frame: pd.DataFrame, pred_dir: Path, out_dir: Path, settings: EvaluationSettings, group_by: str | None
) -> tuple[list[dict[str, Any]], list[pd.DataFrame], list[dict[str, str]]]:
    """Evaluate (or reuse from the cache) every manifest row; returns per-scan rows, lesion tables, skipped rows."""
    figure_dir = out_dir / "figures" if settings.figures else None
    cache_dir = out_dir / CACHE_FOLDER
    rows: list[dict[str, Any]] = []
    lesion_frames: list[pd.DataFrame] = []
    skipped: list[dict[str, str]] = []
    reused = 0
    pending: list[str] = []  # skip warnings wait for a first evaluated series (or become the one error line)
    for _, row in track(list(frame.iterrows()), "evaluating"):
        series_id = str(row["series_id"])
        fingerprint = _fingerprint(row, pred_dir, settings)
        cached = _load_cached(cache_dir, series_id, fingerprint)
        if cached is not None and (figure_dir is None or (figure_dir / f"{series_id}.png").exists()):
            scan_row, lesions = cached
            reused += 1
        else:
            outcome = _evaluate_row(row, pred_dir, settings, figure_dir)
            if isinstance(outcome, str):
                # Series skipped on request (--skip-missing) are summarised once below; real problems are warned.
                requested = settings.skip_missing and outcome.startswith("missing prediction")
                if requested:
                    log.debug("%s: skipped: %s", series_id, outcome)
                else:
                    pending.append(f"{series_id}: skipped: {outcome}")
                skipped.append({"series_id": series_id, "reason": outcome})
                _flush_warnings(pending, bool(rows))
                continue
            scan_row, lesions = outcome.row, outcome.lesions
            _store_cached(cache_dir, series_id, fingerprint, scan_row, lesions)
        extra = {"patient_id": row["patient_id"], "study_id": row["study_id"]}
        if group_by is not None:
            extra[group_by] = row[group_by]
        rows.append({**scan_row, **extra})
        lesion_frames.append(lesions)
        _flush_warnings(pending, True)
    if reused:
        log.info("reused %d unchanged series from %s", reused, cache_dir)
    return rows, lesion_frames, skipped


def _table3_title(settings: EvaluationSettings) -> str:
    rule_text = (f"LiTS rule, IoU > {settings.iou_threshold:g}" if settings.rule == "lits"
                 else "paper rule (any overlap)")
    return (f"Lesion segmentation metrics ({rule_text}, cc3d connectivity {settings.connectivity}); "
            f"95% CIs: patient-level bootstrap, {settings.n_boot} samples, seed {settings.seed}")
