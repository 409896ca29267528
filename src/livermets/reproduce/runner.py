"""``livermets reproduce paper``: write every table, figure and REPORT.md of the paper reproduction to a folder."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from livermets.atomic import write_csv, write_json
from livermets.errors import ParameterError
from livermets.featuretable import FEATURE_COLUMNS
from livermets.phenotype.grouped import GroupedConfig, evaluate_grouped
from livermets.phenotype.metrics import METRICS
from livermets.phenotype.notebooks import ModelRun, PaperData, load_paper_data
from livermets.phenotype.plots import plot_feature_groups, plot_reliability, plot_roc_band
from livermets.phenotype.protocols.paper import PaperProtocol, paper_protocol
from livermets.phenotype.roc import bootstrap_roc
from livermets.provenance import provenance
from livermets.reproduce.kernels import measured_kernel_table
from livermets.reproduce.report import write_report
from livermets.stats.burden import one_series_per_study, study_level_statistics
from livermets.stats.failure import failure_analysis
from livermets.stats.plots import plot_burden, plot_failure

log = logging.getLogger(__name__)
TABLE_CHOICES = ("4", "all")


def _bootstrap_table(runs: list[ModelRun], with_weighting: bool) -> pd.DataFrame:
    """One row per model (and weighting) and metric: bootstrap mean, 95% CI and undefined-sample count."""
    frames = []
    for run in runs:
        summary = run.bootstrap.summary()[["metric", "mean", "low95", "high95", "n_undefined"]]
        labels = {"model": run.spec.name, **({"weighting": run.spec.label} if with_weighting else {})}
        frames.append(summary.assign(**labels)[[*labels, "metric", "mean", "low95", "high95", "n_undefined"]])
    return pd.concat(frames, ignore_index=True)


def _table4(runs: list[ModelRun]) -> pd.DataFrame:
    return _bootstrap_table(runs, with_weighting=False)


def _supp_table2(runs: list[ModelRun]) -> pd.DataFrame:
    rows = []
    for run in runs:
        s = run.cv.summary()
        weight = run.spec.weighting
        rows.append(
            {
                "model": run.spec.name,
                "weighting": run.spec.label,
                "pos_weight": weight if isinstance(weight, float) else ("balanced" if weight else ""),
                **{k: s[k] for k in ("f1_mean", "f1_min", "f1_max", "auc_mean", "auc_min", "auc_max")},
            }
        )
    return pd.DataFrame(rows)


def _supp_table3(runs: list[ModelRun]) -> pd.DataFrame:
    return _bootstrap_table(runs, with_weighting=True)


def _roc_figure(data: PaperData, runs: list[ModelRun], indices: np.ndarray, path: Path) -> None:
    curves = {}
    y = data.y_test
    for run in runs:
        grid, samples = bootstrap_roc(y[indices], run.test_probability[indices])
        _, point = bootstrap_roc(y, run.test_probability)
        curves[run.spec.name] = (grid, point[0], samples, float(np.nanmean(run.bootstrap.samples["auc"])))
    plot_roc_band(curves, path)


def reproduce_paper(
    features_csv: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    tables: str = "all",
    n_jobs: int = -1,
    n_permutations: int = 200,
    n_repeats: int = 5,
    weight_grid: Any = None,
    n_boot: int = 1000,
    where: str = "auto",
) -> dict[str, Any]:
    """Run the reproduction and write all outputs into ``out_dir``; returns a dict of the main numbers.

    ``tables="4"`` runs notebooks 1, 3 and 4 (LASSO, the three unweighted models, bootstrap, figures);
    ``"all"`` adds notebook 2's weight search (Supplementary Tables 2-3) and the grouped protocol. LASSO and LR run
    on the pinned OpenBLAS kernel; ``where`` (``auto``, ``child``, ``process``) is passed to
    :func:`~livermets.phenotype.protocols.paper.paper_protocol`.
    """
    if tables not in TABLE_CHOICES:
        raise ParameterError("{tables} must be one of {choices}, got {value!r}", choices=", ".join(TABLE_CHOICES),
                             value=tables)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_paper_data(features_csv)
    protocol = paper_protocol(
        data, weights=tables == "all", weight_grid=weight_grid, n_boot=n_boot, n_jobs=n_jobs, where=where
    )
    table4, supp2 = _write_tables(out, protocol, tables)
    unweighted = protocol.unweighted
    _write_test_predictions(out / "test_predictions.csv", data, unweighted)
    _roc_figure(data, unweighted, protocol.indices, out / "roc_test.png")
    plot_feature_groups(protocol.lasso_table, out / "figure4_feature_groups.png")
    figure3 = study_level_statistics(data.frame)  # the paper's own analysis, as published
    write_json(out / "figure3_stats.json", figure3)
    plot_burden(one_series_per_study(data.frame), out / "figure3_burden.png")
    lr = unweighted[0]
    figure5 = failure_analysis(data.test, lr.test_soft, lr.test_probability)
    figure5["model"] = "LR soft vote"
    write_json(out / "figure5_stats.json", figure5)
    plot_failure(data.test["NE_Score"].to_numpy(), lr.test_soft == data.y_test, out / "figure5_failure.png")
    grouped = _grouped_protocol(out, data, n_permutations, n_repeats, n_jobs) if tables == "all" else None
    elapsed = time.perf_counter() - started
    numbers = {
        "table4": table4,
        "supp2": supp2,
        "selected": protocol.selected,
        "figure3": figure3,
        "figure5": figure5,
        "grouped": grouped,
        "lr_fold_auc": lr.cv.folds["val_auc"].tolist(),
        "elapsed_s": elapsed,
        "tables": tables,
        "blas_kernel": protocol.blas_kernel,
        "computed_in": protocol.computed_in,
        "kernel_warning": protocol.warning,
        "kernel_table": measured_kernel_table(),
    }
    write_report(out / "REPORT.md", numbers)
    parameters = {
        "features": str(features_csv),
        "tables": tables,
        "n_permutations": n_permutations,
        "n_boot": n_boot,
        "n_repeats": n_repeats,
        "bootstrap_draw": "paper (np.random.seed(822) legacy order)",
        "openblas_kernel_lasso_lr": protocol.blas_kernel,
        "lasso_lr_computed_in": protocol.computed_in,
    }
    write_json(out / "provenance.json", provenance(parameters, command="livermets reproduce paper"))
    log.info("reproduction written to %s in %.1f s", out, elapsed)
    return numbers


def _write_tables(out: Path, protocol: PaperProtocol, tables: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LASSO features, weight search, Table 4 and Supplementary Tables 2 (and 3 with ``tables="all"``)."""
    write_csv(out / "lasso_features.csv", protocol.lasso_table)
    if protocol.search_table is not None:
        write_csv(out / "weight_search.csv", protocol.search_table)
    unweighted = protocol.unweighted
    table4 = _table4(unweighted)
    write_csv(out / "table4.csv", table4)
    supp2 = _supp_table2(protocol.runs)
    write_csv(out / "supp_table2.csv", supp2)
    if tables == "all":
        write_csv(out / "supp_table3.csv", _supp_table3(protocol.runs[len(unweighted) :]))
    return table4, supp2


def _write_test_predictions(path: Path, data: PaperData, runs: list[ModelRun]) -> None:
    """The test rows with every unweighted model's probability and soft/hard-vote class."""
    predictions = data.test[["File", "unique_scandate", "unique_pt", "NE_Score", "NE_Class"]].copy()
    for run in runs:
        predictions[f"{run.spec.name}_probability"] = run.test_probability
        predictions[f"{run.spec.name}_soft"] = run.test_soft
        predictions[f"{run.spec.name}_hard"] = run.test_hard
    write_csv(path, predictions)


def _grouped_protocol(out: Path, data: PaperData, n_permutations: int, n_repeats: int, n_jobs: int) -> dict[str, Any]:
    """The grouped protocol's LR on the same table: grouped_summary.json and its reliability plot."""
    config = GroupedConfig(model="LR", n_permutations=n_permutations, n_repeats=n_repeats, n_jobs=n_jobs)
    result = evaluate_grouped(data.frame, FEATURE_COLUMNS, config)
    write_json(out / "grouped_summary.json", result.summary)
    plot_reliability(
        result.oof["probability"].to_numpy(), result.oof["NE_Class"].to_numpy(), out / "grouped_reliability.png"
    )
    return result.summary


__all__ = ["METRICS", "reproduce_paper"]
