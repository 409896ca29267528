"""``analyze``: one CT in, a folder with its label map, lesion table, features, NE probability and report out.

Examples
--------
>>> analyzer = Analyzer(AnalyzeOptions(phenotype_model="models/ne_lr"))  # doctest: +SKIP
>>> result = analyzer.analyze("ct.nii.gz", "out/ct")  # doctest: +SKIP
>>> result.summary["lesion_count"], result.report["phenotype"]["probability"]  # doctest: +SKIP
(3, 0.62)
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk

from livermets.analyze.folder import staged_folder
from livermets.analyze.gate import PhenotypeGate, phenotype_gate
from livermets.analyze.inputs import ScanInput, read_scan
from livermets.analyze.options import AnalyzeOptions
from livermets.analyze.phenotype import PhenotypeModel
from livermets.analyze.tables import LESION_COLUMNS, burden, lesion_records, summary_row
from livermets.atomic import write_csv, write_json
from livermets.featuretable import LESION_COUNT_COLUMN, order_columns
from livermets.imaging.io import write_label
from livermets.lesions.components import lesion_table
from livermets.provenance import provenance
from livermets.radiomics.series import ExtractionOptions, SeriesResult, SeriesTask, series_features
from livermets.segmentation.default_model import SHIPPED_MODEL_WARNING, ModelInfo, announce_model
from livermets.segmentation.lesion_size import (
    MinLesionSize,
    RemovedLesions,
    model_min_lesion_size,
    remove_small_lesions,
)
from livermets.segmentation.options import PredictionOptions
from livermets.segmentation.predict import ImageSegmenter, ModelChoice, plan_segmenter
from livermets.segmentation.qc import QCRecord, check_prediction

log = logging.getLogger(__name__)

SCHEMA = "livermets.report/1"
DEFAULT_MODEL_WARNING = SHIPPED_MODEL_WARNING
FORCED_NOTE = ("NE probability forced (--force-phenotype) although the quality checks withhold it: {reasons}. "
               "Do not quote it without these reasons.")
WITHHELD_NOTE = "No NE probability: {reasons}. --force-phenotype writes it all the same."
PER_LESION_NOTE = ("Exploratory: the phenotype model was trained on whole-scan features; applied to each lesion's "
                   "own features (with the scan's lesion count) it is outside what it was validated for.")


@dataclass
class AnalyzeResult:
    """Where the outputs went, the report (``report.json`` content) and the one-row summary."""

    out: Path
    report: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


class Analyzer:
    """Models loaded once, ready to analyse any number of scans with the same :class:`AnalyzeOptions`.

    The phenotype model is loaded and checked at once, so a wrong model fails before any work; the segmentation
    model is loaded when the first CT has been read and checked, and (with ``announce``) one line then says which
    model it is.
    """

    def __init__(self, options: AnalyzeOptions, segmenter: ImageSegmenter | None = None,
                 announce: bool = True) -> None:
        if options.per_lesion and options.phenotype_model is None:
            from livermets.errors import ParameterError

            raise ParameterError("{per_lesion} needs a phenotype model ({phenotype_model})")
        self.options = options
        self.phenotype = PhenotypeModel.load(options.phenotype_model) if options.phenotype_model else None
        self._segmenter = segmenter
        self._model_info: ModelInfo | None = None
        self.announce = announce
        self.extraction = ExtractionOptions(params=options.radiomics_params, max_lesions=options.max_lesions)

    @property
    def segmenter(self) -> ImageSegmenter:
        """The segmentation model (a livermets model, a livermets nnU-Net model or an nnU-Net v2 result folder),
        loaded on first use (so that a bad CT fails before the model is read)."""
        if self._segmenter is None:
            runtime = PredictionOptions(engine=self.options.engine, threads=self.options.threads)  # type: ignore[arg-type]
            plan = plan_segmenter(ModelChoice(model=self.options.model), runtime)
            self._segmenter = plan.load(self.options.device, self.options.tta)
            self._model_info = plan.info
            if self.announce:
                announce_model(plan.info)
        return self._segmenter

    @property
    def model_info(self) -> ModelInfo:
        """The segmentation model as the report names it (registry name, version, licence, citation)."""
        segmenter = self.segmenter
        if self._model_info is None:  # a segmenter given to the constructor
            self._model_info = ModelInfo(segmenter.model_dir.name, segmenter.model_dir, "folder")
        return self._model_info

    @property
    def min_lesion_size(self) -> MinLesionSize:
        """The smallest lesion kept: the options' values, else the segmentation model's (defaults 0.03 mL, 3 mm)."""
        options = PredictionOptions(min_lesion_ml=self.options.min_lesion_ml,
                                    min_lesion_diameter_mm=self.options.min_lesion_diameter_mm)
        return model_min_lesion_size(self.segmenter, options)

    @property
    def model_dir(self) -> Path:
        return self.segmenter.model_dir

    @property
    def shipped_default(self) -> bool:
        return self.model_info.shipped

    def analyze(self, ct: str | Path, out: str | Path, overwrite: bool = False, series_id: str | None = None,
                ids: dict[str, Any] | None = None) -> AnalyzeResult:
        """Analyse one CT into the folder ``out`` (written whole or not at all).

        ``series_id`` names the scan (default: from the file name); ``ids`` are the published id/target columns
        of its ``features.csv`` row (default ``File`` = series id; see :func:`livermets.radiomics.series.manifest_ids`).
        """
        with staged_folder(out, overwrite) as tmp:
            result = self._analyze_into(ct, tmp, series_id, ids)
        result.out = Path(out)
        return result

    def _analyze_into(self, ct: str | Path, tmp: Path, series_id: str | None,
                      ids: dict[str, Any] | None) -> AnalyzeResult:
        scan = read_scan(ct, self.options.series_uid, self.options.show_identifiers, series_id)
        tick = time.perf_counter()
        label = self.segmenter.predict_image(scan.image, str(scan.path), tta=self.options.tta)
        label, removed = remove_small_lesions(label, self.min_lesion_size)
        seconds = time.perf_counter() - tick
        qc = check_prediction(label, scan.image, self.segmenter.qc, scan.series_id, removed)
        files = self._write_masks(scan, label, tmp)
        lesions = lesion_table(label, scan.image)
        features = self._features(scan, label, ids or {"File": scan.series_id})
        report = self._report(scan, label, qc, lesions, features, (seconds, removed), files)
        probabilities = {int(r["lesion_id"]): r["ne_probability"] for r in report["lesions"]
                         if r["ne_probability"] is not None} or None
        report["figures"] = _write_figures(scan.image, label, probabilities, tmp)
        write_csv(tmp / "lesions.csv", pd.DataFrame(report["lesions"], columns=LESION_COLUMNS))
        _write_features(features, tmp, report["files"])
        summary = summary_row(report)
        write_csv(tmp / "summary.csv", pd.DataFrame([summary]))
        write_json(tmp / "report.json", report)
        _write_html(report, tmp)
        return AnalyzeResult(tmp, report, summary)

    def _write_masks(self, scan: ScanInput, label: sitk.Image, tmp: Path) -> dict[str, str | None]:
        write_label(label, tmp / "label.nii.gz")
        dicom_seg = None
        if scan.dicom_series is not None:
            from livermets.imaging.dicom_seg import write_dicom_seg

            write_dicom_seg(label, scan.path, tmp / "seg.dcm", series_uid=scan.dicom_series.uid or None,
                            model_name=self.model_info.name)
            dicom_seg = "seg.dcm"
        return {"label": "label.nii.gz", "dicom_seg": dicom_seg, "lesions": "lesions.csv",
                "summary": "summary.csv", "features": None, "lesion_features": None,
                "report_html": "report.html"}

    def _features(self, scan: ScanInput, label: sitk.Image,
                  ids: dict[str, Any]) -> dict[str, SeriesResult | None]:
        task = SeriesTask(key=scan.series_id, series_id=scan.series_id, image=str(scan.path), label=None, ids=ids)
        series = series_features(task, scan.image, label, self.extraction)
        per_lesion = None
        if self.options.per_lesion and series.failure is None:
            per_lesion = series_features(task, scan.image, label,
                                         ExtractionOptions(params=self.options.radiomics_params, per_lesion=True,
                                                           max_lesions=self.options.max_lesions))
            count = series.rows[0][LESION_COUNT_COLUMN]
            for row in per_lesion.rows:
                row[LESION_COUNT_COLUMN] = count
        return {"series": series, "per_lesion": per_lesion}

    def _report(self, scan: ScanInput, label: sitk.Image, qc: QCRecord, lesions: pd.DataFrame,
                features: dict[str, SeriesResult | None], timing: tuple[float, RemovedLesions],
                files: dict[str, str | None]) -> dict[str, Any]:
        series = features["series"]
        assert series is not None
        seconds, removed = timing
        warnings = [DEFAULT_MODEL_WARNING] if self.shipped_default else []
        warnings += [flag.message for flag in qc.flags]
        if series.failure is not None:
            warnings.append(f"No radiomics features: {series.failure}.")
        phenotype, lesion_probability = self._phenotype(scan, (series, features["per_lesion"]), qc, warnings)
        report: dict[str, Any] = {
            "schema": SCHEMA,
            "research_use_only": True,
            "series_id": scan.series_id,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "input": scan.info,
            "segmentation": {**self._segmentation_section(seconds), "min_lesion_size": removed.to_dict()},
            "burden": burden(label, lesions),
            "lesions": lesion_records(lesions, lesion_probability),
            "qc": qc.to_dict(),
            "warnings": warnings,
            "features": _features_section(series),
            "phenotype": phenotype,
            "per_lesion_phenotype": ({"exploratory": True, "note": PER_LESION_NOTE}
                                     if lesion_probability is not None else None),
            "figures": {},
            "files": files,
            "provenance": provenance(self.options.to_dict(), "livermets analyze"),
        }
        return report

    def _segmentation_section(self, seconds: float) -> dict[str, Any]:
        info = self.model_info
        folder = info.folder if info.registry else self.model_dir  # a pair: its models' home, not one of them
        return {"model": str(folder), "model_name": info.name, "model_version": info.version,
                "model_licence": info.licence, "model_citation": info.citation, "model_registry": info.registry,
                "shipped_default": self.shipped_default, "tta": self.options.tta,
                "device": str(self.segmenter.device), "engine": self.segmenter.engine,
                "threads": self.options.threads, "seconds": round(seconds, 2),
                "lesion_threshold": self.segmenter.lesion_threshold}

    def _phenotype(self, scan: ScanInput, features: tuple[SeriesResult, SeriesResult | None], qc: QCRecord,
                   warnings: list[str]) -> tuple[dict[str, Any] | None, dict[int, float] | None]:
        """The ``phenotype`` section, gated by :func:`livermets.analyze.gate.phenotype_gate`, and the per-lesion
        probabilities (None unless given)."""
        if self.phenotype is None:
            return None, None
        series, per_lesion = features
        force = self.options.force_phenotype
        gate = phenotype_gate(qc, force=force)
        if gate.withheld:  # the masks are not usable: no prediction at all
            _gate_warnings(gate, warnings)
            return self.phenotype.not_predicted("withheld", gate.text(), gate), None
        if series.failure is not None:
            warnings.append("No NE phenotype: it needs the radiomics features of at least one lesion.")
            return self.phenotype.not_predicted("not_computed", f"no radiomics features: {series.failure}",
                                                gate), None
        prediction = self.phenotype.predict(pd.DataFrame(series.rows), f"features of {scan.series_id}")
        gate = phenotype_gate(qc, {str(k): v for k, v in prediction.iloc[0].items()}, force=force)
        summary = self.phenotype.summary(prediction.iloc[0], gate)
        _gate_warnings(gate, warnings)
        if gate.withheld:
            return summary, None
        warnings.extend(self.phenotype.warnings(summary))
        lesion_probability = None
        if per_lesion is not None and per_lesion.rows:
            rows = pd.DataFrame(per_lesion.rows)
            ok = rows[rows["radiomics_error"].isna()] if "radiomics_error" in rows.columns else rows
            predicted = self.phenotype.predict(ok, f"per-lesion features of {scan.series_id}")
            lesion_probability = dict(zip(ok["lesion_id"].astype(int), predicted["probability"].astype(float),
                                          strict=True))
        return summary, lesion_probability


def _gate_warnings(gate: PhenotypeGate, warnings: list[str]) -> None:
    """The first warning of a report whose NE probability is withheld or forced."""
    if gate.status == "withheld":
        warnings.insert(0, WITHHELD_NOTE.format(reasons=gate.text()))
    elif gate.status == "forced":
        warnings.insert(0, FORCED_NOTE.format(reasons=gate.text()))


def _features_section(series: SeriesResult) -> dict[str, Any]:
    if series.failure is not None:
        status = "no lesion" if series.failure == "no lesion" else "failed"
        return {"status": status, "reason": series.failure, "n_features": None}
    n = sum(1 for c in series.rows[0] if c.startswith("original_")) + 1
    return {"status": "ok", "reason": None, "n_features": n}


def _write_figures(ct: sitk.Image, label: sitk.Image, probabilities: dict[int, float] | None,
                   tmp: Path) -> dict[str, str]:
    from livermets.analyze.figures import axial_montage, coronal_view
    from livermets.figures import save_figure

    save_figure(axial_montage(ct, label, probabilities), tmp / "montage.png")
    save_figure(coronal_view(ct, label, probabilities), tmp / "coronal.png")
    return {"montage": "montage.png", "coronal": "coronal.png"}


def _write_html(report: dict[str, Any], tmp: Path) -> None:
    from livermets.analyze.html import write_report_html

    write_report_html(report, tmp, tmp / "report.html")


def _write_features(features: dict[str, SeriesResult | None], tmp: Path, files: dict[str, str | None]) -> None:
    """``features.csv`` (published schema) and, with per-lesion phenotype, ``lesion_features.csv``."""
    for key, name in (("series", "features"), ("per_lesion", "lesion_features")):
        result = features[key]
        if result is not None and result.rows:
            write_csv(tmp / f"{name}.csv", order_columns(pd.DataFrame(result.rows)))
            files[name] = f"{name}.csv"

