"""Train (or fine-tune) nnU-Net v2 3d_fullres in-process on a livermets manifest.

One call exports the manifest into ``MODEL/raw``, extracts nnU-Net's dataset fingerprint, plans 3d_fullres with
nnU-Net's ``ExperimentPlanner`` (or, for fine-tuning, takes the pretrained network's plans, as nnU-Net's
``nnUNetv2_move_plans_between_datasets`` does), preprocesses into ``MODEL/preprocessed``, puts livermets'
patient-grouped ``splits_final.json`` there and trains one fold with :class:`~.trainer.nnUNetTrainerLivermets`.
Further calls with another ``fold`` train the other folds of the same model (nnU-Net's cross-validation ensemble).

Model folder (the contract with nnU-Net prediction in livermets)::

    MODEL/
      nnunet.json           backend, dataset_name, configuration, trainer, plans, folds, result_folder (relative to
                            MODEL), label_map, labels, epochs, iterations, seed, pretrained, provenance
      nnunet_run.json       settings of the last run (what --resume and further folds start from)
      raw/Dataset<NNN>_<Name>/          the exported nnU-Net raw dataset
      preprocessed/Dataset<NNN>_<Name>/ plans, fingerprint, splits_final.json, preprocessed cases
                            (raw/ and preprocessed/ are needed for --resume and further folds only)
      results/Dataset<NNN>_<Name>/nnUNetTrainerLivermets__nnUNetPlans__3d_fullres/
                            plans.json, dataset.json, dataset_fingerprint.json,
                            fold_<F>/checkpoint_final.pth, checkpoint_best.pth, training log, progress.png

Examples
--------
>>> from livermets.segmentation.nnunet.train import train_nnunet
>>> result = train_nnunet("cohort/manifest.csv", "models/nnunet", epochs=1000)  # doctest: +SKIP
>>> result.checkpoint  # doctest: +SKIP
PosixPath('models/nnunet/results/Dataset501_LiverMets/nnUNetTrainerLivermets__nnUNetPlans__3d_fullres/fold_0/...')
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livermets.atomic import removed_on_failure, write_json
from livermets.errors import ParameterError, UserInputError
from livermets.progress import format_duration
from livermets.provenance import provenance
from livermets.segmentation.device import out_of_memory_message, resolve_device
from livermets.segmentation.nnunet.dataset import (
    DEFAULT_DATASET_ID,
    DEFAULT_NAME,
    LABELS,
    SPLITS_FILE,
    ExportPlan,
    plan_export,
    write_export,
)
from livermets.segmentation.nnunet.environment import (
    NnunetFolders,
    nnunet_environment,
    nnunet_prints_to_log,
    require_nnunet,
)
from livermets.segmentation.nnunet.planning import (
    CONFIGURATION,
    PLANS,
    plan_dataset,
    preprocess_dataset,
    source_plans,
)

log = logging.getLogger(__name__)

TRAINER = "nnUNetTrainerLivermets"
METADATA_FILE = "nnunet.json"
RUN_FILE = "nnunet_run.json"
LABEL_MAP = {"liver": [1], "lesion": [2]}
CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")
"""What --resume continues from, in nnU-Net's order of preference."""


@dataclass
class NnunetRun:
    """Settings of one nnU-Net training (saved as ``MODEL/nnunet_run.json`` for ``--resume``)."""

    dataset_name: str
    fold: int
    epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations_per_epoch: int = 50
    """nnU-Net's defaults: 1000 epochs of 250 training and 50 validation iterations."""
    seed: int = 0
    device: str = "auto"
    num_processes: int = 2
    augmentation_workers: int | None = None
    pretrained: str | None = None
    manifest: str = ""
    manifest_sha256: str = ""
    skipped_pretrained_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NnunetTrainResult:
    """Outcome of :func:`train_nnunet`: epochs trained by this call (``start_epoch`` to ``epochs``)."""

    model_dir: Path
    result_folder: Path
    checkpoint: Path
    fold: int
    start_epoch: int
    epochs: int
    iterations_per_epoch: int
    minutes: float


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (nnU-Net's sampling and augmentation draw from them)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (nnU-Net draws from the legacy global generator)
    torch.manual_seed(seed)


def _check_numbers(epochs: int, iterations_per_epoch: int, val_iterations: int, fold: int, processes: int) -> None:
    if epochs < 1:
        raise ParameterError("{epochs} {value}: must be at least 1", value=epochs)
    if iterations_per_epoch < 1:
        raise ParameterError("{iterations_per_epoch} {value}: must be at least 1", value=iterations_per_epoch)
    if fold < 0:
        raise ParameterError("{fold} {value}: must be at least 0", value=fold)
    for name, value, low in (("val_iterations_per_epoch", val_iterations, 1), ("num_processes", processes, 0)):
        if value < low:  # parameters of train_nnunet only (no command-line option)
            raise UserInputError(f"{name} {value}: must be at least {low}")


def result_folder(folders: NnunetFolders, dataset_name: str) -> Path:
    """nnU-Net's result folder of the livermets trainer: ``results/<dataset>/<trainer>__<plans>__3d_fullres``."""
    return folders.results / dataset_name / f"{TRAINER}__{PLANS}__{CONFIGURATION}"


def default_augmentation_workers(device: torch.device) -> int | None:
    """Data-augmentation processes: none on CPU (the training process augments), nnU-Net's own rule on CUDA."""
    return 0 if device.type == "cpu" else None


def _make_trainer(folders: NnunetFolders, run: NnunetRun, device: torch.device, continue_training: bool) -> Any:
    """The livermets nnU-Net trainer for ``run`` (nnU-Net's plans and dataset.json from the preprocessed folder)."""
    from livermets.segmentation.nnunet.trainer import nnUNetTrainerLivermets

    base = folders.preprocessed / run.dataset_name
    plans = json.loads((base / f"{PLANS}.json").read_text())
    plans["continue_training"] = continue_training
    dataset_json = json.loads((base / "dataset.json").read_text())
    trainer = nnUNetTrainerLivermets(plans=plans, configuration=CONFIGURATION, fold=run.fold,
                                     dataset_json=dataset_json, device=device)
    trainer.num_epochs = run.epochs
    trainer.num_iterations_per_epoch = run.iterations_per_epoch
    trainer.num_val_iterations_per_epoch = run.val_iterations_per_epoch
    return trainer


def _fresh_run(manifest: str | Path, out: Path, run: NnunetRun, export: tuple[int, int, str, int],
               pretrained: str | Path | None, device: torch.device) -> Any:
    """Check a fresh run's inputs before anything is written, then export, plan and preprocess into ``out`` (removed
    again when this fails); return the trainer, ready to train."""
    _check_numbers(run.epochs, run.iterations_per_epoch, run.val_iterations_per_epoch, run.fold, run.num_processes)
    plan = plan_export(manifest, *export)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ParameterError("{folder}: already exists; use {resume} to continue its training or choose another {out}",
                             folder=str(out))
    run.dataset_name, run.manifest, run.manifest_sha256 = plan.dataset_name, str(manifest), _sha256(manifest)
    run.pretrained = None if pretrained is None else str(Path(pretrained).absolute())
    if run.fold >= len(plan.splits):
        raise ParameterError("{fold} {value}: the splits have {count} fold(s) (0..{last}{note})", value=run.fold,
                             count=len(plan.splits), last=len(plan.splits) - 1,
                             note="; the manifest val split is fold 0" if len(plan.splits) == 1 else "")
    checkpoint = None
    if pretrained is not None:
        from livermets.segmentation.nnunet.trainer import read_checkpoint

        checkpoint = read_checkpoint(pretrained)
        checkpoint["source_plans"] = source_plans(checkpoint, Path(pretrained))
    with removed_on_failure(out), nnunet_environment(out) as folders:  # (nnU-Net's planner rejects 0 DA workers)
        with nnunet_prints_to_log():
            trainer = _prepare(plan, folders, run, device, checkpoint)
        write_json(out / RUN_FILE, asdict(run))
    return trainer


def _prepare(plan: ExportPlan, folders: NnunetFolders, run: NnunetRun, device: torch.device,
             checkpoint: dict[str, Any] | None) -> Any:
    """Export, plan, preprocess, build the trainer (with the pretrained weights): everything before training."""
    steps = (("export", lambda: write_export(plan, folders.raw)),
             ("fingerprint and plans", lambda: plan_dataset(folders, plan.dataset_name, None if checkpoint is None
                                                            else checkpoint["source_plans"], run.num_processes)),
             ("preprocessing", lambda: preprocess_dataset(folders, plan.dataset_name, run.num_processes)))
    for what, step in steps:
        started = time.monotonic()
        step()
        log.info("nnU-Net %s: %s", what, format_duration(time.monotonic() - started))
    seed_everything(run.seed)
    trainer = _make_trainer(folders, run, device, continue_training=False)
    if checkpoint is not None:
        from livermets.segmentation.nnunet.trainer import transfer_weights

        trainer.initialize()
        run.skipped_pretrained_keys = transfer_weights(trainer.network, checkpoint["network_weights"],
                                                       str(run.pretrained))
        if run.skipped_pretrained_keys:
            log.warning("--pretrained: %d output-layer tensor(s) keep their fresh initialisation (other labels): %s",
                        len(run.skipped_pretrained_keys), ", ".join(run.skipped_pretrained_keys))
    return trainer


def _read_run(out: Path) -> NnunetRun:
    path = out / RUN_FILE
    if not path.is_file():
        raise ParameterError("{folder}: nothing to resume (no {file}); train without {resume}", folder=str(out),
                             file=RUN_FILE)
    try:
        return NnunetRun(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ParameterError("{path}: not a valid nnU-Net run file ({reason}); train without {resume}",
                             path=str(path), reason=str(exc)) from None


def _resume(run: NnunetRun, out: Path, folders: NnunetFolders, device: torch.device) -> Any:
    """The trainer of the saved run at its last checkpoint (final, latest or best, as nnU-Net's ``--c``)."""
    fold_dir = result_folder(folders, run.dataset_name) / f"fold_{run.fold}"
    found = [fold_dir / name for name in CHECKPOINTS if (fold_dir / name).is_file()]
    if not found:
        raise ParameterError("{folder}: nothing to resume (no checkpoint in {fold_dir}); train without {resume}",
                             folder=str(out), fold_dir=str(fold_dir))
    trainer = _make_trainer(folders, run, device, continue_training=True)
    trainer.load_checkpoint(str(found[0]))
    if trainer.current_epoch >= run.epochs:
        raise ParameterError("{resume}: {folder} has trained {trained} of {total} epochs; pass a larger {epochs} to "
                             "train on", folder=str(out), trained=trainer.current_epoch, total=run.epochs)
    seed_everything(run.seed + trainer.current_epoch)
    return trainer


def write_metadata(out: Path, run: NnunetRun, command: str | None) -> dict[str, Any]:
    """Write ``MODEL/nnunet.json`` (what livermets' nnU-Net prediction reads); return its content."""
    folders = NnunetFolders.inside(out)
    metadata = {
        "backend": "nnunet", "dataset_name": run.dataset_name, "configuration": CONFIGURATION, "trainer": TRAINER,
        "plans": PLANS, "folds": trained_folds(out, run.dataset_name), "checkpoint": CHECKPOINTS[0],
        "result_folder": str(result_folder(folders, run.dataset_name).relative_to(folders.raw.parent)),
        "label_map": LABEL_MAP, "labels": LABELS, "epochs": run.epochs,
        "iterations_per_epoch": run.iterations_per_epoch, "val_iterations_per_epoch": run.val_iterations_per_epoch,
        "seed": run.seed, "pretrained": run.pretrained,
        "provenance": provenance(asdict(run) | {"packages": _nnunet_versions()}, command),
    }
    write_json(out / METADATA_FILE, metadata)
    return metadata


def _nnunet_versions() -> dict[str, str]:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("nnunetv2", "dynamic_network_architectures")}


def train_nnunet(
    manifest: str | Path,
    out: str | Path,
    *,
    epochs: int | None = None,
    iterations_per_epoch: int | None = None,
    val_iterations_per_epoch: int | None = None,
    fold: int | None = None,
    pretrained: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    dataset_id: int = DEFAULT_DATASET_ID,
    name: str = DEFAULT_NAME,
    folds: int = 5,
    num_processes: int = 2,
    augmentation_workers: int | None = None,
    resume: bool = False,
    command: str | None = None,
) -> NnunetTrainResult:
    """Train nnU-Net v2 3d_fullres on the manifest's train rows (one fold per call), or continue with ``resume``.

    Parameters
    ----------
    manifest, out
        Cohort manifest (image, label, split; its ``val`` split is the one fold when present) and the model folder.
    epochs, iterations_per_epoch, val_iterations_per_epoch
        Training length; nnU-Net's defaults are 1000 epochs of 250 training and 50 validation iterations (without
        ``val_iterations_per_epoch``: a fifth of ``iterations_per_epoch``). For ``resume`` or another fold, ``None``
        keeps the saved values; with ``resume`` a larger ``epochs`` trains on from the last checkpoint.
    fold
        Fold of ``splits_final.json`` (default 0). Given for an ``out`` that holds a trained fold, it trains that fold
        next to it on the same preprocessed data and pretrained checkpoint (nnU-Net's cross-validation ensemble).
    pretrained
        nnU-Net v2 ``checkpoint_final.pth`` to fine-tune: its plans (architecture, spacing, CT normalisation) and
        weights (output layers too when the labels agree), loaded with ``weights_only=True``.
    device, seed
        ``auto``, ``cpu`` or ``cuda``; the seed of Python, numpy and torch before the network is built.
    dataset_id, name, folds
        nnU-Net dataset ``Dataset<id>_<name>``; grouped folds when the manifest has no ``val`` split.
    num_processes, augmentation_workers
        Processes nnU-Net spawns for fingerprint and preprocessing (0: in this process, see
        :mod:`~livermets.segmentation.nnunet.planning`) and for augmentation (``None``: 0 on CPU, nnU-Net's on CUDA).
    resume, command
        Continue the training in ``out`` from its last checkpoint; the command line for ``nnunet.json``.

    Raises
    ------
    UserInputError
        nnU-Net missing, bad manifest or labels, ``fold`` outside the splits, an unreadable or incompatible
        ``pretrained`` checkpoint, an existing ``out`` (without ``resume`` or another ``fold``). A failure before
        training leaves no model folder; once training runs, its checkpoints stay for ``resume``.

    Examples
    --------
    >>> train_nnunet("lits/manifest.csv", "models/lits", device="cuda", fold=0)  # doctest: +SKIP
    """
    require_nnunet()
    out, torch_device, started = Path(out), resolve_device(device), time.monotonic()
    workers = augmentation_workers if augmentation_workers is not None else default_augmentation_workers(torch_device)
    lengths = {"epochs": epochs, "iterations_per_epoch": iterations_per_epoch,
               "val_iterations_per_epoch": val_iterations_per_epoch}
    start_epoch = 0
    if resume:
        run, trainer, start_epoch = _resume_run(out, manifest, fold, pretrained, torch_device, workers, lengths)
    elif (out / RUN_FILE).is_file():
        run, trainer = _another_fold(out, manifest, fold, pretrained, torch_device, lengths)
    else:
        run = NnunetRun(dataset_name="", fold=0 if fold is None else fold, seed=seed, device=device,
                        num_processes=num_processes, augmentation_workers=augmentation_workers)
        defaults: dict[str, int | None] = {"epochs": run.epochs, "iterations_per_epoch": run.iterations_per_epoch}
        _set_lengths(run, defaults | {key: value for key, value in lengths.items() if value is not None})
        trainer = _fresh_run(manifest, out, run, (dataset_id, folds, name, seed), pretrained, torch_device)
    _run_training(trainer, out, torch_device, workers)
    write_metadata(out, run, command)
    fold_dir = result_folder(NnunetFolders.inside(out), run.dataset_name) / f"fold_{run.fold}"
    return NnunetTrainResult(out, fold_dir.parent, fold_dir / CHECKPOINTS[0], run.fold, start_epoch, run.epochs,
                             run.iterations_per_epoch, (time.monotonic() - started) / 60)


def _run_training(trainer: Any, out: Path, device: torch.device, workers: int | None) -> None:
    """nnU-Net's training loop (with cuDNN autotuning on CUDA, as ``nnUNetv2_train``); running out of GPU memory is a
    one-line error, the checkpoints so far stay."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    with nnunet_environment(out, workers):
        try:
            trainer.run_training()
        except torch.OutOfMemoryError:
            raise ParameterError("{problem}; nnU-Net's plans aim at 8 GB of GPU memory (the checkpoints so far stay "
                                 "for {resume})", problem=out_of_memory_message(device, "nnU-Net training")) from None


def _set_lengths(run: NnunetRun, lengths: dict[str, int | None]) -> None:
    """Set the given training lengths; validation iterations default to a fifth of the training iterations (nnU-Net's
    50 per 250) when the training iterations change without them."""
    given = {key: value for key, value in lengths.items() if value is not None}
    for key, value in given.items():
        setattr(run, key, value)
    if "iterations_per_epoch" in given and "val_iterations_per_epoch" not in given:
        run.val_iterations_per_epoch = max(1, round(run.iterations_per_epoch / 5))
    _check_numbers(run.epochs, run.iterations_per_epoch, run.val_iterations_per_epoch, run.fold, run.num_processes)


def _saved_run(out: Path, manifest: str | Path, fold: int | None, lengths: dict[str, int | None]) -> NnunetRun:
    """The run saved in ``out`` for the same manifest, with the given fold and training lengths."""
    run = _read_run(out)
    if _sha256(manifest) != run.manifest_sha256:
        raise ParameterError("{manifest} {value}: not the manifest {folder} was trained on ({trained_on})",
                             value=str(manifest), folder=str(out), trained_on=run.manifest)
    if fold is not None:
        run.fold = fold
    _set_lengths(run, lengths)
    return run


def _resume_run(out: Path, manifest: str | Path, fold: int | None, pretrained: str | Path | None,
                device: torch.device, workers: int | None,
                lengths: dict[str, int | None]) -> tuple[NnunetRun, Any, int]:
    """Continue fold ``fold`` (default: the last one trained) of ``out`` from its last checkpoint."""
    if pretrained is not None:
        raise ParameterError("{pretrained} applies to a new training, not to {resume}")
    run = _saved_run(out, manifest, fold, lengths)
    with nnunet_environment(out, workers) as folders, nnunet_prints_to_log():
        trainer = _resume(run, out, folders, device)
    write_json(out / RUN_FILE, asdict(run))
    return run, trainer, int(trainer.current_epoch)


def _another_fold(out: Path, manifest: str | Path, fold: int | None, pretrained: str | Path | None,
                  device: torch.device, lengths: dict[str, int | None]) -> tuple[NnunetRun, Any]:
    """Train one more fold of the model in ``out`` on its exported and preprocessed data (an nnU-Net ensemble)."""
    if fold is None:
        raise ParameterError("{folder}: already holds an nnU-Net model; give {fold} to train another fold of it, "
                             "{resume} to continue, or another {out}", folder=str(out))
    run = _saved_run(out, manifest, fold, lengths)
    if pretrained is not None and str(Path(pretrained).absolute()) != run.pretrained:
        raise ParameterError("{pretrained} {value}: {folder} was planned from {planned_from}", value=str(pretrained),
                             folder=str(out), planned_from=run.pretrained)
    folders = NnunetFolders.inside(out)
    splits = json.loads((folders.preprocessed / run.dataset_name / SPLITS_FILE).read_text())
    if fold >= len(splits):
        raise ParameterError("{fold} {value}: the splits have {count} fold(s) (0..{last})", value=fold,
                             count=len(splits), last=len(splits) - 1)
    fold_dir = result_folder(folders, run.dataset_name) / f"fold_{fold}"
    if any((fold_dir / name).is_file() for name in CHECKPOINTS):
        raise ParameterError("{fold} {value}: {folder} already has checkpoints of this fold; continue it with {resume}",
                             value=fold, folder=str(out))
    with nnunet_environment(out), nnunet_prints_to_log():
        seed_everything(run.seed)
        trainer = _make_trainer(folders, run, device, continue_training=False)
        if run.pretrained is not None:
            from livermets.segmentation.nnunet.trainer import read_checkpoint, transfer_weights

            trainer.initialize()
            transfer_weights(trainer.network, read_checkpoint(run.pretrained)["network_weights"], run.pretrained)
    write_json(out / RUN_FILE, asdict(run))
    return run, trainer


def trained_folds(out: str | Path, dataset_name: str) -> list[int]:
    """Folds of the model in ``out`` that have a ``checkpoint_final.pth``."""
    folder = result_folder(NnunetFolders.inside(out), dataset_name)
    return sorted(int(p.parent.name.removeprefix("fold_")) for p in folder.glob(f"fold_*/{CHECKPOINTS[0]}")
                  if p.parent.name.removeprefix("fold_").isdigit())
