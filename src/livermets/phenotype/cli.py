"""``livermets phenotype``: evaluate a protocol, train a fold-ensemble model, predict new series."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from livermets.atomic import outputs, write_csv


def check_model_name(model: str) -> str:
    """Validate a model name (imports scikit-learn only when a command runs, keeping ``livermets --help`` fast)."""
    from livermets.phenotype.models import check_model_name as check

    return check(model)


log = logging.getLogger(__name__)

app = typer.Typer(
    help="NE-phenotype classification from radiomics (paper and grouped protocols).", no_args_is_help=True
)

FEATURES = typer.Option(..., "--features", exists=False, help="Feature table CSV (published schema).")
FEATURES_OR_PUBLISHED = typer.Option(None, "--features", exists=False,
                                     help="Feature table CSV (published schema); or --published.")
PUBLISHED = typer.Option(False, "--published", help="Use the paper's published feature table (from LIVERMETS_DATA_DIR "
                         "or the data home, or fetched on first use: `livermets data info nih_mip_msclc`).")


def feature_table(features: Path | None, published: bool) -> Path:
    """The table given with ``--features``, or the paper's published table with ``--published`` (fetched on first
    use)."""
    from livermets.errors import UserInputError

    if published and features is not None:
        raise UserInputError("give --features or --published, not both")
    if features is not None:
        return features
    if not published:
        raise UserInputError("missing --features (or --published for the paper's published feature table)")
    from livermets.data import paper_features

    return paper_features()


@app.command("evaluate")
@outputs("out")
def evaluate(
    features: Path | None = FEATURES_OR_PUBLISHED,
    published: bool = PUBLISHED,
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
    from livermets.featuretable import read_feature_table  # pandas: on use
    from livermets.phenotype.protocols import check_protocol, evaluate_to_folder

    check_protocol(protocol)
    if protocol == "grouped":  # the options first, then the table, all before scikit-learn loads
        from livermets.phenotype.grouped_config import GroupedConfig

        GroupedConfig(model=model, n_permutations=n_permutations, n_repeats=n_repeats, n_boot=n_boot, seed=seed,
                      n_jobs=n_jobs)
    features = feature_table(features, published)
    read_feature_table(features, targets=["NE_Score", "NE_Class"])

    summary = evaluate_to_folder(
        features, out, protocol=protocol, model=model, n_permutations=n_permutations, n_repeats=n_repeats,
        n_boot=n_boot, seed=seed, n_jobs=n_jobs,
    )
    typer.echo(
        f"{summary['protocol']} {summary['model']}: CV AUC {summary['cv_auc']:.3f} "
        f"[{summary['cv_auc_low95']:.3f}, {summary['cv_auc_high95']:.3f}]"
        + (f", permutation p {summary['permutation_p']:.3f}" if summary.get("permutation_p") else "")
        + (f", test AUC {summary['test_auc']:.3f}" if "test_auc" in summary else "")
    )


@app.command("train")
@outputs("out")
def train(
    features: Path | None = FEATURES_OR_PUBLISHED,
    published: bool = PUBLISHED,
    out: Path = typer.Option(..., "--out", help="Model folder to write."),
    protocol: str = typer.Option("grouped", help="grouped (default) or paper."),
    model: str = typer.Option("LR", help="LR, RF or XGB."),
    seed: int = typer.Option(0, help="Seed (grouped protocol)."),
    n_jobs: int = typer.Option(-1, help="Parallel jobs."),
) -> None:
    """Train a 5-fold ensemble on the development rows (Group != test) and store it without pickle."""
    from livermets.featuretable import read_feature_table  # pandas: on use

    frame = read_feature_table(feature_table(features, published), targets=["NE_Score", "NE_Class"])
    from livermets.phenotype.protocols import check_protocol
    from livermets.phenotype.training import train_to_folder

    model = check_model_name(model)
    check_protocol(protocol)
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
    from livermets.featuretable import read_csv_table  # pandas: on use
    from livermets.phenotype.model_config import read_model_config

    read_model_config(model)  # the model folder and the table are checked before scikit-learn loads
    frame = read_csv_table(features)
    from livermets.phenotype.caveats import FOLD_DISAGREEMENT
    from livermets.phenotype.training import predict_with_folder

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
