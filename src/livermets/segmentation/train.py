"""Train a MONAI 3D U-Net or SegResNet on a manifest's ``train`` split, select on validation lesion Dice.

Model folder layout (every file written atomically)::

    MODEL_DIR/
      config.yaml            validated config: preprocessing, spacing, window, network, classes, inference defaults
      model.safetensors      weights of the epoch with the best validation lesion Dice (what predict loads)
      train_log.csv          one row per epoch: loss, validation liver/lesion Dice (with calibration also the chosen
                             threshold and its lesion Dice, sensitivity, PPV, FP/scan), best so far, timings
      training_curve.png     loss and Dice curves
      lesion_threshold.csv   best epoch's validation lesion Dice and detection per lesion threshold (calibration)
      provenance.json        command, parameters, library versions
      checkpoint/            last epoch for --resume: state.json, weights (safetensors), optimizer (torch state_dict)
      cache/                 preprocessed volumes when train.cache = disk (safe to delete)

Examples
--------
>>> from livermets.segmentation.train import train_model
>>> result = train_model("cohort/manifest.csv", "models/unet", model="unet", config="cpu")  # doctest: +SKIP
>>> result.best_lesion_dice  # doctest: +SKIP
0.71
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset
from monai.utils import set_determinism

from livermets.atomic import append_csv_rows, atomic_path, write_json
from livermets.cohort.manifest import load_manifest
from livermets.errors import UserInputError
from livermets.figures import save_figure
from livermets.progress import track
from livermets.provenance import provenance
from livermets.segmentation.calibrate import save_calibration
from livermets.segmentation.checks import check_training_case, training_frames
from livermets.segmentation.config import SegConfig, load_config, save_config
from livermets.segmentation.device import mixed_precision, out_of_memory_message, resolve_device
from livermets.segmentation.losses import build_loss
from livermets.segmentation.memory_format import MEMORY_FORMATS, fastest_memory_format
from livermets.segmentation.model_files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CURVE_FILE,
    LOG_FILE,
    PROVENANCE_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
)
from livermets.segmentation.networks import build_network, load_weights, save_weights
from livermets.segmentation.transforms import IMAGE, LABEL, eval_transforms, train_transforms
from livermets.segmentation.validation import THRESHOLDS, validate

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train_model`."""

    model_dir: Path
    last_epoch: int
    best_epoch: int
    best_lesion_dice: float
    selection_metric: str
    minutes: float


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


class PolySchedule:
    """nnU-Net's poly learning-rate factor ``(1 - progress) ** 0.9`` for epoch- and time-budgeted training.

    ``progress`` is the larger of the epoch fraction and the fraction of the wall-time budget used, so the rate
    reaches zero when either budget ends. A resumed run continues the time fraction from where the interrupted run
    left it (``start_fraction``) and spreads the rest over its own budget.

    Examples
    --------
    >>> PolySchedule(max_epochs=10, budget_s=float("inf")).factor(5.0)  # half-way through the epochs
    0.5358867312681466
    """

    def __init__(self, max_epochs: int, budget_s: float, start_fraction: float = 0.0,
                 started: float | None = None) -> None:
        self.max_epochs, self.budget_s, self.start_fraction = max_epochs, budget_s, start_fraction
        self.started = time.monotonic() if started is None else started

    def time_progress(self) -> float:
        if not math.isfinite(self.budget_s):
            return self.start_fraction
        used = (time.monotonic() - self.started) / self.budget_s
        return min(1.0, self.start_fraction + (1.0 - self.start_fraction) * used)

    def factor(self, epochs_done: float) -> float:
        progress = min(1.0, max(epochs_done / self.max_epochs, self.time_progress()))
        return float((1.0 - progress) ** 0.9)


def _read_state(model_dir: Path) -> dict[str, Any]:
    path = model_dir / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        raise UserInputError(
            f"{model_dir}: nothing to resume (no {CHECKPOINT_DIR}/{STATE_FILE}); train without --resume"
        )
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return state


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


def _plot_curves(log_path: Path, out: Path) -> None:
    from matplotlib.figure import Figure

    frame = pd.read_csv(log_path)
    fig = Figure(figsize=(9, 3.5))
    ax_loss, ax_dice = fig.subplots(1, 2)
    ax_loss.plot(frame["epoch"], frame["train_loss"], marker=".")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Loss")
    validated = frame.dropna(subset=["val_liver_dice"])
    ax_dice.plot(validated["epoch"], validated["val_liver_dice"], marker=".", label="liver")
    ax_dice.plot(validated["epoch"], validated["val_lesion_dice"], marker=".", label="lesion (argmax)")
    if "val_lesion_dice_at_threshold" in validated:
        ax_dice.plot(validated["epoch"], validated["val_lesion_dice_at_threshold"], marker=".",
                     label="lesion (calibrated threshold)")
        ax_dice.plot(validated["epoch"], validated["val_lesion_sensitivity"], marker=".", linestyle="--",
                     label="lesion sensitivity (calibrated)")
    ax_dice.set(xlabel="epoch", ylabel="validation Dice / sensitivity", ylim=(0, 1), title="Validation")
    ax_dice.legend()
    fig.tight_layout()
    save_figure(fig, out, dpi=100)


def _memory_format(network: torch.nn.Module, cfg: SegConfig, device: torch.device, amp: bool) -> str:
    """``train.memory_format``, or with ``auto`` the layout that trains faster here (timed on two crops)."""
    if cfg.train.memory_format != "auto":
        return cfg.train.memory_format
    crops = min(2, cfg.sampling.samples_per_image * cfg.train.images_per_batch)
    name, seconds = fastest_memory_format(network, (crops, 1, *cfg.sampling.patch_size), device, amp)
    log.info("memory format %s (%s s per step of %d crops)", name,
             ", ".join(f"{k} {v:.3f}" for k, v in seconds.items()), crops)
    return name


def train_model(
    manifest: str | Path,
    model_dir: str | Path,
    model: str | None = "unet",
    config: str | Path = "cpu",
    device: str = "auto",
    max_epochs: int | None = None,
    max_minutes: float | None = None,
    resume: bool = False,
    command: str | None = None,
) -> TrainResult:
    """Train on ``split == train``, validate on ``split == val`` and keep the best-lesion-Dice weights.

    Parameters
    ----------
    manifest
        Cohort manifest with ``image``, ``label`` and ``split`` columns.
    model_dir
        Output folder (see the module docstring for its layout).
    model
        ``unet`` or ``segresnet`` (``None`` on resume: the saved config's model).
    config
        Preset name (``cpu``, ``paper``) or YAML path; ignored on resume (the saved config is used).
    device
        ``auto``, ``cpu`` or ``cuda``.
    max_epochs, max_minutes
        Override ``train.max_epochs`` / ``train.max_minutes``; training stops before an epoch that would exceed the
        time budget (estimated from the previous epoch).
    resume
        Continue from ``MODEL_DIR/checkpoint`` after an interruption; the epoch count continues.

    Raises
    ------
    UserInputError
        Bad manifest, labels, intensities or config; an existing model without ``--resume``; CUDA out of memory.
    """
    model_dir = Path(model_dir)
    started = time.monotonic()
    if resume:
        state = _read_state(model_dir)
        cfg = load_config(
            model_dir / CONFIG_FILE, **{"train.max_epochs": max_epochs, "train.max_minutes": max_minutes}
        )
        if model is not None and model != cfg.model:
            raise UserInputError(
                f"--model {model}: {model_dir} holds a {cfg.model} model; resume it with --model {cfg.model}"
            )
    else:
        if (model_dir / CHECKPOINT_DIR / STATE_FILE).exists() or (model_dir / WEIGHTS_FILE).exists():
            raise UserInputError(
                f"{model_dir}: already holds a trained model; use --resume to continue or another --out"
            )
        cfg = load_config(
            config, model=model, **{"train.max_epochs": max_epochs, "train.max_minutes": max_minutes}
        )
        state = {"epoch": 0, "best_metric": -1.0, "best_liver_dice": -1.0, "best_epoch": 0,
                 "selection_metric": "val_lesion_dice"}
    torch_device = resolve_device(device)
    amp = mixed_precision(torch_device, cfg.train.amp)

    frame = load_manifest(manifest)
    train_frame, val_frame = training_frames(frame, cfg.train.val_fraction, cfg.train.seed, str(manifest))
    pre = cfg.preprocess
    summaries = [
        check_training_case(str(r.series_id), str(r.image), str(r.label), pre.min_ct_hu, pre.foreground_hu)
        for r in track(list(pd.concat([train_frame, val_frame]).itertuples()), "Checking training data")
    ]
    n_lesion = sum(s.lesion_voxels > 0 for s in summaries)
    log.info(
        "training %s (%s preset) on %d scans, validating on %d (%d of these %d scans have lesions), device %s",
        cfg.model, cfg.preset, len(train_frame), len(val_frame), n_lesion, len(summaries), torch_device,
    )

    set_determinism(seed=cfg.train.seed)
    train_tf = train_transforms(cfg)
    cache_dir = model_dir / "cache"
    train_ds = _dataset(_files(train_frame), train_tf, cfg, cache_dir)
    val_ds = _dataset(_files(val_frame), eval_transforms(cfg, with_label=True), cfg, cache_dir)
    val_loader = DataLoader(val_ds, batch_size=1, num_workers=cfg.train.num_workers)

    network = build_network(cfg).to(torch_device)
    memory_format = _memory_format(network, cfg, torch_device, amp)
    network.to(memory_format=MEMORY_FORMATS[memory_format])  # type: ignore[call-overload]  # missing from the stubs
    optimizer = torch.optim.Adam(network.parameters(), lr=cfg.train.learning_rate, weight_decay=cfg.train.weight_decay)
    loss_fn = build_loss(cfg.train, torch_device)
    # float16 on CUDA needs loss scaling; bfloat16 (CPU) has float32's exponent range and needs none.
    scaler = torch.amp.GradScaler("cuda", enabled=amp and torch_device.type == "cuda")
    if resume:
        folder = model_dir / CHECKPOINT_DIR
        load_weights(network, folder / state["weights"])
        saved = torch.load(folder / state["optimizer"], map_location=torch_device, weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        log.info("resuming after epoch %d (best %s %.4f at epoch %d)", state["epoch"], state["selection_metric"],
                 state["best_metric"], state["best_epoch"])
    save_config(cfg, model_dir / CONFIG_FILE)
    write_json(model_dir / PROVENANCE_FILE, provenance(
        {"manifest": str(manifest), "model": cfg.model, "preset": cfg.preset, "device": str(torch_device),
         "resume": resume, "mixed_precision": amp, "memory_format": memory_format,
         "train_series": train_frame["series_id"].astype(str).tolist(),
         "val_series": val_frame["series_id"].astype(str).tolist()}, command,
    ))

    budget_s = cfg.train.max_minutes * 60 if cfg.train.max_minutes else math.inf
    validation_seconds = 0.0
    epoch = int(state["epoch"])
    first_epoch = epoch + 1
    schedule = PolySchedule(cfg.train.max_epochs, budget_s, float(state.get("time_progress", 0.0)), started)
    try:
        for epoch in range(first_epoch, cfg.train.max_epochs + 1):
            tick = time.monotonic()
            # Re-seeding per epoch makes a resumed run draw the same crops and jitter as an uninterrupted one.
            seed = cfg.train.seed + epoch
            torch.manual_seed(seed)
            train_tf.set_random_state(seed=seed)
            loader = DataLoader(
                train_ds, batch_size=cfg.train.images_per_batch, shuffle=True, num_workers=cfg.train.num_workers,
                generator=torch.Generator().manual_seed(seed),
            )
            network.train()
            losses = []
            n_batches = len(loader)
            for step, batch in enumerate(loader):
                if cfg.train.lr_schedule == "poly":
                    factor = schedule.factor(epoch - 1 + step / n_batches)
                    for group in optimizer.param_groups:
                        group["lr"] = cfg.train.learning_rate * factor
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(torch_device.type, enabled=amp):
                    logits = network(batch[IMAGE].to(torch_device))
                    loss = loss_fn(logits, batch[LABEL].to(torch_device))
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                losses.append(float(loss.detach()))
            train_seconds = time.monotonic() - tick
            # Stop when the next epoch (training + a validation) would end beyond the budget; this epoch's
            # validation is part of the estimate too.
            projected = time.monotonic() - started + validation_seconds + train_seconds + validation_seconds
            stopping = epoch == cfg.train.max_epochs or projected > budget_s
            liver = lesion = math.nan
            improved = False
            calibrated: pd.Series | None = None
            if epoch % cfg.train.val_interval == 0 or stopping:
                val_tick = time.monotonic()
                # With calibration, the same pass also tries every lesion threshold, and the model is selected
                # on its lesion Dice at the threshold prediction will use.
                result = validate(network, val_loader, cfg, torch_device, amp,
                                  THRESHOLDS if cfg.train.calibrate_lesion_threshold else ())
                validation_seconds = time.monotonic() - val_tick
                liver, lesion = result.liver_dice, result.lesion_dice
                if math.isnan(lesion) and state["selection_metric"] == "val_lesion_dice":
                    log.warning("no lesion in the validation scans: selecting the model on validation liver Dice")
                    state["selection_metric"] = "val_liver_dice"
                score = result.lesion_dice_at_threshold if state["selection_metric"] == "val_lesion_dice" else liver
                # Ties in lesion Dice (e.g. 0 early in training) go to the better liver Dice.
                key = (score, liver if not math.isnan(liver) else -1.0)
                if not math.isnan(score) and key > (state["best_metric"], state.get("best_liver_dice", -1.0)):
                    state.update(best_metric=score, best_liver_dice=key[1], best_epoch=epoch)
                    save_weights(network, model_dir / WEIGHTS_FILE)
                    if result.table is not None:
                        save_calibration(model_dir, cfg, result)
                    improved = True
                calibrated = result.chosen
            state["time_progress"] = schedule.time_progress()
            _save_checkpoint(model_dir, epoch, network, optimizer, scaler, state)
            elapsed_total = time.monotonic() - started
            row = {
                "epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan,
                "val_liver_dice": liver, "val_lesion_dice": lesion,
                **(_calibration_columns(calibrated) if cfg.train.calibrate_lesion_threshold else {}),
                "best_metric": state["best_metric"] if state["best_epoch"] else math.nan,
                "best_epoch": state["best_epoch"],
                "learning_rate": optimizer.param_groups[0]["lr"],
                "epoch_seconds": round(time.monotonic() - tick, 2),
                "elapsed_minutes": round(elapsed_total / 60, 3),
            }
            append_csv_rows(model_dir / LOG_FILE, pd.DataFrame([row]))
            _plot_curves(model_dir / LOG_FILE, model_dir / CURVE_FILE)
            log.info(
                "epoch %d (%.1f min): loss %.4f%s", epoch, elapsed_total / 60, row["train_loss"],
                f", val liver Dice {liver:.3f}, lesion Dice {lesion:.3f}"
                + ("" if calibrated is None else f" (at threshold {calibrated['threshold']}: "
                   f"{calibrated['mean_val_lesion_dice']:.3f}, lesion sensitivity {calibrated['sensitivity']:.3f}, "
                   f"PPV {calibrated['ppv']:.3f})") + (" (best)" if improved else "")
                if not math.isnan(liver) else "",
            )
            if stopping:
                if epoch < cfg.train.max_epochs:
                    log.info("stopping after epoch %d: another epoch would exceed --max-minutes %.1f", epoch,
                             cfg.train.max_minutes or math.inf)
                break
    except torch.OutOfMemoryError:
        raise UserInputError(out_of_memory_message(torch_device, "training")) from None
    return TrainResult(
        model_dir=model_dir, last_epoch=epoch, best_epoch=int(state["best_epoch"]),
        best_lesion_dice=float(state["best_metric"]), selection_metric=str(state["selection_metric"]),
        minutes=(time.monotonic() - started) / 60,
    )
