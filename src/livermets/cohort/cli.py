"""``livermets cohort``: validate and summarise a cohort manifest."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from livermets.atomic import outputs, write_csv
from livermets.cohort import manifest as mf
from livermets.cohort.summary import cohort_summary
from livermets.errors import EXIT_USER_ERROR

app = typer.Typer(help="Validate and summarise cohort manifests (one CSV row per CT series).", no_args_is_help=True)


@app.command("validate")
def validate(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    no_files: bool = typer.Option(False, "--no-files", help="Skip the checks that image/label files exist."),
) -> None:
    """Check a manifest and report every problem, one ``error:`` line each (exit code 2 if any).

    Checks: required columns, unique series ids, files exist and are readable, a patient in one split only,
    ne_class == (ne_score > 0), sample_type in {biopsy, cfdna}, split in {train, val, test}.

    Example: ``livermets cohort validate cohort/manifest.csv``
    """
    frame = mf.read_manifest(manifest)
    problems = mf.find_problems(frame, check_files=not no_files)
    for problem in problems:
        typer.echo(f"error: {manifest}: {problem}", err=True)
    if len(problems) > 1:
        typer.echo(f"error: {manifest}: {len(problems)} problems in {len(frame)} rows", err=True)
    if problems:
        raise typer.Exit(EXIT_USER_ERROR)
    typer.echo(f"{manifest}: ok ({len(frame)} series, {frame['patient_id'].nunique()} patients, "
               f"{frame['study_id'].nunique()} studies)")


@app.command("merge")
@outputs("out")
def merge(
    manifests: list[Path] = typer.Argument(..., help="Two or more manifest CSVs."),
    out: Path = typer.Option(..., "--out", help="Merged manifest CSV (image/label paths become absolute)."),
) -> None:
    """Concatenate manifests into one (e.g. realistic and phantom training data).

    Example: ``livermets cohort merge realistic/manifest.csv phantoms/manifest.csv --out train.csv``
    """
    merged = mf.merge_manifests(list(manifests))
    write_csv(out, merged)
    typer.echo(f"{out}: {len(merged)} series from {len(manifests)} manifests")


@app.command("summary")
@outputs("out")
def summary(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    out: Path | None = typer.Option(None, "--out", help="Also write the table as CSV here."),
) -> None:
    """Print counts per split / NE class / patient / study, like the paper's Tables 1 and 2.

    Example: ``livermets cohort summary cohort/manifest.csv``
    """
    frame = mf.load_manifest(manifest, check_files=False)
    table = cohort_summary(frame)
    # One row per quantity and one column per split: narrow enough for any terminal.
    rich_table = Table(title=f"Cohort summary: {manifest}")
    rich_table.add_column("")
    for split in table.index:
        rich_table.add_column(str(split), justify="right")
    for quantity in table.columns:
        rich_table.add_row(quantity.replace("_", " "), *(_fmt(v) for v in table[quantity].tolist()))
    Console().print(rich_table)
    if out is not None:
        write_csv(out, table, index=True)


def _fmt(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
