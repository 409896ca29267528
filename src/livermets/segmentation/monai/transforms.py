"""MONAI transform pipelines built from a :class:`~livermets.segmentation.config.SegConfig`.

Deterministic steps (load, orient, resample, foreground crop, window to [-0.5, 0.5] around the window centre, pad,
class indices, optionally balanced over lesions: :mod:`~livermets.segmentation.monai.sampling`) come first so that
``CacheDataset``/``PersistentDataset`` store their result; the random steps follow: ``RandCropByLabelClassesd``,
optional flips and in-plane 90-degree rotations of the crops, and the window jitter. The jitter scales the centred
intensities (window width) and shifts them (window level) before the final clip to [0, 1], which is exactly a random
CT window.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from monai.transforms import (
    ClassesToIndicesd,
    Compose,
    CropForegroundd,
    EnsureTyped,
    MapTransform,
    Orientationd,
    RandAdjustContrastd,
    RandCropByLabelClassesd,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSimulateLowResolutiond,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)

from livermets.imaging.io import read_image, read_label
from livermets.segmentation.config import CLASS_NAMES, SegConfig
from livermets.segmentation.monai.convert import image_to_metatensor
from livermets.segmentation.monai.sampling import ComponentBalancedIndicesd

IMAGE = "image"
LABEL = "label"
INDICES = "label_cls_indices"
_CENTRED_LOW = -0.5  # window minimum after centring; padding uses it so that padded voxels look like air


class LoadSimpleITKd(MapTransform):
    """Load ``image``/``label`` entries (a path or a SimpleITK image) into (1, x, y, z) MetaTensors with RAS affines.

    Images go through :func:`livermets.imaging.io.read_image` (NIfTI/NRRD/MHA/DICOM, HU) and labels through
    :func:`~livermets.imaging.io.read_label` (LiTS values checked), so MONAI sees exactly the geometry SimpleITK reads.
    """

    def __init__(self, keys: tuple[str, ...] = (IMAGE, LABEL), allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        for key in self.key_iterator(out):
            value = out[key]
            source = str(value) if not isinstance(value, sitk.Image) else ""
            if isinstance(value, str | Path):
                value = read_label(value) if key == LABEL else read_image(value)
            out[key] = image_to_metatensor(value, np.float32, source)
        return out


def _above(values: torch.Tensor, threshold: float) -> torch.Tensor:
    return values > threshold


def _deterministic(config: SegConfig, keys: tuple[str, ...]) -> list[Any]:
    pre = config.preprocess
    window = pre.window
    modes = tuple("nearest" if k == LABEL else "bilinear" for k in keys)
    steps: list[Any] = [
        LoadSimpleITKd(keys),
        Orientationd(keys, axcodes=pre.orientation, labels=None),
        Spacingd(keys, pixdim=pre.spacing_mm, mode=modes, padding_mode="border", dtype=np.float32),
        CropForegroundd(
            keys,
            source_key=IMAGE,
            select_fn=functools.partial(_above, threshold=pre.foreground_hu),
            margin=pre.foreground_margin,
            allow_smaller=True,
        ),
        ScaleIntensityRanged(
            IMAGE, a_min=window.hu_min, a_max=window.hu_max, b_min=_CENTRED_LOW, b_max=-_CENTRED_LOW, clip=False
        ),
    ]
    return steps


def _final_clip() -> ScaleIntensityRanged:
    return ScaleIntensityRanged(IMAGE, a_min=_CENTRED_LOW, a_max=-_CENTRED_LOW, b_min=0.0, b_max=1.0, clip=True)


def _class_indices(config: SegConfig) -> MapTransform:
    """Candidate crop centres per class, cached as int64 voxel indices (the cap bounds that memory)."""
    sampling = config.sampling
    if sampling.lesion_centres == "component":
        return ComponentBalancedIndicesd(LABEL, INDICES, len(CLASS_NAMES), seed=config.train.seed,
                                         max_samples_per_class=sampling.max_indices_per_class)
    return ClassesToIndicesd(LABEL, num_classes=len(CLASS_NAMES), max_samples_per_class=sampling.max_indices_per_class)


def _augmentations(config: SegConfig) -> list[Any]:
    augment, keys = config.augment, (IMAGE, LABEL)
    steps: list[Any] = []
    if augment.flip_prob > 0:
        steps += [RandFlipd(keys, prob=augment.flip_prob, spatial_axis=axis) for axis in range(3)]
    if augment.rotate90_prob > 0:
        steps.append(RandRotate90d(keys, prob=augment.rotate90_prob, max_k=3, spatial_axes=(0, 1)))
    return steps + _intensity_augmentations(config)


def _intensity_augmentations(config: SegConfig) -> list[Any]:
    """Resolution, blur, noise and gamma on the centred image (window units; the label is untouched)."""
    augment = config.augment
    window = config.preprocess.window
    steps: list[Any] = []
    if augment.lowres_prob > 0:
        steps.append(RandSimulateLowResolutiond(IMAGE, prob=augment.lowres_prob, zoom_range=augment.lowres_zoom))
    if augment.blur_prob > 0:
        low, high = augment.blur_sigma_voxels
        steps.append(RandGaussianSmoothd(IMAGE, sigma_x=(low, high), sigma_y=(low, high), sigma_z=(low, high),
                                         prob=augment.blur_prob))
    if augment.noise_prob > 0:
        steps.append(RandGaussianNoised(IMAGE, prob=augment.noise_prob, mean=0.0, sample_std=True,
                                        std=augment.noise_hu / (window.hu_max - window.hu_min)))
    if augment.gamma_prob > 0:
        steps.append(RandAdjustContrastd(IMAGE, prob=augment.gamma_prob, gamma=augment.gamma_range))
    return steps


def train_transforms(config: SegConfig) -> Compose:
    """Training pipeline: deterministic preprocessing, label-class crops and window jitter."""
    keys = (IMAGE, LABEL)
    sampling = config.sampling
    window = config.preprocess.window
    width = window.hu_max - window.hu_min
    steps = _deterministic(config, keys) + [
        SpatialPadd(IMAGE, spatial_size=sampling.patch_size, mode="constant", value=_CENTRED_LOW),
        SpatialPadd(LABEL, spatial_size=sampling.patch_size, mode="constant", value=0),
        _class_indices(config),
        RandCropByLabelClassesd(
            keys,
            label_key=LABEL,
            spatial_size=sampling.patch_size,
            ratios=list(sampling.class_ratios),
            num_classes=len(CLASS_NAMES),
            num_samples=sampling.samples_per_image,
            indices_key=INDICES,
            warn=False,
        ),
        *_augmentations(config),
        RandScaleIntensityd(IMAGE, factors=window.width_jitter_fraction, prob=1.0),
        RandShiftIntensityd(IMAGE, offsets=window.level_jitter_hu / width, prob=1.0),
        _final_clip(),
        EnsureTyped(keys, track_meta=False),
    ]
    return Compose(steps)


def eval_transforms(config: SegConfig, with_label: bool = True) -> Compose:
    """Validation/prediction pipeline: the deterministic preprocessing and the fixed window (no randomness)."""
    keys = (IMAGE, LABEL) if with_label else (IMAGE,)
    return Compose([*_deterministic(config, keys), _final_clip()])
