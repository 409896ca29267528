"""``livermets analyze`` (one CT → report) and ``livermets run`` (a cohort manifest → per-series reports + tables)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from livermets.batch import ALLOW_FAILURES, finish_batch
from livermets.errors import UserInputError
from livermets.segmentation.cli import ENGINE, THREADS

if TYPE_CHECKING:
    from livermets.analyze.options import AnalyzeOptions


def register(app: typer.Typer) -> None:
    """Add the top-level ``analyze`` and ``run`` commands."""
    app.command("analyze")(analyze)
    app.command("run")(run)


MODEL = typer.Option(None, "--model", help="Segmentation model: an installed model's name (ts-pair, ts-pair-fast, "
                     "shipped: `livermets models list`), a folder from `livermets seg train` (MONAI or nnU-Net) or "
                     "any nnU-Net v2 result folder (default: the best installed model, ts-pair > ts-pair-fast > "
                     "shipped).")
PHENOTYPE = typer.Option(None, "--phenotype-model",
                         help="NE-phenotype model folder from `livermets phenotype train`, or 'paper': the model of "
                         "the paper's published features, built on first use (patient-grouped CV AUC ~0.58, near "
                         "chance). Default: no NE prediction.")
PER_LESION = typer.Option(False, "--per-lesion",
                          help="Exploratory: also apply the phenotype model to each lesion's own features.")
TTA = typer.Option(False, "--tta", help="Average the segmentation over flips (slower).")
DEVICE = typer.Option("auto", "--device", help="auto (CUDA if available), cpu or cuda.")
MAX_LESIONS = typer.Option(200, "--max-lesions", help="Skip features when a scan has more lesion components.")
FORCE_PHENOTYPE = typer.Option(False, "--force-phenotype",
                               help="Write the NE probability even when the quality checks withhold it (failed "
                                    "segmentation checks, features far outside the training range); the report "
                                    "says so in its first line.")
MIN_LESION_ML = typer.Option(None, "--min-lesion-ml", help="Remove predicted lesions smaller than this many mL "
                             "(default: the segmentation model's setting, 0.03; 0 = no volume limit).")
MIN_LESION_DIAMETER = typer.Option(None, "--min-lesion-diameter-mm", help="Remove predicted lesions whose longest "
                                   "axial diameter is below this (default: the model's setting, 3 mm; 0 = no limit).")


def _options(model: str | None, phenotype_model: str | None, per_lesion: bool, tta: bool, device: str,
             max_lesions: int, series_uid: str | None = None, show_identifiers: bool = False,
             gating: tuple[bool, float | None, float | None] = (False, None, None),
             runtime: tuple[str, int | None] = ("auto", None)) -> AnalyzeOptions:
    """The options, checked as far as possible without loading a model (no torch, no scikit-learn yet)."""
    from livermets.analyze.options import AnalyzeOptions

    if per_lesion and phenotype_model is None:
        raise UserInputError("--per-lesion needs --phenotype-model")
    if max_lesions < 0:
        raise UserInputError(f"--max-lesions must be >= 0 (0 = no limit), got {max_lesions}")
    if model is not None:
        from livermets.segmentation.predict import model_kind
        from livermets.segmentation.registry import is_registry_name

        if not is_registry_name(model):  # a registry model is checked (its files hashed) when it is loaded
            model_kind(model)
    force, min_ml, min_diameter = gating
    from livermets.segmentation.options import PredictionOptions

    PredictionOptions(engine=runtime[0], threads=runtime[1])  # type: ignore[arg-type]  # checks both values
    for flag, value in (("--min-lesion-ml", min_ml), ("--min-lesion-diameter-mm", min_diameter)):
        if value is not None and not value >= 0:
            raise UserInputError(f"{flag} must be >= 0 (0 = no limit), got {value}")
    folder = _phenotype_folder(phenotype_model)
    return AnalyzeOptions(model=model, phenotype_model=folder, per_lesion=per_lesion, tta=tta,
                          device=device, series_uid=series_uid, show_identifiers=show_identifiers,
                          max_lesions=max_lesions, force_phenotype=force, min_lesion_ml=min_ml,
                          min_lesion_diameter_mm=min_diameter, engine=runtime[0], threads=runtime[1])


def _phenotype_folder(value: str | None) -> Path | None:
    """``--phenotype-model``: ``paper`` (built on first use) or a folder, checked."""
    from livermets.analyze.paper_option import resolve_phenotype_model

    if value is None:
        return None
    folder = resolve_phenotype_model(value)
    _check_phenotype_folder(folder)
    return folder


def _check_phenotype_folder(folder: Path) -> None:
    """A folder of ``phenotype train`` with a valid ``config.json`` (its models are checked when loaded)."""
    from livermets.phenotype.model_config import read_model_config

    if not folder.is_dir():
        raise UserInputError(f"--phenotype-model {folder}: not a model folder of `livermets phenotype train` "
                             "(no such folder)")
    read_model_config(folder)


def analyze(
    ct: Path = typer.Argument(..., help="CT: a NIfTI/NRRD/MHA file or a DICOM series folder."),
    out: Path = typer.Option(..., "--out", help="Output folder (created whole, or not at all)."),
    model: str | None = MODEL,
    phenotype_model: str | None = PHENOTYPE,
    per_lesion: bool = PER_LESION,
    tta: bool = TTA,
    device: str = DEVICE,
    engine: str = ENGINE,
    threads: int | None = THREADS,
    series_uid: str | None = typer.Option(None, "--series-uid", help="DICOM folder with several series: this one."),
    show_identifiers: bool = typer.Option(False, "--show-identifiers",
                                          help="Copy DICOM patient name/id/study date into the report."),
    max_lesions: int = MAX_LESIONS,
    force_phenotype: bool = FORCE_PHENOTYPE,
    min_lesion_ml: float | None = MIN_LESION_ML,
    min_lesion_diameter_mm: float | None = MIN_LESION_DIAMETER,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
) -> None:
    """Segment one CT and report its liver, lesions, tumour burden, features and (with a model) NE phenotype.

    Writes OUT/label.nii.gz, OUT/seg.dcm (DICOM input), OUT/lesions.csv, OUT/summary.csv, OUT/features.csv,
    OUT/report.json and OUT/report.html (one self-contained page). Research use only.

    Example: ``livermets analyze ct.nii.gz --phenotype-model models/ne_lr --out reports/ct``
    """
    from livermets.analyze.inputs import check_ct_path

    check_ct_path(ct, series_uid)
    options = _options(model, phenotype_model, per_lesion, tta, device, max_lesions, series_uid, show_identifiers,
                       (force_phenotype, min_lesion_ml, min_lesion_diameter_mm), (engine, threads))
    if out.exists() and not overwrite:
        raise UserInputError(f"--out {out}: output folder exists (use --overwrite to replace it)")
    from livermets.analyze.single import Analyzer  # torch, MONAI, PyRadiomics: after the inputs are checked

    result = Analyzer(options).analyze(ct, out, overwrite=overwrite)
    burden = result.report["burden"]
    line = (f"{result.report['series_id']}: liver {burden['liver_volume_ml']:.0f} mL, {burden['lesion_count']} "
            f"lesion(s), {burden['total_lesion_volume_ml']:.1f} mL")
    phenotype = result.report["phenotype"]
    if phenotype is not None and phenotype["probability"] is not None:
        forced = " (forced)" if phenotype["status"] == "forced" else ""
        line += f", NE probability {phenotype['probability']:.2f}{forced}"
    elif phenotype is not None:
        line += f", no NE probability ({phenotype['status']})"
    typer.echo(f"{line}; {len(result.report['warnings'])} warning(s)\nreport: {out / 'report.html'}")
    _say_without_phenotype_model(phenotype_model)


def _say_without_phenotype_model(phenotype_model: str | None) -> None:
    """One line on how to get an NE probability, when none was asked for."""
    if phenotype_model is None:
        from livermets.analyze.paper_option import no_phenotype_model_line

        typer.echo(no_phenotype_model_line())


def run(
    manifest: Path = typer.Option(..., "--manifest", help="Cohort manifest CSV (series_id, study_id, patient_id, "
                                  "image; ne_score/ne_class when known)."),
    out: Path = typer.Option(..., "--out", help="Output folder; an existing one is resumed."),
    model: str | None = MODEL,
    phenotype_model: str | None = PHENOTYPE,
    per_lesion: bool = PER_LESION,
    tta: bool = TTA,
    device: str = DEVICE,
    engine: str = ENGINE,
    threads: int | None = typer.Option(None, "--threads", help="Threads of each worker's engine (default: the cores "
                                       "this process may use, shared by the local workers)."),
    max_lesions: int = MAX_LESIONS,
    force_phenotype: bool = FORCE_PHENOTYPE,
    min_lesion_ml: float | None = MIN_LESION_ML,
    min_lesion_diameter_mm: float | None = MIN_LESION_DIAMETER,
    workers: int | None = typer.Option(None, "--workers", help="Worker processes (default: CPU count)."),
    scheduler: str = typer.Option("local", "--scheduler",
                                  help="local, or the address of a dask.distributed scheduler (tcp://host:8786)."),
    allow_failures: bool = ALLOW_FAILURES,
) -> None:
    """Analyse every series of a manifest (resumable after a kill) and build the cohort tables and report.

    Writes OUT/series/<series_id>/ (as `analyze`), OUT/summary.csv, lesions.csv, features.csv, qc.csv,
    failures.csv, cohort_report.html and run.json. Exit code 3 when a series failed (listed in OUT/failures.csv;
    the others are written), unless --allow-failures.

    Example: ``livermets run --manifest cohort/manifest.csv --phenotype-model models/ne_lr --out runs/c1 --workers 2``
    """
    from livermets.analyze.cohort import run_cohort

    if workers is not None and workers < 1:
        raise UserInputError(f"--workers must be >= 1, got {workers}")
    options = _options(model, phenotype_model, per_lesion, tta, device, max_lesions,
                       gating=(force_phenotype, min_lesion_ml, min_lesion_diameter_mm), runtime=(engine, threads))
    summary = run_cohort(manifest, out, options, workers=workers, scheduler=scheduler)
    typer.echo(f"{summary.n_series} series: {summary.n_done_before} already done, {summary.n_analysed} analysed, "
               f"{len(summary.failures)} failed\ncohort report: {out / 'cohort_report.html'}")
    _say_without_phenotype_model(phenotype_model)
    finish_batch(len(summary.failures), summary.n_series, out / "failures.csv", allow_failures)
