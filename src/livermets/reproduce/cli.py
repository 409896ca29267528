"""``livermets reproduce paper``: the paper's tables, figures and a side-by-side REPORT.md."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Reproduce the paper from its published feature table.", no_args_is_help=True)


@app.command("paper")
def paper(
    features: Path | None = typer.Option(None, "--features", help="Final_ResampledClassificationData.csv (or same "
                                         "schema; default: the paper's published table, fetched on first use, see "
                                         "`livermets data info nih_mip_msclc`)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    tables: str = typer.Option(
        "all",
        help="'4' = notebooks 1, 3, 4 (Table 4, figures); 'all' adds the weight "
        "search (Supp. Tables 2-3) and the grouped protocol.",
    ),
    n_permutations: int = typer.Option(200, help="Permutations of the grouped protocol."),
    n_repeats: int = typer.Option(5, help="Repeats of the grouped CV."),
    n_jobs: int = typer.Option(-1, help="Parallel jobs (-1 = all cores)."),
) -> None:
    """Write table4.csv, supp_table2/3.csv, lasso_features.csv, figure stats, PNG figures and REPORT.md.

    Without --features, the paper's published feature table is used: from LIVERMETS_DATA_DIR or the data home, or
    downloaded on first use from the authors' repository (checked by SHA-256; never redistributed).

    Example: ``livermets reproduce paper --out paper_repro --tables 4``
    """
    from livermets.errors import UserInputError
    from livermets.featuretable import TARGET_COLUMNS, read_feature_table

    if tables not in ("4", "all"):  # the options and the table are checked before scikit-learn loads
        raise UserInputError(f"--tables must be one of 4, all, got {tables!r}")
    if features is None:
        from livermets.data import paper_features

        features = paper_features()
    read_feature_table(features, targets=TARGET_COLUMNS)
    from livermets.reproduce.runner import reproduce_paper

    numbers = reproduce_paper(
        features, out, tables=tables, n_jobs=n_jobs, n_permutations=n_permutations, n_repeats=n_repeats
    )
    lr = numbers["table4"].query("model == 'LR'").set_index("metric")["mean"]
    typer.echo("LR test: " + ", ".join(f"{k} {v:.3f}" for k, v in lr.items()))
    typer.echo(f"written to {out} in {numbers['elapsed_s']:.1f} s (see REPORT.md)")
