"""TotalSegmentator's liver and liver-lesion models, run in-process exactly as TotalSegmentator 2.18.0 runs them.

A :class:`TotalSegTask` is one of TotalSegmentator's nnU-Net models (an installed result folder plus the
preprocessing of TotalSegmentator's task configuration); :class:`TotalSegPairSegmenter` combines a liver task and
a liver-lesion task into livermets' label map (0 background, 1 liver, 2 lesion) on the CT's exact grid.

Each task runs the steps of TotalSegmentator's ``nnUNet_predict_image`` (``totalsegmentator/nnunet.py``), with
the same libraries (nibabel, scipy, nnU-Net) on the same arrays:

1. the CT as nibabel sees it (x, y, z voxel order, RAS affine), in float64;
2. with a crop mask: the box of the mask grown by ``crop_addon`` mm (per axis, ``int(mm / spacing)`` voxels,
   clipped to the image), the CT cast to int32 inside it (TotalSegmentator's ``crop_to_mask``); an empty mask gives
   an empty result and the model does not run;
3. ``nibabel.as_closest_canonical`` (voxel axes along R, A, S);
4. resampling to ``resample_mm`` with ``scipy.ndimage.zoom`` (linear, ``mode="nearest"``, output shape
   ``round(shape * spacing / resample_mm)``), cast to int32 (TotalSegmentator's ``change_spacing``); skipped when
   the spacing already is ``resample_mm``;
5. nnU-Net v2's predictor (its own preprocessing, sliding window with Gaussian weighting, no mirroring) with
   TotalSegmentator's tile step (0.8 for the ``total`` models, else 0.5);
6. the labels back to the canonical grid with ``scipy.ndimage.zoom`` (nearest), back to the input's voxel order,
   and put back into the uncropped grid.

The liver-lesion model (Dataset591) sees the CT cropped around the liver of TotalSegmentator's 3 mm ``total``
model (Dataset297: TotalSegmentator's ``robust_crop``). TotalSegmentator 2.18.0 grows that crop by 20 mm on each
side, not by the 10 mm of its task configuration: ``python_api.py`` sets ``crop_addon = [20, 20, 20]`` whenever
the crop comes from the ``total`` model, and so does :meth:`TotalSegTask.from_registry`.

The pair then keeps the liver of the liver task (with ``largest_liver`` its largest part) and the lesion voxels of
the lesion task within ``lesion_max_distance_mm`` (default 5 mm) of it, by
:func:`~livermets.segmentation.nnunet.composite.combine_labels`.

Weights are read by :func:`~livermets.segmentation.nnunet.checkpoint.load_checkpoint` (``weights_only=True``);
nothing is downloaded and nothing is sent. nnunetv2 is imported only when a task is loaded.

Examples
--------
>>> liver = TotalSegTask.from_registry(registry["ts-liver-fast"]["nnunet"], home / "ts-liver-fast")  # doctest: +SKIP
>>> lesion = TotalSegTask.from_registry(registry["ts-liver-lesions"]["nnunet"],
...                                     home / "ts-liver-lesions")  # doctest: +SKIP
>>> label = TotalSegPairSegmenter(liver, lesion, crop=liver).predict_image(ct)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from livermets.errors import ParameterError, UserInputError
from livermets.segmentation.checks import check_ct_intensities
from livermets.segmentation.config import QCConfig
from livermets.segmentation.device import nnunet_out_of_memory_error, resolve_device
from livermets.segmentation.nnunet.composite import DEFAULT_MARGIN_MM, combine_labels
from livermets.segmentation.nnunet.environment import nnunet_prints_to_log
from livermets.segmentation.nnunet.predictor import (
    LabelMap,
    NnunetModel,
    build_predictor,
    choose_label_map,
    label_image,
    locate_model,
)
from livermets.segmentation.options import KEEP_ALL, PredictionOptions

log = logging.getLogger(__name__)

TOTALSEGMENTATOR_VERSION = "2.18.0"
"""The TotalSegmentator release whose steps this module reproduces (and against which it is tested)."""
TOTAL_DATASET = re.compile(r"^Dataset(29[1-8]|83[1-7]|85\d)_TotalSegmentator_")
"""Datasets of TotalSegmentator's ``total`` models, which it runs with a tile step of 0.8 (others 0.5)."""
TOTAL_TILE_STEP = 0.8
DEFAULT_TILE_STEP = 0.5
TOTAL_CROP_ADDON_MM = (20.0, 20.0, 20.0)
"""The margin TotalSegmentator 2.18.0 grows a crop made from its ``total`` model's organs by, whatever its task
configuration's ``crop_addon`` says (``python_api.py``: ``crop_addon = [20,20,20] if crop_model is None``)."""


@dataclass(frozen=True)
class TotalSegTask:
    """One TotalSegmentator nnU-Net model with its task's preprocessing (see the module).

    Parameters
    ----------
    result_folder
        The nnU-Net result folder ``<DatasetXXX>/<trainer>__<plans>__<configuration>``.
    dataset, trainer, plans, configuration, folds
        As in TotalSegmentator's task configuration.
    resample_mm
        Spacing the model runs at, x, y, z in mm (TotalSegmentator's order); ``None``: the CT's own.
    crop, crop_addon_mm
        The class whose box the model sees (``"liver"``) and the margin grown on each side, in mm.
    tile_step_size
        nnU-Net's sliding-window step as a fraction of the patch.
    label_map
        Which output labels are liver / lesion (``"liver=5"``); default: dataset.json's ``liver`` and lesion names.
    """

    result_folder: Path
    dataset: str
    trainer: str = "nnUNetTrainer"
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"
    folds: tuple[str, ...] = ("0",)
    resample_mm: tuple[float, float, float] | None = None
    crop: str | None = None
    crop_addon_mm: tuple[float, float, float] = (3.0, 3.0, 3.0)
    tile_step_size: float = DEFAULT_TILE_STEP
    label_map: str | None = None

    @classmethod
    def from_registry(cls, block: Mapping[str, Any], result_folder: str | Path,
                      label_map: str | None = None) -> TotalSegTask:
        """The task of a registry entry's ``nnunet`` block, installed under ``result_folder``.

        ``result_folder`` may be the model's install folder (holding ``<dataset>/``), the dataset folder or the
        ``<trainer>__<plans>__<configuration>`` folder itself. ``tile_step_size`` defaults to TotalSegmentator's
        (0.8 for its ``total`` datasets, else 0.5). A task with a ``crop`` gets the block's ``crop_margin_mm``, by
        default TotalSegmentator's effective margin, :data:`TOTAL_CROP_ADDON_MM` (its crop always comes from the
        ``total`` model, and TotalSegmentator then replaces the task configuration's ``crop_addon``, e.g.
        liver_lesions' 10 mm, by 20 mm).

        Raises
        ------
        UserInputError
            A block without ``dataset``, or no result folder of that dataset, trainer, plans and configuration.
        """
        if not isinstance(block.get("dataset"), str):
            raise UserInputError(f"registry nnunet block: no dataset name ({dict(block)})")
        dataset = str(block["dataset"])
        trainer = str(block.get("trainer") or "nnUNetTrainer")
        plans = str(block.get("plans") or "nnUNetPlans")
        configuration = str(block.get("configuration") or "3d_fullres")
        folder = find_result_folder(Path(result_folder), dataset, trainer, plans, configuration)
        resample = block.get("resample_mm")
        if isinstance(resample, int | float):
            resample = [resample] * 3
        addon = (block.get("crop_margin_mm") or TOTAL_CROP_ADDON_MM) if block.get("crop") else (3, 3, 3)
        default_step = TOTAL_TILE_STEP if TOTAL_DATASET.match(dataset) else DEFAULT_TILE_STEP
        return cls(folder, dataset, trainer, plans, configuration,
                   tuple(str(f) for f in block.get("folds") or (0,)),
                   None if resample is None else (float(resample[0]), float(resample[1]), float(resample[2])),
                   block.get("crop") or None, (float(addon[0]), float(addon[1]), float(addon[2])),
                   float(block.get("tile_step_size") or default_step), label_map or block.get("label_map"))


def find_result_folder(root: Path, dataset: str, trainer: str, plans: str, configuration: str) -> Path:
    """``<trainer>__<plans>__<configuration>`` under ``root``, ``root/<dataset>`` or ``root`` itself."""
    name = f"{trainer}__{plans}__{configuration}"
    for candidate in (root, root / name, root / dataset / name):
        if (candidate / "plans.json").is_file() and candidate.name == name:
            return candidate
    raise UserInputError(f"{root}: no nnU-Net result folder {dataset}/{name} (with plans.json)")


@dataclass
class LoadedTask:
    """A task with its nnU-Net model located and its predictor built."""

    task: TotalSegTask
    model: NnunetModel
    predictor: Any
    labels: LabelMap


def load_task(task: TotalSegTask, role: str, device: torch.device, options: PredictionOptions) -> LoadedTask:
    """Locate the model, check its label map for ``role`` (``liver`` or ``lesion``) and build nnU-Net's predictor
    (tile step ``1 - options.overlap`` when given, Gaussian weighting unless ``blend_mode="constant"``)."""
    model = locate_model(task.result_folder, task.folds)
    if model.configuration not in (None, task.configuration):
        raise UserInputError(f"{task.result_folder}: configuration {model.configuration}, expected "
                             f"{task.configuration}")
    labels = choose_label_map(model, task.label_map, (role,), f"{role}_label_map")
    step = task.tile_step_size if options.overlap is None else 1.0 - options.overlap
    predictor = build_predictor(model, device, step, options.blend_mode != "constant", options.engine,
                                options.threads)
    return LoadedTask(task, model, predictor, labels)


def nifti_view(image: sitk.Image) -> nib.Nifti1Image:
    """``image`` as nibabel reads the same file: data in x, y, z voxel order (float64, as ``get_fdata``) and the
    RAS affine (SimpleITK's LPS direction and origin with x and y negated).

    Examples
    --------
    >>> img = sitk.Image(4, 3, 2, sitk.sitkInt16); img.SetSpacing((0.8, 0.7, 2.5)); img.SetOrigin((10, 20, 30))
    >>> view = nifti_view(img)
    >>> view.shape, [round(float(z), 3) for z in view.header.get_zooms()], view.affine[:3, 3].tolist()
    ((4, 3, 2), [0.8, 0.7, 2.5], [-10.0, -20.0, 30.0])
    """
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(np.float64)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.array(image.GetSpacing(), dtype=np.float64)[None, :]
    affine[:3, 3] = image.GetOrigin()
    affine[:2] *= -1  # LPS -> RAS
    return nib.Nifti1Image(data, affine)


def crop_box(mask: np.ndarray, zooms: Sequence[float], addon_mm: Sequence[float]) -> tuple[slice, ...]:
    """TotalSegmentator's ``crop_to_mask`` box: the mask's box grown by ``int(addon_mm / zoom)`` voxels per axis,
    clipped to the array.

    Examples
    --------
    >>> m = np.zeros((10, 10, 10), bool); m[4:6, 4:6, 4:6] = True
    >>> crop_box(m, (1.5, 3.0, 1.0), (3, 3, 20))
    (slice(2, 8, None), slice(3, 7, None), slice(0, 10, None))
    """
    addon = (np.array(addon_mm) / np.array(zooms)).astype(int)
    box = []
    for axis in range(3):
        index = np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        box.append(slice(max(0, int(index[0]) - int(addon[axis])),
                         min(mask.shape[axis], int(index[-1]) + 1 + int(addon[axis]))))
    return tuple(box)


def change_spacing(img: nib.Nifti1Image, new_spacing: Sequence[float], order: int, dtype: Any,
                   target_shape: Sequence[int] | None = None) -> nib.Nifti1Image:
    """TotalSegmentator's ``change_spacing``: ``scipy.ndimage.zoom`` (``mode="nearest"``) of the float64 data by
    ``spacing / new_spacing`` (or onto ``target_shape``), cast to ``dtype``, the affine's columns scaled; the image
    unchanged when its spacing already is ``new_spacing``."""
    data = np.asarray(img.get_fdata())
    spacing = np.array(img.header.get_zooms()[:3])
    if target_shape is not None:
        zoom = np.array(target_shape) / np.array(data.shape)
        new = spacing / zoom
    else:
        new = np.array(new_spacing, dtype=np.float64)
        zoom = spacing / new
    if np.array_equal(spacing, new):
        return img
    affine = np.copy(img.affine)
    affine[:3, :3] = affine[:3, :3] / zoom[None, :]
    resampled = ndimage.zoom(data, zoom, mode="nearest", order=order).astype(dtype)
    return nib.Nifti1Image(resampled, affine)


def undo_canonical(canonical: nib.Nifti1Image, original: nib.Nifti1Image) -> nib.Nifti1Image:
    """``canonical`` (RAS voxel axes) back in ``original``'s voxel order (TotalSegmentator's ``undo_canonical``)."""
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    return canonical.as_reoriented(ornt_transform(axcodes2ornt("RAS"), io_orientation(original.affine)))


def run_task(loaded: LoadedTask, img: nib.Nifti1Image, crop_mask: np.ndarray | None = None,
             tta: bool = False) -> np.ndarray:
    """The task's nnU-Net output labels (uint8, x, y, z) on ``img``'s grid, computed as TotalSegmentator's
    ``nnUNet_predict_image`` computes them (see the module); ``crop_mask`` (x, y, z) limits the model to its box."""
    task = loaded.task
    out = np.zeros(img.shape, dtype=np.uint8)
    box = None
    work = img
    if crop_mask is not None:
        if not crop_mask.any():
            return out
        box = crop_box(crop_mask, img.header.get_zooms()[:3], task.crop_addon_mm)
        affine = np.copy(img.affine)
        affine[:3, 3] = (affine @ np.array([box[0].start, box[1].start, box[2].start, 1]))[:3]
        work = nib.Nifti1Image(np.asarray(img.dataobj)[box].astype(np.int32), affine)
    canonical = nib.as_closest_canonical(work)
    resampled = canonical if task.resample_mm is None else change_spacing(canonical, task.resample_mm, 1, np.int32)
    labels = predict_array(loaded, resampled, tta)
    predicted = nib.Nifti1Image(labels, resampled.affine)
    if task.resample_mm is not None:
        predicted = change_spacing(predicted, task.resample_mm, 0, np.uint8, target_shape=canonical.shape)
    back = np.asarray(undo_canonical(predicted, work).dataobj).astype(np.uint8)
    if box is None:
        return back
    out[box] = back
    return out


def predict_array(loaded: LoadedTask, img: nib.Nifti1Image, tta: bool = False) -> np.ndarray:
    """nnU-Net's labels (uint8, x, y, z) for ``img`` as its image readers would give it from the saved file: the
    array in z, y, x order as float32 and the spacing (z, y, x) of the header."""
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    array = np.asarray(img.dataobj).transpose(2, 1, 0)[None].astype(np.float32)
    properties = {"spacing": zooms[::-1]}
    loaded.predictor.use_mirroring = bool(tta)
    with torch.no_grad(), nnunet_prints_to_log():
        labels = loaded.predictor.predict_single_npy_array(array, properties, None, None, False)
    return np.ascontiguousarray(np.asarray(labels, dtype=np.uint8).transpose(2, 1, 0))


@dataclass
class PairParts:
    """The intermediate results of one pair prediction, each (z, y, x) on the CT's grid: the liver task's and the
    crop task's nnU-Net labels and the lesion task's labels on the liver crop."""

    liver: np.ndarray
    crop: np.ndarray
    lesion: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


class TotalSegPairSegmenter:
    """TotalSegmentator's liver and liver-lesion models as one livermets segmenter (see the module).

    Parameters
    ----------
    liver
        The liver task (Dataset291 at 1.5 mm or Dataset297 at 3 mm; liver = label 5).
    lesion
        The liver-lesion task (Dataset591, ``crop="liver"``).
    crop
        The task whose liver gives the lesion task's crop (TotalSegmentator: Dataset297); ``None``: the liver task.
        When it is the liver task, the liver is predicted once.
    device
        ``auto``, ``cpu`` or ``cuda``.
    options
        ``overlap`` (tile step ``1 - overlap``), ``blend_mode``, ``largest_liver`` (default on),
        ``lesion_max_distance_mm`` (default 5 mm; ``"keep_all"``: every lesion voxel the lesion task finds), and
        ``engine`` and ``threads`` of the networks' forward passes.
    """

    def __init__(self, liver: TotalSegTask, lesion: TotalSegTask, crop: TotalSegTask | None = None,
                 device: str = "auto", options: PredictionOptions | None = None) -> None:
        options = options or PredictionOptions()
        if lesion.crop is not None and lesion.crop != "liver":
            raise ParameterError("{lesion_model}: crop {crop!r} is not supported (only the liver crop)",
                                 crop=lesion.crop)
        self.device = resolve_device(device)
        self.liver = load_task(liver, "liver", self.device, options)
        self.lesion = load_task(lesion, "lesion", self.device, options)
        self.crop = self.liver if crop is None or crop == liver else load_task(crop, "liver", self.device, options)
        self.model_dir = liver.result_folder
        self.engine: str = self.lesion.predictor.engine
        self.largest_liver = True if options.largest_liver is None else options.largest_liver
        distance = options.lesion_max_distance_mm
        self.margin_mm: float | None = (DEFAULT_MARGIN_MM if distance is None else
                                        None if distance == KEEP_ALL else float(distance))
        self.last_timings: dict[str, float] = {}

    @property
    def qc(self) -> QCConfig:
        """livermets' default plausibility thresholds."""
        return self.liver.model.qc

    @property
    def lesion_threshold(self) -> float | None:
        """Always ``None``: nnU-Net labels are the argmax of its class probabilities."""
        return None

    def predict_parts(self, image: sitk.Image, tta: bool = False) -> PairParts:
        """The liver, crop and lesion tasks' own labels (z, y, x) on ``image``'s grid."""
        tick = time.perf_counter()
        view = nifti_view(image)
        liver = run_task(self.liver, view, tta=tta)
        after_liver = time.perf_counter()
        crop = liver if self.crop is self.liver else run_task(self.crop, view, tta=tta)
        after_crop = time.perf_counter()
        organ = self.crop.labels.apply(crop) > 0
        lesion = (run_task(self.lesion, view, organ if self.lesion.task.crop else None, tta)
                  if organ.any() or not self.lesion.task.crop else np.zeros_like(crop))
        timings = {"liver_model_s": after_liver - tick, "crop_model_s": after_crop - after_liver,
                   "lesion_model_s": time.perf_counter() - after_crop}
        liver_zyx, crop_zyx, lesion_zyx = (np.ascontiguousarray(a.transpose(2, 1, 0)) for a in (liver, crop, lesion))
        return PairParts(liver_zyx, crop_zyx, lesion_zyx, timings)

    def combine(self, parts: PairParts, image: sitk.Image) -> sitk.Image:
        """livermets' label map from the parts (:func:`combine_labels`), on exactly ``image``'s grid."""
        liver = self.liver.labels.apply(parts.liver)
        lesion = self.lesion.labels.apply(parts.lesion)
        spacing = tuple(float(s) for s in image.GetSpacing()[::-1])
        return label_image(combine_labels(liver, lesion, spacing, self.margin_mm, self.largest_liver), image)

    def predict_image(self, image: sitk.Image, name: str = "image", tta: bool = False,
                      check: bool = True) -> sitk.Image:
        """Label map (UInt8, 0/1/2) on exactly ``image``'s grid."""
        if check:
            check_ct_intensities(image, name)
        if image.GetDimension() != 3:
            raise UserInputError(f"{name}: expected a 3D CT volume, got {image.GetDimension()} dimension(s)")
        try:
            parts = self.predict_parts(image, tta)
        except torch.OutOfMemoryError:
            raise nnunet_out_of_memory_error(self.device, name) from None
        tick = time.perf_counter()
        result = self.combine(parts, image)
        self.last_timings = parts.timings | {"combine_s": time.perf_counter() - tick}
        log.debug("%s: %s", name, self.last_timings)
        return result
