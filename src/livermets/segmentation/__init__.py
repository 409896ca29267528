"""Liver and lesion segmentation: MONAI 3D U-Net / SegResNet training and prediction, nnU-Net v2 models
(:mod:`livermets.segmentation.nnunet`), plausibility checks of every prediction.

Modules: :mod:`config` (the validated ``config.yaml`` of a model folder and its presets), :mod:`monai` (the MONAI
U-Net / SegResNet engine: networks, transforms, training with an iteration budget and validation-based selection,
resume, the lesion threshold's calibration), :mod:`nnunet` (the nnU-Net v2 engine),
:mod:`predict` (label maps on each input's exact grid, any kind of model folder), :mod:`options` (what a prediction
run changes in a model's inference settings), :mod:`qc` (plausibility checks), :mod:`default_model` (which model is
used when none is given), :mod:`registry` and :mod:`install` (the models ``livermets models`` installs).

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.segmentation import PredictionOptions, load_segmenter  # doctest: +SKIP
>>> seg = load_segmenter("models/unet", options=PredictionOptions(overlap=0.5))  # doctest: +SKIP
>>> label = seg.predict_image(read_image("ct.nii.gz"))  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "SegConfig": "config",
    "InferenceConfig": "config",
    "QCConfig": "config",
    "load_config": "config",
    "save_config": "config",
    "TrainResult": "monai.train",
    "train_model": "monai.train",
    "calibrate_model": "monai.calibrate",
    "PredictionOptions": "options",
    "ModelChoice": "predict",
    "Segmenter": "predict",
    "load_segmenter": "predict",
    "model_kind": "predict",
    "plan_segmenter": "predict",
    "predict_cohort": "predict",
    "QCRecord": "qc",
    "check_prediction": "qc",
    "resolve_model": "default_model",
    "ModelInfo": "default_model",
    "default_model_name": "default_model",
    "install_model": "install",
    "list_models": "install",
    "model_info": "install",
    "remove_model": "install",
    "verify_model": "install",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
