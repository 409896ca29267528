"""``livermets cohort``: import public datasets, validate and summarise a cohort manifest."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from livermets.atomic import outputs, write_csv
from livermets.errors import EXIT_USER_ERROR, UserInputError

app = typer.Typer(help="Import public datasets; validate and summarise cohort manifests (one CSV row per CT series).",
                  no_args_is_help=True)

IMPORT_FORMATS = ("lits", "msd", "ircad", "dicom-seg")  # livermets.cohort.importers.FORMATS, without importing it


@app.command("validate")
def validate(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    no_files: bool = typer.Option(False, "--no-files", help="Skip the checks that image/label files exist "
                                  "(and the geometry check)."),
    no_geometry: bool = typer.Option(False, "--no-geometry", help="Skip the image/label geometry check."),
) -> None:
    """Check a manifest and report every problem, one ``error:`` line each (exit code 2 if any).

    Checks: required columns, unique series ids, files exist and are readable, every label map on its image's grid
    (size, spacing, origin, direction from the headers, tolerances of ``imaging check``), a patient in one split
    only, ne_class == (ne_score > 0), sample_type in {biopsy, cfdna}, split in {train, val, test}.

    Example: ``livermets cohort validate cohort/manifest.csv``
    """
    from livermets.cohort import manifest as mf  # imported on use: the command line starts without it

    frame = mf.read_manifest(manifest)
    problems = mf.find_problems(frame, check_files=not no_files)
    if not (no_files or no_geometry):
        problems += mf.find_geometry_problems(frame)
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
    from livermets.cohort import manifest as mf  # imported on use: the command line starts without it

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
    from livermets.cohort import manifest as mf  # imported on use: the command line starts without it

    frame = mf.load_manifest(manifest, check_files=False)
    from livermets.cohort.summary import cohort_summary

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


@app.command("import")
@outputs("out")
def import_(
    src: Path = typer.Argument(..., help="Folder the dataset was unpacked into."),
    fmt: str = typer.Option(..., "--format", help=f"Dataset layout: {', '.join(IMPORT_FORMATS)}."),
    out: Path = typer.Option(..., "--out", help="Output cohort folder: images/, labels/, manifest.csv, import.json."),
    patient_regex: str | None = typer.Option(
        None, "--patient-regex",
        help="Patient id from the default id (series id; PatientID for dicom-seg): group 'patient', else group 1, "
             "else the whole match."),
    segment_map: list[str] = typer.Option(
        [], "--segment-map",
        help="dicom-seg: REGEX=LABEL, Segment Label (full match, any case) -> 0 ignore, 1 liver, 2 lesion; "
             "repeatable, before the built-in mapping."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
) -> None:
    """Import LiTS, MSD Task03_Liver, 3D-IRCADb-01 or a DICOM SEG collection as a livermets cohort.

    Writes NIfTI CTs, UInt8 LiTS label maps (0 background, 1 liver, 2 lesion) on exactly each CT's grid, a manifest
    that ``cohort validate`` accepts, and import.json (source, counts, provenance). Nothing is written unless the
    whole import succeeds. See docs/cohort-and-imaging.md, "Import a public dataset".

    Example: ``livermets cohort import --format msd Task03_Liver/ --out cohorts/msd``
    """
    import shlex
    import sys

    from livermets.cohort.importers import import_dataset

    if fmt not in IMPORT_FORMATS:
        raise UserInputError(f"--format: unknown format {fmt!r} (one of {', '.join(IMPORT_FORMATS)})")
    result = import_dataset(src, out, fmt, patient_regex=patient_regex, segment_map=_segment_rules(segment_map),
                            overwrite=overwrite, command=shlex.join(["livermets", *sys.argv[1:]]))
    counts = result.counts
    patients = counts["patients"]
    typer.echo(f"{result.manifest}: {counts['series']} series ({counts['labelled']} labelled), "
               f"{patients} patient{'' if patients == 1 else 's'}")


def _segment_rules(values: list[str]) -> dict[str, int]:
    """``REGEX=LABEL`` options as an ordered ``{regex: label}``."""
    rules: dict[str, int] = {}
    for value in values:
        pattern, sep, label = value.rpartition("=")
        if not sep or not pattern or label.strip() not in ("0", "1", "2"):
            raise UserInputError(f"--segment-map: {value!r} is not REGEX=LABEL with LABEL 0, 1 or 2")
        rules[pattern] = int(label)
    return rules
