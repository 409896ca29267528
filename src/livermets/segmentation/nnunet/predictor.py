"""Segment CT with any nnU-Net v2 model: a livermets nnU-Net model folder or an nnU-Net result folder.

The model is one of

* a livermets nnU-Net model folder ``MODEL/`` (``MODEL/nnunet.json`` names the result folder, the folds and the
  label map), written by ``livermets seg train --model nnunet``;
* an nnU-Net v2 result folder written by any nnU-Net training (``plans.json``, ``dataset.json``,
  ``fold_<f>/checkpoint_final.pth``), e.g. one of TotalSegmentator's.

The network is built from ``plans.json`` with nnU-Net's own ``get_network_from_plans`` (the architecture of
``nnUNetTrainer``), the weights are read by :func:`~livermets.segmentation.nnunet.checkpoint.load_checkpoint` and
nnU-Net's ``nnUNetPredictor`` runs in-process on the CT array and properties that nnU-Net's ``SimpleITKIO`` reader
would give (voxel array (z, y, x), spacing reversed, origin and direction). The resulting nnU-Net labels are mapped
onto livermets' 1 liver / 2 lesion by a :class:`LabelMap`; the anatomical clean-up (largest liver, lesions near the
liver) of the MONAI path follows, and the label map is returned on exactly the input CT's grid.

nnunetv2 is imported only when a model is loaded.

Examples
--------
>>> seg = NnunetSegmenter("models/totalseg_total", label_map="liver=5", device="cpu")  # doctest: +SKIP
>>> label = seg.predict_image(read_image("ct.nii.gz"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from pydantic import ValidationError

from livermets.errors import ParameterError, UserInputError
from livermets.imaging.geometry import geometry_differences
from livermets.segmentation.checks import check_ct_intensities
from livermets.segmentation.config import QCConfig
from livermets.segmentation.device import nnunet_out_of_memory_error, resolve_device
from livermets.segmentation.engines.choose import resolve_engine
from livermets.segmentation.engines.runtime import compile_network
from livermets.segmentation.nnunet.checkpoint import load_checkpoint
from livermets.segmentation.nnunet.environment import nnunet_prints_to_log
from livermets.segmentation.postprocess import LESION, LIVER, postprocess_label

log = logging.getLogger(__name__)

METADATA_FILE = "nnunet.json"
CHECKPOINT = "checkpoint_final.pth"
CLASSES = ("liver", "lesion")
LESION_NAMES = ("lesion", "lesions", "tumor", "tumour", "cancer", "liver_tumor", "liver_tumour", "liver_lesion",
                "liver_lesions")
"""dataset.json label names taken as the lesion class when no label map is given (``liver`` for the liver)."""
READERS = {"SimpleITKIO": False, "NibabelIO": False, "SimpleITKIOWithReorient": True, "NibabelIOWithReorient": True}
"""nnU-Net image readers of CT volumes, and whether they reorient the volume to RAS before prediction."""
ARCHITECTURE_PREFIX = "dynamic_network_architectures."
LAYER_PREFIX = "torch.nn."


@dataclass(frozen=True)
class LabelMap:
    """Which nnU-Net output labels become livermets' liver (1) and lesion (2); every other label is background.

    Examples
    --------
    >>> LabelMap(liver=(5,), lesion=(7, 8)).apply(np.array([0, 5, 7, 8, 3])).tolist()
    [0, 1, 2, 2, 0]
    >>> str(LabelMap(liver=(5,)))
    'liver=5'
    """

    liver: tuple[int, ...] = ()
    lesion: tuple[int, ...] = ()

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """UInt8 map: 1 where ``labels`` is one of the liver labels, 2 for the lesion labels, else 0."""
        out = np.zeros(labels.shape, dtype=np.uint8)
        if self.liver:
            out[np.isin(labels, self.liver)] = LIVER
        if self.lesion:
            out[np.isin(labels, self.lesion)] = LESION
        return out

    def __str__(self) -> str:
        parts = [f"{name}={'+'.join(map(str, values))}" for name, values in (("liver", self.liver),
                                                                           ("lesion", self.lesion)) if values]
        return ",".join(parts)


def parse_label_map(text: str, labels: Mapping[str, int], parameter: str = "label_map",
                    role: str | None = None, source: str = "dataset.json") -> LabelMap:
    """Read ``liver=5`` / ``liver=1,lesion=2`` / ``lesion=liver_tumor`` against a model's output labels.

    Each comma-separated item is ``CLASS=LABEL[+LABEL...]`` with CLASS ``liver`` or ``lesion`` and each LABEL an
    output label value or a label name of the model's dataset.json. With ``role`` (``liver`` or ``lesion``) an item
    may leave out ``CLASS=``: ``5`` then means ``ROLE=5``.

    Parameters
    ----------
    labels
        The model's output labels, name → value (background included).
    parameter, source
        Named in error messages: the parameter holding ``text`` (``label_map``, ``liver_label_map`` or
        ``lesion_label_map``; anything else, e.g. ``MODEL/nnunet.json label_map``, is where ``text`` comes from) and
        the dataset.json path.

    Raises
    ------
    ParameterError
        Bad syntax, unknown class, a label the model does not output, or one label in both classes (a
        :class:`UserInputError` when ``parameter`` is not a label-map parameter).

    Examples
    --------
    >>> parse_label_map("liver=5,lesion=tumor+7", {"background": 0, "liver": 5, "tumor": 6, "cyst": 7})
    LabelMap(liver=(5,), lesion=(6, 7))
    """
    chosen: dict[str, list[int]] = {}
    for item in (part.strip() for part in text.split(",")):
        name, sep, values = item.partition("=")
        if not sep and role is not None:
            name, values = role, item
        name = name.strip().lower()
        if name not in CLASSES or not values.strip():
            raise _label_map_error(parameter, text, "expected CLASS=LABEL[+LABEL],... with CLASS liver or lesion "
                                   f"(e.g. liver=5 or liver=1,lesion=2), got {item!r}")
        chosen.setdefault(name, []).extend(_label_value(v.strip(), labels, parameter, text, source)
                                           for v in values.split("+"))
    both = set(chosen.get("liver", ())) & set(chosen.get("lesion", ()))
    if both:
        raise _label_map_error(parameter, text, f"label(s) {sorted(both)} given for both liver and lesion")
    return LabelMap(tuple(dict.fromkeys(chosen.get("liver", ()))), tuple(dict.fromkeys(chosen.get("lesion", ()))))


def _label_value(value: str, labels: Mapping[str, int], parameter: str, text: str, source: str) -> int:
    if value in labels:
        return labels[value]
    if re.fullmatch(r"\d+", value) and int(value) in labels.values() and int(value) != 0:
        return int(value)
    raise _label_map_error(parameter, text, f"label {value!r} is not one of the model's labels in {source} "
                                            f"({describe_labels(labels)})")


def _label_map_error(parameter: str, text: str, problem: str) -> UserInputError:
    """``PARAMETER 'TEXT': PROBLEM``, a :class:`ParameterError` when ``parameter`` is a label-map parameter."""
    if parameter == "liver_label_map":
        return ParameterError("{liver_label_map} {text!r}: {problem}", text=text, problem=problem)
    if parameter == "lesion_label_map":
        return ParameterError("{lesion_label_map} {text!r}: {problem}", text=text, problem=problem)
    if parameter == "label_map":
        return ParameterError("{label_map} {text!r}: {problem}", text=text, problem=problem)
    return UserInputError(f"{parameter} {text!r}: {problem}")


def describe_labels(labels: Mapping[str, int], limit: int = 12) -> str:
    """``liver=1, lesion=2`` (at most ``limit`` entries, background left out)."""
    items = [f"{name}={value}" for name, value in labels.items() if value != 0]
    more = f", ... {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass(frozen=True)
class NnunetModel:
    """An nnU-Net model found on disk (JSON files read and checked; no weights loaded, nnunetv2 not imported)."""

    model_dir: Path
    result_folder: Path
    plans: dict[str, Any]
    dataset_json: dict[str, Any]
    configuration: str | None
    folds: tuple[str, ...]
    checkpoint: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoints(self) -> list[Path]:
        return [self.result_folder / f"fold_{fold}" / self.checkpoint for fold in self.folds]

    @property
    def labels(self) -> dict[str, int]:
        """Output labels name → value (region-based models: the values of ``regions_class_order``)."""
        raw = self.dataset_json.get("labels", {})
        if any(isinstance(v, list | tuple) for v in raw.values()):
            order = self.dataset_json.get("regions_class_order", [])
            names = [k for k, v in raw.items() if isinstance(v, list | tuple)]
            return {"background": 0} | dict(zip(names, (int(v) for v in order), strict=False))
        return {str(k): int(v) for k, v in raw.items() if str(k) != "ignore"}

    @property
    def qc(self) -> QCConfig:
        """Plausibility thresholds: ``nnunet.json``'s ``qc`` section when present, else livermets' defaults."""
        try:
            return QCConfig.model_validate(self.metadata.get("qc", {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UserInputError(f"{self.model_dir / METADATA_FILE}: qc.{where}: {first['msg']}") from None


def is_nnunet_folder(folder: str | Path) -> bool:
    """Whether ``folder`` looks like a livermets nnU-Net model or an nnU-Net v2 result folder (no files read)."""
    path = Path(folder)
    return (path / METADATA_FILE).is_file() or ((path / "plans.json").is_file() and (path / "dataset.json").is_file())


def locate_model(folder: str | Path, folds: Sequence[str | int] | None = None) -> NnunetModel:
    """Find and check the result folder, plans, dataset.json, configuration and fold checkpoints of a model.

    Parameters
    ----------
    folder
        ``MODEL`` (with ``nnunet.json``) or an nnU-Net v2 result folder.
    folds
        Folds to ensemble (``0``, ``1``, ..., ``all``); default ``nnunet.json``'s folds, else every ``fold_<n>``
        holding a ``checkpoint_final.pth`` (``fold_all`` when there is none).

    Raises
    ------
    UserInputError
        A missing or unreadable file, an unsupported image reader or configuration, a missing fold checkpoint.
    """
    model_dir = Path(folder)
    metadata = _read_json(model_dir / METADATA_FILE) if (model_dir / METADATA_FILE).is_file() else {}
    result = _result_folder(model_dir, metadata)
    plans = _read_json(result / "plans.json")
    dataset_json = _read_json(result / "dataset.json")
    configuration = metadata.get("configuration") or _configuration_from_name(result, plans)
    checkpoint = str(metadata.get("checkpoint") or CHECKPOINT)
    chosen = [str(f) for f in (folds if folds is not None else metadata.get("folds") or _available_folds(result))]
    if not chosen:
        raise UserInputError(f"{result}: no fold_<n>/{checkpoint} (an nnU-Net v2 result folder holds plans.json, "
                             f"dataset.json and fold_<n>/{checkpoint})")
    for fold in chosen:
        if not (result / f"fold_{fold}" / checkpoint).is_file():
            raise UserInputError(f"{result}: fold {fold} has no fold_{fold}/{checkpoint}")
    reader = plans.get("image_reader_writer", "SimpleITKIO")
    if reader not in READERS:
        raise UserInputError(f"{result / 'plans.json'}: image reader {reader} is not one for CT volumes "
                             f"(livermets feeds {', '.join(READERS)} models)")
    model = NnunetModel(model_dir, result, plans, dataset_json, configuration, tuple(chosen), checkpoint, metadata)
    if not model.labels or len(dataset_json.get("channel_names", dataset_json.get("modality", {"0": "CT"}))) != 1:
        raise UserInputError(f"{result / 'dataset.json'}: livermets feeds models with one input channel (CT) and "
                             "labels")
    return model


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserInputError(f"{path}: not found (an nnU-Net v2 result folder holds plans.json, dataset.json and "
                             "fold_<n>/checkpoint_final.pth)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a JSON object")
    return data


def _result_folder(model_dir: Path, metadata: dict[str, Any]) -> Path:
    """The nnU-Net result folder: ``nnunet.json``'s ``result_folder`` (relative to MODEL), else MODEL itself."""
    if not metadata:
        return model_dir
    relative = metadata.get("result_folder")
    if relative is None:
        found = sorted(p.parent for p in (model_dir / "results").glob("*/*/plans.json"))
        if len(found) != 1:
            raise UserInputError(f"{model_dir / METADATA_FILE}: no result_folder, and {len(found)} result folders "
                                 f"under {model_dir / 'results'}")
        return found[0]
    result = (model_dir / str(relative)).resolve()
    if not result.is_relative_to(model_dir.resolve()):
        raise UserInputError(f"{model_dir / METADATA_FILE}: result_folder {relative!r} lies outside the model folder")
    return result


def _configuration_from_name(result: Path, plans: dict[str, Any]) -> str | None:
    """``3d_fullres`` of ``<trainer>__<plans>__3d_fullres``; ``None`` when the name does not say (the checkpoint
    then tells)."""
    parts = result.resolve().name.split("__")
    if len(parts) == 3 and parts[2] in plans.get("configurations", {}):
        return parts[2]
    return None


def _available_folds(result: Path) -> list[str]:
    """Like nnU-Net's ``auto_detect_available_folds``: every ``fold_<n>`` with a checkpoint; ``all`` if none."""
    numbered = sorted(int(p.parent.name[5:]) for p in result.glob(f"fold_*/{CHECKPOINT}")
                      if re.fullmatch(r"fold_\d+", p.parent.name))
    if numbered:
        return [str(f) for f in numbered]
    return ["all"] if (result / "fold_all" / CHECKPOINT).is_file() else []


def default_label_map(model: NnunetModel, classes: Sequence[str] = CLASSES) -> LabelMap:
    """The label map of ``nnunet.json``, else dataset.json's labels named ``liver`` and one of
    :data:`LESION_NAMES`; only the ``classes`` asked for.

    Raises
    ------
    ParameterError
        None of the classes found: the message lists the model's labels and names the label-map parameter.
    """
    labels = model.labels
    if "label_map" in model.metadata:
        text = ",".join(f"{name}={'+'.join(map(str, values))}" for name, values in model.metadata["label_map"].items()
                        if name in classes)
        return parse_label_map(text, labels, f"{model.model_dir / METADATA_FILE} label_map",
                               source=str(model.result_folder / "dataset.json"))
    lowered = {name.lower(): value for name, value in labels.items()}
    liver = tuple(v for n, v in lowered.items() if n == "liver") if "liver" in classes else ()
    lesion = tuple(v for n, v in lowered.items() if n in LESION_NAMES)[:1] if "lesion" in classes else ()
    if not liver and not lesion:
        raise _no_label_error(model, classes)
    return LabelMap(liver, lesion)


def _no_label_error(model: NnunetModel, classes: Sequence[str]) -> ParameterError:
    """No label of ``classes`` in the model: give ``label_map`` (``liver_label_map``/``lesion_label_map`` for a
    model of one class)."""
    problem = (f"{model.model_dir}: no label named {' or '.join(classes)} in dataset.json "
               f"({describe_labels(model.labels)})")
    example = f"{classes[0]}=5"
    if tuple(classes) == ("liver",):
        return ParameterError("{problem}; give {liver_label_map} (e.g. {example})", problem=problem, example=example)
    if tuple(classes) == ("lesion",):
        return ParameterError("{problem}; give {lesion_label_map} (e.g. {example})", problem=problem, example=example)
    return ParameterError("{problem}; give {label_map} (e.g. {example})", problem=problem, example=example)


def choose_label_map(model: NnunetModel, label_map: str | LabelMap | None, classes: Sequence[str] = CLASSES,
                     parameter: str = "label_map") -> LabelMap:
    """``label_map`` checked against the model's labels, or :func:`default_label_map`; ``parameter`` names it in
    errors (see :func:`parse_label_map`)."""
    if isinstance(label_map, LabelMap):
        return label_map
    if label_map is None:
        return default_label_map(model, classes)
    role = classes[0] if len(classes) == 1 else None
    return parse_label_map(label_map, model.labels, parameter, role, str(model.result_folder / "dataset.json"))


class NnunetSegmenter:
    """An nnU-Net v2 model ready to segment CT volumes (livermets' segmenter interface).

    Parameters
    ----------
    model_dir
        A livermets nnU-Net model folder or an nnU-Net v2 result folder (see the module docstring).
    device
        ``auto``, ``cpu`` or ``cuda``.
    label_map
        nnU-Net labels → liver / lesion (``"liver=5"``, ``"liver=1,lesion=2"``, a :class:`LabelMap`); default
        :func:`default_label_map`.
    folds
        Folds to ensemble (default: see :func:`locate_model`).
    tile_step_size, use_gaussian
        nnU-Net's sliding window: step as a fraction of the patch (0.5: half-overlapping tiles) and Gaussian
        weighting of the tiles.
    largest_liver, lesion_max_distance_mm
        The anatomical clean-up of :func:`livermets.segmentation.postprocess.postprocess_label` (both off: the
        mapped nnU-Net labels as they are).
    ras
        Feed the network the CT with voxel axes along R, A, S (``sitk.DICOMOrient(image, "RAS")``, what nibabel's
        ``as_closest_canonical`` gives and what TotalSegmentator feeds its models) and turn the labels back; default
        only for models whose plans name a reorienting reader (``SimpleITKIOWithReorient``,
        ``NibabelIOWithReorient``). The output is on the input's grid either way.
    classes, parameter
        Classes of the default label map (``("liver",)`` for a liver-only model) and the parameter named in errors
        (``label_map``, ``liver_label_map`` or ``lesion_label_map``).
    engine, threads
        The engine of the network's forward pass and its threads (:mod:`livermets.segmentation.engines`;
        ``None``: the fastest installed on CPU, the cores this process may use).
    """

    def __init__(self, model_dir: str | Path, device: str = "auto", label_map: str | LabelMap | None = None,
                 folds: Sequence[str | int] | None = None,
                 tile_step_size: float = 0.5, use_gaussian: bool = True, largest_liver: bool = True,
                 lesion_max_distance_mm: float | None = 5.0, ras: bool | None = None,
                 classes: Sequence[str] = CLASSES, parameter: str = "label_map", engine: str | None = None,
                 threads: int | None = None) -> None:
        if not 0 < tile_step_size <= 1:
            raise UserInputError(f"tile_step_size: must be in (0, 1], got {tile_step_size}")
        self.model = locate_model(model_dir, folds)
        self.model_dir = self.model.model_dir
        self.label_map = choose_label_map(self.model, label_map, classes, parameter)
        self.device = resolve_device(device)
        self.largest_liver = largest_liver
        self.lesion_max_distance_mm = lesion_max_distance_mm
        reader = READERS[self.model.plans.get("image_reader_writer", "SimpleITKIO")]
        self.reorient = reader if ras is None else ras
        self.predictor = build_predictor(self.model, self.device, tile_step_size, use_gaussian, engine, threads)
        self.engine: str = self.predictor.engine
        self.last_timings: dict[str, Any] = {}
        log.info("%s: nnU-Net %s, folds %s, label map %s, engine %s", self.model.result_folder,
                 self.predictor.configuration_name, ",".join(self.model.folds), self.label_map, self.engine)

    @property
    def qc(self) -> QCConfig:
        return self.model.qc

    @property
    def lesion_threshold(self) -> float | None:
        """Always ``None``: nnU-Net labels are the argmax of its class probabilities."""
        return None

    @property
    def mirroring_axes(self) -> tuple[int, ...] | None:
        """Axes nnU-Net mirrors for test-time augmentation (``None``: the model was trained without mirroring)."""
        axes = self.predictor.allowed_mirroring_axes
        return None if axes is None else tuple(int(a) for a in axes)

    def predict_labels(self, image: sitk.Image, tta: bool = False) -> np.ndarray:
        """nnU-Net's own output labels (before the label map) as a (z, y, x) array on ``image``'s grid."""
        oriented = _to_ras(image) if self.reorient else image
        array, properties = nnunet_input(oriented)
        self.predictor.use_mirroring = bool(tta)
        with torch.no_grad(), nnunet_prints_to_log():
            labels = self.predictor.predict_single_npy_array(array, properties, None, None, False)
        labels = np.asarray(labels)
        if self.reorient:
            labels = _from_ras(labels, oriented, image)
        if labels.shape != tuple(image.GetSize()[::-1]):
            raise RuntimeError(f"nnU-Net returned shape {labels.shape} for an image of {image.GetSize()[::-1]}")
        return labels

    def predict_image(self, image: sitk.Image, name: str = "image", tta: bool = False,
                      check: bool = True) -> sitk.Image:
        """Label map (UInt8, 0/1/2) on exactly ``image``'s grid; ``check=False`` skips the CT intensity check (for
        a crop of a checked CT, which may hold no air)."""
        tick = time.perf_counter()
        if check:
            check_ct_intensities(image, name)
        if tta and self.mirroring_axes is None:
            log.warning("%s: --tta has no effect: the model was trained without mirroring (no mirror axes in its "
                        "checkpoint)", self.model.result_folder)
        try:
            labels = self.predict_labels(image, tta)
        except torch.OutOfMemoryError:
            raise nnunet_out_of_memory_error(self.device, name) from None
        inferred = time.perf_counter()
        label = self.label_map.apply(labels)
        if self.largest_liver or self.lesion_max_distance_mm is not None:
            label = clean_label(label, image.GetSpacing()[::-1], self.largest_liver, self.lesion_max_distance_mm)
        result = label_image(label, image)
        self.last_timings = {"network_s": inferred - tick, "postprocess_s": time.perf_counter() - inferred}
        log.debug("%s: %s", name, self.last_timings)
        return result


def label_image(label: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """UInt8 SimpleITK image of a (z, y, x) ``label`` with ``reference``'s geometry (checked to be exact)."""
    result = sitk.GetImageFromArray(np.ascontiguousarray(label, dtype=np.uint8))
    result.CopyInformation(reference)
    diffs = geometry_differences(result, reference)
    if diffs:  # copying the reference's information cannot change its grid; fail loudly if it ever did
        raise RuntimeError(f"prediction grid differs from the input: {diffs}")
    return result


def clean_label(label: np.ndarray, spacing: tuple[float, ...], largest_liver: bool,
                lesion_max_distance_mm: float | None) -> np.ndarray:
    """:func:`~livermets.segmentation.postprocess.postprocess_label` computed inside the bounding box of the
    non-zero voxels (identical result: every liver and lesion voxel lies in it; far less memory on a whole CT)."""
    nonzero = np.nonzero(np.any(label > 0, axis=(1, 2)))[0], np.nonzero(np.any(label > 0, axis=(0, 2)))[0], \
        np.nonzero(np.any(label > 0, axis=(0, 1)))[0]
    if any(len(ix) == 0 for ix in nonzero):
        return label
    box = tuple(slice(int(ix[0]), int(ix[-1]) + 1) for ix in nonzero)
    out = np.zeros_like(label)
    out[box] = postprocess_label(label[box], tuple(spacing), largest_liver, lesion_max_distance_mm)
    return out


def nnunet_input(image: sitk.Image) -> tuple[np.ndarray, dict[str, Any]]:
    """The array and properties nnU-Net's ``SimpleITKIO.read_images`` returns for ``image`` (one channel).

    Examples
    --------
    >>> img = sitk.Image(4, 3, 2, sitk.sitkInt16); img.SetSpacing((0.8, 0.7, 2.5))
    >>> array, props = nnunet_input(img)
    >>> array.shape, array.dtype.name, props["spacing"]
    ((1, 2, 3, 4), 'float32', [2.5, 0.7, 0.8])
    """
    array = sitk.GetArrayFromImage(image)
    if array.ndim != 3:
        raise UserInputError(f"image: expected a 3D CT volume, got {array.ndim} dimension(s)")
    spacing = image.GetSpacing()
    properties = {
        "sitk_stuff": {"spacing": spacing, "origin": image.GetOrigin(), "direction": image.GetDirection()},
        "spacing": [float(abs(s)) for s in spacing[::-1]],
    }
    return np.asarray(array[None], dtype=np.float32), properties


def _to_ras(image: sitk.Image) -> sitk.Image:
    """The volume with voxel axes along R, A, S (what nnU-Net's ``*WithReorient`` readers feed the network)."""
    return sitk.DICOMOrient(image, "RAS")


def _from_ras(labels: np.ndarray, oriented: sitk.Image, original: sitk.Image) -> np.ndarray:
    """Labels predicted on the RAS-oriented volume, back in the voxel order of ``original``."""
    moving = sitk.GetImageFromArray(labels)
    moving.CopyInformation(oriented)
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(original.GetDirection())
    return sitk.GetArrayFromImage(sitk.DICOMOrient(moving, code))


def build_predictor(model: NnunetModel, device: torch.device, tile_step_size: float = 0.5,
                    use_gaussian: bool = True, engine: str | None = None, threads: int | None = None) -> Any:
    """nnU-Net's ``nnUNetPredictor`` set up by ``manual_initialization`` with the network of ``plans.json`` and the
    fold weights (never ``initialize_from_trained_model_folder``, which unpickles without restriction).

    With an ONNX Runtime or OpenVINO ``engine`` (:func:`~livermets.segmentation.engines.choose.resolve_engine`;
    ``None``: the fastest installed on CPU) the predictor's network is an
    :class:`~livermets.segmentation.engines.runtime.EngineNetwork` of one graph per fold; nnU-Net's tiling,
    Gaussian weighting and mirroring stay its own. The predictor gets the extra attributes ``configuration_name``
    and ``engine``.

    Raises
    ------
    UserInputError
        Unreadable or refused checkpoints, a configuration the plans do not have (or a cascade stage), plans naming
        code outside ``dynamic_network_architectures`` / ``torch.nn``, weights that do not fit
        the planned network.
    """
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    checkpoints = [load_checkpoint(path) for path in model.checkpoints]
    first = checkpoints[0]
    init_args: dict[str, Any] = first["init_args"] if isinstance(first.get("init_args"), dict) else {}
    configuration = str(init_args.get("configuration") or model.configuration or "")
    plans_manager = PlansManager(model.plans)
    if configuration not in model.plans.get("configurations", {}):
        raise UserInputError(f"{model.result_folder / 'plans.json'}: no configuration {configuration or '(unknown)'} "
                             f"(the checkpoint's); plans have {', '.join(model.plans.get('configurations', {}))}")
    configuration_manager = plans_manager.get_configuration(configuration)
    if configuration_manager.previous_stage_name is not None:
        raise UserInputError(f"{model.result_folder}: {configuration} is a cascade stage (it needs the previous "
                             "stage's segmentation); use a model of a single stage such as 3d_fullres")
    _check_architecture(configuration_manager, model)
    network = _network(plans_manager, configuration_manager, model)
    weights = [_fitting_weights(network, ck["network_weights"], path)
               for ck, path in zip(checkpoints, model.checkpoints, strict=True)]
    network.load_state_dict(weights[0])
    with nnunet_prints_to_log():
        predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=use_gaussian, use_mirroring=False,
                                    perform_everything_on_device=device.type == "cuda", device=device,
                                    verbose=False, verbose_preprocessing=False, allow_tqdm=False)
        predictor.manual_initialization(network, plans_manager, configuration_manager, weights, model.dataset_json,
                                        str(first.get("trainer_name", "nnUNetTrainer")),
                                        _mirror_axes(first.get("inference_allowed_mirroring_axes")))
    predictor.configuration_name = configuration
    predictor.engine = resolve_engine(engine, device)
    shape = (1, int(first_conv_channels(network)), *configuration_manager.patch_size)
    predictor.network = compile_network(network, shape, predictor.engine, threads, weights)
    return predictor


def first_conv_channels(network: torch.nn.Module) -> int:
    """Input channels of the network (those of its first convolution)."""
    return next(m.in_channels for m in network.modules() if isinstance(m, torch.nn.modules.conv._ConvNd))


def _check_architecture(configuration_manager: Any, model: NnunetModel) -> None:
    """plans.json names the classes to import for the network; accept nnU-Net's (``dynamic_network_architectures``
    networks, ``torch.nn`` layers) only: importing a named module can run code."""
    names = [str(configuration_manager.network_arch_class_name)]
    kwargs = configuration_manager.network_arch_init_kwargs
    names += [str(kwargs[k]) for k in configuration_manager.network_arch_init_kwargs_req_import
              if kwargs.get(k) is not None]
    foreign = [n for n in names[:1] if not n.startswith(ARCHITECTURE_PREFIX)]
    foreign += [n for n in names[1:] if not n.startswith(LAYER_PREFIX)]
    if foreign:
        raise UserInputError(f"{model.result_folder / 'plans.json'}: refused to import {', '.join(foreign)} (not an "
                             "nnU-Net network or torch.nn layer)")


def _network(plans_manager: Any, configuration_manager: Any, model: NnunetModel) -> torch.nn.Module:
    """The network ``nnUNetTrainer.build_network_architecture`` builds (without deep supervision, for inference)."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    channels = determine_num_input_channels(plans_manager, configuration_manager, model.dataset_json)
    heads = plans_manager.get_label_manager(model.dataset_json).num_segmentation_heads
    try:
        network = get_network_from_plans(
            configuration_manager.network_arch_class_name, configuration_manager.network_arch_init_kwargs,
            configuration_manager.network_arch_init_kwargs_req_import, channels, heads, allow_init=False,
            deep_supervision=False)
    except (ImportError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise UserInputError(f"{model.result_folder / 'plans.json'}: cannot build its network "
                             f"({type(exc).__name__}: {str(exc)[:160]})") from None
    return network.eval()


def _fitting_weights(network: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """The checkpoint's state dict under the network's key names (``module.`` / ``_orig_mod.`` prefixes of DDP and
    ``torch.compile`` removed), checked to fit the network exactly."""
    state = network.state_dict()
    renamed = {re.sub(r"^(module\.|_orig_mod\.)+", "", key): value for key, value in weights.items()}
    missing = [k for k in state if k not in renamed]
    unexpected = [k for k in renamed if k not in state]
    wrong = [k for k in state if k in renamed and tuple(renamed[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise UserInputError(f"{path}: its weights do not fit the network plans.json describes ({len(missing)} "
                             f"missing, {len(unexpected)} unexpected, {len(wrong)} of another shape, e.g. {first}); "
                             "a trainer with its own architecture?")
    return renamed


def _mirror_axes(axes: Any) -> tuple[int, ...] | None:
    if axes is None:
        return None
    return tuple(int(a) for a in axes)
