"""Benchmark: `livermets reproduce paper --tables 4` vs a straightforward notebook-style implementation.

Both do the same work on the published feature table: LASSO (notebook 1); LR, RF and XGBoost 5-fold ShuffleSplit
CV with fold models, test soft- and hard-vote ensembles (notebook 3); 1000 study-level bootstrap samples with
seven metrics each for both ensembles of every model (notebook 4); ROC-with-band, feature-group, burden and failure
figures. The baseline follows the notebooks' style: sequential ``cross_validate``, per-sample DataFrame filtering
and per-sample scikit-learn metric calls, ``roc_curve`` per sample for the band.

livermets runs twice: as ``reproduce paper`` chooses on this machine (LASSO and LR in this process when it already
runs the pinned OpenBLAS kernel, Haswell), and with LASSO and LR forced into the pinned child process (what a
process on another kernel, e.g. SkylakeX, does). The start of a bare child (Python, numpy, scipy) and of one that
imports the paper protocol's modules are timed on their own.

Wall times depend on what else runs on the machine (the baseline uses one core, livermets all of them), so CPU times
are printed too: this process plus its finished child processes (pool workers, the pinned child).

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_phenotype.py [path/to/Final_ResampledClassificationData.csv]
Prints the wall and CPU times and the ratios livermets / baseline (target <= 0.1 for the wall time).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Lasso, LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import ShuffleSplit, cross_validate
from xgboost import XGBClassifier

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared/data/nih_mip_msclc/Final_ResampledClassificationData.csv"


def notebook_style(csv: Path, out: Path) -> None:
    warnings.simplefilter("ignore")
    df = pd.read_csv(csv)
    cols = list(df.columns)
    features = cols[cols.index("original_shape_Elongation") : cols.index("Num_Lesions") + 1]
    merge = df[df["Group"] != "test"]
    test_df = df[df["Group"] == "test"]
    lasso = Lasso(alpha=0.35).fit(merge[features], merge["NE_Score"])
    selected = [f for f, c in zip(features, lasso.coef_, strict=True) if c != 0]
    pd.DataFrame({"Feature": selected}).to_csv(out / "LASSO_SelectedFeatures.csv", index=False)
    X, y = merge[selected], merge["NE_Class"]
    X_test, y_test = test_df[selected], test_df["NE_Class"]
    cv = ShuffleSplit(n_splits=5, test_size=0.20, random_state=2024)
    models = {
        "LR": LogisticRegression(random_state=2024, C=3, solver="newton-cg", max_iter=10000),
        "RF": RandomForestClassifier(n_estimators=1000, random_state=200, criterion="gini", min_samples_leaf=2),
        "XGB": XGBClassifier(tree_method="hist", seed=100, booster="gblinear"),
    }
    prediction_files = {}
    for name, model in models.items():
        res = cross_validate(
            model, X, y, cv=cv, scoring=("f1", "roc_auc"), return_estimator=True, return_train_score=True
        )
        probs = [est.predict_proba(X_test)[:, 1] for est in res["estimator"]]
        bins = [est.predict(X_test) for est in res["estimator"]]
        soft = np.mean(probs, axis=0)
        hard = (np.mean(bins, axis=0) >= 0.5).astype(int)
        for kind, pred_bin, contin in (("SoftVote", (soft >= 0.5).astype(int), soft), ("HardVote", hard, hard)):
            pred_df = pd.DataFrame(
                {"File": test_df["File"].tolist(), "gt": y_test.tolist(), "pred_bin": pred_bin, "pred_contin": contin}
            )
            path = out / f"{name}_{kind}_predictions_test.csv"
            pred_df.to_csv(path, index=False)
            prediction_files[(name, kind)] = path
    all_scandates = np.unique(test_df["unique_scandate"])
    np.random.seed(822)  # noqa: NPY002 - the notebook's legacy stream, on purpose
    samples = []
    for _ in range(1000):
        sample = []
        for date in all_scandates:
            series = test_df.loc[test_df["unique_scandate"] == date, "File"]
            sample.append(np.random.choice(series.tolist(), size=1, replace=False).item())  # noqa: NPY002
        samples.append(sample)
    rows = []
    bands = {}
    grid = np.linspace(0, 1, 101)
    for (name, kind), path in prediction_files.items():
        pred_df = pd.read_csv(path)
        metrics: dict[str, list[float]] = {k: [] for k in ("acc", "ppv", "npv", "sens", "spec", "f1", "auc")}
        tprs = []
        for i in range(1000):
            boot = pred_df[pred_df["File"].isin(samples[i])]
            yt, yp, pp = boot["gt"].tolist(), boot["pred_bin"].tolist(), boot["pred_contin"].tolist()
            tn, fp, fn, tp = confusion_matrix(yt, yp).ravel()
            metrics["acc"].append(accuracy_score(yt, yp))
            metrics["ppv"].append(precision_score(yt, yp))
            metrics["sens"].append(recall_score(yt, yp))
            metrics["f1"].append(f1_score(yt, yp))
            metrics["spec"].append(tn / (tn + fp))
            metrics["npv"].append(tn / (tn + fn) if tn + fn else np.nan)
            metrics["auc"].append(roc_auc_score(yt, pp))
            if kind == "SoftVote":
                fpr, tpr, _ = roc_curve(yt, pp)
                tprs.append(np.interp(grid, fpr, tpr))
        if kind == "SoftVote":
            bands[name] = np.array(tprs)
        rows.append(
            {
                "model": f"{name}_{kind}",
                **{k: np.nanmean(v) for k, v in metrics.items()},
                **{f"{k}_low": np.nanquantile(v, 0.025) for k, v in metrics.items()},
                **{f"{k}_high": np.nanquantile(v, 0.975) for k, v in metrics.items()},
            }
        )
    pd.DataFrame(rows).to_csv(out / "bootstrap_test_all_models.csv", index=False)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, (name, tprs) in zip(axes, bands.items(), strict=True):
        low, high = np.quantile(tprs, [0.025, 0.975], axis=0)
        ax.fill_between(grid, low, high, alpha=0.3)
        ax.plot(grid, tprs.mean(axis=0))
        ax.set_title(name)
    fig.savefig(out / "roc.png", dpi=110)
    plt.close(fig)
    groups = pd.Series([f.split("_")[1] for f in selected]).value_counts(normalize=True)
    fig, ax = plt.subplots()
    ax.bar(groups.index, groups.to_numpy())
    fig.savefig(out / "fig4.png", dpi=110)
    plt.close(fig)
    studies = df.groupby("unique_scandate", sort=False).head(1)
    stats.spearmanr(studies["original_shape_VoxelVolume"], studies["NE_Score"])
    fig, axes = plt.subplots(2, 1, figsize=(4, 7))
    axes[0].scatter(studies["original_shape_VoxelVolume"], studies["NE_Score"])
    axes[1].boxplot([studies.loc[studies["NE_Class"] == k, "original_shape_VoxelVolume"] for k in (0, 1)])
    fig.savefig(out / "fig3.png", dpi=110)
    plt.close(fig)
    lr_soft = pd.read_csv(prediction_files[("LR", "SoftVote")])
    correct = lr_soft["gt"] == lr_soft["pred_bin"]
    fig, ax = plt.subplots()
    ax.boxplot([test_df["NE_Score"][correct.to_numpy()], test_df["NE_Score"][~correct.to_numpy()]])
    fig.savefig(out / "fig5.png", dpi=110)
    plt.close(fig)


def child_start() -> tuple[float, float]:
    """Wall time of a pinned child that loads numpy/scipy, and of one that also imports the paper protocol."""
    from livermets.phenotype import pinned
    from livermets.phenotype.protocols import paper as protocol

    times = []
    for function, argument in ((pinned.blas_kernels, None), (str, protocol.PaperProtocol)):
        start = time.perf_counter()
        with pinned.PinnedCall(function) if argument is None else pinned.PinnedCall(function, argument) as call:
            call.result()
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(work: Callable[[], object]) -> tuple[float, float, object]:
    """Wall and CPU seconds of ``work()`` (pool workers are shut down inside the measurement) and its result."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)  # every run starts its own pool workers, as a command does
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = work()
    get_reusable_executor().shutdown(wait=True)  # reap the workers so that their CPU time is counted
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


def main() -> None:
    csv = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CSV
    from livermets.reproduce.runner import reproduce_paper

    with tempfile.TemporaryDirectory() as tmp:
        baseline, baseline_cpu, _ = timed(lambda: notebook_style(csv, Path(tmp)))
    print(f"notebook-style baseline : {baseline:7.2f} s wall, {baseline_cpu:7.2f} s CPU")
    for where in ("auto", "child"):
        with tempfile.TemporaryDirectory() as tmp:
            seconds, cpu, numbers = timed(lambda: reproduce_paper(csv, tmp, tables="4", where=where))  # noqa: B023
        assert isinstance(numbers, dict)
        print(f"livermets --tables 4    : {seconds:7.2f} s wall, {cpu:7.2f} s CPU (LASSO+LR in "
              f"{numbers['computed_in']}, kernel {numbers['blas_kernel']}; wall ratio {seconds / baseline:.3f}, "
              f"target <= 0.1; CPU ratio {cpu / baseline_cpu:.3f})")
    bare, imports = child_start()
    print(f"pinned child start      : {bare:7.2f} s bare (numpy, scipy), {imports:.2f} s with the protocol's imports")


if __name__ == "__main__":
    main()
