"""``livermets seg``: ``train``, ``predict``, ``calibrate`` and ``evaluate`` (lesion detection metrics of predictions,
computed by :mod:`livermets.lesions`), plus the nnU-Net commands of :mod:`livermets.segmentation.nnunet.cli`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from livermets.atomic import outputs
from livermets.batch import ALLOW_FAILURES, finish_batch

if TYPE_CHECKING:
    from livermets.segmentation.options import PredictionOptions


app = typer.Typer(help="Segmentation: train, predict and evaluate liver and lesion label maps.", no_args_is_help=True)


def register(seg_app: typer.Typer) -> None:
    """Add ``evaluate``, ``train``, ``predict``, ``calibrate`` and the nnU-Net commands to the ``seg`` group."""
    seg_app.command("evaluate")(evaluate)
    seg_app.command("train")(train)
    seg_app.command("predict")(predict)
    seg_app.command("calibrate")(calibrate)
    from livermets.segmentation.nnunet.cli import register as register_nnunet

    register_nnunet(seg_app)


def train(
    model: str | None = typer.Option(None, "--model",
                                     help="Network: unet, segresnet or nnunet (required unless --resume)."),
    manifest: Path = typer.Option(..., "--manifest", help="Cohort manifest CSV with image, label and split."),
    out: Path = typer.Option(..., "--out", help="Model folder to create (or to continue with --resume)."),
    config: str = typer.Option("cpu", "--config",
                               help="Preset (cpu, paper) or a YAML config file (--resume uses the saved one)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu or cuda."),
    max_epochs: int | None = typer.Option(None, "--max-epochs", help="Override train.max_epochs."),
    iterations: int | None = typer.Option(None, "--iterations",
                                          help="Override train.max_iterations: train exactly this many optimizer "
                                               "steps (over resumes), whatever the machine's speed; max_epochs is "
                                               "then ignored."),
    max_minutes: float | None = typer.Option(None, "--max-minutes",
                                             help="Wall-time cap of this run; stops before an epoch that would "
                                                  "exceed it."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the folder's last checkpoint."),
    epochs: int | None = typer.Option(None, "--epochs", help="nnunet: epochs (default 1000; on --resume, more "
                                      "epochs than trained continue the training)."),
    iterations_per_epoch: int | None = typer.Option(None, "--iterations-per-epoch",
                                                    help="nnunet: training iterations per epoch (default 250)."),
    fold: int | None = typer.Option(None, "--fold", help="nnunet: fold of splits_final.json to train (default 0)."),
    pretrained: Path | None = typer.Option(None, "--pretrained",
                                           help="nnunet: fine-tune from this nnU-Net v2 checkpoint_final.pth (its "
                                                "plans and weights)."),
) -> None:
    """Train a 3D U-Net or SegResNet on split == train, validate on split == val, keep the best lesion Dice; or
    nnU-Net v2 3d_fullres (--model nnunet) on patient-grouped folds.

    Writes OUT/config.yaml, OUT/model.safetensors, OUT/train_log.csv, OUT/training_curve.png and OUT/checkpoint/.
    The summary line says what stopped the run: its iterations or epochs budget, or max_minutes. With --model nnunet:
    OUT/nnunet.json and nnU-Net's raw, preprocessed and results folders (see docs/nnunet.md).

    Example: ``livermets seg train --model unet --manifest cohort/manifest.csv --out models/unet --iterations 4000``

    Example: ``livermets seg train --model nnunet --manifest cohort/manifest.csv --out models/nnunet --device cuda``
    """
    from livermets.cohort.manifest import load_manifest
    from livermets.errors import UserInputError
    from livermets.segmentation.config import MODELS
    from livermets.segmentation.nnunet.cli import check_option_use, train_nnunet_command

    if model is None and resume and (out / "nnunet_run.json").is_file():
        model = "nnunet"
    if model is None and not resume:
        raise UserInputError("--model is required (unet, segresnet or nnunet)")
    if model is not None and model not in (*MODELS, "nnunet"):
        raise UserInputError(f"--model {model!r}: choose one of {', '.join(MODELS)}, nnunet")
    check_option_use(model, {"--config": None if config == "cpu" else config, "--max-epochs": max_epochs,
                             "--iterations": iterations, "--max-minutes": max_minutes, "--epochs": epochs,
                             "--iterations-per-epoch": iterations_per_epoch, "--fold": fold,
                             "--pretrained": pretrained})
    if not resume:
        load_manifest(manifest)  # a bad manifest fails before torch and MONAI load
    if model == "nnunet":
        train_nnunet_command(manifest, out, device, resume, shlex.join(["livermets", *sys.argv[1:]]), {
            "epochs": epochs, "iterations_per_epoch": iterations_per_epoch, "fold": fold, "pretrained": pretrained})
        return
    from livermets.segmentation.monai.train import train_model

    result = train_model(
        manifest, out, model=model, config=config, device=device, max_epochs=max_epochs, max_minutes=max_minutes,
        max_iterations=iterations, resume=resume, command=shlex.join(["livermets", *sys.argv[1:]]),
    )
    typer.echo(
        f"{result.model_dir}: {result.last_epoch} epoch(s), {result.iterations} iteration(s) in "
        f"{result.minutes:.1f} min, stopped by {result.stopped_by}; best {result.selection_metric} "
        f"{result.best_lesion_dice:.3f} at epoch {result.best_epoch}"
    )


LABEL_MAP = typer.Option(None, "--label-map",
                         help="nnU-Net labels to liver/lesion: CLASS=LABEL[+LABEL],... with LABEL a value or a "
                              "dataset.json name, e.g. liver=5 or liver=1,lesion=2 (default: nnunet.json, else the "
                              "labels named liver and lesion/tumor).")
LIVER_MODEL = typer.Option(None, "--liver-model", help="Take the liver from this model (with --lesion-model).")
LESION_MODEL = typer.Option(None, "--lesion-model",
                            help="Take the lesions from this model, kept within --lesion-max-distance-mm (default 5) "
                                 "of the liver.")
LIVER_LABEL_MAP = typer.Option(None, "--liver-label-map",
                               help="--label-map of the liver model (e.g. liver=5, or just 5).")
LESION_LABEL_MAP = typer.Option(None, "--lesion-label-map",
                                help="--label-map of the lesion model (e.g. lesion=2, or just 2).")
FOLDS = typer.Option(None, "--folds", help="nnU-Net folds to ensemble, e.g. 0 or 0,1,2,3,4 or all (default: every "
                                           "fold with a checkpoint_final.pth).")
RAS = typer.Option(None, "--ras/--no-ras",
                   help="nnU-Net: feed the CT with voxel axes along R, A, S, as TotalSegmentator does (default: only "
                        "when the model's plans.json reader reorients); the output stays on the input's grid.")


ENGINE = typer.Option("auto", "--engine", help="Engine of the network's forward pass: torch, onnxruntime, openvino, "
                     "or auto (on CPU the fastest installed, openvino > onnxruntime > torch; on CUDA torch). The "
                     "network is exported once per model and patch size into the model home.")
THREADS = typer.Option(None, "--threads", help="Threads of the engine (default: the cores this process may use, "
                       "from its CPU affinity and cgroup limit).")
MIN_LESION_ML = typer.Option(None, "--min-lesion-ml", help="Remove predicted lesions smaller than this many mL "
                             "(default: the model's config, 0.03; 0 = no volume limit).")
MIN_LESION_DIAMETER = typer.Option(None, "--min-lesion-diameter-mm", help="Remove predicted lesions whose longest "
                                   "axial diameter is below this (default: the model's config, 3 mm; 0 = no limit).")


@outputs("out")
def predict(
    model: str | None = typer.Option(None, "--model", help="Model: an installed model's name (ts-pair, "
                                     "ts-pair-fast, shipped: `livermets models list`), a folder written by "
                                     "`livermets seg train` (MONAI or nnU-Net), or any nnU-Net v2 result folder "
                                     "(default: the best installed model, ts-pair > ts-pair-fast > shipped)."),
    out: Path = typer.Option(..., "--out", help="Output folder for <series_id>_seg.nii.gz label maps."),
    manifest: Path | None = typer.Option(None, "--manifest", help="Segment every row of this manifest."),
    image: Path | None = typer.Option(None, "--image", help="Segment one image (file or DICOM folder)."),
    split: str | None = typer.Option(None, "--split", help="Only manifest rows of this split (e.g. test)."),
    tta: bool = typer.Option(False, "--tta", help="Average over flips (inference.tta_flip_axes)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    engine: str = ENGINE,
    threads: int | None = THREADS,
    overlap: float | None = typer.Option(None, "--overlap", help="Sliding-window overlap in [0, 1)."),
    blend_mode: str | None = typer.Option(None, "--blend", help="Sliding-window blending: gaussian or constant."),
    sw_batch_size: int | None = typer.Option(None, "--sw-batch-size", help="Windows per forward pass."),
    resample: str | None = typer.Option(None, "--resample",
                                        help="Back to the input grid: probabilities (linear) or labels (nearest)."),
    largest_liver: bool | None = typer.Option(None, "--largest-liver/--all-liver",
                                              help="Keep only the largest liver component (default: config)."),
    lesion_max_distance_mm: float | None = typer.Option(None, "--lesion-max-distance-mm",
                                                 help="Drop lesion voxels farther than this from the liver."),
    keep_all_lesions: bool = typer.Option(False, "--keep-all-lesions", help="Keep lesions anywhere."),
    lesion_threshold: float | None = typer.Option(None, "--lesion-threshold",
                                                  help="Lesion where its probability reaches this (default: config; "
                                                       "calibrated on validation by the cpu preset)."),
    argmax: bool = typer.Option(False, "--argmax", help="Plain argmax labels (ignore the config's lesion threshold)."),
    min_lesion_ml: float | None = MIN_LESION_ML,
    min_lesion_diameter_mm: float | None = MIN_LESION_DIAMETER,
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo series whose output already exists."),
    label_map: str | None = LABEL_MAP,
    liver_model: Path | None = LIVER_MODEL,
    lesion_model: Path | None = LESION_MODEL,
    liver_label_map: str | None = LIVER_LABEL_MAP,
    lesion_label_map: str | None = LESION_LABEL_MAP,
    folds: str | None = FOLDS,
    ras: bool | None = RAS,
    allow_failures: bool = ALLOW_FAILURES,
) -> None:
    """Predict label maps (0 background, 1 liver, 2 lesion) on the exact grid of each input CT.

    With --manifest, a CT found bad during the run fails its series (OUT/failures.csv; exit code 3).

    The model is a livermets model, a livermets nnU-Net model or any nnU-Net v2 result folder (see docs/nnunet.md);
    --liver-model and --lesion-model combine two models (e.g. TotalSegmentator's total and a lesion model).

    Example: ``livermets seg predict --model models/unet --manifest cohort/manifest.csv --split test --out preds``

    Example: ``livermets seg predict --model results/Dataset003_Liver/nnUNetTrainer__nnUNetPlans__3d_fullres
    --label-map liver=1,lesion=2 --image ct.nii.gz --out preds``
    """
    from livermets.segmentation.predict import ModelChoice, predict_cohort

    options = _prediction_options(overlap=overlap, blend_mode=blend_mode, sw_batch_size=sw_batch_size,
                                  resample=resample, largest_liver=largest_liver,
                                  lesion_max_distance_mm=lesion_max_distance_mm, lesion_threshold=lesion_threshold,
                                  keep_all_lesions=keep_all_lesions, argmax=argmax, min_lesion_ml=min_lesion_ml,
                                  min_lesion_diameter_mm=min_lesion_diameter_mm, engine=engine, threads=threads)
    choice = ModelChoice(model=model, liver_model=liver_model, lesion_model=lesion_model, label_map=label_map,
                         liver_label_map=liver_label_map, lesion_label_map=lesion_label_map,
                         folds=_folds(folds), ras=ras)
    table = predict_cohort(choice, out, manifest=manifest, image=image, split=split, tta=tta, device=device,
                           overwrite=overwrite, options=options, keep_going=manifest is not None)
    typer.echo(f"{out}: {len(table)} label map(s); summary in {out / 'predictions.csv'}")
    if manifest is not None:  # a cohort: its failures decide the exit code
        _finish_cohort(out, len(table), allow_failures)


def _finish_cohort(out: Path, predicted: int, allow_failures: bool) -> None:
    """The closing line and exit code of ``seg predict --manifest`` from its ``failures.csv``."""
    import pandas as pd

    from livermets.segmentation.predict import failures_path

    failed = len(pd.read_csv(failures_path(out)))
    finish_batch(failed, predicted + failed, failures_path(out), allow_failures)


def _prediction_options(keep_all_lesions: bool, argmax: bool, **given: Any) -> PredictionOptions:
    """The :class:`PredictionOptions` of ``seg predict``: the options given, with --keep-all-lesions and --argmax."""
    from livermets.errors import UserInputError
    from livermets.segmentation.options import ARGMAX, KEEP_ALL, PredictionOptions

    if keep_all_lesions and given["lesion_max_distance_mm"] is not None:
        raise UserInputError("--keep-all-lesions and --lesion-max-distance-mm exclude each other")
    if argmax and given["lesion_threshold"] is not None:
        raise UserInputError("--argmax and --lesion-threshold exclude each other")
    if keep_all_lesions:
        given["lesion_max_distance_mm"] = KEEP_ALL
    if argmax:
        given["lesion_threshold"] = ARGMAX
    return PredictionOptions(**given)


def _folds(folds: str | None) -> tuple[str, ...] | None:
    """``--folds 0,1,2`` → ``("0", "1", "2")``."""
    from livermets.errors import UserInputError

    if folds is None:
        return None
    chosen = tuple(f.strip() for f in folds.split(","))
    if not all(f == "all" or f.isdigit() for f in chosen):
        raise UserInputError(f"--folds {folds!r}: expected fold numbers separated by commas (e.g. 0,1,2) or all")
    return chosen


def calibrate(
    model: Path = typer.Option(..., "--model", help="Model folder written by `livermets seg train`."),
    manifest: Path = typer.Option(..., "--manifest", help="Manifest whose val rows (labelled) calibrate the model."),
    metric: str | None = typer.Option(None, "--metric",
                                      help="lesion_dice (mean validation lesion Dice) or lesion_f1 (lesion detection "
                                           "F1 over all validation scans); default: the model's config."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Choose the lesion probability threshold (argmax, 0.5 ... 0.1) on the validation scans; no retraining.

    Writes MODEL/lesion_threshold.csv (Dice, sensitivity, PPV, F1 and FP/scan per threshold) and sets
    inference.lesion_threshold in MODEL/config.yaml.

    Example: ``livermets seg calibrate --model models/unet --manifest cohort/manifest.csv --metric lesion_f1``
    """
    from livermets.cohort.manifest import load_manifest
    from livermets.segmentation.predict import model_kind

    model_kind(model)  # the model folder and the manifest are checked before torch loads
    load_manifest(manifest)
    from livermets.segmentation.monai.calibrate import calibrate_model
    from livermets.segmentation.monai.validation import THRESHOLDS

    threshold, table = calibrate_model(model, manifest, metric=metric, device=device)
    row = table.iloc[THRESHOLDS.index(threshold)]
    typer.echo(
        f"{model}: lesion threshold {'argmax' if threshold is None else threshold} (validation lesion Dice "
        f"{row['mean_val_lesion_dice']:.3f}, sensitivity {row['sensitivity']:.3f}, PPV {row['ppv']:.3f}, "
        f"F1 {row['f1']:.3f}); table in {model / 'lesion_threshold.csv'}"
    )


@outputs("out")
def evaluate(
    pred_dir: Path = typer.Option(..., "--pred-dir", help="Folder of predicted label maps <series_id>_seg.nii.gz."),
    manifest: Path = typer.Option(..., "--manifest", help="Cohort manifest CSV (reference labels in 'label')."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    rule: str = typer.Option("paper", "--rule", help="Lesion matching rule: 'paper' (any overlap) or 'lits' "
                             "(LiTS challenge: merge, then IoU > --iou)."),
    iou_threshold: float = typer.Option(0.5, "--iou", help="IoU threshold of the 'lits' rule (strictly greater)."),
    connectivity: int = typer.Option(26, "--connectivity", help="cc3d connectivity for lesions: 6, 18, 26."),
    group_by: str | None = typer.Option(None, "--group-by", help="Manifest column grouping Table 3 "
                                        "(default: 'dataset' if present, else 'split')."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Leave series without a prediction out of "
                                      "per_scan.csv too (listed in skipped.csv, no warning): e.g. predictions of "
                                      "one split only."),
    missing_as_empty: bool = typer.Option(False, "--missing-as-empty", help="Count a missing prediction as an empty "
                                          "one (all its reference lesions false negatives) instead of leaving the "
                                          "series out of the metrics."),
    size_strata_mm: list[float] | None = typer.Option(None, "--size-strata", help="Diameter cut point in mm for "
                                                   "size strata (repeatable), e.g. --size-strata 10."),
    figures: bool = typer.Option(False, "--figures", help="Write figures/<series_id>.png (Figure-2-like)."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Patient-level bootstrap samples for 95% CIs (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap random seed."),
) -> None:
    """Evaluate predicted label maps against the manifest's references: per_scan.csv, per_lesion.csv,
    table3.csv/.md (median lesion Dice, sensitivity, PPV, FP/scan with patient-level bootstrap CIs).

    A series without PRED_DIR/<series_id>_seg.nii.gz is left out of the metrics and listed in per_scan.csv with
    missing_prediction = True (one warning line names them); when no series has a prediction, exit code 2.

    Example: ``livermets seg evaluate --pred-dir preds/ --manifest manifest.csv --out eval/ --rule lits``
    """
    from livermets.lesions.evaluate import EvaluationSettings, evaluate_cohort

    settings = EvaluationSettings(rule=rule, iou_threshold=iou_threshold, connectivity=connectivity, group_by=group_by,
                                  skip_missing=skip_missing, missing_as_empty=missing_as_empty,
                                  size_strata_mm=tuple(sorted(size_strata_mm or ())),
                                  figures=figures, n_boot=n_boot, seed=seed)
    table = evaluate_cohort(manifest, pred_dir, out, settings)
    for _, row in table.iterrows():
        typer.echo(f"{row['group']}: scans={row['n_scans']} lesions={row['n_ref_lesions']} "
                   f"median_dice={row['median_dice_lesion']:.3f} sensitivity={row['sensitivity']:.3f} "
                   f"ppv={row['ppv']:.3f} fp/scan={row['fp_per_scan_mean']:.2f}")
    typer.echo(f"wrote {out / 'table3.md'}")
