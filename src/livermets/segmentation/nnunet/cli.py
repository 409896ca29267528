"""``livermets seg export-nnunet`` and the ``--model nnunet`` branch of ``livermets seg train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from livermets.atomic import outputs
from livermets.errors import UserInputError


def register(seg_app: typer.Typer) -> None:
    """Add ``export-nnunet`` to the ``seg`` group."""
    seg_app.command("export-nnunet")(export_nnunet)


@outputs("out")
def export_nnunet(
    manifest: Path = typer.Option(..., "--manifest", help="Cohort manifest CSV with image, label and split."),
    out: Path = typer.Option(..., "--out", help="nnU-Net raw folder (nnUNet_raw) to write the dataset folder into."),
    dataset_id: int = typer.Option(501, "--dataset-id", help="nnU-Net dataset id (1..999)."),
    name: str = typer.Option("LiverMets", "--name", help="Dataset name: the folder is Dataset<NNN>_<name>."),
    folds: int = typer.Option(5, "--folds", help="Patient-grouped folds when the manifest has no val split."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fold assignment."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset folder of that name."),
) -> None:
    """Export a manifest as an nnU-Net v2 raw dataset with patient-grouped folds (splits_final.json).

    Train and val rows (labelled) go to imagesTr/labelsTr, test rows to imagesTs; the folds are the manifest's val
    split, or --folds folds grouped by patient_id when it has none. nnU-Net uses the folds once splits_final.json is
    copied into its preprocessed dataset folder (`seg train --model nnunet` does this itself).

    Example: ``livermets seg export-nnunet --manifest cohort/manifest.csv --out nnUNet_raw --dataset-id 501``
    """
    from livermets.segmentation.nnunet.dataset import plan_export, write_export

    plan = plan_export(manifest, dataset_id=dataset_id, folds=folds, name=name, seed=seed)
    folder = write_export(plan, out, overwrite=overwrite)
    training = int(plan.cases["training"].sum())
    typer.echo(f"{folder}: {training} training case(s), {len(plan.cases) - training} test case(s), "
               f"{len(plan.splits)} fold(s) in splits_final.json")


NNUNET_ONLY = ("--epochs", "--iterations-per-epoch", "--fold", "--pretrained")
"""Options of ``seg train`` that apply to ``--model nnunet`` only."""


def check_option_use(model: str | None, given: dict[str, Any]) -> None:
    """Refuse nnU-Net options with the MONAI networks and MONAI options with nnU-Net (``given``: flag -> value)."""
    used = [flag for flag, value in given.items() if value not in (None, False)]
    if model == "nnunet":
        wrong = [flag for flag in used if flag not in NNUNET_ONLY]
        if wrong:
            raise UserInputError(f"{wrong[0]}: does not apply to --model nnunet (it takes --epochs, "
                                 "--iterations-per-epoch, --fold, --pretrained)")
    else:
        wrong = [flag for flag in used if flag in NNUNET_ONLY]
        if wrong:
            raise UserInputError(f"{wrong[0]}: applies to --model nnunet only")


def train_nnunet_command(manifest: Path, out: Path, device: str, resume: bool, command: str,
                         options: dict[str, Any]) -> None:
    """Run ``seg train --model nnunet`` (``options``: epochs, iterations_per_epoch, fold, pretrained) and print
    one summary line."""
    from livermets.segmentation.nnunet.train import METADATA_FILE, train_nnunet

    result = train_nnunet(manifest, out, device=device, resume=resume, command=command, **options)
    typer.echo(
        f"{result.model_dir}: nnU-Net 3d_fullres fold {result.fold}, epochs {result.start_epoch}..{result.epochs} "
        f"x {result.iterations_per_epoch} iterations in {result.minutes:.1f} min; checkpoint "
        f"{result.checkpoint.resolve().relative_to(result.model_dir.resolve())}; metadata {METADATA_FILE}"
    )
