"""``livermets synth``: write a synthetic CT cohort (images, LiTS labels, manifest, lesion truth, overview figure)."""

from __future__ import annotations

from pathlib import Path

import typer

from livermets.atomic import outputs
from livermets.errors import UserInputError
from livermets.synth.sizes import SIZES, get_size


def register(app: typer.Typer) -> None:
    """Add the top-level ``synth`` command to the root ``livermets`` app."""
    app.command("synth")(synth)


@outputs("out")
def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (created; must be empty unless --overwrite)."),
    patients: int = typer.Option(10, "--patients", help="Number of patients (each has 1-4 studies x 2 series)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    size: str = typer.Option("small", "--size", help=f"Grid size: {', '.join(SIZES)} (see docs/phantoms.md)."),
    burden_link: float = typer.Option(0.25, "--burden-link",
                                      help="Target Spearman correlation between tumour burden and NE score."),
    workers: int = typer.Option(1, "--workers", help="Parallel processes (output is identical for any value)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the cohort in a non-empty --out folder."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted run (same parameters)."),
    no_overview: bool = typer.Option(False, "--no-overview", help="Skip the overview PNG."),
    mode: str = typer.Option("phantom", "--mode", help="phantom: the parametric phantoms with NE scores; realistic: "
                             "real anatomy (--source-ct/--source-labels), randomised appearance, inserted lesions."),
    source_ct: list[Path] = typer.Option([], "--source-ct", help="realistic: a real CT (repeat for several)."),
    source_labels: list[Path] = typer.Option([], "--source-labels", help="realistic: its multi-label map on the "
                                             "same grid (TotalSegmentator classes; one per --source-ct)."),
    liver_label: list[int] = typer.Option([5], "--liver-label", help="realistic: label value(s) of the liver in "
                                          "the source label maps (TotalSegmentator: 5)."),
    remap_probability: float = typer.Option(0.7, "--remap-probability", help="realistic: share of cases whose "
                                            "tissue attenuation is re-drawn for a random contrast phase."),
) -> None:
    """Generate a synthetic abdominal CT cohort with liver metastases.

    Writes DIR/images/<series>.nii.gz, DIR/labels/<series>.nii.gz (0 background, 1 liver, 2 lesion),
    DIR/manifest.csv, DIR/studies.csv (NE-score truth), DIR/lesions.csv (per-lesion truth), DIR/overview.png and
    DIR/provenance.json.

    Example: ``livermets synth --out cohort --patients 12 --seed 0 --size demo``

    With --mode realistic, every "patient" is one case rendered from a real CT and its label map (see
    docs/synthetic-data.md): ``livermets synth --mode realistic --source-ct ct.nii.gz --source-labels seg.nii.gz
    --patients 100 --out realistic``. It writes images/, labels/, manifest.csv, lesions.csv and provenance.json.
    """
    if mode == "realistic":
        if size != "small" or burden_link != 0.25:
            raise UserInputError("--size and --burden-link belong to the phantom mode; --mode realistic takes its "
                                 "grid from the source scans and writes no NE scores")
        _realistic(out, patients, seed, workers, overwrite, resume, source_ct, source_labels, tuple(liver_label),
                   remap_probability)
        return
    if mode != "phantom":
        raise UserInputError(f"--mode {mode!r}: choose phantom or realistic")
    if source_ct or source_labels:
        raise UserInputError("--source-ct/--source-labels need --mode realistic")
    get_size(size)  # before the generator's imports (scipy.stats, matplotlib)
    from livermets.synth.cohort import CohortConfig, generate_cohort

    config = CohortConfig(patients=patients, seed=seed, size=size, burden_link=burden_link)
    generate_cohort(out, config, workers=workers, overwrite=overwrite, overview=not no_overview, resume=resume)


def _realistic(out: Path, cases: int, seed: int, workers: int, overwrite: bool, resume: bool, cts: list[Path],
               labels: list[Path], liver_labels: tuple[int, ...], remap_probability: float) -> None:
    from livermets.synth.realistic import RealisticConfig, SourceScan
    from livermets.synth.realistic_cohort import generate_realistic

    if not cts or len(cts) != len(labels):
        raise UserInputError("--mode realistic needs one --source-labels for every --source-ct (at least one pair)")
    for path in (*cts, *labels):
        if not path.exists():
            raise UserInputError(f"--source-ct/--source-labels: not found: {path}")
    sources = tuple(SourceScan(f"source{i + 1}", str(ct), str(lab), liver_labels)
                    for i, (ct, lab) in enumerate(zip(cts, labels, strict=True)))
    config = RealisticConfig(cases=cases, sources=sources, seed=seed, remap_probability=remap_probability)
    manifest = generate_realistic(out, config, workers=workers, overwrite=overwrite, resume=resume)
    typer.echo(f"{out}: {len(manifest)} realistic cases ({int((manifest['split'] == 'val').sum())} val)")
