"""Build nnU-Net v2 result folders with nnU-Net's own code only, as a model "written outside livermets" would be.

The dataset fingerprint comes from nnU-Net's ``DatasetFingerprintExtractor``, the plans from its ``ExperimentPlanner``
(with few feature maps, so that CPU inference takes a fraction of a second), and the checkpoint from
``nnUNetTrainer.save_checkpoint`` with seeded weights and the numpy values a real training logs (numpy scalars in the
logging state and ``_best_ema``). Labels follow the caller's ``dataset.json`` (e.g. liver 5, lesion 7, as in
TotalSegmentator's ``total`` task), with ``nnUNetTrainer.on_train_start``'s copies of plans, dataset.json and
fingerprint beside the fold folders.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing.dummy
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import SimpleITK as sitk

TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"
SPACING = (2.5, 2.5, 4.0)


@contextlib.contextmanager
def nnunet_paths(root: Path) -> Iterator[None]:
    """nnU-Net's three folders below ``root`` for the block (environment restored afterwards), its prints muted."""
    names = {"nnUNet_raw": root / "raw", "nnUNet_preprocessed": root / "preprocessed",
             "nnUNet_results": root / "results", "nnUNet_n_proc_DA": None}
    saved = {k: os.environ.get(k) for k in names}
    for key, path in names.items():
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            os.environ[key] = str(path)
        else:
            os.environ[key] = "1"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def synthetic_ct(seed: int, size: tuple[int, int, int] = (28, 24, 14)) -> tuple[sitk.Image, np.ndarray]:
    """A noisy CT in HU (body, liver, lesion, one more organ) and its LiTS-like 0/1/2/3 map ((z, y, x) array)."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    ct = np.full((nz, ny, nx), -1000.0)
    ct[((x - nx / 2) / (0.46 * nx)) ** 2 + ((y - ny / 2) / (0.42 * ny)) ** 2 < 1] = -90.0
    cx, cy, cz = nx * rng.uniform(0.33, 0.4), ny * rng.uniform(0.45, 0.55), nz / 2
    liver = ((x - cx) / (0.22 * nx)) ** 2 + ((y - cy) / (0.25 * ny)) ** 2 + ((z - cz) / (0.35 * nz)) ** 2 < 1
    lesion = ((x - cx) ** 2 + (y - cy) ** 2 + (1.6 * (z - cz)) ** 2 < rng.uniform(2.5, 3.5) ** 2) & liver
    other = ((x - 0.75 * nx) / 4) ** 2 + ((y - ny / 2) / 4) ** 2 + ((z - cz) / 3) ** 2 < 1
    ct[liver], ct[lesion], ct[other] = 60.0, 5.0, 35.0
    ct += rng.normal(0, 10, ct.shape)
    label = np.zeros(ct.shape, np.uint8)
    label[liver], label[lesion], label[other] = 1, 2, 3
    image = sitk.GetImageFromArray(ct.astype(np.int16))
    image.SetSpacing(SPACING)
    image.SetOrigin((-50.0 + seed, 10.0, -200.0))
    return image, label


def _write_raw(folder: Path, labels: dict[str, int], cases: int) -> None:
    """Raw dataset: ``cases`` CTs whose liver/lesion/other voxels carry ``labels['liver' | 'lesion' | 'other']``."""
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    lut = np.zeros(4, np.uint8)
    lut[1], lut[2], lut[3] = labels["liver"], labels["lesion"], labels["other"]
    for i in range(cases):
        image, label = synthetic_ct(i)
        seg = sitk.GetImageFromArray(lut[label])
        seg.CopyInformation(image)
        sitk.WriteImage(image, str(folder / "imagesTr" / f"case{i}_0000.nii.gz"))
        sitk.WriteImage(seg, str(folder / "labelsTr" / f"case{i}.nii.gz"))
    roles = {labels["liver"]: "liver", labels["lesion"]: "lesion", labels["other"]: "spleen"}
    names = {"background": 0} | {roles.get(v, f"organ{v}"): v for v in range(1, max(labels.values()) + 1)}
    dataset = {"channel_names": {"0": "CT"}, "labels": names,
               "numTraining": cases, "file_ending": ".nii.gz"}
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))


class _ThreadPools:
    """Stands in for the ``multiprocessing`` module in nnU-Net's fingerprint extractor: its worker pool becomes a
    thread pool (``multiprocessing.dummy``), which saves spawning a process that imports torch (seconds)."""

    @staticmethod
    def get_context(method: str) -> Any:
        return multiprocessing.dummy


def plan_dataset(root: Path, dataset_id: int, labels: dict[str, int], cases: int = 3) -> dict[str, Any]:
    """Write a raw dataset, extract nnU-Net's fingerprint and plan 3d_fullres with a small ExperimentPlanner."""
    from nnunetv2.experiment_planning.dataset_fingerprint import fingerprint_extractor
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

    class SmallPlanner(ExperimentPlanner):  # nnU-Net's planner with fewer feature maps (fast CPU tests)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.UNet_base_num_features = 4
            self.UNet_max_features_3d = 16
            self.UNet_reference_com_nfeatures = 4

    name = f"Dataset{dataset_id:03d}_Foreign"
    with nnunet_paths(root):
        _write_raw(root / "raw" / name, labels, cases)
        extractor = DatasetFingerprintExtractor(dataset_id, num_processes=1, verbose=False)
        extractor.show_progress_bar = False
        extractor.num_foreground_voxels_for_intensitystats = 30000  # nnU-Net samples 1e8 voxels (seconds)
        with mock.patch.object(fingerprint_extractor, "multiprocessing", _ThreadPools):
            extractor.run()
        planner = SmallPlanner(dataset_id)
        planner.plan_experiment()
    return json.loads((root / "preprocessed" / name / "nnUNetPlans.json").read_text())


def save_result_folder(root: Path, dataset_id: int, seed: int, fold: int | str = 0,
                       dataset_json: dict[str, Any] | None = None) -> Path:
    """Seeded network weights saved by ``nnUNetTrainer.save_checkpoint``; the result folder ``<trainer>__<plans>__
    3d_fullres`` with plans.json, dataset.json and dataset_fingerprint.json as nnU-Net's training writes them."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    name = f"Dataset{dataset_id:03d}_Foreign"
    pre = root / "preprocessed" / name
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    dataset = dataset_json or json.loads((root / "raw" / name / "dataset.json").read_text())
    with nnunet_paths(root):
        plans["continue_training"] = False
        trainer = nnUNetTrainer(plans, "3d_fullres", fold, dataset, device=torch.device("cpu"))  # type: ignore[arg-type]
        torch.manual_seed(seed)
        trainer.network = trainer.build_network_architecture(
            trainer.plans_manager, trainer.configuration_manager, 1, trainer.label_manager.num_segmentation_heads,
            trainer.enable_deep_supervision)
        _spread_classes(trainer.network, seed)
        trainer.optimizer, trainer.lr_scheduler = trainer.configure_optimizers()
        trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        for epoch in range(2):  # what a training logs: numpy scalars
            trainer.logger.log("mean_fg_dice", np.float32(0.1 * epoch), epoch)
            trainer.logger.log("ema_fg_dice", np.float64(0.05 * epoch), epoch)
        trainer._best_ema = np.float64(0.05)
        out = Path(trainer.output_folder_base)
        trainer.save_checkpoint(str(out / f"fold_{fold}" / "checkpoint_final.pth"))
        (out / "plans.json").write_text(json.dumps(trainer.plans_manager.plans, indent=2))
        (out / "dataset.json").write_text(json.dumps(dataset, indent=2))
        shutil.copyfile(pre / "dataset_fingerprint.json", out / "dataset_fingerprint.json")
    return out


def _spread_classes(network: Any, seed: int) -> None:
    """Seeded output layers without bias, so that random weights predict every label somewhere (He initialisation
    and zero biases would give one label almost everywhere)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in network.decoder.seg_layers:
            layer.bias.zero_()
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 2.0)
