"""``livermets radiomics``: PyRadiomics features per series (the paper's table) or per lesion."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from livermets.atomic import outputs, removed_on_failure
from livermets.batch import ALLOW_FAILURES, finish_batch
from livermets.errors import UserInputError

if TYPE_CHECKING:
    from livermets.radiomics.runner import RunSummary

app = typer.Typer(help="Radiomics with PyRadiomics: the paper's 108 features per series, or per lesion.",
                  no_args_is_help=True)


@app.command("extract")
def extract(
    manifest: Path = typer.Option(..., "--manifest", help="Cohort manifest CSV (series_id, study_id, patient_id, "
                                  "image, label, ne_score, ne_class, split)."),
    out: Path = typer.Option(..., "--out", help="Feature table CSV (created, or continued when it exists)."),
    masks: Path | None = typer.Option(None, "--masks", help="Folder of predicted label maps <series_id>_seg.nii.gz "
                                      "(LiTS labels) used instead of the manifest's label column."),
    params: Path | None = typer.Option(None, "--params", help="PyRadiomics parameter YAML (default: the paper's "
                                       "settings shipped with livermets)."),
    roi: str = typer.Option("lesion", "--roi", help="lesion: label 2 (the paper); liver: labels 1+2."),
    per_lesion: bool = typer.Option(False, "--per-lesion", help="One row per connected lesion (with id, volume, "
                                    "location) instead of one row per series."),
    workers: int | None = typer.Option(None, "--workers", "-j", help="Worker processes (default: all cores)."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Run on Dask: 'local' (LocalCluster with "
                                         "--workers processes) or a scheduler address, e.g. tcp://host:8786."),
    lesion_count: str = typer.Option("published", "--num-lesions", help="published: Num_Lesions = components + 1 "
                                     "as in the published table; components: the plain component count."),
    no_crop: bool = typer.Option(False, "--no-crop", help="Give PyRadiomics the whole scan (slower; for checks)."),
    split: str | None = typer.Option(None, "--split", help="Only manifest rows of this split (train, val, test)."),
    max_lesions: int = typer.Option(200, "--max-lesions", help="Skip (record as failed) a series whose mask has more "
                                    "lesion components than this: a speckled prediction, not a series to describe; "
                                    "0 = no limit."),
    allow_failures: bool = ALLOW_FAILURES,
) -> None:
    """Extract radiomics for every series of a manifest (resumable; failures in <out stem>.failures.csv).

    Default = the paper: the whole lesion mask (label 2) of each series → PyRadiomics 3.0.1, 1 mm B-spline
    resampling, bin width 25, Original image, 7 classes = 107 features + Num_Lesions, in the published table's
    152 columns. Series already in --out are skipped; a series that fails (unreadable file, geometry mismatch,
    unexpected labels, NaN voxels, empty mask = "no lesion", more lesion components than --max-lesions) is recorded
    and the others continue: exit code 3 when one failed for another reason than "no lesion", 2 when none succeeded.

    Example: ``livermets radiomics extract --manifest cohort/manifest.csv --out features.csv -j 8``
    """
    # PyRadiomics and friends load only when a command runs (keeps `livermets --help` fast).
    from livermets.cohort.manifest import load_manifest, select_split
    from livermets.radiomics.runner import build_tasks, failures_path, parts_dir, provenance_path, run_extraction
    from livermets.radiomics.series import ExtractionOptions

    options = ExtractionOptions(params=None if params is None else str(params), roi=roi,  # type: ignore[arg-type]
                                per_lesion=per_lesion, crop=not no_crop,
                                lesion_count=lesion_count, max_lesions=max_lesions)  # type: ignore[arg-type]
    if workers is not None and workers < 1:
        raise UserInputError(f"--workers must be at least 1 (got {workers})")
    if not out.name.endswith(".csv"):
        raise UserInputError(f"--out must be a .csv file (got {out})")
    frame = load_manifest(manifest, check_files=False)  # missing files become per-series failures
    if split is not None:
        frame = select_split(frame, split)
    tasks = build_tasks(frame, masks)
    # A run that computes nothing leaves no new file: its reasons are in the one error line.
    with removed_on_failure(out, failures_path(out), provenance_path(out), parts_dir(out)):
        summary = run_extraction(tasks, out, options, workers=workers, scheduler=scheduler)
        if summary.attempted and summary.succeeded == 0 and summary.already_done == 0:
            raise UserInputError(_nothing_processed(summary, max_lesions))
    typer.echo(f"{out}: {summary.succeeded} series computed, {summary.already_done} already there, "
               f"{summary.no_lesion} without lesion, {summary.failed} failed ({summary.failures}); "
               f"{summary.seconds:.1f} s, {summary.series_per_second:.2f} series/s")
    finish_batch(summary.failed, summary.attempted + summary.already_done, summary.failures, allow_failures)


def _nothing_processed(summary: RunSummary, max_lesions: int) -> str:
    """One-line error when no series could be processed: the first reason (the lesion limit first) and a count."""
    over = summary.too_many_lesions
    if not over:
        if not summary.failure_reasons:
            more = f" (and {summary.no_lesion - 1} more series)" if summary.no_lesion > 1 else ""
            return f"no series could be processed: {summary.no_lesion_series[0]}: no lesion{more}"
        series_id, reason = summary.failure_reasons[0]
        more = f" (and {summary.failed - 1} more failed series)" if summary.failed > 1 else ""
        lesion_free = f"; {summary.no_lesion} series without lesion" if summary.no_lesion else ""
        return f"no series could be processed: {series_id}: {reason}{more}{lesion_free}"
    label, count = over[0]
    notes = []
    if len(over) > 1:
        notes.append(f"{len(over) - 1} more series over the limit")
    others = [(s, r) for s, r in summary.failure_reasons if "more than max_lesions" not in r]
    if others:
        notes.append(f"{len(others)} failed for other reasons, e.g. {others[0][0]}: {others[0][1]}")
    more = f" ({'; '.join(notes)})" if notes else ""
    return (f"{label}: {count} lesion components, more than --max-lesions {max_lesions}; raise --max-lesions "
            f"(0 = no limit) to compute it{more}")


@app.command("aggregate")
@outputs("out")
def aggregate(
    lesions: Path = typer.Option(..., "--lesions", help="Per-lesion table from `extract --per-lesion`."),
    out: Path = typer.Option(..., "--out", help="Series-level CSV to write."),
) -> None:
    """Per-lesion rows → one row per series: largest lesion, volume-weighted mean of each feature, count.

    Example: ``livermets radiomics aggregate --lesions lesions.csv --out series.csv``
    """
    if not lesions.is_file():
        raise UserInputError(f"--lesions: file not found: {lesions}")
    import pandas as pd

    from livermets.atomic import write_csv
    from livermets.radiomics.aggregate import aggregate_lesions

    table = aggregate_lesions(pd.read_csv(lesions), str(lesions))
    write_csv(out, table)
    typer.echo(f"{out}: {len(table)} series from {int(table['lesion_count'].sum())} lesions")


@app.command("params")
def show_params() -> None:
    """Print the paper's PyRadiomics parameter file (a starting point for --params)."""
    from livermets.radiomics.extractor import PAPER_PARAMS

    typer.echo(f"# {PAPER_PARAMS}")
    typer.echo(PAPER_PARAMS.read_text(encoding="utf-8"), nl=False)
