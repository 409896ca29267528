"""nnU-Net's dataset fingerprint, 3d_fullres plans and preprocessing for a livermets export (or a pretrained
network's plans moved onto it).

nnU-Net runs fingerprint extraction and preprocessing in worker processes it spawns (``processes`` >= 1; a script
calling them needs the usual ``if __name__ == "__main__":`` guard). With ``processes = 0`` both run in the calling
process: the same per-case nnU-Net functions (``DatasetFingerprintExtractor.analyze_case``,
``DefaultPreprocessor.run_case_save``) and the same summary as nnU-Net 2.8.1's ``run`` methods, without spawning.

Examples
--------
>>> from livermets.segmentation.nnunet.planning import plan_dataset, preprocess_dataset
>>> with nnunet_environment("models/nnunet") as folders:  # doctest: +SKIP
...     plan_dataset(folders, "Dataset501_LiverMets", None, processes=0)
...     preprocess_dataset(folders, "Dataset501_LiverMets", processes=0)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from livermets.atomic import write_json
from livermets.errors import ParameterError, UserInputError
from livermets.segmentation.nnunet.dataset import SPLITS_FILE
from livermets.segmentation.nnunet.environment import NnunetFolders

CONFIGURATION = "3d_fullres"
PLANS = "nnUNetPlans"


def source_plans(checkpoint: dict[str, Any], path: Path) -> dict[str, Any]:
    """The plans a pretrained network was built from: its result folder's plans.json, else the checkpoint's own.

    Raises
    ------
    ParameterError
        No plans, not a 3d_fullres network, or more than one input channel.
    """
    beside = path.parent.parent / "plans.json"
    init: dict[str, Any] = checkpoint["init_args"] if isinstance(checkpoint.get("init_args"), dict) else {}
    if beside.is_file():
        plans = json.loads(beside.read_text())
    elif isinstance(init.get("plans"), dict):
        plans = json.loads(json.dumps(init["plans"]))
    else:
        raise ParameterError("{pretrained} {path}: no plans.json beside the fold folder and none in the checkpoint",
                             path=str(path))
    configuration = init.get("configuration", CONFIGURATION)
    if configuration != CONFIGURATION or CONFIGURATION not in plans.get("configurations", {}):
        raise ParameterError("{pretrained} {path}: a {configuration} network; livermets fine-tunes {fine_tuned}",
                             path=str(path), configuration=configuration, fine_tuned=CONFIGURATION)
    channels = (init.get("dataset_json") or {}).get("channel_names", {"0": "CT"})
    if len(channels) != 1:
        raise ParameterError("{pretrained} {path}: the network takes {channels} input channels; livermets exports "
                             "one (CT)", path=str(path), channels=len(channels))
    plans.pop("continue_training", None)
    return dict(plans)


def transferred_plans(plans: dict[str, Any], dataset_name: str) -> dict[str, Any]:
    """Source plans for the target dataset, as ``nnUNetv2_move_plans_between_datasets`` writes them.

    Architecture, patch size, target spacing and the CT intensity normalisation stay the source's; the dataset name,
    plans name (``nnUNetPlans``), data identifiers and image reader change.
    """
    moved = json.loads(json.dumps(plans))
    source_name = moved.get("plans_name", PLANS)
    for configuration in moved["configurations"].values():
        identifier = configuration.get("data_identifier")
        if identifier is not None and source_name != PLANS:
            configuration["data_identifier"] = (PLANS + identifier[len(source_name):]
                                                if identifier.startswith(source_name) else f"{PLANS}_{identifier}")
    moved.update(dataset_name=dataset_name, plans_name=PLANS, image_reader_writer="SimpleITKIO")
    return dict(moved)


def extract_fingerprint(dataset_name: str, processes: int) -> dict[str, Any]:
    """nnU-Net's dataset fingerprint (spacings, shapes, foreground intensities), written to the preprocessed folder."""
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor

    extractor = DatasetFingerprintExtractor(dataset_name, max(processes, 1), verbose=False)
    extractor.show_progress_bar = False
    if processes > 0:
        return dict(extractor.run(overwrite_existing=True))
    return _fingerprint_here(extractor)


def _fingerprint_here(extractor: Any) -> dict[str, Any]:
    """``DatasetFingerprintExtractor.run`` (nnU-Net 2.8.1) in this process: same per-case analysis, same summary."""
    from batchgenerators.utilities.file_and_folder_operations import save_json
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from nnunetv2.paths import nnUNet_preprocessed

    cases = list(extractor.dataset.values())
    reader = determine_reader_writer_from_dataset_json(extractor.dataset_json, cases[0]["images"][0])
    samples = int(extractor.num_foreground_voxels_for_intensitystats // len(cases))
    results = [extractor.analyze_case(case["images"], case["label"], reader, samples) for case in cases]
    intensities = np.array([np.concatenate([r[2][i] for r in results]) for i in range(len(results[0][2]))])
    statistics = {}
    for i in range(len(extractor.dataset_json["channel_names"])):
        low, median, high = np.percentile(intensities[i], np.array((0.5, 50.0, 99.5)))
        statistics[i] = {
            "mean": float(np.mean(intensities[i])), "median": float(median), "std": float(np.std(intensities[i])),
            "min": float(np.min(intensities[i])), "max": float(np.max(intensities[i])),
            "percentile_99_5": float(high), "percentile_00_5": float(low),
        }
    fingerprint = {"spacings": [r[1] for r in results], "shapes_after_crop": [r[0] for r in results],
                   "foreground_intensity_properties_per_channel": statistics,
                   "median_relative_size_after_cropping": np.median([r[4] for r in results], 0)}
    folder = Path(str(nnUNet_preprocessed)) / extractor.dataset_name
    folder.mkdir(parents=True, exist_ok=True)
    save_json(fingerprint, str(folder / "dataset_fingerprint.json"))
    return fingerprint


def plan_dataset(folders: NnunetFolders, dataset_name: str, pretrained_plans: dict[str, Any] | None,
                 processes: int) -> dict[str, Any]:
    """Fingerprint and plans: nnU-Net's ``ExperimentPlanner``, or ``pretrained_plans`` moved onto the dataset.

    Raises
    ------
    UserInputError
        No 3d_fullres configuration, or plans for another preprocessor than nnU-Net's DefaultPreprocessor.
    """
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

    extract_fingerprint(dataset_name, processes)
    target = folders.preprocessed / dataset_name
    if pretrained_plans is None:
        plans = dict(ExperimentPlanner(dataset_name, plans_name=PLANS).plan_experiment())
    else:
        plans = transferred_plans(pretrained_plans, dataset_name)
        shutil.copyfile(folders.raw / dataset_name / "dataset.json", target / "dataset.json")
        write_json(target / f"{PLANS}.json", plans)
    if CONFIGURATION not in plans["configurations"]:
        raise UserInputError(f"{dataset_name}: nnU-Net planned no {CONFIGURATION} configuration (2D images?)")
    preprocessor = plans["configurations"][CONFIGURATION].get("preprocessor_name", "DefaultPreprocessor")
    if preprocessor != "DefaultPreprocessor":
        raise ParameterError("{pretrained}: plans use the {preprocessor}; livermets runs nnU-Net's "
                             "DefaultPreprocessor", preprocessor=preprocessor)
    return plans


def preprocess_dataset(folders: NnunetFolders, dataset_name: str, processes: int) -> None:
    """nnU-Net's DefaultPreprocessor for 3d_fullres, the ground-truth copy nnU-Net validates against, and the
    patient-grouped folds as ``splits_final.json`` (which nnU-Net then uses instead of drawing its own)."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    preprocessor = DefaultPreprocessor(verbose=False)
    preprocessor.show_progress_bar = False
    if processes > 0:
        preprocessor.run(dataset_name, CONFIGURATION, PLANS, num_processes=processes)
    else:
        _preprocess_here(preprocessor, folders, dataset_name)
    target = folders.preprocessed / dataset_name
    shutil.copytree(folders.raw / dataset_name / "labelsTr", target / "gt_segmentations", dirs_exist_ok=True)
    shutil.copyfile(folders.raw / dataset_name / SPLITS_FILE, target / SPLITS_FILE)


def _preprocess_here(preprocessor: Any, folders: NnunetFolders, dataset_name: str) -> None:
    """``DefaultPreprocessor.run`` (nnU-Net 2.8.1) in this process: ``run_case_save`` for every training case."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    base = folders.preprocessed / dataset_name
    plans_manager = PlansManager(str(base / f"{PLANS}.json"))
    configuration = plans_manager.get_configuration(CONFIGURATION)
    dataset_json = json.loads((base / "dataset.json").read_text())
    output = base / configuration.data_identifier
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    cases = get_filenames_of_train_images_and_targets(str(folders.raw / dataset_name), dataset_json)
    for case, files in cases.items():
        preprocessor.run_case_save(str(output / case), files["images"], files["label"], plans_manager,
                                   configuration, dataset_json)
