"""The paper protocol (notebooks 1-4) with LASSO and LR on the pinned OpenBLAS kernel, whatever kernel runs here.

:func:`evaluate` (``phenotype evaluate --protocol paper``) and :func:`paper_protocol` (also used by ``reproduce
paper``) run the notebooks of :mod:`livermets.phenotype.notebooks`; :func:`train` fits the fold models that
``phenotype train --protocol paper`` stores.

Only LASSO and the ``newton-cg`` logistic regression use BLAS in a way that moves the results: random forests and
XGBoost's ``gblinear`` fit without OpenBLAS, and the bootstrap metrics are sums and ranks. :func:`paper_protocol`
therefore splits the work (see :mod:`livermets.phenotype.pinned` for the choice of process):

- this process runs :data:`~livermets.phenotype.pinned.PINNED_KERNEL`: everything here, in one joblib pool (LASSO
  with one BLAS thread; every fit already uses one);
- otherwise, when the CPU can run that kernel: a pinned child process computes LASSO and every LR fit (weight search,
  CV folds, refit, bootstrap) sequentially, while this process fits the random forests and XGBoost in its pool on the
  features of its own LASSO. The two selections are the same on every kernel measured (the coefficients differ in
  the 14th digit); if they ever differ, the forests and XGBoost are fitted again on the child's selection;
- when the CPU cannot run the kernel: everything here, with a warning naming the kernel used.

Examples
--------
>>> from livermets.phenotype.notebooks import load_paper_data  # doctest: +SKIP
>>> from livermets.phenotype.protocols.paper import paper_protocol  # doctest: +SKIP
>>> result = paper_protocol(load_paper_data("Final_ResampledClassificationData.csv"))  # doctest: +SKIP
>>> result.blas_kernel, result.run("LR").bootstrap.summary()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from livermets.errors import UserInputError
from livermets.featuretable import FEATURE_COLUMNS
from livermets.phenotype import pinned
from livermets.phenotype.cv import paper_splits
from livermets.phenotype.models import MODEL_NAMES, check_model_name, make_classifier
from livermets.phenotype.notebooks import (
    ModelRun,
    ModelSpec,
    PaperData,
    lasso_selection,
    load_paper_data,
    paper_indices,
    run_models,
    weight_search,
)
from livermets.phenotype.protocols import Evaluation, FoldEnsemble
from livermets.phenotype.selection import FixedSelector, LassoSelector

log = logging.getLogger(__name__)

LinearPart = tuple[list[str], pd.DataFrame, pd.DataFrame | None, list[ModelRun]]


@dataclass
class PaperProtocol:
    """Results of the paper protocol and where its BLAS-sensitive part ran.

    ``runs`` holds the unweighted model of every name (in the requested order), then, with the weight search, the
    AUC/BAL/F1-weighted variants of every name; ``search_table`` the weight search (``None`` without it).
    ``blas_kernel`` is the OpenBLAS kernel of the LASSO and LR computations, ``computed_in`` ``"process"`` or
    ``"child"``, ``warning`` a sentence when the pinned kernel could not be used.
    """

    selected: list[str]
    lasso_table: pd.DataFrame
    indices: NDArray[np.intp]
    runs: list[ModelRun]
    search_table: pd.DataFrame | None
    blas_kernel: str
    computed_in: str
    warning: str | None = None

    def run(self, model: str, weighting: str = "none") -> ModelRun:
        """The run of ``model`` with weighting label ``weighting`` (``none``, ``AUC``, ``BAL`` or ``F1``)."""
        for candidate in self.runs:
            if candidate.spec.name == model and candidate.spec.label == weighting:
                return candidate
        raise KeyError(f"no {model} run with weighting {weighting!r}")

    @property
    def unweighted(self) -> list[ModelRun]:
        """The unweighted runs (Table 4), in the requested model order."""
        return [candidate for candidate in self.runs if candidate.spec.label == "none"]


def _require_selection(data: PaperData, selected: list[str]) -> None:
    if not selected:
        raise UserInputError(f"{data.source}: LASSO selected no feature (alpha 0.35); cannot train the models")


def linear_part(
    data: PaperData, with_lr: bool, weights: bool, weight_grid: Any, indices: NDArray[np.intp]
) -> LinearPart:
    """LASSO and every LR computation, sequentially: what the pinned child process runs.

    Returns the selected features, the LASSO coefficient table, LR's weight search (or ``None``) and the LR runs
    (unweighted first, then AUC/BAL/F1 with the weight search).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        selected, table = lasso_selection(data)
    _require_selection(data, selected)
    if not with_lr:
        return selected, table, None, []
    specs = [ModelSpec("LR")]
    search = None
    if weights:
        search, weighted = weight_search(data, selected, models=("LR",), grid=weight_grid, n_jobs=1)
        specs += weighted
    return selected, table, search, run_models(data, selected, specs, indices, n_jobs=1)


def _fit_models(
    data: PaperData,
    selected: list[str],
    models: tuple[str, ...],
    weights: bool,
    weight_grid: Any,
    indices: NDArray[np.intp],
    n_jobs: int,
) -> tuple[pd.DataFrame | None, list[ModelRun]]:
    """Weight search (optional) and runs of ``models`` in this process's joblib pool."""
    if not models:
        return None, []
    specs = [ModelSpec(name) for name in models]
    search = None
    if weights:
        search, weighted = weight_search(data, selected, models=models, grid=weight_grid, n_jobs=n_jobs)
        specs += weighted
    return search, run_models(data, selected, specs, indices, n_jobs=n_jobs)


def _ordered(runs: list[ModelRun], models: tuple[str, ...]) -> list[ModelRun]:
    rank = {name: k for k, name in enumerate(models)}
    return sorted(runs, key=lambda run: (run.spec.label != "none", rank[run.spec.name]))  # stable: AUC, BAL, F1


def _ordered_search(tables: Sequence[pd.DataFrame | None], models: tuple[str, ...]) -> pd.DataFrame | None:
    present = [table for table in tables if table is not None]
    if not present:
        return None
    merged = pd.concat(present, ignore_index=True)
    order = merged["model"].map({name: k for k, name in enumerate(models)})
    return merged.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


def _in_process(
    data: PaperData, models: tuple[str, ...], weights: bool, weight_grid: Any, indices: NDArray[np.intp],
    n_jobs: int, plan: pinned.Plan,
) -> PaperProtocol:
    with threadpool_limits(limits=1, user_api="blas"):
        selected, table = lasso_selection(data)
    _require_selection(data, selected)
    search, runs = _fit_models(data, selected, models, weights, weight_grid, indices, n_jobs)
    return PaperProtocol(selected, table, indices, _ordered(runs, models), search, plan.kernel, "process", plan.warning)


def _with_child(
    data: PaperData, models: tuple[str, ...], weights: bool, weight_grid: Any, indices: NDArray[np.intp],
    n_jobs: int,
) -> PaperProtocol:
    others = tuple(name for name in models if name != "LR")
    with pinned.PinnedCall(linear_part, data, "LR" in models, weights, weight_grid, indices) as child:
        local, _ = lasso_selection(data)
        search, runs = _fit_models(data, local, others, weights, weight_grid, indices, n_jobs) if local else (None, [])
        (selected, table, lr_search, lr_runs), kernel = child.result()
    if selected != local and others:
        log.info("LASSO selections differ between kernels; fitting %s again on the pinned selection", others)
        search, runs = _fit_models(data, selected, others, weights, weight_grid, indices, n_jobs)
    warning = None
    if kernel != pinned.PINNED_KERNEL:
        warning = (
            f"the child process asked for OpenBLAS kernel {pinned.PINNED_KERNEL} but runs {kernel} (numpy/scipy "
            "without a DYNAMIC_ARCH OpenBLAS?); the paper protocol's LR results can differ from the paper's"
        )
        log.warning(warning)
    return PaperProtocol(
        selected, table, indices, _ordered(lr_runs + runs, models), _ordered_search([lr_search, search], models),
        kernel, "child", warning,
    )


def paper_protocol(
    data: PaperData,
    models: Sequence[str] = MODEL_NAMES,
    weights: bool = False,
    weight_grid: Any = None,
    n_boot: int = 1000,
    n_jobs: int = -1,
    where: str = "auto",
) -> PaperProtocol:
    """Notebooks 1, 3 and 4 (and notebook 2's weight search with ``weights=True``) with LR on the pinned kernel.

    Parameters
    ----------
    data
        From :func:`~livermets.phenotype.notebooks.load_paper_data`.
    models
        Model names (``LR``, ``RF``, ``XGB``), in the order of the returned runs.
    weights
        Run the positive-class weight search and add the AUC/BAL/F1-weighted runs (Supplementary Tables 2-3).
    weight_grid
        Candidate weights (default: the paper's 200).
    n_boot
        Study-level bootstrap samples (paper: 1000).
    n_jobs
        Parallel jobs of this process's pool (-1 = all cores).
    where
        ``auto``, ``child`` or ``process``: see :func:`livermets.phenotype.pinned.plan`.
    """
    names = tuple(dict.fromkeys(check_model_name(name) for name in models))
    if not names:
        raise UserInputError("paper protocol: no model given")
    indices = paper_indices(data, n_boot=n_boot)
    plan = pinned.plan(where)
    if plan.where == "child":
        try:
            return _with_child(data, names, weights, weight_grid, indices, n_jobs)
        except pinned.KernelCrashError:
            kernel = pinned.blas_kernels()
            plan = pinned.Plan("process", kernel, pinned.unpinned_warning(kernel, "the child stopped on an illegal "
                                                                                   "instruction"))
    if plan.warning:
        log.warning(plan.warning)
    return _in_process(data, names, weights, weight_grid, indices, n_jobs, plan)


def evaluate(features: str | os.PathLike[str], model: str = "LR", n_boot: int = 1000, n_jobs: int = -1) -> Evaluation:
    """Notebooks 1, 3 and 4 for ``model`` on the feature table ``features``; the CV and test numbers as a summary.

    The CV interval is the min/max over the five ShuffleSplit folds (the paper's), the test metrics are the means
    and 95% intervals of the study-level bootstrap; there is no permutation test and no out-of-fold table.
    """
    result = paper_protocol(load_paper_data(features), models=(model,), n_boot=n_boot, n_jobs=n_jobs)
    return Evaluation(summary=_summary(result, check_model_name(model)))


def _summary(result: PaperProtocol, model: str) -> dict[str, Any]:
    """The ``summary.json`` numbers of one model's run."""
    run = result.run(model)
    test = {str(r["metric"]): r for r in run.bootstrap.summary().to_dict("records")}
    cv = run.cv.summary()
    return {
        "protocol": "paper",
        "model": model,
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
        "openblas_kernel_lasso_lr": result.blas_kernel,
    }


def train(dev: pd.DataFrame, model: str = "LR", n_jobs: int = -1, seed: int = 0) -> FoldEnsemble:
    """LASSO (alpha 0.35, unscaled) on the development rows ``dev``, then ``model`` on its features in 5 folds.

    The folds are the notebooks' ShuffleSplit (fixed seeds: ``seed`` is not used); the threshold is 0.5 and there
    is no patient-grouped CV estimate. Runs in this process, on its OpenBLAS kernel.
    """
    X = dev[FEATURE_COLUMNS]
    y = dev["NE_Class"].to_numpy().astype(np.int64)
    selector = LassoSelector(min_features=1).fit(X, dev["NE_Score"].to_numpy(dtype=float))
    selected = [f for f, keep in zip(FEATURE_COLUMNS, selector.get_support(), strict=True) if keep]
    pipeline = Pipeline([("select", FixedSelector(selected)), ("clf", make_classifier(check_model_name(model)))])
    fold_models = Parallel(n_jobs=n_jobs)(
        delayed(_fit_fold)(pipeline, X, y, rows) for rows, _ in paper_splits(len(dev))
    )
    return FoldEnsemble(
        models=list(fold_models),
        threshold=0.5,
        selected_per_fold=[selected] * len(fold_models),
        input_kind="dataframe",
        cv_performance=None,  # the paper's row-level splits give no patient-grouped estimate
    )


def _fit_fold(pipeline: Pipeline, X: pd.DataFrame, y: NDArray[np.int64], rows: NDArray[np.intp]) -> Pipeline:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the recipe's newton-cg line-search warnings
        return clone(pipeline).fit(X.iloc[rows], y[rows])
