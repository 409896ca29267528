"""``livermets stats``: tumour burden vs NE score (Figure 3) and failure analysis (Figure 5)."""

from __future__ import annotations

from pathlib import Path

import typer

from livermets.atomic import outputs, write_json

app = typer.Typer(help="Tumour-burden statistics and failure analysis.", no_args_is_help=True)


@app.command("burden")
@outputs("out")
def burden(
    features: Path = typer.Option(..., "--features", help="Feature table CSV (needs volume, NE_Score, NE_Class)."),
    out: Path = typer.Option(..., "--out", help="Output folder (burden_stats.json, burden.png)."),
    choice: str = typer.Option("first", help="Series kept per study: first, last or largest."),
    level: str = typer.Option("patient", help="patient: one value per patient (mean over its studies), p-values "
                              "and a patient-level bootstrap CI that respect the clustering; study: the paper's "
                              "Figure 3, every study an independent observation (ignores clustering)."),
    n_boot: int = typer.Option(2000, "--n-boot", min=1, help="Patient-level bootstrap samples of the Spearman CI."),
    seed: int = typer.Option(0, help="Seed of the patient-level bootstrap."),
) -> None:
    """Spearman and Wilcoxon rank-sum between tumour volume and NE score/class, overall and per sample_type: one value
    per patient by default (docs/statistics.md), or the paper's study-level analysis with --level study."""
    from livermets.stats.burden import check_level

    check_level(level)  # before the table is read
    from livermets.featuretable import TUMOUR_VOLUME_COLUMN, read_feature_table

    frame = read_feature_table(features, targets=["NE_Score", "NE_Class"], features=[TUMOUR_VOLUME_COLUMN])
    from livermets.stats.burden import burden_statistics, one_series_per_study

    result = burden_statistics(frame, choice=choice, level=level, n_boot=n_boot, seed=seed)
    from livermets.stats.plots import plot_burden  # matplotlib: after the inputs are checked

    write_json(out / "burden_stats.json", result)
    overall = result["all"]
    if level == "study":
        counts = f"{overall['n_studies']} studies ({overall['n_patients']} patients, {overall['n_series']} series)"
        plot_burden(one_series_per_study(frame, choice), out / "burden.png",
                    note=f"One point per study, n = {counts}: ignores the clustering of studies within patients")
        typer.echo(f"study level (ignores clustering), n = {counts}: Spearman rho {overall['spearman_rho']:.3f} "
                   f"(p {overall['spearman_p']:.4f}), rank-sum z {overall['ranksum_stat']:.3f} "
                   f"(p {overall['ranksum_p']:.3f})")
        return
    counts = f"{overall['n_patients']} patients ({overall['n_studies']} studies, {overall['n_series']} series)"
    plot_burden(one_series_per_study(frame, choice), out / "burden.png", statistics=result)
    typer.echo(f"patient level, n = {counts}: Spearman rho {overall['spearman_rho']:.3f} "
               f"(95% CI {overall['spearman_low95']:.3f} to {overall['spearman_high95']:.3f}, "
               f"p {overall['spearman_p']:.4f}), rank-sum z {overall['ranksum_stat']:.3f} "
               f"(p {overall['ranksum_p']:.3f}; {overall['n_positive']} NE-positive, {overall['n_negative']} "
               f"NE-negative patients, {overall['n_tied_class']} tied)")


@app.command("failure")
@outputs("out")
def failure(
    features: Path = typer.Option(..., "--features", help="Feature table CSV with NE_Score and NE_Class."),
    predictions: Path = typer.Option(..., "--predictions", help="CSV from `phenotype predict` (File column)."),
    out: Path = typer.Option(..., "--out", help="Output folder (failure_stats.json, failure.png)."),
) -> None:
    """NE score of correctly vs incorrectly classified series (optionally by sample_type)."""
    import pandas as pd

    from livermets.errors import UserInputError
    from livermets.featuretable import read_feature_table

    frame = read_feature_table(features, targets=["NE_Score", "NE_Class"], features=[])
    if not predictions.is_file():
        raise UserInputError(f"predictions not found: {predictions}")
    predicted = pd.read_csv(predictions)
    for column in ("File", "predicted_class", "probability"):
        if column not in predicted.columns:
            raise UserInputError(f"{predictions}: missing column {column!r}")
    merged = frame.merge(predicted[["File", "predicted_class", "probability"]], on="File", how="inner")
    if merged.empty:
        raise UserInputError(f"{predictions}: no File matches the feature table")
    from livermets.stats.failure import failure_analysis

    result = failure_analysis(merged, merged["predicted_class"], merged["probability"])
    from livermets.stats.clustered import unit_counts
    from livermets.stats.plots import plot_failure  # matplotlib: after the inputs are checked

    units = unit_counts(merged, "unique_pt", "unique_scandate", "File")
    result["units"] = units.to_dict()
    write_json(out / "failure_stats.json", result)
    plot_failure(
        merged["NE_Score"].to_numpy(),
        merged["predicted_class"].to_numpy() == merged["NE_Class"].to_numpy(),
        out / "failure.png",
        units=units.text(),
    )
    typer.echo(f"{result['incorrect'].get('n', 0)} of {result['n']} series misclassified; n = {units.text()} "
               "(descriptive, no test)")
