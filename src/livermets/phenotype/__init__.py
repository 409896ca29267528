"""NE-phenotype classification from radiomics: LASSO selection, LR / RF / XGBoost, CV ensembles, bootstrap CIs.

Two protocols (:mod:`livermets.phenotype.protocols`, each with ``evaluate()`` and ``train()``): ``paper``
reproduces the published notebooks exactly (row-level ShuffleSplit, LASSO fit once on train+val; LASSO and LR on a
pinned OpenBLAS kernel); ``grouped`` is the rigorous default for new work (patient-grouped CV, everything fitted
inside the training folds, nested hyper-parameter search, permutation test, cluster bootstrap, calibration).

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.phenotype import evaluate_to_folder, train_to_folder  # doctest: +SKIP
>>> evaluate_to_folder("features.csv", "results/grouped", protocol="grouped")["cv_auc"]  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "PROTOCOLS": "protocols",
    "Evaluation": "protocols",
    "FoldEnsemble": "protocols",
    "evaluate_to_folder": "protocols",
    "protocol_module": "protocols",
    "PaperProtocol": "protocols.paper",
    "paper_protocol": "protocols.paper",
    "PaperData": "notebooks",
    "ModelRun": "notebooks",
    "ModelSpec": "notebooks",
    "load_paper_data": "notebooks",
    "lasso_selection": "notebooks",
    "run_models": "notebooks",
    "weight_search": "notebooks",
    "GroupedConfig": "grouped",
    "GroupedResult": "grouped",
    "evaluate_grouped": "grouped",
    "train_model": "training",
    "train_to_folder": "training",
    "predict_with_folder": "training",
    "load_model_folder": "persistence",
    "save_model_folder": "persistence",
    "MODEL_NAMES": "models",
    "check_model_name": "models",
    "make_classifier": "models",
    "LassoSelector": "selection",
    "BootstrapResult": "bootstrap",
    "bootstrap_metrics": "bootstrap",
    "binary_metrics": "metrics",
    "paper_model": "published",
    "paper_model_dir": "published",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
