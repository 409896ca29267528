"""Predict liver/lesion label maps (0/1/2) on the exact grid of each input CT.

The CT goes through the model's deterministic preprocessing (orientation, spacing, foreground crop, window), MONAI
``sliding_window_inference`` (Gaussian or constant blending) with optional flip test-time augmentation, anatomical
post-processing on the network grid, and is then mapped back onto the input grid by one SimpleITK resampling
through the physical coordinates carried by the MetaTensor affine — so size, spacing, origin and direction of the
output equal the input's, whatever the orientation or obliquity.

:func:`predict_cohort` and :func:`load_segmenter` also take nnU-Net models (a livermets nnU-Net model folder or any
nnU-Net v2 result folder, :mod:`livermets.segmentation.nnunet.predictor`) and a liver model combined with a lesion
model (:class:`ModelChoice`, :mod:`livermets.segmentation.nnunet.composite`); every kind of segmenter has the same
``predict_image`` (:class:`ImageSegmenter`).

Examples
--------
>>> from livermets.segmentation.predict import Segmenter
>>> seg = Segmenter("models/unet")  # doctest: +SKIP
>>> label = seg.predict_image(read_image("ct.nii.gz"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.atomic import remove_stale_temporaries, write_csv, write_json
from livermets.cohort.manifest import load_manifest, select_split
from livermets.errors import ParameterError, UserInputError
from livermets.imaging.geometry import geometry_differences
from livermets.imaging.integrity import check_headers
from livermets.imaging.io import IMAGE_SUFFIXES, prediction_path, read_image, read_label, write_label
from livermets.logs import repeated
from livermets.progress import track
from livermets.segmentation.checks import check_ct_intensities
from livermets.segmentation.config import InferenceConfig, QCConfig, SegConfig, config_from_dict, load_config
from livermets.segmentation.default_model import (
    ModelInfo,
    announce_model,
    default_model_name,
    registry_model,
)
from livermets.segmentation.lesion_size import MinLesionSize, model_min_lesion_size, remove_small_lesions
from livermets.segmentation.model_files import CONFIG_FILE, WEIGHTS_FILE
from livermets.segmentation.options import LIVER_CHOICES, MONAI_ONLY, PredictionOptions
from livermets.segmentation.postprocess import (
    LESION,
    LIVER,
    labels_from_probabilities,
    postprocess_label,
    postprocess_probabilities,
)
from livermets.segmentation.qc import FLAG_TITLES, QCRecord, check_prediction

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class Segmenter:
    """A trained model ready to segment CT volumes.

    Parameters
    ----------
    model_dir
        Folder written by ``livermets seg train`` (``config.yaml`` + ``model.safetensors``).
    device
        ``auto``, ``cpu`` or ``cuda``.
    options
        What this run changes in the saved ``inference`` settings (:class:`PredictionOptions`; default: nothing),
        and the engine that runs the network (``engine``, ``threads``; default: the fastest installed on CPU).
    """

    def __init__(self, model_dir: str | Path, device: str = "auto", options: PredictionOptions | None = None) -> None:
        from livermets.segmentation.device import resolve_device
        from livermets.segmentation.engines.choose import resolve_engine
        from livermets.segmentation.engines.runtime import compile_network
        from livermets.segmentation.monai.networks import build_network, load_weights
        from livermets.segmentation.monai.transforms import eval_transforms

        options = options or PredictionOptions()
        self.model_dir = Path(model_dir)
        self.config: SegConfig = _model_config(self.model_dir, options)
        self.device = resolve_device(device)
        self.engine = resolve_engine(options.engine, self.device, kind="monai")
        network = load_weights(build_network(self.config), self.model_dir / WEIGHTS_FILE).to(self.device).eval()
        shape = (1, 1, *self.config.sampling.patch_size)
        self.network = compile_network(network, shape, self.engine, options.threads)
        self.transforms = eval_transforms(self.config, with_label=False)
        self.last_timings: dict[str, Any] = {}  # seconds per stage of the last predict_image call

    @property
    def inference(self) -> InferenceConfig:
        return self.config.inference

    @property
    def qc(self) -> QCConfig:
        """Plausibility thresholds of the model (``config.yaml``'s ``qc`` section)."""
        return self.config.qc

    @property
    def lesion_threshold(self) -> float | None:
        return self.config.inference.lesion_threshold

    def probabilities(self, image: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Softmax class probabilities (1, 3, x, y, z) for a preprocessed (1, 1, x, y, z) tensor.

        With ``tta`` the probabilities are averaged over the identity and each flip in ``inference.tta_flip_axes``.
        """
        import torch

        from livermets.segmentation.device import mixed_precision
        from livermets.segmentation.monai.networks import sliding_window_logits

        settings = self.inference
        amp = mixed_precision(self.device, self.config.train.amp)

        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(sliding_window_logits(self.network, x, self.config).float(), dim=1)

        flips = settings.tta_flip_axes if tta else ()
        with torch.no_grad(), torch.autocast(self.device.type, enabled=amp):
            x = image.to(self.device)
            total = run(x)
            for axes in flips:
                dims = [a + 2 for a in axes]
                total += run(torch.flip(x, dims)).flip(dims)
        return (total / (1 + len(flips))).cpu()

    def predict_image(self, image: sitk.Image, name: str = "image", tta: bool = False,
                      check: bool = True) -> sitk.Image:
        """Label map (UInt8, 0/1/2) on exactly ``image``'s grid; ``check=False`` skips the CT intensity check (for
        a crop of a checked CT, which may hold no air)."""
        import torch

        from livermets.segmentation.device import out_of_memory_error
        from livermets.segmentation.monai.convert import array_to_image
        from livermets.segmentation.monai.transforms import IMAGE

        pre = self.config.preprocess
        tick = time.perf_counter()
        if check:
            check_ct_intensities(image, name, pre.min_ct_hu, pre.foreground_hu)
        data = self.transforms({IMAGE: image})
        preprocessed = time.perf_counter()
        tensor = data[IMAGE]
        affine = np.asarray(tensor.affine, dtype=np.float64)
        spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
        try:
            probs = self.probabilities(tensor.as_tensor()[None], tta=tta)[0].numpy()
        except torch.OutOfMemoryError:
            raise out_of_memory_error(self.device, f"prediction of {name}") from None
        inferred = time.perf_counter()
        settings = self.inference
        if settings.resample == "labels":
            label = postprocess_label(labels_from_probabilities(probs, settings.lesion_threshold), spacing,
                                      settings.largest_liver, settings.lesion_max_distance_mm)
            moving = array_to_image(label, affine)
            result = sitk.Resample(moving, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        else:
            probs = postprocess_probabilities(probs, spacing, settings.largest_liver, settings.lesion_max_distance_mm,
                                              settings.lesion_threshold)
            quantised = np.rint(probs * 255).astype(np.uint8)
            moving = array_to_image(quantised, affine)
            resampled = sitk.Resample(moving, image, sitk.Transform(), sitk.sitkLinear, 0, sitk.sitkVectorUInt8)
            threshold = None if settings.lesion_threshold is None else settings.lesion_threshold * 255
            result = _label_image(resampled, image, threshold)
        diffs = geometry_differences(result, image)
        if diffs:  # resampling onto the reference cannot change its grid; fail loudly if it ever did
            raise RuntimeError(f"prediction grid differs from the input: {diffs}")
        done = time.perf_counter()
        self.last_timings = {"preprocess_s": preprocessed - tick, "network_s": inferred - preprocessed,
                             "postprocess_resample_s": done - inferred, "network_grid": tuple(tensor.shape[1:])}
        log.debug("%s: %s", name, self.last_timings)
        return result


def _label_image(vector: sitk.Image, reference: sitk.Image, lesion_threshold: float | None) -> sitk.Image:
    """UInt8 label of a 3-component UInt8 probability image (:func:`labels_from_probabilities`, 0..255 units)."""
    arr = sitk.GetArrayViewFromImage(vector)  # (z, y, x, 3)
    out = sitk.GetImageFromArray(labels_from_probabilities([arr[..., k] for k in range(3)], lesion_threshold))
    out.CopyInformation(reference)
    return out


def series_id_from_path(path: str | Path) -> str:
    """File name without image suffix (``ct_01.nii.gz`` → ``ct_01``), or the folder name for DICOM."""
    p = Path(path)
    name = p.name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class PredictionRow:
    series_id: str
    image: str
    prediction: str
    liver_ml: float
    lesion_ml: float
    seconds: float
    n_lesions: int
    qc_flags: str
    engine: str = ""
    """The engine that ran the network (``torch``, ``onnxruntime``, ``openvino``; empty when not known)."""


def qc_path(out_dir: str | Path, series_id: str) -> Path:
    """``OUT/<series_id>.qc.json``: the plausibility record of one prediction."""
    return Path(out_dir) / f"{series_id}.qc.json"


def _predict_one(
    segmenter: ImageSegmenter, series_id: str, path: str, ct: sitk.Image, target: Path, tta: bool, qc: QCConfig,
    min_size: MinLesionSize,
) -> PredictionRow:
    """Segment one CT, remove the lesions below ``min_size``, write its plausibility record and then its label map
    (the marker of a finished series)."""
    tick = time.monotonic()
    label, removed = remove_small_lesions(segmenter.predict_image(ct, path, tta=tta), min_size)
    record = check_prediction(label, ct, qc, series_id, removed)
    write_json(qc_path(target.parent, series_id), record.to_dict())
    write_label(label, target)
    _log_flags(record)
    return _row(series_id, path, target, label, record.n_lesions, record.codes, round(time.monotonic() - tick, 2),
                segmenter.engine)


def _row(series_id: str, path: str, target: Path, label: sitk.Image, n_lesions: int, codes: list[str],
         seconds: float, engine: str = "") -> PredictionRow:
    counts = np.bincount(sitk.GetArrayViewFromImage(label).ravel(), minlength=3)
    voxel_ml = float(np.prod(label.GetSpacing())) / 1000.0
    return PredictionRow(series_id, path, str(target), round(counts[LIVER] * voxel_ml, 3),
                         round(counts[LESION] * voxel_ml, 3), seconds, n_lesions, ";".join(codes), engine)


def _finished_row(series_id: str, path: str, target: Path, old: pd.DataFrame) -> PredictionRow | None:
    """The summary row of a series finished earlier: from the old ``predictions.csv``, or rebuilt from its label
    map and ``qc.json`` (a run killed before writing the summary); ``None`` when its record is missing."""
    previous = old[old["series_id"] == series_id]
    if len(previous):
        record = previous.iloc[-1].to_dict()
        for text in ("qc_flags", "engine"):  # empty cells read back as NaN; a summary from before engines has none
            record[text] = "" if pd.isna(record.get(text)) else str(record[text])
        return PredictionRow(**{k: record[k] for k in PredictionRow.__dataclass_fields__})
    qc_file = qc_path(target.parent, series_id)
    if not qc_file.is_file():
        return None
    try:
        record = json.loads(qc_file.read_text(encoding="utf-8"))
        return _row(series_id, path, target, read_label(target), int(record["n_lesions"]),
                    [str(c) for c in record["flag_codes"]], float("nan"))
    except (ValueError, KeyError, TypeError, UserInputError):
        return None


def _check_inputs(cases: list[tuple[str, str]]) -> None:
    """Fail before any work on an input that is missing, or whose header or file size is wrong (the cheap part of
    the integrity checks: a compressed stream is checked when the series is read)."""
    reader = sitk.ImageFileReader()
    for _, path in cases:
        p = Path(path)
        if not p.exists():
            raise UserInputError(f"{p}: file or folder does not exist")
        if p.is_file():
            check_headers(p)
            reader.SetFileName(str(p))
            try:
                reader.ReadImageInformation()
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
                raise UserInputError(f"{p}: cannot read image ({first[:200]})") from None


def _log_flags(record: QCRecord) -> None:
    for flag in record.flags:
        log.warning("%s: plausibility check %s: %s", record.name, flag.code, flag.message,
                    extra=repeated(FLAG_TITLES[flag.code], record.name))


def predict_cohort(
    model_dir: str | Path | ModelChoice | None,
    out_dir: str | Path,
    manifest: str | Path | None = None,
    image: str | Path | None = None,
    split: str | None = None,
    tta: bool = False,
    device: str = "auto",
    overwrite: bool = False,
    qc: QCConfig | None = None,
    options: PredictionOptions | None = None,
    keep_going: bool = False,
) -> pd.DataFrame:
    """Segment every manifest row (optionally one split) or one image; write ``OUT/<series_id>_seg.nii.gz``.

    ``model_dir`` is a model folder (a livermets MONAI model, a livermets nnU-Net model or an nnU-Net v2 result
    folder, told apart by their files), a :class:`ModelChoice` (nnU-Net label maps and folds, or a liver model plus a
    lesion model), or None for the model shipped with livermets. Existing outputs are kept (the run is resumable,
    also after a kill: a resumed run writes the files an uninterrupted one would) unless ``overwrite``. Every input
    is checked before any work (files exist, headers readable, model folders and label maps; the first CT's
    intensities before the model loads). A summary ``OUT/predictions.csv`` lists series, output path, liver (label
    1) and lesion volume (mL), seconds per scan (empty for a series finished by a killed run), lesion components
    (``n_lesions``), the plausibility flags (``qc_flags``, codes separated by ``;``, empty when none) and the engine
    that ran the network (``engine``; empty, as ``seconds``, for a series finished by a killed run). Every
    prediction is checked (:func:`livermets.segmentation.qc.check_prediction` with ``qc``, default the model's
    ``qc`` thresholds): the record goes to ``OUT/<series_id>.qc.json`` and each flag to one warning. ``options``
    change the model's inference settings for this run (:class:`~livermets.segmentation.options.PredictionOptions`).
    Before the check, lesions below the minimum lesion size (the model's ``min_lesion_ml`` and
    ``min_lesion_diameter_mm``, or the options') are removed
    (:func:`~livermets.segmentation.lesion_size.remove_small_lesions`); the record names the limit and what it removed.

    With ``keep_going``, a CT found bad only when its series is read (non-3D, truncated, not in HU) is a failure of
    that series, listed in ``OUT/failures.csv`` (``series_id, image, reason``; always written), and the others go on;
    when none succeeds, the :class:`~livermets.errors.UserInputError` names the first reason.
    """
    cases = _cases(manifest, image, split)
    _check_inputs(cases)  # before the model: a wrong path fails without loading torch
    plan = plan_segmenter(model_dir if isinstance(model_dir, ModelChoice) else ModelChoice(model=model_dir),
                          options)
    out = Path(out_dir)
    remove_stale_temporaries(out)
    old = _previous_summary(out / "predictions.csv")
    run = _CohortRun(plan, device, tta, qc)
    rows = []
    for series_id, path in track(cases, "Segmenting"):
        target = prediction_path(out, series_id)
        finished = None if overwrite or not target.exists() else _finished_row(series_id, path, target, old)
        if finished is not None:
            log.info("%s exists; skipped (use --overwrite to redo)", target)
            rows.append(finished)
            run.succeeded()
            continue
        try:
            rows.append(run.predict(series_id, path, target))
        except UserInputError as exc:
            if not keep_going:
                raise
            run.failed(series_id, path, str(exc))
    if keep_going:
        run.write_failures(failures_path(out))
    table = pd.DataFrame([r.__dict__ for r in rows], columns=list(PredictionRow.__dataclass_fields__))
    kept = old[~old["series_id"].isin(table["series_id"])]
    write_csv(out / "predictions.csv", pd.concat([kept, table], ignore_index=True) if len(kept) else table)
    return table


def _previous_summary(summary: Path) -> pd.DataFrame:
    """The ``predictions.csv`` of an earlier run into the folder (empty when there is none)."""
    if not summary.is_file():
        return pd.DataFrame(columns=list(PredictionRow.__dataclass_fields__))
    return pd.read_csv(summary, dtype={"series_id": "string"}, keep_default_na=False, na_values=[""])


def failures_path(out_dir: str | Path) -> Path:
    """``OUT/failures.csv``: the series of a ``keep_going`` run that could not be segmented, with the reason."""
    return Path(out_dir) / "failures.csv"


class _CohortRun:
    """The model of a cohort run (loaded once the first CT passed its checks, so that bad input fails first) and its
    failures, whose warnings wait for a first finished series: a run in which nothing succeeds says it in one line."""

    def __init__(self, plan: SegmenterPlan, device: str, tta: bool, qc: QCConfig | None) -> None:
        self.plan, self.device, self.tta, self.qc = plan, device, tta, qc
        self.segmenter: ImageSegmenter | None = None
        self.failures: list[dict[str, str]] = []
        self.any_success = False

    def predict(self, series_id: str, path: str, target: Path) -> PredictionRow:
        ct = read_image(path)
        check_ct_intensities(ct, path, self.plan.min_ct_hu, self.plan.foreground_hu)
        if self.segmenter is None:  # the model line too waits for a CT that passed its checks
            announce_model(self.plan.info)
            self.segmenter = self.plan.load(self.device, self.tta)
        row = _predict_one(self.segmenter, series_id, path, ct, target, self.tta,
                           self.qc if self.qc is not None else self.segmenter.qc,
                           model_min_lesion_size(self.segmenter, self.plan.options))
        self.succeeded()
        return row

    def succeeded(self) -> None:
        if not self.any_success:
            self.any_success = True
            for failure in self.failures:
                log.warning("%s: failed: %s", failure["series_id"], failure["reason"])

    def failed(self, series_id: str, path: str, reason: str) -> None:
        self.failures.append({"series_id": series_id, "image": path, "reason": reason})
        if self.any_success:
            log.warning("%s: failed: %s", series_id, reason)

    def write_failures(self, path: Path) -> None:
        """Write the failure table; raise the one-line error when no series succeeded."""
        if self.failures and not self.any_success:
            first = self.failures[0]
            more = f" (and {len(self.failures) - 1} more failed series)" if len(self.failures) > 1 else ""
            raise UserInputError(f"no series could be segmented: {first['series_id']}: {first['reason']}{more}")
        write_csv(path, pd.DataFrame(self.failures, columns=["series_id", "image", "reason"]))


def _cases(manifest: str | Path | None, image: str | Path | None, split: str | None) -> list[tuple[str, str]]:
    """``(series_id, image path)`` of every series to segment; series ids must be unique."""
    if (manifest is None) == (image is None):
        raise ParameterError("give exactly one of {manifest} or {image}")
    if manifest is not None:
        frame = load_manifest(manifest)
        if split is not None:
            frame = select_split(frame, split)
        cases = [(str(r.series_id), str(r.image)) for r in frame.itertuples()]
    else:
        cases = [(series_id_from_path(str(image)), str(image))]
    ids = [c[0] for c in cases]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise UserInputError(f"duplicate series_id(s) {duplicated[:5]}: outputs are named <series_id>_seg.nii.gz")
    return cases


def _model_config(folder: Path, options: PredictionOptions) -> SegConfig:
    """The model folder's config with the prediction ``options`` applied (no weights loaded yet)."""
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise UserInputError(
            f"{folder}: not a trained model folder (needs {CONFIG_FILE} and {WEIGHTS_FILE}; "
            "a training run writes the weights at its first validation)"
        )
    config = load_config(folder / CONFIG_FILE)
    inference = options.overrides()
    if not inference:
        return config
    data = config.model_dump()
    data["inference"] = {**config.inference.model_dump(), **inference}
    return config_from_dict(data, f"{folder / CONFIG_FILE} with prediction options")


class ImageSegmenter(Protocol):
    """What prediction, QC and ``analyze`` use of a loaded model: :class:`Segmenter` (MONAI),
    :class:`~livermets.segmentation.nnunet.predictor.NnunetSegmenter` and
    :class:`~livermets.segmentation.nnunet.composite.CompositeSegmenter`."""

    model_dir: Path
    device: Any
    engine: str

    @property
    def qc(self) -> QCConfig: ...

    @property
    def lesion_threshold(self) -> float | None: ...

    def predict_image(self, image: sitk.Image, name: str = "image", tta: bool = False,
                      check: bool = True) -> sitk.Image: ...


@dataclass(frozen=True)
class ModelChoice:
    """Which model(s) segment: one model (``model``: a folder, a registry name such as ``ts-pair`` or
    ``shipped``, or None for the best installed registry model, :func:`default_model_name`), or a liver model and a
    lesion model combined by :func:`~livermets.segmentation.nnunet.composite.combine_labels`.

    ``label_map``, ``liver_label_map`` and ``lesion_label_map`` map nnU-Net output labels onto liver and lesion
    (:func:`~livermets.segmentation.nnunet.predictor.parse_label_map`), ``folds`` chooses the nnU-Net folds to
    ensemble and ``ras`` feeds
    nnU-Net models RAS-oriented volumes (None: as their plans say).
    """

    model: str | Path | None = None
    liver_model: str | Path | None = None
    lesion_model: str | Path | None = None
    label_map: str | None = None
    liver_label_map: str | None = None
    lesion_label_map: str | None = None
    folds: tuple[str, ...] | None = None
    ras: bool | None = None


def model_kind(folder: str | Path) -> str:
    """``monai`` (livermets model: ``config.yaml`` + ``model.safetensors``) or ``nnunet`` (``nnunet.json``, or an
    nnU-Net v2 result folder with ``plans.json`` and ``dataset.json``).

    Raises
    ------
    UserInputError
        The folder is none of these.
    """
    path = Path(folder)
    if not path.is_dir():
        raise UserInputError(f"{path}: not a trained model folder (no such folder)")
    if (path / CONFIG_FILE).exists() or (path / WEIGHTS_FILE).exists():
        return "monai"
    from livermets.segmentation.nnunet.predictor import is_nnunet_folder  # torch: only for a folder to look into

    if is_nnunet_folder(path):
        return "nnunet"
    what = (f"needs {CONFIG_FILE} and {WEIGHTS_FILE} for a livermets model, nnunet.json for a livermets nnU-Net "
            "model, or plans.json, dataset.json and fold_<n>/checkpoint_final.pth for an nnU-Net v2 result folder")
    inside = sorted(p.parent.name for p in path.glob("*/plans.json"))
    hint = f"; it holds the nnU-Net result folder(s) {', '.join(inside[:3])}: give one of them" if inside else ""
    raise UserInputError(f"{path}: not a trained model folder ({what}){hint}")


@dataclass(frozen=True)
class _Part:
    """One checked model of a :class:`SegmenterPlan` (``role``: model, liver or lesion; ``kind``: monai, nnunet or
    pair, a registry pair installed in ``folder``)."""

    folder: Path
    kind: str
    role: str
    config: SegConfig | None = None
    label_map: Any = None


@dataclass(frozen=True)
class SegmenterPlan:
    """A checked :class:`ModelChoice` (folders, configs, label maps, options): nothing is loaded until :meth:`load`.

    ``min_ct_hu`` and ``foreground_hu`` are the CT intensity checks of the inputs (a MONAI model's own values);
    ``info`` names the model (:func:`~livermets.segmentation.default_model.announce_model` prints it).
    """

    choice: ModelChoice
    parts: tuple[_Part, ...]
    options: PredictionOptions
    info: ModelInfo
    min_ct_hu: float = -200.0
    foreground_hu: float = -500.0

    def load(self, device: str = "auto", tta: bool = False) -> ImageSegmenter:
        """Read the weights and return the segmenter (a composite for a liver model + lesion model)."""
        composite = len(self.parts) == 2
        if self.parts[0].kind == "pair":
            return _load_pair(self.info.name, device, self.options)
        loaded = [_load_part(part, self.choice, device, tta, self.options, composite) for part in self.parts]
        if not composite:
            return loaded[0]
        from livermets.segmentation.nnunet.composite import DEFAULT_MARGIN_MM, CompositeSegmenter

        distance = self.options.lesion_max_distance_mm
        margin = DEFAULT_MARGIN_MM if distance is None else None if isinstance(distance, str) else distance
        return CompositeSegmenter(loaded[0], loaded[1], margin, self.options.largest_liver is not False)


def plan_segmenter(choice: ModelChoice, options: PredictionOptions | None = None) -> SegmenterPlan:
    """Check a model choice and the prediction ``options`` without loading weights.

    Raises
    ------
    UserInputError
        Conflicting choices, a folder that is no model, a label map naming labels the model does not have, an
        option the model type does not take.
    """
    options = options or PredictionOptions()
    liver, lesion = choice.liver_model, choice.lesion_model
    if choice.model is not None and (liver is not None or lesion is not None):
        raise ParameterError("{model} excludes {liver_model} and {lesion_model} (give one model, or both of those)")
    if (liver is None) != (lesion is None):
        raise ParameterError("{liver_model} and {lesion_model} go together (liver from one model, lesions from the "
                             "other)")
    if liver is None or lesion is None:
        if choice.liver_label_map is not None or choice.lesion_label_map is not None:
            raise ParameterError("{liver_label_map} and {lesion_label_map} go with {liver_model} and "
                                 "{lesion_model}; use {label_map} with {model}")
        info = _model_info(choice.model)
        parts: tuple[_Part, ...] = (_plan_part(info.folder, "model", choice.label_map, choice, options, info),)
    else:
        if choice.label_map is not None:
            raise ParameterError("{label_map} goes with {model}; use {liver_label_map} and {lesion_label_map}")
        parts = (_plan_part(Path(liver), "liver", choice.liver_label_map, choice, options),
                 _plan_part(Path(lesion), "lesion", choice.lesion_label_map, choice, options))
        info = ModelInfo(f"{Path(liver).name}+{Path(lesion).name}", Path(liver), "composite")
    if all(p.kind == "monai" for p in parts):
        if choice.folds is not None:
            raise ParameterError("{folds} applies to nnU-Net models")
        if choice.ras is not None:
            raise ParameterError("{ras} applies to nnU-Net models")
    configs = [p.config for p in parts if p.config is not None]
    pre = configs[0].preprocess if configs else None
    return SegmenterPlan(choice, parts, options, info, *((pre.min_ct_hu, pre.foreground_hu) if pre else ()))


def _model_info(model: str | Path | None) -> ModelInfo:
    """The model of ``--model``: a registry name (its installed files checked), the best installed registry model
    for None, or a folder.

    Raises
    ------
    UserInputError
        A name that is also a folder here (ambiguous), or a registry model that is not installed or was changed.
    """
    from livermets.segmentation.registry import is_registry_name

    if model is None:
        return registry_model(default_model_name(), default=True)
    if is_registry_name(model):
        if Path(model).exists():
            raise ParameterError("{model} {value}: both a registry model and a folder here; give ./{value} for "
                                 "the folder", value=model)
        return registry_model(str(model))
    folder = Path(model)
    return ModelInfo(folder.name, folder, "folder")


def _plan_part(folder: Path, role: str, label_map: str | None, choice: ModelChoice,
               options: PredictionOptions, info: ModelInfo | None = None) -> _Part:
    option = "label_map" if role == "model" else f"{role}_label_map"
    if info is not None and info.engine == "pair":
        if label_map is not None or choice.folds is not None or choice.ras is not None:
            raise ParameterError("{label_map}, {folds} and {ras} do not apply to {name}: its label maps, folds and "
                                 "orientation are in the model registry", name=info.name)
        from livermets.segmentation.nnunet.environment import require_nnunet

        require_nnunet()
        _nnunet_options(options)
        return _Part(folder, "pair", role)
    if model_kind(folder) == "monai":
        if label_map is not None:
            raise ParameterError.about(option, f"applies to nnU-Net models; {folder} is a livermets model (labels 1 "
                                       "liver, 2 lesion)", label_map)
        own = options if role == "model" else options.without(*LIVER_CHOICES)
        return _Part(folder, "monai", role, config=_model_config(folder, own))
    from livermets.segmentation.nnunet.environment import require_nnunet
    from livermets.segmentation.nnunet.predictor import CLASSES, choose_label_map, locate_model

    require_nnunet()
    _nnunet_options(options)
    model = locate_model(folder, choice.folds)
    classes = CLASSES if role == "model" else (role,)
    return _Part(folder, "nnunet", role, label_map=choose_label_map(model, label_map, classes, option))


def _nnunet_options(options: PredictionOptions) -> dict[str, Any]:
    """nnU-Net predictor settings from the prediction options (``overlap`` 0.5 = nnU-Net's tile step 0.5)."""
    refused = [name for name in MONAI_ONLY if getattr(options, name) is not None]
    if refused:
        raise ParameterError(", ".join("{" + name + "}" for name in refused) + ": only for livermets (MONAI) "
                             "models; nnU-Net predicts with its own resampling and argmax labels")
    defaults = InferenceConfig()
    distance = options.lesion_max_distance_mm
    return {"tile_step_size": 1.0 - options.overlap if options.overlap is not None else 0.5,
            "use_gaussian": (options.blend_mode or defaults.blend_mode) == "gaussian",
            "largest_liver": defaults.largest_liver if options.largest_liver is None else options.largest_liver,
            "lesion_max_distance_mm": (defaults.lesion_max_distance_mm if distance is None
                                       else None if isinstance(distance, str) else distance),
            "engine": options.engine, "threads": options.threads}


def _load_part(part: _Part, choice: ModelChoice, device: str, tta: bool, options: PredictionOptions,
               composite: bool) -> ImageSegmenter:
    if part.kind == "monai":
        return _segmenter(part.folder, device, tta, options.without(*LIVER_CHOICES) if composite else options)
    from livermets.segmentation.nnunet.predictor import NnunetSegmenter

    settings = _nnunet_options(options)
    if composite:  # the composite decides which liver and lesion voxels stay
        settings |= {"largest_liver": False, "lesion_max_distance_mm": None}
    return NnunetSegmenter(part.folder, device, part.label_map, choice.folds, ras=choice.ras, **settings)


def _load_pair(name: str, device: str, options: PredictionOptions) -> ImageSegmenter:
    """The TotalSegmentator-equivalent pair engine on the installed nnU-Net result folders of registry pair
    ``name`` (liver model, lesion model, and the lesion model's crop model)."""
    try:
        from livermets.segmentation.nnunet.totalseg import TotalSegPairSegmenter, TotalSegTask
    except ImportError as exc:
        raise UserInputError(f"model {name}: the TotalSegmentator pair engine is not available in this "
                             f"installation ({exc})") from None
    from livermets.segmentation.install import result_folder
    from livermets.segmentation.registry import entry

    def task(component: str) -> Any:
        item = entry(component)
        return TotalSegTask.from_registry(item.nnunet, result_folder(component), label_map=item.label_map)

    parts = entry(name).components
    crop = entry(parts["lesion"]).nnunet.get("crop_model")
    return TotalSegPairSegmenter(task(parts["liver"]), task(parts["lesion"]), task(crop) if crop else None,
                                 device=device, options=options)


def load_segmenter(model: str | Path | ModelChoice | None, device: str = "auto", tta: bool = False,
                   options: PredictionOptions | None = None) -> ImageSegmenter:
    """Check and load a model folder of any kind (see :func:`model_kind`) or a :class:`ModelChoice`.

    Examples
    --------
    >>> seg = load_segmenter("models/nnunet", device="cpu")  # doctest: +SKIP
    >>> label = seg.predict_image(read_image("ct.nii.gz"))  # doctest: +SKIP
    """
    choice = model if isinstance(model, ModelChoice) else ModelChoice(model=model)
    return plan_segmenter(choice, options).load(device, tta)


def _segmenter(folder: Path, device: str, tta: bool, options: PredictionOptions) -> Segmenter:
    segmenter = Segmenter(folder, device=device, options=options)
    if tta and segmenter.config.augment.flip_prob == 0:
        log.warning("--tta averages over flipped CTs, but %s was trained without flips (augment.flip_prob 0): "
                    "flipped inputs are unlike its training data (TTA lowered lesion Dice in docs/benchmarks.md)",
                    folder)
    return segmenter
