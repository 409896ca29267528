"""Stand-in weights for TotalSegmentator's liver (Dataset291, Dataset297) and liver-lesion (Dataset591) models.

The real weights cannot be downloaded here. The stand-ins carry the real dataset names, plans name, trainer names,
configurations and label maps (dataset.json labels as TotalSegmentator's: the 24 organs of part 1 for 291, the 117
``total`` classes for 297, ``liver_lesions`` = 1 for 591; liver = 5), laid out as TotalSegmentator's weights folder
(``<DatasetXXX>/<trainer>__nnUNetPlans__<configuration>/{plans.json, dataset.json, fold_0/checkpoint_final.pth}``)
and zipped as its release files (``Dataset291_TotalSegmentator_part1_organs_1559subj.zip`` ...).

The networks are nnU-Net's own (``get_network_from_plans`` of a ``PlainConvUNet`` plan), randomly initialised
(seeded); their 1x1x1 segmentation layer is then trained (a logistic regression on the last decoder features) on the
real CT ``example_ct_sm.nii.gz`` and TotalSegmentator's own output for it (liver = 5): the liver models learn that
liver; the lesion model learns the darkest fifth of that liver (a made-up target, so that its
output is a few non-empty blobs inside the liver). If a model's output on its training CT were empty, the bias of
that class is raised until it is not. ``tiny=True`` (tests): 4 stages of 4..32 features, a few seconds to train;
``tiny=False`` (benchmarks): the default nnU-Net architecture (6 stages, 32..320 features, 3x3x3 kernels) with a
128-voxel patch, reconstructed with nnU-Net's planner functions (the real plans.json are not published apart from
the weights), briefly trained: its run time is the real architecture's, its output means nothing.

Everything is seeded: the same call writes the same files (on the same CPU kernel).

Run by hand: ``python -m tests.segmentation.nnunet.standin OUT_DIR [--real]``.
"""

from __future__ import annotations

import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

LABELS = json.loads((Path(__file__).parent / "data" / "totalseg_labels.json").read_text())["labels"]
ARCH = "dynamic_network_architectures.architectures.unet.PlainConvUNet"


@dataclass(frozen=True)
class StandIn:
    dataset: str
    trainer: str
    configuration: str
    spacing: tuple[float, float, float]  # z, y, x as in plans.json
    release: str
    target: str  # "liver" or "lesion"
    tiny_patch: tuple[int, int, int]

    @property
    def folder(self) -> str:
        return f"{self.dataset}/{self.trainer}__nnUNetPlans__{self.configuration}"


STANDINS = (
    StandIn("Dataset291_TotalSegmentator_part1_organs_1559subj", "nnUNetTrainerNoMirroring", "3d_fullres",
            (1.5, 1.5, 1.5), "v2.0.0-weights", "liver", (24, 204, 244)),
    StandIn("Dataset297_TotalSegmentator_total_3mm_1559subj", "nnUNetTrainer_4000epochs_NoMirroring", "3d_fullres",
            (3.0, 3.0, 3.0), "v2.0.0-weights", "liver", (12, 104, 124)),
    StandIn("Dataset591_ct_liver_lesions_842subj", "nnUNetTrainer", "3d_fullres_high", (1.0, 0.75, 0.75),
            "v2.5.0-weights", "lesion", (36, 300, 312)),
)
REAL_PATCH = (128, 128, 128)
FIT_PATCH = (64, 64, 64)
"""The patch the real-architecture stand-ins fit their last layer on (the networks are fully convolutional)."""


def architecture(spacing: tuple[float, ...], patch: tuple[int, ...], tiny: bool) -> dict[str, Any]:
    """nnU-Net's PlainConvUNet plan: tiny (4 stages, 4..32 features) or the default planner's topology for
    ``patch`` and ``spacing`` (``get_pool_and_conv_props``, features 32 doubling up to 320)."""
    if tiny:
        strides = [[1, 1, 1], [2, 2, 2], [2, 2, 2]]
        kernels = [[1, 1, 1], [3, 3, 3], [3, 3, 3]]
        features = [4, 8, 8]
    else:
        from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

        _axes, pools, kernels, _patch, _must_div = get_pool_and_conv_props(list(spacing), list(patch), 4, 999999)
        strides = [[int(s) for s in p] for p in pools]
        kernels = [[int(k) for k in c] for c in kernels]
        features = [min(32 * 2 ** i, 320) for i in range(len(strides))]
    n = len(strides)
    return {"network_class_name": ARCH, "arch_kwargs": {
        "n_stages": n, "features_per_stage": features, "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": kernels, "strides": strides, "n_conv_per_stage": [1 if tiny else 2] * n,
        "n_conv_per_stage_decoder": [1 if tiny else 2] * (n - 1), "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}


def plans_for(spec: StandIn, intensity: dict[str, float], tiny: bool) -> dict[str, Any]:
    """An nnU-Net v2 plans.json (nnUNetPlans) with the stand-in's configuration (591: ``3d_fullres_high``
    inheriting from ``3d_fullres``, as TotalSegmentator's)."""
    patch = spec.tiny_patch if tiny else REAL_PATCH
    resampling = {
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
    }
    base_spacing = list(spec.spacing) if spec.configuration == "3d_fullres" else [1.5, 1.5, 1.5]
    full = {"data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": list(patch), "median_image_size_in_voxels": [200, 200, 200],
            "spacing": base_spacing, "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            **resampling, "architecture": architecture(tuple(base_spacing), patch, tiny), "batch_dice": True}
    configurations: dict[str, Any] = {"3d_fullres": full}
    if spec.configuration != "3d_fullres":
        configurations[spec.configuration] = {"inherits_from": "3d_fullres", "spacing": list(spec.spacing),
                                              "data_identifier": f"nnUNetPlans_{spec.configuration}"}
    return {"dataset_name": spec.dataset, "plans_name": "nnUNetPlans",
            "original_median_spacing_after_transp": list(spec.spacing),
            "original_median_shape_after_transp": [200, 200, 200], "image_reader_writer": "SimpleITKIO",
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "configurations": configurations,
            "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {"0": intensity}}


def dataset_json(spec: StandIn) -> dict[str, Any]:
    return {"channel_names": {"0": "CT"}, "labels": LABELS[spec.dataset], "numTraining": 1,
            "file_ending": ".nii.gz", "name": spec.dataset,
            "description": "livermets stand-in: real names and label map, weights trained briefly on one CT"}


def canonical_at(ct: nib.Nifti1Image, seg: nib.Nifti1Image, spacing_zyx: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """CT (float32) and TotalSegmentator labels resampled to ``spacing`` on the canonical grid, as z, y, x."""
    ct, seg = nib.as_closest_canonical(ct), nib.as_closest_canonical(seg)
    zoom = np.array(ct.header.get_zooms()[:3]) / np.array(spacing_zyx[::-1])
    image = ndimage.zoom(ct.get_fdata(), zoom, order=1, mode="nearest")
    labels = ndimage.zoom(np.asarray(seg.dataobj).astype(np.uint8), zoom, order=0, mode="nearest")
    return image.transpose(2, 1, 0).astype(np.float32), labels.transpose(2, 1, 0)


def training_pair(spec: StandIn, ct: nib.Nifti1Image, seg: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    """Input (HU) and target (0 / the model's class) at the model's spacing; the lesion model's around the liver."""
    if spec.target == "lesion":
        liver = np.asarray(seg.dataobj) == 5
        box = tuple(slice(max(int(ix.min()) - 3, 0), int(ix.max()) + 4) for ix in np.nonzero(liver))
        affine = ct.affine.copy()
        affine[:3, 3] = (affine @ np.array([b.start for b in box] + [1]))[:3]
        ct = nib.Nifti1Image(ct.get_fdata()[box], affine)
        seg = nib.Nifti1Image(np.asarray(seg.dataobj)[box], affine)
    image, labels = canonical_at(ct, seg, spec.spacing)
    liver = labels == 5
    if spec.target == "liver":
        return image, np.where(liver, 5, 0).astype(np.int64)
    smooth = ndimage.gaussian_filter(image, 2.0)
    dark = liver & (smooth < np.percentile(smooth[liver], 20))
    return image, dark.astype(np.int64)


def intensity_properties(ct: nib.Nifti1Image, seg: nib.Nifti1Image) -> dict[str, float]:
    """nnU-Net's foreground intensity statistics, from the labelled voxels of the CT."""
    values = ct.get_fdata()[np.asarray(seg.dataobj) > 0]
    return {"max": float(values.max()), "mean": float(values.mean()), "median": float(np.median(values)),
            "min": float(values.min()), "percentile_00_5": float(np.percentile(values, 0.5)),
            "percentile_99_5": float(np.percentile(values, 99.5)), "std": float(values.std())}


def normalise(image: np.ndarray, props: dict[str, float]) -> np.ndarray:
    """nnU-Net's CTNormalization."""
    clipped = np.clip(image, props["percentile_00_5"], props["percentile_99_5"])
    return ((clipped - props["mean"]) / max(props["std"], 1e-8)).astype(np.float32)


def fit_last_layer(network: torch.nn.Module, image: np.ndarray, target: np.ndarray, cls: int,
                   patch: tuple[int, ...], seed: int) -> None:
    """Train the 1x1x1 segmentation layer (logistic regression on the last decoder features of one forward pass
    over a central patch): ``cls`` against background, every other class switched off."""
    from sklearn.linear_model import LogisticRegression

    pad = [(0, max(0, p - s)) for p, s in zip(patch, image.shape, strict=True)]
    image, target = np.pad(image, pad, mode="edge"), np.pad(target, pad)
    start = [max(0, (s - p) // 2) for s, p in zip(image.shape, patch, strict=True)]
    window = tuple(slice(b, b + p) for b, p in zip(start, patch, strict=True))
    seg = network.decoder.seg_layers[-1]
    seen: list[torch.Tensor] = []
    hook = seg.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].detach()))
    with torch.no_grad():
        network(torch.from_numpy(np.ascontiguousarray(image[window]))[None, None])
    hook.remove()
    features = seen[0][0].reshape(seen[0].shape[1], -1).T.numpy()
    labels = (target[window].reshape(-1) > 0).astype(int)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(labels), size=min(len(labels), 50_000), replace=False)
    model = LogisticRegression(max_iter=500).fit(features[pick], labels[pick])
    with torch.no_grad():
        seg.weight.zero_()
        seg.bias.fill_(-20.0)
        seg.bias[0] = 0.0
        seg.weight[cls].view(-1).copy_(torch.from_numpy(model.coef_[0]).float())
        seg.bias[cls] = float(model.intercept_[0])


def ensure_output(network: torch.nn.Module, image: np.ndarray, cls: int, patch: tuple[int, ...]) -> None:
    """Raise the bias of class ``cls`` until the network labels at least 1 % of a central patch with it."""
    image = np.pad(image, [(0, max(0, p - s)) for p, s in zip(patch, image.shape, strict=True)], mode="edge")
    start = [max(0, (s - p) // 2) for s, p in zip(image.shape, patch, strict=True)]
    window = tuple(slice(b, b + p) for b, p in zip(start, patch, strict=True))
    x = torch.from_numpy(np.ascontiguousarray(image[window]))[None, None]
    bias = network.decoder.seg_layers[-1].bias
    for _ in range(40):
        with torch.no_grad():
            if int((network(x).argmax(1) == cls).sum()) > 0.01 * x.numel():
                return
            bias[cls] += 0.5


def build_standin(spec: StandIn, out: Path, ct: nib.Nifti1Image, seg: nib.Nifti1Image, tiny: bool = True,
                  seed: int = 0) -> Path:
    """Write one stand-in result folder under ``out`` and return it."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    torch.manual_seed(seed)
    props = intensity_properties(ct, seg)
    plans = plans_for(spec, props, tiny)
    dataset = dataset_json(spec)
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    network = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                     1, len(dataset["labels"]), allow_init=True, deep_supervision=False)
    image, target = training_pair(spec, ct, seg)
    image = normalise(image, props)
    patch = tuple(plans["configurations"]["3d_fullres"]["patch_size"]) if tiny else FIT_PATCH
    cls = 5 if spec.target == "liver" else 1
    fit_last_layer(network, image, target, cls, patch, seed)
    ensure_output(network, image, cls, patch)
    folder = out / spec.folder
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    mirror = None if "NoMirroring" in spec.trainer else (0, 1, 2)
    checkpoint = {"network_weights": network.state_dict(), "optimizer_state": None, "grad_scaler_state": None,
                  "logging": {}, "_best_ema": None, "current_epoch": 1,
                  "init_args": {"plans": plans, "configuration": spec.configuration, "fold": 0,
                                "dataset_json": dataset},
                  "trainer_name": spec.trainer, "inference_allowed_mirroring_axes": mirror}
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def write_zip(weights: Path, spec: StandIn, zips: Path) -> Path:
    """``<dataset>.zip`` holding ``<dataset>/...`` as TotalSegmentator's release files (fixed timestamps)."""
    zips.mkdir(parents=True, exist_ok=True)
    target = zips / f"{spec.dataset}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((weights / spec.dataset).rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(weights)), date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return target


def make_standins(out: Path, ct_path: Path, seg_path: Path, tiny: bool = True, seed: int = 0) -> dict[str, Path]:
    """All three stand-ins: ``out/weights/<DatasetXXX>/...`` (a TotalSegmentator weights folder) and
    ``out/zips/<DatasetXXX>.zip``; returns dataset name -> result folder."""
    ct, seg = nib.load(ct_path), nib.load(seg_path)
    threads = torch.get_num_threads()
    if tiny:
        torch.set_num_threads(1)  # the same float sums on any machine
    try:
        folders = {spec.dataset: build_standin(spec, out / "weights", ct, seg, tiny, seed=seed + i)
                   for i, spec in enumerate(STANDINS)}
    finally:
        torch.set_num_threads(threads)
    for spec in STANDINS:
        write_zip(out / "weights", spec, out / "zips")
    return folders


if __name__ == "__main__":
    shared = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "totalsegmentator"
    target = Path(sys.argv[1])
    made = make_standins(target, shared / "example_ct_sm.nii.gz", shared / "example_seg.nii.gz",
                         tiny="--real" not in sys.argv)
    print("\n".join(str(p) for p in made.values()))
