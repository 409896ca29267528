"""Train a MONAI 3D U-Net or SegResNet on a manifest's ``train`` split, select on validation lesion Dice.

Model folder layout (every file written atomically)::

    MODEL_DIR/
      config.yaml            validated config: preprocessing, spacing, window, network, classes, inference defaults
      model.safetensors      weights of the epoch with the best validation lesion Dice (what predict loads)
      train_log.csv          one row per epoch: optimizer steps done so far (iterations), loss, validation
                             liver/lesion Dice (with calibration also the chosen threshold and its lesion Dice,
                             sensitivity, PPV, FP/scan), best so far, timings
      training_curve.png     loss and Dice curves
      lesion_threshold.csv   best epoch's validation lesion Dice and detection per lesion threshold (calibration)
      provenance.json        command, parameters, library versions
      checkpoint/            last epoch for --resume: state.json (epoch, iterations, stopped_by, best so far),
                             weights (safetensors), optimizer (torch state_dict)
      cache/                 preprocessed volumes when train.cache = disk (safe to delete)

Examples
--------
>>> from livermets.segmentation.monai.train import train_model
>>> result = train_model("cohort/manifest.csv", "models/unet", model="unet", config="cpu")  # doctest: +SKIP
>>> result.best_lesion_dice  # doctest: +SKIP
0.71
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset
from monai.utils import set_determinism

from livermets.atomic import append_csv_rows, atomic_path, removed_on_failure, write_json
from livermets.cohort.manifest import load_manifest
from livermets.errors import ParameterError, UserInputError
from livermets.figures import save_figure
from livermets.progress import format_duration, track
from livermets.provenance import provenance
from livermets.segmentation.checks import check_training_case, training_frames
from livermets.segmentation.config import SegConfig, TrainConfig, load_config, save_config
from livermets.segmentation.device import mixed_precision, out_of_memory_message, resolve_device
from livermets.segmentation.model_files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CURVE_FILE,
    LOG_FILE,
    PROVENANCE_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
)
from livermets.segmentation.monai.calibrate import save_calibration
from livermets.segmentation.monai.losses import build_loss
from livermets.segmentation.monai.memory_format import MEMORY_FORMATS, fastest_memory_format
from livermets.segmentation.monai.networks import build_network, read_weights, save_weights
from livermets.segmentation.monai.transforms import IMAGE, LABEL, eval_transforms, train_transforms
from livermets.segmentation.monai.validation import THRESHOLDS, validate

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train_model`: ``iterations`` is the optimizer steps done over all runs of the model and
    ``stopped_by`` what ended this run (one of :data:`STOP_REASONS`)."""

    model_dir: Path
    last_epoch: int
    best_epoch: int
    best_lesion_dice: float
    selection_metric: str
    minutes: float
    iterations: int
    stopped_by: str


def _files(frame: pd.DataFrame) -> list[dict[str, str]]:
    return [{IMAGE: str(r.image), LABEL: str(r.label), "series_id": str(r.series_id)} for r in frame.itertuples()]


def _dataset(files: list[dict[str, str]], transform: Any, config: SegConfig, cache_dir: Path) -> Dataset:
    if config.train.cache == "memory":
        return CacheDataset(files, transform, cache_rate=1.0, num_workers=1, progress=False)
    if config.train.cache == "disk":
        # The cache key includes the preprocessing settings, so a changed config never reads stale volumes.
        digest = hashlib.sha256(config.preprocess.model_dump_json().encode()).hexdigest()[:12]
        return PersistentDataset(files, transform, cache_dir=cache_dir / digest)
    return Dataset(files, transform)


#: Train-log columns with ``train.calibrate_lesion_threshold``: the threshold chosen at that validation and the
#: validation lesion Dice, lesion sensitivity, PPV and false positives per scan there (the model selection score).
CALIBRATION_LOG_COLUMNS = ("val_lesion_threshold", "val_lesion_dice_at_threshold", "val_lesion_sensitivity",
                           "val_lesion_ppv", "val_fp_per_scan")


#: Why a run ended (``stopped_by`` in ``checkpoint/state.json`` and :class:`TrainResult`): its iteration budget
#: (``train.max_iterations``), its epoch budget (``train.max_epochs``, used when no iteration budget is set) or the
#: ``train.max_minutes`` time cap.
STOP_REASONS = ("iterations", "epochs", "max_minutes")


@dataclass(frozen=True)
class TrainingBudget:
    """Length of a training in optimizer steps (iterations) and epochs (passes over the shuffled training images).

    With ``max_iterations`` a run takes exactly that many optimizer steps, counted over resumes, and ``max_epochs``
    is ignored: epochs follow one another until the steps are done, so the last one may be partial. Without it a run
    trains ``max_epochs`` full epochs, i.e. ``max_epochs * batches_per_epoch`` iterations. ``max_seconds``
    (``train.max_minutes``) caps either at epoch ends.

    Examples
    --------
    >>> budget = TrainingBudget(batches_per_epoch=4, max_epochs=1, max_iterations=10)
    >>> budget.total_iterations, budget.steps_in_epoch(8), budget.finished(epoch=3, iterations=10)
    (10, 2, True)
    """

    batches_per_epoch: int
    max_epochs: int
    max_iterations: int | None = None
    max_seconds: float = math.inf

    @classmethod
    def from_config(cls, train: TrainConfig, batches_per_epoch: int) -> TrainingBudget:
        """The budget of ``train`` (``max_iterations``, ``max_epochs``, ``max_minutes``) for this training set."""
        seconds = train.max_minutes * 60 if train.max_minutes else math.inf
        return cls(batches_per_epoch, train.max_epochs, train.max_iterations, seconds)

    @property
    def stop_reason(self) -> str:
        """``iterations`` or ``epochs``: what ends a run that the time cap does not stop."""
        return "epochs" if self.max_iterations is None else "iterations"

    @property
    def total_iterations(self) -> int:
        """Optimizer steps of the whole training (counted from the first run, over resumes)."""
        return self.max_epochs * self.batches_per_epoch if self.max_iterations is None else self.max_iterations

    def steps_in_epoch(self, iterations: int) -> int:
        """Optimizer steps of the epoch that starts after ``iterations`` steps."""
        if self.max_iterations is None:
            return self.batches_per_epoch
        return max(0, min(self.batches_per_epoch, self.max_iterations - iterations))

    def finished(self, epoch: int, iterations: int) -> bool:
        """Whether a run that has done ``epoch`` epochs and ``iterations`` steps has spent the budget."""
        if self.max_iterations is None:
            return epoch >= self.max_epochs
        return iterations >= self.max_iterations


class PolySchedule:
    """nnU-Net's poly learning-rate factor ``(1 - progress) ** 0.9``, set before every optimizer step.

    ``progress`` is the share ``iterations / total_iterations`` of the iteration budget done. With a finite
    ``budget_s`` (epoch-budgeted training with ``train.max_minutes``) it is the larger of that and the share of the
    wall-time budget used, so the rate reaches zero when either budget ends; a resumed run continues the time share
    from where the interrupted run left it (``start_fraction``) and spreads the rest over its own budget.

    Examples
    --------
    >>> PolySchedule(total_iterations=10).factor(5)  # half-way through the iterations
    0.5358867312681466
    """

    def __init__(self, total_iterations: int, budget_s: float = math.inf, start_fraction: float = 0.0,
                 started: float | None = None) -> None:
        self.total_iterations, self.budget_s, self.start_fraction = total_iterations, budget_s, start_fraction
        self.started = time.monotonic() if started is None else started

    @classmethod
    def for_budget(cls, budget: TrainingBudget, start_fraction: float = 0.0,
                   started: float | None = None) -> PolySchedule:
        """The schedule of ``budget``: by iterations only when it has ``max_iterations`` (the time cap and a time
        share saved by an earlier run never enter it), else by epochs' iterations and the time budget."""
        if budget.max_iterations is not None:
            return cls(budget.total_iterations, started=started)
        return cls(budget.total_iterations, budget.max_seconds, start_fraction, started)

    def time_progress(self) -> float:
        """Share of the time budget used, counting ``start_fraction`` as already used."""
        if not math.isfinite(self.budget_s):
            return self.start_fraction
        used = (time.monotonic() - self.started) / self.budget_s
        return min(1.0, self.start_fraction + (1.0 - self.start_fraction) * used)

    def factor(self, iterations: int) -> float:
        """Learning-rate factor of the step that follows ``iterations`` done steps."""
        progress = min(1.0, max(iterations / self.total_iterations, self.time_progress()))
        return float((1.0 - progress) ** 0.9)


def _read_state(model_dir: Path) -> dict[str, Any]:
    path = model_dir / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        raise ParameterError("{folder}: nothing to resume (no {file}); train without {resume}", folder=str(model_dir),
                             file=f"{CHECKPOINT_DIR}/{STATE_FILE}")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ParameterError("{path}: not a valid checkpoint state (JSON); train without {resume}",
                             path=str(path)) from None
    missing = [key for key in ("epoch", "weights", "optimizer") if not isinstance(state, dict) or key not in state]
    if missing:
        raise ParameterError("{path}: checkpoint state without {key!r}; train without {resume}", path=str(path),
                             key=missing[0])
    return dict(state)


def _checkpoint_file(folder: Path, name: object) -> Path:
    """A file named in ``state.json``: a plain name inside the checkpoint folder."""
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise UserInputError(f"{folder / STATE_FILE}: checkpoint file name {name!r} is not a file in {folder}")
    return folder / name


def load_optimizer_state(path: Path, device: torch.device) -> dict[str, Any]:
    """The optimizer and loss-scaler state of a checkpoint, unpickled with ``weights_only=True``.

    torch's restricted unpickler only rebuilds tensors and plain containers: a file holding any other object (code to
    run on loading) is refused with one error line, as is a damaged file.
    """
    if not path.is_file():
        raise UserInputError(f"{path}: checkpoint optimizer state not found")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise ParameterError("{path}: refused: the checkpoint holds objects other than tensors and plain values "
                             "(loading them could run code); train without {resume}", path=str(path)) from None
    except Exception as exc:  # RuntimeError, EOFError, ... for a damaged file
        reason = " ".join(str(exc).split())[:200]
        raise UserInputError(f"{path}: not a readable checkpoint optimizer state ({type(exc).__name__}: "
                             f"{reason})") from None
    if not isinstance(saved, dict) or not {"optimizer", "scaler"} <= set(saved):
        raise UserInputError(f"{path}: not a livermets checkpoint optimizer state")
    return saved


def _save_checkpoint(
    model_dir: Path, epoch: int, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler, state: dict[str, Any],
) -> None:
    """Epoch-tagged weights and optimizer first, then state.json pointing to them, then old files removed.

    A kill at any moment leaves a state.json whose files exist (the previous or the new epoch).
    """
    folder = model_dir / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    weights = f"last_model_e{epoch:05d}.safetensors"
    optim = f"last_optimizer_e{epoch:05d}.pt"
    save_weights(network, folder / weights)
    with atomic_path(folder / optim) as tmp:
        torch.save({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}, tmp)
    write_json(folder / STATE_FILE, {**state, "epoch": epoch, "weights": weights, "optimizer": optim})
    for old in folder.glob("last_*_e*"):
        if old.name not in (weights, optim):
            old.unlink(missing_ok=True)


def _calibration_columns(calibrated: pd.Series | None) -> dict[str, Any]:
    """Train-log columns of a validation's calibrated threshold (empty on epochs without validation)."""
    if calibrated is None:
        return dict.fromkeys(CALIBRATION_LOG_COLUMNS, math.nan)
    return dict(zip(CALIBRATION_LOG_COLUMNS, calibrated[["threshold", "mean_val_lesion_dice", "sensitivity", "ppv",
                                                          "fp_per_scan"]], strict=True))


_VALIDATION_CURVES = (
    ("val_liver_dice", "liver Dice", "liver", "-"),
    ("val_lesion_dice", "lesion Dice (argmax)", "lesion", "-"),
    ("val_lesion_dice_at_threshold", "lesion Dice (calibrated threshold)", "lesion", "--"),
    ("val_lesion_sensitivity", "lesion sensitivity (calibrated)", "TP", ":"),
    ("val_lesion_ppv", "lesion PPV (calibrated)", "FP", ":"),
)
"""Validation columns of the train log drawn by :func:`_plot_curves`: column, legend text, colour key, line style."""


def _plot_curves(log_path: Path, out: Path) -> Any:
    """Draw ``training_curve.png`` from the train log and return the figure: the mean training loss per epoch, and
    the validation liver/lesion metrics present in the log, on whole epochs, with the selected epoch marked."""
    from matplotlib.ticker import MaxNLocator

    from livermets.figures import CURVE_COLOUR, DETECTION_COLOURS, LESION_COLOUR, LIVER_COLOUR, new_figure

    colours = {"liver": LIVER_COLOUR, "lesion": LESION_COLOUR, **DETECTION_COLOURS}
    frame = pd.read_csv(log_path)
    fig, axes = new_figure(1, 2, figsize=(11.5, 3.9))
    ax_loss, ax_dice = axes[0]
    ax_loss.plot(frame["epoch"], frame["train_loss"], marker=".", color=CURVE_COLOUR)
    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)", title=f"Training loss ({len(frame)} epochs)")
    validated = frame.dropna(subset=["val_liver_dice"])
    for column, name, colour, style in _VALIDATION_CURVES:
        if column in validated and validated[column].notna().any():
            ax_dice.plot(validated["epoch"], validated[column], marker=".", linestyle=style, color=colours[colour],
                         label=name)
    title = "Validation"
    best = frame["best_epoch"].iloc[-1] if "best_epoch" in frame and len(frame) else 0
    if pd.notna(best) and int(best) > 0:
        score = float(frame["best_metric"].iloc[-1])
        ax_dice.axvline(int(best), color="0.5", linewidth=0.8, linestyle="-.", label=f"selected epoch {int(best)}")
        title += f" (selected: epoch {int(best)}, score {score:.3f})"
    ax_dice.set(xlabel="epoch", ylabel="validation Dice / sensitivity / PPV", ylim=(0, 1.02), title=title)
    if ax_dice.lines:
        ax_dice.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for axis in (ax_loss, ax_dice):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    save_figure(fig, out, dpi=100)
    return fig


def _memory_format(network: torch.nn.Module, cfg: SegConfig, device: torch.device, amp: bool) -> str:
    """``train.memory_format``, or with ``auto`` the layout that trains faster here (timed on two crops)."""
    if cfg.train.memory_format != "auto":
        return cfg.train.memory_format
    crops = min(2, cfg.sampling.samples_per_image * cfg.train.images_per_batch)
    name, seconds = fastest_memory_format(network, (crops, 1, *cfg.sampling.patch_size), device, amp)
    log.info("memory format %s (%s s per step of %d crops)", name,
             ", ".join(f"{k} {v:.3f}" for k, v in seconds.items()), crops)
    return name


@dataclass
class _Run:
    """What one training run works on: config, data, network, optimizer and the checkpoint state."""

    cfg: SegConfig
    model_dir: Path
    device: torch.device
    amp: bool
    memory_format: str
    train_ds: Dataset
    train_tf: Any
    val_loader: DataLoader
    network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss_fn: torch.nn.Module
    state: dict[str, Any]

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.train_ds) / self.cfg.train.images_per_batch)


@dataclass(frozen=True)
class _Validation:
    """Outcome of one validation (NaN Dice and no threshold on epochs without validation)."""

    liver: float = math.nan
    lesion: float = math.nan
    improved: bool = False
    calibrated: pd.Series | None = None


def _run_config(
    model_dir: Path, model: str | None, config: str | Path, resume: bool, overrides: dict[str, Any]
) -> tuple[SegConfig, dict[str, Any]]:
    """The validated config and the checkpoint state to start from: the saved ones on resume, fresh ones otherwise."""
    if resume:
        state = _read_state(model_dir)
        cfg = load_config(model_dir / CONFIG_FILE, **overrides)
        if model is not None and model != cfg.model:
            raise ParameterError("{model} {value}: {folder} holds a {saved} model; resume it with {model} {saved}",
                                 value=model, folder=str(model_dir), saved=cfg.model)
        return cfg, state
    if (model_dir / CHECKPOINT_DIR / STATE_FILE).exists() or (model_dir / WEIGHTS_FILE).exists():
        raise ParameterError("{folder}: already holds a trained model; use {resume} to continue or another {out}",
                             folder=str(model_dir))
    state = {"epoch": 0, "iterations": 0, "stopped_by": None, "best_metric": -1.0, "best_liver_dice": -1.0,
             "best_epoch": 0, "selection_metric": "val_lesion_dice"}
    return load_config(config, model=model, **overrides), state


def _check_budget_options(cfg: SegConfig, max_epochs: int | None) -> None:
    """Reject an explicit ``max_epochs`` that an iteration budget would ignore."""
    if max_epochs is not None and cfg.train.max_iterations is not None:
        raise ParameterError("{max_epochs} {value}: the training is budgeted by train.max_iterations = {budget} "
                             "optimizer steps, and {max_epochs} does not change that; give one of the two",
                             value=max_epochs, budget=cfg.train.max_iterations)


def _training_data(manifest: str | Path, cfg: SegConfig, device: torch.device) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation rows of ``manifest``, every case checked before anything is written."""
    train_frame, val_frame = training_frames(load_manifest(manifest), cfg.train.val_fraction, cfg.train.seed,
                                             str(manifest))
    pre = cfg.preprocess
    summaries = [
        check_training_case(str(r.series_id), str(r.image), str(r.label), pre.min_ct_hu, pre.foreground_hu)
        for r in track(list(pd.concat([train_frame, val_frame]).itertuples()), "Checking training data")
    ]
    n_lesion = sum(s.lesion_voxels > 0 for s in summaries)
    log.info(
        "training %s (%s preset) on %d scans, validating on %d (%d of these %d scans have lesions), device %s",
        cfg.model, cfg.preset, len(train_frame), len(val_frame), n_lesion, len(summaries), device,
    )
    return train_frame, val_frame


def _build_run(
    cfg: SegConfig, model_dir: Path, device: torch.device, state: dict[str, Any], train_frame: pd.DataFrame,
    val_frame: pd.DataFrame,
) -> _Run:
    """Datasets, network, optimizer and loss, seeded by ``train.seed`` (the order fixes the random draws)."""
    amp = mixed_precision(device, cfg.train.amp)
    set_determinism(seed=cfg.train.seed)
    train_tf = train_transforms(cfg)
    cache_dir = model_dir / "cache"
    train_ds = _dataset(_files(train_frame), train_tf, cfg, cache_dir)
    val_ds = _dataset(_files(val_frame), eval_transforms(cfg, with_label=True), cfg, cache_dir)
    val_loader = DataLoader(val_ds, batch_size=1, num_workers=cfg.train.num_workers)
    network = build_network(cfg).to(device)
    memory_format = _memory_format(network, cfg, device, amp)
    network.to(memory_format=MEMORY_FORMATS[memory_format])  # type: ignore[call-overload]  # missing from the stubs
    optimizer = torch.optim.Adam(network.parameters(), lr=cfg.train.learning_rate, weight_decay=cfg.train.weight_decay)
    loss_fn = build_loss(cfg.train, device)
    # float16 on CUDA needs loss scaling; bfloat16 (CPU) has float32's exponent range and needs none.
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
    return _Run(cfg, model_dir, device, amp, memory_format, train_ds, train_tf, val_loader, network, optimizer, scaler,
                loss_fn, state)


def _read_checkpoint(model_dir: Path, state: dict[str, Any],
                     device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The checkpoint's weights and optimizer state, read and checked before any training input is."""
    folder = model_dir / CHECKPOINT_DIR
    weights = read_weights(_checkpoint_file(folder, state["weights"]))
    return weights, load_optimizer_state(_checkpoint_file(folder, state["optimizer"]), device)


def _restore_checkpoint(run: _Run, weights: dict[str, torch.Tensor], saved: dict[str, Any]) -> None:
    """Load the checkpoint's weights, optimizer and loss-scaler state into ``run``.

    A checkpoint without an iteration count (written before iterations were counted) holds full epochs only.
    """
    folder, state = run.model_dir / CHECKPOINT_DIR, run.state
    try:
        run.network.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise UserInputError(f"{folder / state['weights']}: weights do not match the configured network "
                             f"({str(exc).splitlines()[0]})") from None
    try:
        run.optimizer.load_state_dict(saved["optimizer"])
        run.scaler.load_state_dict(saved["scaler"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise UserInputError(f"{folder / state['optimizer']}: optimizer state does not fit the network "
                             f"({' '.join(str(exc).split())[:200]})") from None
    state.setdefault("iterations", int(state["epoch"]) * run.batches_per_epoch)
    log.info("resuming after epoch %d, iteration %d (best %s %.4f at epoch %d)", state["epoch"], state["iterations"],
             state["selection_metric"], state["best_metric"], state["best_epoch"])


def _write_run_files(
    run: _Run, manifest: str | Path, train_frame: pd.DataFrame, val_frame: pd.DataFrame, resume: bool,
    command: str | None,
) -> None:
    save_config(run.cfg, run.model_dir / CONFIG_FILE)
    write_json(run.model_dir / PROVENANCE_FILE, provenance(
        {"manifest": str(manifest), "model": run.cfg.model, "preset": run.cfg.preset, "device": str(run.device),
         "resume": resume, "mixed_precision": run.amp, "memory_format": run.memory_format,
         "train_series": train_frame["series_id"].astype(str).tolist(),
         "val_series": val_frame["series_id"].astype(str).tolist()}, command,
    ))


def _train_step(run: _Run, batch: dict[str, Any]) -> float:
    """One optimizer step on ``batch``; its loss."""
    run.optimizer.zero_grad(set_to_none=True)
    with torch.autocast(run.device.type, enabled=run.amp):
        logits = run.network(batch[IMAGE].to(run.device))
        loss = run.loss_fn(logits, batch[LABEL].to(run.device))
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return float(loss.detach())


def _train_epoch(run: _Run, epoch: int, steps: int, iterations: int, schedule: PolySchedule) -> list[float]:
    """The first ``steps`` optimizer steps of epoch ``epoch`` (all of its batches unless it is a last, partial one),
    after ``iterations`` steps of earlier epochs; their losses."""
    train = run.cfg.train
    # Re-seeding per epoch makes a resumed run draw the same crops and jitter as an uninterrupted one.
    seed = train.seed + epoch
    torch.manual_seed(seed)
    run.train_tf.set_random_state(seed=seed)
    loader = DataLoader(run.train_ds, batch_size=train.images_per_batch, shuffle=True, num_workers=train.num_workers,
                        generator=torch.Generator().manual_seed(seed))
    run.network.train()
    losses: list[float] = []
    for batch in itertools.islice(loader, steps):
        if train.lr_schedule == "poly":
            factor = schedule.factor(iterations + len(losses))
            for group in run.optimizer.param_groups:
                group["lr"] = train.learning_rate * factor
        losses.append(_train_step(run, batch))
    return losses


def _validate(run: _Run, epoch: int) -> _Validation:
    """Validate; save the weights (and calibration) when the selection score improves on the best so far."""
    cfg, state = run.cfg, run.state
    # With calibration, the same pass also tries every lesion threshold, and the model is selected on its lesion Dice
    # at the threshold prediction will use.
    result = validate(run.network, run.val_loader, cfg, run.device, run.amp,
                      THRESHOLDS if cfg.train.calibrate_lesion_threshold else ())
    liver, lesion = result.liver_dice, result.lesion_dice
    if math.isnan(lesion) and state["selection_metric"] == "val_lesion_dice":
        log.warning("no lesion in the validation scans: selecting the model on validation liver Dice")
        state["selection_metric"] = "val_liver_dice"
    score = result.lesion_dice_at_threshold if state["selection_metric"] == "val_lesion_dice" else liver
    # Ties in lesion Dice (e.g. 0 early in training) go to the better liver Dice.
    key = (score, liver if not math.isnan(liver) else -1.0)
    improved = not math.isnan(score) and key > (state["best_metric"], state.get("best_liver_dice", -1.0))
    if improved:
        state.update(best_metric=score, best_liver_dice=key[1], best_epoch=epoch)
        save_weights(run.network, run.model_dir / WEIGHTS_FILE)
        if result.table is not None:
            save_calibration(run.model_dir, cfg, result)
    return _Validation(liver, lesion, improved, result.chosen)


def _log_epoch(
    run: _Run, epoch: int, iterations: int, losses: list[float], val: _Validation, tick: float, started: float,
    total_iterations: int,
) -> None:
    """Append the epoch's row to the train log, redraw the curves and log one line with the epoch's time and the
    ETA of the iteration budget (at this epoch's seconds per iteration, validation included)."""
    state, elapsed_total = run.state, time.monotonic() - started
    row = {
        "epoch": epoch, "iterations": iterations, "train_loss": float(np.mean(losses)) if losses else math.nan,
        "val_liver_dice": val.liver, "val_lesion_dice": val.lesion,
        **(_calibration_columns(val.calibrated) if run.cfg.train.calibrate_lesion_threshold else {}),
        "best_metric": state["best_metric"] if state["best_epoch"] else math.nan,
        "best_epoch": state["best_epoch"],
        "learning_rate": run.optimizer.param_groups[0]["lr"],
        "epoch_seconds": round(time.monotonic() - tick, 2),
        "elapsed_minutes": round(elapsed_total / 60, 3),
    }
    append_csv_rows(run.model_dir / LOG_FILE, pd.DataFrame([row]))
    _plot_curves(run.model_dir / LOG_FILE, run.model_dir / CURVE_FILE)
    chosen = val.calibrated
    eta = (total_iterations - iterations) * row["epoch_seconds"] / max(1, len(losses))
    log.info(
        "epoch %d, iteration %d/%d (epoch %s, total %s, ETA %s): loss %.4f%s", epoch, iterations, total_iterations,
        format_duration(row["epoch_seconds"]), format_duration(elapsed_total), format_duration(max(0.0, eta)),
        row["train_loss"],
        f", val liver Dice {val.liver:.3f}, lesion Dice {val.lesion:.3f}"
        + ("" if chosen is None else f" (at threshold {chosen['threshold']}: {chosen['mean_val_lesion_dice']:.3f}, "
           f"lesion sensitivity {chosen['sensitivity']:.3f}, PPV {chosen['ppv']:.3f})")
        + (" (best)" if val.improved else "")
        if not math.isnan(val.liver) else "",
    )


def _stop_reason(
    budget: TrainingBudget, epoch: int, iterations: int, started: float, step_seconds: float,
    validation_seconds: float,
) -> str | None:
    """``iterations`` or ``epochs`` once the budget is spent; ``max_minutes`` when the next epoch (its training and a
    validation, after this epoch's validation) would end beyond the time cap; ``None`` to go on."""
    if budget.finished(epoch, iterations):
        return budget.stop_reason
    next_epoch = step_seconds * budget.steps_in_epoch(iterations) + validation_seconds
    projected = time.monotonic() - started + validation_seconds + next_epoch
    return "max_minutes" if projected > budget.max_seconds else None


def _train_epochs(run: _Run, budget: TrainingBudget, schedule: PolySchedule, started: float) -> tuple[int, int, str]:
    """Train epoch after epoch until the budget is spent or the time cap stops the run, validating every
    ``train.val_interval`` epochs and at the end and checkpointing every epoch; (last epoch, iterations, stop reason).
    """
    state = run.state
    epoch, iterations = int(state["epoch"]), int(state["iterations"])
    if budget.finished(epoch, iterations):
        log.info("nothing to train: %s already holds %d epoch(s), %d iteration(s)", run.model_dir, epoch, iterations)
        return epoch, iterations, budget.stop_reason
    validation_seconds = 0.0
    while True:
        epoch += 1
        tick = time.monotonic()
        losses = _train_epoch(run, epoch, budget.steps_in_epoch(iterations), iterations, schedule)
        iterations += len(losses)
        step_seconds = (time.monotonic() - tick) / max(1, len(losses))
        stopped_by = _stop_reason(budget, epoch, iterations, started, step_seconds, validation_seconds)
        val = _Validation()
        if epoch % run.cfg.train.val_interval == 0 or stopped_by is not None:
            val_tick = time.monotonic()
            val = _validate(run, epoch)
            validation_seconds = time.monotonic() - val_tick
        state.update(iterations=iterations, stopped_by=stopped_by, time_progress=schedule.time_progress())
        _save_checkpoint(run.model_dir, epoch, run.network, run.optimizer, run.scaler, state)
        _log_epoch(run, epoch, iterations, losses, val, tick, started, budget.total_iterations)
        if stopped_by is not None:
            return epoch, iterations, stopped_by


def _report_stop(budget: TrainingBudget, epoch: int, iterations: int, stopped_by: str) -> None:
    if stopped_by == "max_minutes":
        log.warning(
            "train.max_minutes (%g) stopped training after epoch %d, at %d of %d iterations: the result depends on "
            "the speed and load of this machine (--resume continues to the full budget)",
            budget.max_seconds / 60, epoch, iterations, budget.total_iterations,
        )
    else:
        log.info("training done: %d iteration(s) in %d epoch(s), stopped by its %s budget", iterations, epoch,
                 stopped_by)


def train_model(
    manifest: str | Path,
    out: str | Path,
    model: str | None = "unet",
    config: str | Path = "cpu",
    device: str = "auto",
    max_epochs: int | None = None,
    max_minutes: float | None = None,
    max_iterations: int | None = None,
    resume: bool = False,
    command: str | None = None,
) -> TrainResult:
    """Train on ``split == train``, validate on ``split == val`` and keep the best-lesion-Dice weights.

    Parameters
    ----------
    manifest
        Cohort manifest with ``image``, ``label`` and ``split`` columns.
    out
        Output folder (see the module docstring for its layout).
    model
        ``unet`` or ``segresnet`` (``None`` on resume: the saved config's model).
    config
        Preset name (``cpu``, ``paper``) or YAML path; ignored on resume (the saved config is used).
    device
        ``auto``, ``cpu`` or ``cuda``.
    max_epochs, max_minutes, max_iterations
        Override ``train.max_epochs`` / ``train.max_minutes`` / ``train.max_iterations``. With an iteration budget
        the run takes exactly that many optimizer steps (``max_epochs`` is ignored, and giving both overrides is an
        error); otherwise ``max_epochs`` full epochs. ``max_minutes`` caps either: training stops before an epoch
        that would exceed it (estimated from the previous epoch).
    resume
        Continue from ``out/checkpoint`` after an interruption; the epoch and iteration counts continue.

    Raises
    ------
    UserInputError
        Bad manifest, labels, intensities or config; an existing model without ``resume``; ``max_epochs`` with an
        iteration budget; CUDA out of memory.
    """
    model_dir = Path(out)
    started = time.monotonic()
    overrides = {"train.max_epochs": max_epochs, "train.max_minutes": max_minutes,
                 "train.max_iterations": max_iterations}
    cfg, state = _run_config(model_dir, model, config, resume, overrides)
    _check_budget_options(cfg, max_epochs)
    torch_device = resolve_device(device)
    # A failure before training starts leaves the folder as it was; once training runs, its checkpoints are kept
    # (a failed or killed run continues with --resume).
    with removed_on_failure(model_dir):
        checkpoint = _read_checkpoint(model_dir, state, torch_device) if resume else None
        train_frame, val_frame = _training_data(manifest, cfg, torch_device)
        run = _build_run(cfg, model_dir, torch_device, state, train_frame, val_frame)
        if checkpoint is not None:
            _restore_checkpoint(run, *checkpoint)
        _write_run_files(run, manifest, train_frame, val_frame, resume, command)
    budget = TrainingBudget.from_config(cfg.train, run.batches_per_epoch)
    schedule = PolySchedule.for_budget(budget, float(state.get("time_progress", 0.0)), started)
    try:
        epoch, iterations, stopped_by = _train_epochs(run, budget, schedule, started)
    except torch.OutOfMemoryError:
        raise UserInputError(out_of_memory_message(torch_device, "training")) from None
    _report_stop(budget, epoch, iterations, stopped_by)
    return TrainResult(
        model_dir=model_dir, last_epoch=epoch, best_epoch=int(state["best_epoch"]),
        best_lesion_dice=float(state["best_metric"]), selection_metric=str(state["selection_metric"]),
        minutes=(time.monotonic() - started) / 60, iterations=iterations, stopped_by=stopped_by,
    )
