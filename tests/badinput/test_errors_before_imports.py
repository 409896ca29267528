"""Bad input fails before the heavy libraries load (torch, MONAI, PyRadiomics, nnU-Net, Dask, XGBoost, scikit-learn,
matplotlib): what makes such an error take seconds. Checked without timing: every bad-input case of
``test_bad_input.py`` runs in one child process (``imports_child.py``), which reports the heavy packages present in
``sys.modules`` after each error. The time itself is measured by ``benchmarks/bench_errors.py``.

A few errors can only be found by the heavy code itself (a PyRadiomics parameter file is validated by PyRadiomics;
an empty lesion mask is found by extracting; a gzip stream cut short is found when the whole volume is read, after
the model has loaded); they run last, so that they cannot hide a heavy import of another case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from badinput_data import Inputs
from imports_child import HEAVY
from test_bad_input import CASES

LATE = {
    "phenotype_train_one_class_paper": "each protocol checks the classes of its own development rows",
    "phenotype_predict_missing_feature_column": "the columns a model needs are checked with its fold models",
    "phenotype_predict_fold_file_cut_short": "the fold models are read (skops, scikit-learn) to check them",
    "phenotype_evaluate_one_class": "each protocol checks the classes of its own development rows",
    "analyze_intensities_0_to_255": "the intensities are checked when the whole CT is read, once, by the analysis",
    "radiomics_extract_bad_parameter_file": "PyRadiomics validates its parameter file",
    "radiomics_extract_empty_lesion_masks": "found by extracting the features",
    "integrity_seg_predict_truncated_ct": "a compressed stream cut short is found when the volume is read",
    "seg_evaluate_prediction_with_label_3": "seg evaluate loads matplotlib with the evaluation",
    "seg_evaluate_predictions_of_another_size": "seg evaluate loads matplotlib with the evaluation",
    "seg_predict_weights_with_flipped_bytes": "the weights are read (torch) to check them",
    "seg_predict_weights_cut_short": "the weights are read (torch) to check them",
    "seg_train_empty_masks": "found while the training cases are loaded",
}


def _run_in_one_child(argvs: list[list[str]]) -> list[dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("imports_child.py"))],
                            input=json.dumps(argvs), capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_bad_input_fails_before_the_heavy_libraries_load(inputs: Inputs, tmp_path: Path) -> None:
    names = sorted(CASES, key=lambda name: (name in LATE, name))
    argvs = []
    for name in names:
        (tmp_path / name).mkdir()
        argv, _ = CASES[name](inputs, tmp_path / name)
        argvs.append([str(a) for a in argv])
    reports = _run_in_one_child(argvs)
    assert len(reports) == len(names)
    heavy = {name: report["heavy"] for name, report in zip(names, reports, strict=True) if name not in LATE}
    assert all(report["code"] == 2 for report in reports), [r["stderr"] for r in reports if r["code"] != 2]
    loaded = {name: libraries for name, libraries in heavy.items() if libraries}
    assert not loaded, f"heavy libraries loaded before the error: {loaded}"
    assert set(HEAVY) >= {"torch", "monai", "radiomics", "nnunetv2", "dask", "xgboost", "sklearn", "matplotlib"}
