"""Validated configuration of a segmentation model (pydantic), the shipped presets and their YAML round trip.

A configuration holds everything that training and prediction need: preprocessing (orientation, spacing, foreground
crop, CT window and its random jitter), patch sampling, both networks' hyper-parameters, optimisation and sliding
window inference. Training saves the resolved configuration as ``MODEL_DIR/config.yaml``; prediction reads only that
file and the weights.

Examples
--------
>>> from livermets.segmentation.config import load_config
>>> cfg = load_config("cpu")
>>> cfg.preprocess.spacing_mm
(2.0, 2.0, 2.5)
>>> cfg.network.unet.channels
(16, 32, 64, 128)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from livermets.atomic import write_text
from livermets.errors import UserInputError

PRESET_DIR = Path(__file__).with_name("presets")
PRESETS = ("cpu", "paper", "default")
CLASS_NAMES = ("background", "liver", "lesion")  # LiTS label values 0, 1, 2
ModelName = Literal["unet", "segresnet"]
MODELS: tuple[str, ...] = ("unet", "segresnet")

Positive3 = tuple[float, float, float]
Size3 = tuple[int, int, int]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class WindowConfig(_Strict):
    """CT window in HU mapped to [0, 1]; training jitters its level and width."""

    hu_min: float = -150.0
    hu_max: float = 250.0
    level_jitter_hu: float = Field(default=30.0, ge=0, description="random shift of the window level, +/- HU")
    width_jitter_fraction: float = Field(default=0.1, ge=0, lt=0.9, description="random relative change of the width")

    @model_validator(mode="after")
    def _ordered(self) -> WindowConfig:
        if not self.hu_max > self.hu_min:
            raise ValueError(f"hu_max ({self.hu_max}) must be greater than hu_min ({self.hu_min})")
        return self


class PreprocessConfig(_Strict):
    """Resampling and cropping applied before the network (identically at training and prediction)."""

    orientation: Literal["RAS", "LPS"] = "RAS"
    spacing_mm: Positive3 = Field(..., description="(x, y, z) voxel spacing of the network grid")
    foreground_hu: float = Field(default=-500.0, description="body = voxels above this HU; the volume is cropped to it")
    foreground_margin: int = Field(default=4, ge=0, description="voxels kept around the body box")
    min_ct_hu: float = Field(default=
        -200.0, description="a CT in HU must contain values below this (air, fat); otherwise the input is rejected"
    )
    window: WindowConfig = Field(default_factory=WindowConfig)

    @field_validator("spacing_mm")
    @classmethod
    def _positive(cls, value: Positive3) -> Positive3:
        if any(not (v > 0 and math.isfinite(v)) for v in value):
            raise ValueError(f"every spacing must be a positive number of mm, got {value}")
        return value


class SamplingConfig(_Strict):
    """Training patches: ``RandCropByLabelClassesd`` with one ratio per class."""

    patch_size: Size3
    class_ratios: Positive3 = (4.0, 1.0, 3.0)
    samples_per_image: int = Field(default=12, ge=1)
    max_indices_per_class: int | None = Field(
        default=None, ge=1, description="keep at most this many evenly spaced candidate centres per class (memory)"
    )
    lesion_centres: Literal["voxel", "component"] = Field(default=
        "voxel", description="lesion crop centres uniform over lesion voxels (MONAI default; large lesions dominate) "
        "or over lesions (each connected component equally likely, then a voxel inside it)"
    )

    @field_validator("patch_size")
    @classmethod
    def _patch_positive(cls, value: Size3) -> Size3:
        if any(v < 8 for v in value):
            raise ValueError(f"every patch dimension must be at least 8 voxels, got {value}")
        return value

    @field_validator("class_ratios")
    @classmethod
    def _ratios(cls, value: Positive3) -> Positive3:
        if any(v < 0 for v in value) or sum(value) <= 0:
            raise ValueError(f"class ratios (background, liver, lesion) must be >= 0 with a positive sum, got {value}")
        return value


class UNetConfig(_Strict):
    """``monai.networks.nets.UNet`` hyper-parameters."""

    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = Field(default=2, ge=0)
    norm: Literal["batch", "instance"] = "instance"
    dropout: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _lengths(self) -> UNetConfig:
        if len(self.channels) < 2 or any(c < 1 for c in self.channels):
            raise ValueError(f"channels needs at least 2 positive entries, got {self.channels}")
        if len(self.strides) != len(self.channels) - 1 or any(s < 1 for s in self.strides):
            raise ValueError(
                f"strides needs len(channels) - 1 = {len(self.channels) - 1} positive entries, got {self.strides}"
            )
        return self

    def downsampling(self) -> int:
        return math.prod(self.strides)


class SegResNetConfig(_Strict):
    """``monai.networks.nets.SegResNet`` hyper-parameters."""

    init_filters: int = Field(default=16, ge=8)
    blocks_down: tuple[int, ...] = (1, 2, 2, 4)
    blocks_up: tuple[int, ...] = (1, 1, 1)
    dropout_prob: float | None = Field(default=None, ge=0, lt=1)

    @model_validator(mode="after")
    def _lengths(self) -> SegResNetConfig:
        if self.init_filters % 8:
            raise ValueError(f"init_filters must be a multiple of 8 (8 normalisation groups), got {self.init_filters}")
        if len(self.blocks_up) != len(self.blocks_down) - 1:
            raise ValueError(
                f"blocks_up needs len(blocks_down) - 1 = {len(self.blocks_down) - 1} entries, got {self.blocks_up}"
            )
        return self

    def downsampling(self) -> int:
        return int(2 ** (len(self.blocks_down) - 1))


class AugmentConfig(_Strict):
    """Spatial augmentation of the training crops (exact voxel permutations: no interpolation, labels stay exact)."""

    flip_prob: float = Field(default=0.0, ge=0, le=1, description="chance of mirroring each axis (RandFlipd)")
    rotate90_prob: float = Field(default=
        0.0, ge=0, le=1, description="chance of an in-plane rotation by 90/180/270 degrees (RandRotate90d)"
    )
    gamma_prob: float = Field(default=0.0, ge=0, le=1, description="chance of a random gamma (RandAdjustContrastd)")
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_prob: float = Field(default=0.0, ge=0, le=1, description="chance of added Gaussian noise")
    noise_hu: float = Field(default=15.0, ge=0, description="maximum standard deviation of the added noise (HU)")
    blur_prob: float = Field(default=0.0, ge=0, le=1, description="chance of a Gaussian blur (RandGaussianSmoothd)")
    blur_sigma_voxels: tuple[float, float] = (0.3, 1.0)
    lowres_prob: float = Field(default=
        0.0, ge=0, le=1, description="chance of simulating a lower resolution (down- then up-sampling the crop)"
    )
    lowres_zoom: tuple[float, float] = (0.5, 1.0)


class NetworkConfig(_Strict):
    unet: UNetConfig = Field(default_factory=UNetConfig)
    segresnet: SegResNetConfig = Field(default_factory=SegResNetConfig)


class TrainConfig(_Strict):
    """Optimisation, validation and data handling."""

    max_epochs: int = Field(..., ge=1, description="full epochs of training when max_iterations is not set")
    max_iterations: int | None = Field(default=
        None, ge=1, description="optimizer steps of the whole training (a length that does not depend on the machine's "
        "speed); when set, max_epochs is ignored and the last epoch may be partial"
    )
    max_minutes: float | None = Field(default=
        None, gt=0, description="wall-time cap of one run: it stops before an epoch that would exceed it (with "
        "max_iterations only a safety cap, outside the learning-rate schedule)"
    )
    learning_rate: float = Field(default=1e-4, gt=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    loss: Literal["dice", "dicece", "dicefocal"] = Field(default=
        "dice", description="dice: MONAI DiceLoss; dicece: Dice + cross-entropy; dicefocal: Dice + focal loss, whose "
        "(1 - p) ** focal_gamma factor turns the voxel term towards the voxels the network still gets wrong"
    )
    focal_gamma: float = Field(default=2.0, ge=0, le=10, description="focusing parameter of the dicefocal loss")
    batch_dice: bool = Field(
        default=False, description="Dice over the whole batch per class instead of per crop (stabler for small lesions)"
    )
    class_weights: Positive3 | None = Field(default=
        None, description="(background, liver, lesion) weights of the loss terms (MONAI applies them to CE and Dice)"
    )
    lr_schedule: Literal["constant", "poly"] = Field(default=
        "constant", description="poly: lr * (1 - progress) ** 0.9 per iteration (nnU-Net), where progress is the "
        "share of max_iterations done or, without max_iterations, the larger of the share of max_epochs' iterations "
        "and, with max_minutes, the elapsed share of the time budget"
    )
    images_per_batch: int = Field(default=1, ge=1)
    val_interval: int = Field(default=1, ge=1, description="validate every N epochs (and always on the last one)")
    val_fraction: float = Field(default=
        0.2, gt=0, le=0.5, description="share of training patients held out for validation when there is no val split"
    )
    calibrate_lesion_threshold: bool = Field(default=
        False, description="at every validation, also try the lesion thresholds (argmax, 0.5 ... 0.1), select the "
        "model on its lesion Dice at the one with the best train.calibration_metric and save that threshold with it "
        "as inference.lesion_threshold"
    )
    calibration_metric: Literal["lesion_dice", "lesion_f1"] = Field(default=
        "lesion_dice", description="what the calibration maximises: mean validation lesion Dice (scans with lesions), "
        "or lesion detection F1 pooled over all validation scans (false positives in lesion-free livers count)"
    )
    max_fp_per_scan: float | None = Field(default=
        5.0, ge=0, description="the calibration only accepts thresholds with at most this many false-positive lesions "
        "per validation scan (None: no limit); when none qualifies it keeps the one with the fewest and warns"
    )
    cache: Literal["memory", "disk", "none"] = "memory"
    num_workers: int = Field(default=0, ge=0)
    amp: bool = Field(default=
        True, description="automatic mixed precision in training, validation and prediction: float16 on CUDA, "
        "bfloat16 on CPUs with native bfloat16 (AVX512-BF16 or AMX), off on other CPUs"
    )
    memory_format: Literal["auto", "contiguous", "channels_last"] = Field(default=
        "auto", description="layout of the weights and activations while training; auto times a few training steps "
        "in each on this machine and keeps the faster (same results either way, to float rounding)"
    )
    seed: int = 0

    @field_validator("class_weights")
    @classmethod
    def _weights(cls, value: Positive3 | None) -> Positive3 | None:
        if value is not None and any(not (w > 0 and math.isfinite(w)) for w in value):
            raise ValueError(f"class weights (background, liver, lesion) must be positive numbers, got {value}")
        return value


MIN_LESION_ML = 0.03
"""Default minimum lesion volume (mL) kept after prediction: below LiTS's smallest reference tumour (38 mm³)."""
MIN_LESION_DIAMETER_MM = 3.0
"""Default minimum longest axial diameter (mm) kept after prediction: below RECIST 1.1's nominal 5 mm for a lesion
too small to measure and below the diameter of a 38 mm³ sphere (4.2 mm)."""


class InferenceConfig(_Strict):
    """Sliding-window inference and post-processing defaults (prediction options override them)."""

    sw_batch_size: int = Field(default=2, ge=1)
    overlap: float = Field(default=0.25, ge=0, lt=1)
    blend_mode: Literal["gaussian", "constant"] = "gaussian"
    tta_flip_axes: tuple[tuple[int, ...], ...] = ((0,), (1,), (2,))
    resample: Literal["probabilities", "labels"] = Field(default=
        "probabilities", description="map back to the input grid by linear probabilities or nearest labels"
    )
    lesion_threshold: float | None = Field(default=
        None, gt=0, lt=1, description="lesion where its probability reaches this (None: argmax); training with "
        "train.calibrate_lesion_threshold sets it from the validation scans"
    )
    largest_liver: bool = True
    lesion_max_distance_mm: float | None = Field(default=
        5.0, ge=0, description="drop lesion voxels farther than this from the liver (None: keep all)"
    )
    min_lesion_ml: float = Field(default=
        MIN_LESION_ML, ge=0, description="after prediction, a lesion (26-connected component) smaller than this "
        "many mL is removed (0: no volume limit); see livermets.segmentation.lesion_size"
    )
    min_lesion_diameter_mm: float = Field(default=
        MIN_LESION_DIAMETER_MM, ge=0, description="after prediction, a lesion whose longest axial diameter is below "
        "this many mm is removed (0: no diameter limit)"
    )

    @field_validator("tta_flip_axes")
    @classmethod
    def _axes(cls, value: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
        for axes in value:
            if not axes or any(a not in (0, 1, 2) for a in axes) or len(set(axes)) != len(axes):
                raise ValueError(f"each flip is a non-empty set of spatial axes from 0, 1, 2; got {axes}")
        return value


Range2 = tuple[float, float]


class QCConfig(_Strict):
    """Plausibility checks of every prediction (:mod:`livermets.segmentation.qc`); a check flags, never rejects.

    Ranges are inclusive ``(low, high)``. The input-domain ranges (``pixel_mm``, ``slice_mm``) describe the scans
    the model was trained on; a model folder's ``config.yaml`` carries them with the weights.
    """

    liver_ml: Range2 = Field(default=
        (800.0, 3500.0), description="plausible liver volume (labels 1 + 2) in mL; outside it: flag liver_volume"
    )
    max_lesions: int = Field(default=
        50, ge=0, description="more lesion components (26-connected) than this: flag many_lesions"
    )
    speckle_ml: float = Field(default=
        MIN_LESION_ML, ge=0, description="a lesion component smaller than this many mL (measured before the minimum "
        "lesion size removes it) counts as a speckle"
    )
    speckle_min_count: int = Field(default=
        5, ge=1, description="this many speckles (or more than half of the components being speckles): flag speckle"
    )
    ct_min_hu: float = Field(default=
        -200.0, description="a CT has voxels below this (air, fat); a minimum above it: flag not_ct"
    )
    ct_max_hu: float = Field(default=
        100.0, description="a CT has voxels above this (contrast, bone); a maximum below it: flag not_ct"
    )
    ct_p99_hu: float = Field(default=
        0.0, description="the 99th HU percentile of a CT lies above this (soft tissue); below it: flag not_ct"
    )
    pixel_mm: Range2 = Field(default=
        (0.5, 1.0), description="in-plane (x, y) voxel spacing of the training scans in mm; outside it: flag spacing"
    )
    slice_mm: Range2 = Field(default=
        (0.6, 5.0), description="slice thickness (z spacing) of the training scans in mm; outside it: flag spacing"
    )
    edge_fraction: float = Field(default=
        0.0, ge=0, lt=1, description="flag liver_cut_off when more than this fraction of the liver voxels lies on the "
        "first or last slice or on an in-plane edge of the image (0: any liver voxel there)"
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        """A ``qc`` section written before ``speckle_ml`` existed keeps loading: its ``speckle_voxels`` (a voxel
        count on the input grid) is dropped, ``speckle_ml`` takes its default."""
        if isinstance(data, dict) and "speckle_voxels" in data:
            data = {k: v for k, v in data.items() if k != "speckle_voxels"}
        return data

    @field_validator("liver_ml", "pixel_mm", "slice_mm")
    @classmethod
    def _range(cls, value: Range2) -> Range2:
        low, high = value
        if not (math.isfinite(low) and math.isfinite(high) and 0 <= low < high):
            raise ValueError(f"needs 0 <= low < high (finite), got {tuple(value)}")
        return value


class SegConfig(_Strict):
    """The complete, validated description of one segmentation model."""

    preset: str = "custom"
    model: ModelName = "unet"
    classes: tuple[str, str, str] = CLASS_NAMES
    preprocess: PreprocessConfig
    sampling: SamplingConfig
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    train: TrainConfig
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    qc: QCConfig = Field(default_factory=QCConfig)

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: tuple[str, str, str]) -> tuple[str, str, str]:
        if tuple(value) != CLASS_NAMES:
            raise ValueError(f"classes must be {list(CLASS_NAMES)} (LiTS labels 0, 1, 2)")
        return value

    @model_validator(mode="after")
    def _patch_divisible(self) -> SegConfig:
        factor = self.downsampling()
        bad = [p for p in self.sampling.patch_size if p % factor]
        if bad:
            raise ValueError(
                f"sampling.patch_size {tuple(self.sampling.patch_size)} must be divisible by {factor} "
                f"(the {self.model} down-sampling factor)"
            )
        return self

    def downsampling(self) -> int:
        """Total down-sampling factor of the selected network (patch sizes must be multiples of it)."""
        return self.network.unet.downsampling() if self.model == "unet" else self.network.segresnet.downsampling()

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(self.model_dump(mode="python")), sort_keys=False)


def _plain(obj: Any) -> Any:
    """Tuples → lists so that ``yaml.safe_dump`` writes plain YAML."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _format_validation_error(source: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"{source}: invalid segmentation config: {where}: {message}{more}"


def config_from_dict(data: Any, source: str = "config") -> SegConfig:
    """Validate a mapping (e.g. parsed YAML); raise :class:`UserInputError` naming the first bad field."""
    if not isinstance(data, dict):
        raise UserInputError(f"{source}: a segmentation config must be a YAML mapping, got {type(data).__name__}")
    try:
        return SegConfig.model_validate(data)
    except ValidationError as exc:
        raise UserInputError(_format_validation_error(source, exc)) from None


def load_config(name_or_path: str | Path, **overrides: Any) -> SegConfig:
    """Load a preset (``"cpu"``, ``"paper"``) or a YAML file, apply dotted ``overrides`` and validate.

    Parameters
    ----------
    name_or_path
        Preset name or path to a YAML file.
    **overrides
        ``{"train.max_epochs": 5, "model": "segresnet"}``-style dotted keys (``None`` values are ignored).

    Raises
    ------
    UserInputError
        Unknown preset, unreadable YAML or any invalid value (the message names the field).
    """
    text_source = str(name_or_path)
    path = PRESET_DIR / f"{name_or_path}.yaml" if str(name_or_path) in PRESETS else Path(name_or_path)
    if not path.is_file():
        raise UserInputError(f"{text_source}: no such config file or preset (presets: {', '.join(PRESETS)})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserInputError(f"{path}: cannot parse YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict):
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return config_from_dict(data, str(path))


def save_config(config: SegConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML atomically."""
    return write_text(path, config.to_yaml())
