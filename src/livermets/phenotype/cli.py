"""``livermets phenotype``: evaluate a protocol, train a fold-ensemble model, predict new series."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from livermets.atomic import outputs, write_csv, write_json
from livermets.featuretable import FEATURE_COLUMNS, read_csv_table, read_feature_table
from livermets.provenance import provenance


def check_model_name(model: str) -> str:
    """Validate a model name (imports scikit-learn only when a command runs, keeping ``livermets --help`` fast)."""
    from livermets.phenotype.models import check_model_name as check

    return check(model)


log = logging.getLogger(__name__)

app = typer.Typer(
    help="NE-phenotype classification from radiomics (paper and grouped protocols).", no_args_is_help=True
)

FEATURES = typer.Option(..., "--features", exists=False, help="Feature table CSV (published schema).")


@app.command("evaluate")
@outputs("out")
def evaluate(
    features: Path = FEATURES,
    out: Path = typer.Option(..., "--out", help="Output folder (summary.json, oof_predictions.csv, plots)."),
    protocol: str = typer.Option("grouped", help="grouped (default, rigorous) or paper (the notebooks)."),
    model: str = typer.Option("LR", help="LR, RF or XGB."),
    n_permutations: int = typer.Option(200, help="Patient-level label permutations (grouped)."),
    n_repeats: int = typer.Option(5, help="Repeats of the outer grouped CV."),
    n_boot: int = typer.Option(1000, help="Bootstrap samples for CIs."),
    seed: int = typer.Option(0, help="Seed of splits, permutations and bootstrap (grouped)."),
    n_jobs: int = typer.Option(-1, help="Parallel jobs (-1 = all cores)."),
) -> None:
    """Estimate performance under a protocol and write DIR/summary.json."""
    from livermets.errors import UserInputError

    name = check_model_name(model)
    if protocol == "grouped":
        from livermets.phenotype.grouped import GroupedConfig, evaluate_grouped
        from livermets.phenotype.plots import plot_reliability

        frame = read_feature_table(features, targets=["NE_Score", "NE_Class"])
        config = GroupedConfig(
            model=name, n_permutations=n_permutations, n_repeats=n_repeats, n_boot=n_boot, seed=seed, n_jobs=n_jobs
        )
        result = evaluate_grouped(frame, FEATURE_COLUMNS, config)
        summary = result.summary
        write_csv(out / "oof_predictions.csv", result.oof)
        plot_reliability(
            result.oof["probability"].to_numpy(), result.oof["NE_Class"].to_numpy(), out / "reliability.png"
        )
    elif protocol == "paper":
        from livermets.reproduce.paper import load_paper_data
        from livermets.reproduce.protocol import paper_protocol

        data = load_paper_data(features)
        paper_result = paper_protocol(data, models=(name,), n_boot=n_boot, n_jobs=n_jobs)
        run = paper_result.run(name)
        test = {str(r["metric"]): r for r in run.bootstrap.summary().to_dict("records")}
        cv = run.cv.summary()
        summary = {
            "protocol": "paper",
            "model": name,
            "cv_auc": cv["auc_mean"],
            "cv_auc_low95": cv["auc_min"],
            "cv_auc_high95": cv["auc_max"],
            "cv_auc_ci_method": "min/max over the 5 ShuffleSplit folds",
            "permutation_p": None,
            "n_permutations": 0,
            "test_auc": float(test["auc"]["mean"]),
            "test_auc_low95": float(test["auc"]["low95"]),
            "test_auc_high95": float(test["auc"]["high95"]),
            "test_metrics": {m: float(row["mean"]) for m, row in test.items()},
            "openblas_kernel_lasso_lr": paper_result.blas_kernel,
        }
    else:
        raise UserInputError(f"unknown protocol {protocol!r}; choose grouped or paper")
    summary["provenance"] = provenance(
        {"protocol": protocol, "model": name, "features": str(features)}, "livermets phenotype evaluate"
    )
    write_json(out / "summary.json", summary)
    typer.echo(
        f"{protocol} {name}: CV AUC {summary['cv_auc']:.3f} "
        f"[{summary['cv_auc_low95']:.3f}, {summary['cv_auc_high95']:.3f}]"
        + (f", permutation p {summary['permutation_p']:.3f}" if summary.get("permutation_p") else "")
        + (f", test AUC {summary['test_auc']:.3f}" if "test_auc" in summary else "")
    )


@app.command("train")
@outputs("out")
def train(
    features: Path = FEATURES,
    out: Path = typer.Option(..., "--out", help="Model folder to write."),
    protocol: str = typer.Option("grouped", help="grouped (default) or paper."),
    model: str = typer.Option("LR", help="LR, RF or XGB."),
    seed: int = typer.Option(0, help="Seed (grouped protocol)."),
    n_jobs: int = typer.Option(-1, help="Parallel jobs."),
) -> None:
    """Train a 5-fold ensemble on the development rows (Group != test) and store it without pickle."""
    from livermets.errors import UserInputError
    from livermets.phenotype.training import PROTOCOLS, train_to_folder

    model = check_model_name(model)  # fail on a bad name before reading the table
    if protocol not in PROTOCOLS:
        raise UserInputError(f"unknown protocol {protocol!r}; choose grouped or paper")
    frame = read_feature_table(features, targets=["NE_Score", "NE_Class"])
    config = train_to_folder(frame, out, protocol=protocol, model=model, n_jobs=n_jobs, seed=seed)
    cv = config.get("cv_performance")
    estimate = (f", patient-grouped CV AUC {cv['auc']:.3f} on {cv['n_patients']} patients" if cv else
                ", no patient-grouped CV estimate (paper protocol)")
    typer.echo(f"model written to {out} ({config['protocol']} {config['model']}, threshold {config['threshold']:.3f}"
               f"{estimate})")


@app.command("predict")
@outputs("out")
def predict(
    model: Path = typer.Option(..., "--model", help="Model folder from `phenotype train`."),
    features: Path = FEATURES,
    out: Path = typer.Option(..., "--out", help="Predictions CSV."),
) -> None:
    """Predict NE phenotype for every series; Group/NE columns are not needed."""
    from livermets.phenotype.caveats import FOLD_DISAGREEMENT
    from livermets.phenotype.training import predict_with_folder

    frame = read_csv_table(features)
    predictions = predict_with_folder(model, frame, str(features))
    write_csv(out, predictions)
    typer.echo(f"{len(predictions)} predictions written to {out}")
    flags = predictions["flags"].str.split(";")
    outside = int(flags.map(lambda f: "out_of_range" in f).sum())
    disagree = int(flags.map(lambda f: "fold_disagreement" in f).sum())
    if outside:
        log.warning("%d of %d row(s) have features outside the model's training range (up to %.2g times the range "
                    "beyond it): their probabilities are extrapolations (column flags)", outside, len(predictions),
                    float(predictions["max_outside_range"].max()))
    if disagree:
        log.warning("%d of %d row(s): the fold models disagree (probabilities spread by %.1f or more; column flags)",
                    disagree, len(predictions), FOLD_DISAGREEMENT)
