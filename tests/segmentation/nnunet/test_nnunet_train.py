"""``livermets seg train --model nnunet``: tiny CPU training, fine-tuning from a checkpoint, resume, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from cli_helpers import one_error_line, run_cli

pytest.importorskip("nnunetv2")

from livermets.errors import UserInputError
from livermets.segmentation.nnunet.environment import nnunet_environment
from livermets.segmentation.nnunet.trainer import read_checkpoint, transfer_weights

FIRST_CONV = "encoder.stages.0.0.convs.0.conv.weight"


def _metadata(model: Path) -> dict[str, Any]:
    return dict(json.loads((model / "nnunet.json").read_text()))


def _fold(model: Path) -> Path:
    return model / _metadata(model)["result_folder"] / "fold_0"


def _network(plans: dict[str, Any], outputs: int, seed: int = 0) -> torch.nn.Module:
    """nnU-Net's own 3d_fullres network for ``plans`` (independent of livermets' trainer)."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    configuration = PlansManager(plans).get_configuration("3d_fullres")
    torch.manual_seed(seed)
    return get_network_from_plans(configuration.network_arch_class_name, configuration.network_arch_init_kwargs,
                                  configuration.network_arch_init_kwargs_req_import, 1, outputs, allow_init=True,
                                  deep_supervision=True)


def test_tiny_training_writes_checkpoint_and_metadata(tiny_nnunet_model: Path) -> None:
    metadata = _metadata(tiny_nnunet_model)
    assert {key: metadata[key] for key in ("backend", "dataset_name", "configuration", "trainer", "plans", "folds",
                                           "label_map", "epochs", "iterations_per_epoch", "seed")} == {
        "backend": "nnunet", "dataset_name": "Dataset501_LiverMets", "configuration": "3d_fullres",
        "trainer": "nnUNetTrainerLivermets", "plans": "nnUNetPlans", "folds": [0],
        "label_map": {"liver": [1], "lesion": [2]}, "epochs": 1, "iterations_per_epoch": 2, "seed": 0}
    assert metadata["provenance"]["parameters"]["packages"]["nnunetv2"] == "2.8.1"
    result = tiny_nnunet_model / metadata["result_folder"]
    assert result.name == "nnUNetTrainerLivermets__nnUNetPlans__3d_fullres"
    assert {"plans.json", "dataset.json", "dataset_fingerprint.json"} <= {p.name for p in result.iterdir()}
    checkpoint = read_checkpoint(_fold(tiny_nnunet_model) / "checkpoint_final.pth")  # loads with weights_only
    assert checkpoint["current_epoch"] == 1 and checkpoint["trainer_name"] == "nnUNetTrainerLivermets"
    assert len(checkpoint["logging"]["train_losses"]) == 1
    plans = json.loads((result / "plans.json").read_text())
    network = _network(plans, outputs=3)
    assert {k: tuple(v.shape) for k, v in network.state_dict().items()} == {
        k: tuple(v.shape) for k, v in checkpoint["network_weights"].items()}
    # nnU-Net trained on livermets' folds (the manifest's val split), not on a split of its own
    preprocessed = tiny_nnunet_model / "preprocessed" / "Dataset501_LiverMets"
    assert json.loads((preprocessed / "splits_final.json").read_text()) == [
        {"train": ["S00", "S01", "S02", "S03"], "val": ["S04"]}]
    log = next(_fold(tiny_nnunet_model).glob("training_log_*.txt")).read_text()
    assert "Using splits from existing split file" in log and "This split has 4 training and 1 validation" in log
    assert not {"nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"} & set(os.environ)


def test_transfer_copies_every_tensor_and_keeps_fresh_output_layers_for_other_labels(tiny_nnunet_model: Path) -> None:
    fold = _fold(tiny_nnunet_model)
    weights = read_checkpoint(fold / "checkpoint_final.pth")["network_weights"]
    plans = json.loads((fold.parent / "plans.json").read_text())
    same = _network(plans, outputs=3, seed=1)
    assert transfer_weights(same, weights, "ckpt") == []
    assert all(torch.equal(value, weights[key]) for key, value in same.state_dict().items())

    other = _network(plans, outputs=2, seed=1)
    fresh = {key: value.clone() for key, value in other.state_dict().items()}
    skipped = transfer_weights(other, weights, "ckpt")
    assert skipped and all(".seg_layers." in key for key in skipped)
    for key, value in other.state_dict().items():
        assert torch.equal(value, fresh[key] if key in skipped else weights[key]), key

    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] = [16, 32, 64, 128]
    with pytest.raises(UserInputError, match="weights do not fit the planned network"):
        transfer_weights(_network(plans, outputs=3), weights, "ckpt")


def _moved(model: Path, fold: int, source: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> float:
    """How far fold ``fold``'s first convolution moved from ``source``, relative to a fresh network's distance."""
    result = model / _metadata(model)["result_folder"]
    tuned = read_checkpoint(result / f"fold_{fold}" / "checkpoint_final.pth")["network_weights"]
    return float((tuned[FIRST_CONV] - source[FIRST_CONV]).abs().mean()
                 / (fresh[FIRST_CONV] - source[FIRST_CONV]).abs().mean())


def test_fine_tune_starts_from_the_pretrained_weights_and_plans(tiny_nnunet_model: Path, nnunet_cohort_factory,
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from livermets.segmentation.nnunet.train import train_nnunet

    source_fold = _fold(tiny_nnunet_model)
    source = read_checkpoint(source_fold / "checkpoint_final.pth")["network_weights"]
    cohort = nnunet_cohort_factory(["train"] * 4, seed=50)
    tuned = tmp_path / "tuned"
    result = train_nnunet(cohort, tuned, pretrained=source_fold / "checkpoint_final.pth", seed=7, folds=2,
                          epochs=1, iterations_per_epoch=1, device="cpu", num_processes=0)
    source_plans = json.loads((source_fold.parent / "plans.json").read_text())
    fresh = _network(source_plans, outputs=3, seed=7).state_dict()  # where a training without --pretrained starts
    assert _moved(tuned, 0, source, fresh) < 0.1  # one SGD step away from the source, far from a fresh network
    # the source's plans (architecture, CT normalisation), not plans of the new cohort's own fingerprint
    plans = json.loads((result.result_folder / "plans.json").read_text())
    fingerprint = json.loads((tuned / "preprocessed" / "Dataset501_LiverMets" / "dataset_fingerprint.json").read_text())
    assert plans["configurations"]["3d_fullres"] == source_plans["configurations"]["3d_fullres"]
    own = fingerprint["foreground_intensity_properties_per_channel"]
    assert plans["foreground_intensity_properties_per_channel"] == source_plans[
        "foreground_intensity_properties_per_channel"] != own
    assert _metadata(tuned)["pretrained"] == str((source_fold / "checkpoint_final.pth").absolute())

    # a second fold of the same model: same preprocessed data, again from the pretrained weights
    code = run_cli(monkeypatch, "seg", "train", "--model", "nnunet", "--manifest", cohort, "--out", tuned,
                   "--fold", 1, "--device", "cpu")
    assert code == 0 and "fold 1, epochs 0..1 x 1 iterations" in capsys.readouterr().out
    assert _metadata(tuned)["folds"] == [0, 1]
    assert _moved(tuned, 1, source, fresh) < 0.1
    splits = json.loads((tuned / "preprocessed" / "Dataset501_LiverMets" / "splits_final.json").read_text())
    log = next((result.result_folder / "fold_1").glob("training_log_*.txt")).read_text()
    assert f"This split has {len(splits[1]['train'])} training and {len(splits[1]['val'])} validation" in log
    code = run_cli(monkeypatch, "seg", "train", "--model", "nnunet", "--manifest", cohort, "--out", tuned,
                   "--fold", 1)
    assert "already has checkpoints of this fold" in one_error_line(code, capsys)


def test_in_process_fingerprint_equals_nnunets(tiny_nnunet_model: Path, tmp_path: Path) -> None:
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor

    name = "Dataset501_LiverMets"
    shutil.copytree(tiny_nnunet_model / "raw" / name, tmp_path / "raw" / name)
    with nnunet_environment(tmp_path):
        DatasetFingerprintExtractor(name, 1).run(overwrite_existing=True)  # nnU-Net's own, in a worker process
    expected = json.loads((tmp_path / "preprocessed" / name / "dataset_fingerprint.json").read_text())
    got = json.loads((tiny_nnunet_model / "preprocessed" / name / "dataset_fingerprint.json").read_text())
    assert got == expected


def test_resume_trains_on_to_more_epochs(tiny_nnunet_model: Path, tiny_nnunet_cohort: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_nnunet_model, model)
    monkeypatch.chdir(tmp_path)  # a relative --out, as users type it
    code = run_cli(monkeypatch, "seg", "train", "--resume", "--manifest", tiny_nnunet_cohort, "--out", "model",
                   "--device", "cpu", "--epochs", 2, "--iterations-per-epoch", 1)
    assert code == 0 and "fold 0, epochs 1..2 x 1 iterations" in capsys.readouterr().out
    checkpoint = read_checkpoint(_fold(model) / "checkpoint_final.pth")
    assert checkpoint["current_epoch"] == 2 and len(checkpoint["logging"]["train_losses"]) == 2
    assert (_metadata(model)["epochs"], _metadata(model)["iterations_per_epoch"]) == (2, 1)
    code = run_cli(monkeypatch, "seg", "train", "--resume", "--manifest", tiny_nnunet_cohort, "--out", model)
    assert "has trained 2 of 2 epochs" in one_error_line(code, capsys)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize(("args", "expected"), [
    (["--model", "nnunet", "--fold", "3"], "--fold 3: the splits have 1 fold(s)"),
    (["--model", "unet", "--epochs", "2"], "--epochs: applies to --model nnunet only"),
    (["--model", "nnunet", "--max-epochs", "2"], "--max-epochs: does not apply to --model nnunet"),
    (["--model", "nnunet", "--epochs", "0"], "--epochs 0: must be at least 1"),
    (["--model", "nnunet", "--pretrained", "missing.pth"], "checkpoint not found"),
    (["--model", "nnunet", "--pretrained", "{evil}"], "refused to load"),
    (["--model", "nnunet", "--resume"], "nothing to resume"),
])
def test_bad_train_input_is_one_line_and_leaves_no_model(args: list[str], expected: str, tiny_nnunet_cohort: Path,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    evil = tmp_path / "evil.pth"
    torch.save({"network_weights": {}, "init_args": _Payload(tmp_path / "pwned")}, evil)
    args = [str(evil) if a == "{evil}" else str(tmp_path / a) if a.endswith(".pth") else a for a in args]
    code = run_cli(monkeypatch, "seg", "train", "--manifest", tiny_nnunet_cohort, "--out", tmp_path / "model",
                   "--device", "cpu", *args)
    assert expected in one_error_line(code, capsys)
    assert not (tmp_path / "model").exists() and not (tmp_path / "pwned").exists()


def test_environment_is_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("nnUNet_raw", "/elsewhere")
    monkeypatch.delenv("nnUNet_n_proc_DA", raising=False)
    with pytest.raises(RuntimeError), nnunet_environment(tmp_path, augmentation_workers=0) as folders:
        assert os.environ["nnUNet_raw"] == str(folders.raw) and os.environ["nnUNet_n_proc_DA"] == "0"
        raise RuntimeError("inside")
    assert os.environ["nnUNet_raw"] == "/elsewhere" and "nnUNet_n_proc_DA" not in os.environ
