"""``livermets seg evaluate``: lesion detection and segmentation metrics of predictions (the paper's Table 3)."""

from __future__ import annotations

from pathlib import Path

import typer

from livermets.atomic import outputs


def register(seg_app: typer.Typer) -> None:
    """Add the ``evaluate`` command to the ``seg`` group."""
    seg_app.command("evaluate")(evaluate)


@outputs("out")
def evaluate(
    pred_dir: Path = typer.Option(..., "--pred-dir", help="Folder of predicted label maps <series_id>_seg.nii.gz."),
    manifest: Path = typer.Option(..., "--manifest", help="Cohort manifest CSV (reference labels in 'label')."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    rule: str = typer.Option("paper", "--rule", help="Lesion matching rule: 'paper' (any overlap) or 'lits' "
                             "(LiTS challenge: merge, then IoU > --iou)."),
    iou: float = typer.Option(0.5, "--iou", help="IoU threshold of the 'lits' rule (strictly greater)."),
    connectivity: int = typer.Option(26, "--connectivity", help="cc3d connectivity for lesions: 6, 18, 26."),
    group_by: str | None = typer.Option(None, "--group-by", help="Manifest column grouping Table 3 "
                                        "(default: 'dataset' if present, else 'split')."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Skip series without a prediction instead "
                                      "of counting all their lesions as false negatives."),
    size_strata: list[float] | None = typer.Option(None, "--size-strata", help="Diameter cut point in mm for "
                                                   "size strata (repeatable), e.g. --size-strata 10."),
    figures: bool = typer.Option(False, "--figures", help="Write figures/<series_id>.png (Figure-2-like)."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Patient-level bootstrap samples for 95% CIs (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap random seed."),
) -> None:
    """Evaluate predicted label maps against the manifest's references: per_scan.csv, per_lesion.csv,
    table3.csv/.md (median lesion Dice, sensitivity, PPV, FP/scan with patient-level bootstrap CIs).

    Example: ``livermets seg evaluate --pred-dir preds/ --manifest manifest.csv --out eval/ --rule lits``
    """
    from livermets.lesions.evaluate import EvaluationSettings, evaluate_cohort

    settings = EvaluationSettings(rule=rule, iou_threshold=iou, connectivity=connectivity, group_by=group_by,
                                  skip_missing=skip_missing, size_strata_mm=tuple(sorted(size_strata or ())),
                                  figures=figures, n_boot=n_boot, seed=seed)
    table = evaluate_cohort(manifest, pred_dir, out, settings)
    for _, row in table.iterrows():
        typer.echo(f"{row['group']}: scans={row['n_scans']} lesions={row['n_ref_lesions']} "
                   f"median_dice={row['median_dice_lesion']:.3f} sensitivity={row['sensitivity']:.3f} "
                   f"ppv={row['ppv']:.3f} fp/scan={row['fp_per_scan_mean']:.2f}")
    typer.echo(f"wrote {out / 'table3.md'}")
