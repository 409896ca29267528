"""nnU-Net v2 backend: export a manifest as an nnU-Net dataset, train and fine-tune 3d_fullres in-process, and predict
with a livermets nnU-Net model folder or any nnU-Net v2 result folder (alone, or liver and lesions from two models),
and run TotalSegmentator's liver and liver-lesion models as TotalSegmentator runs them.
See docs/nnunet.md.

nnunetv2 is imported only inside the functions that need it; the public names below are imported on first use
(PEP 562).

Examples
--------
>>> from livermets.segmentation.nnunet import export_nnunet_dataset, NnunetSegmenter  # doctest: +SKIP
>>> export_nnunet_dataset("cohort/manifest.csv", "nnUNet_raw", dataset_id=501)  # doctest: +SKIP
>>> NnunetSegmenter("models/nnunet").predict_image(ct)  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "export_nnunet_dataset": "dataset",
    "grouped_splits": "dataset",
    "train_nnunet": "train",
    "NnunetTrainResult": "train",
    "NnunetSegmenter": "predictor",
    "LabelMap": "predictor",
    "parse_label_map": "predictor",
    "locate_model": "predictor",
    "is_nnunet_folder": "predictor",
    "CompositeSegmenter": "composite",
    "combine_labels": "composite",
    "TotalSegTask": "totalseg",
    "TotalSegPairSegmenter": "totalseg",
    "load_checkpoint": "checkpoint",
    "require_nnunet": "environment",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
