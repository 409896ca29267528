"""``livermets synth``: write a synthetic CT cohort (images, LiTS labels, manifest, lesion truth, overview figure)."""

from __future__ import annotations

from pathlib import Path

import typer

from livermets.synth.sizes import SIZES


def register(app: typer.Typer) -> None:
    """Add the top-level ``synth`` command to the root ``livermets`` app."""
    app.command("synth")(synth)


def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (created; must be empty unless --overwrite)."),
    patients: int = typer.Option(10, "--patients", help="Number of patients (each has 1-4 studies x 2 series)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    size: str = typer.Option("small", "--size", help=f"Grid size: {', '.join(SIZES)} (see README)."),
    burden_link: float = typer.Option(0.25, "--burden-link",
                                      help="Target Spearman correlation between tumour burden and NE score."),
    workers: int = typer.Option(1, "--workers", help="Parallel processes (output is identical for any value)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the cohort in a non-empty --out folder."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted run (same parameters)."),
    no_overview: bool = typer.Option(False, "--no-overview", help="Skip the overview PNG."),
) -> None:
    """Generate a synthetic abdominal CT cohort with liver metastases.

    Writes DIR/images/<series>.nii.gz, DIR/labels/<series>.nii.gz (0 background, 1 liver, 2 lesion),
    DIR/manifest.csv, DIR/studies.csv (NE-score truth), DIR/lesions.csv (per-lesion truth), DIR/overview.png and
    DIR/provenance.json.

    Example: ``livermets synth --out cohort --patients 12 --seed 0 --size demo``
    """
    from livermets.synth.cohort import CohortConfig, generate_cohort

    config = CohortConfig(patients=patients, seed=seed, size=size, burden_link=burden_link)
    generate_cohort(out, config, workers=workers, overwrite=overwrite, overview=not no_overview, resume=resume)
