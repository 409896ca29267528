"""Safe loading: no pickle from a user path is ever unpickled.

A malicious file is planted wherever livermets loads a model or a saved state: its payload (``__reduce__``, a YAML
``!!python`` tag, an object array) writes a marker file when unpickled or constructed. Every command must refuse it
with one ``error:`` line and exit code 2, and the marker must not exist. Each test first checks that the payload is
live: an unsafe loader (``pickle.loads``, ``torch.load(weights_only=False)``, ``yaml.unsafe_load``) does write a
marker, so a passing test is not a harmless file mistaken for a safe loader.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import torch
import yaml
from badinput_data import Inputs

from cli_helpers import one_error_line, run_cli
from livermets.segmentation.default_model import DEFAULT_MODEL_DIR


class Payload:
    """Unpickling this object runs code: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({self.marker!r}, 'w').write('unpickled')",)


def _pickle(marker: Path) -> bytes:
    data = pickle.dumps({"weights": Payload(marker)})
    pickle.loads(data)  # live: unpickling runs the payload
    assert marker.exists()
    marker.unlink()
    return data


def _torch_pickle(path: Path, marker: Path) -> Path:
    """A ``torch.save`` file at ``path`` whose loading runs the payload (checked on a ``.pt`` copy: torch.load reads
    a ``.safetensors`` name as safetensors)."""
    probe = path.with_name("probe.pt")
    torch.save({"optimizer": Payload(marker), "scaler": {}}, probe)
    torch.load(probe, weights_only=False)  # live: the unsafe loader runs it
    assert marker.exists()
    marker.unlink()
    probe.replace(path)
    return path


def _refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], marker: Path,
             *argv: object) -> str:
    capsys.readouterr()
    message = one_error_line(run_cli(monkeypatch, *argv), capsys)
    assert not marker.exists(), "the planted pickle was unpickled"
    return message


def _seg_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(DEFAULT_MODEL_DIR / "config.yaml", model / "config.yaml")
    shutil.copy(DEFAULT_MODEL_DIR / "model.safetensors", model / "model.safetensors")
    return model


@pytest.mark.parametrize("kind", ["torch_save", "plain_pickle"])
def test_segmentation_weights_that_are_a_pickle_are_refused(kind: str, inputs: Inputs, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    model = _seg_model(tmp_path)
    weights = model / "model.safetensors"
    if kind == "torch_save":
        _torch_pickle(weights, marker)
    else:
        weights.write_bytes(_pickle(marker))
    message = _refused(monkeypatch, capsys, marker, "seg", "predict", "--model", model, "--image", inputs.ct,
                       "--out", tmp_path / "pred")
    assert "model.safetensors" in message and "never loads pickled weights" in message
    message = _refused(monkeypatch, capsys, marker, "analyze", inputs.ct, "--model", model, "--out", tmp_path / "r")
    assert "model.safetensors" in message
    assert not (tmp_path / "pred").exists() and not (tmp_path / "r").exists()


def test_segmentation_config_with_a_python_tag_is_refused(inputs: Inputs, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    model = _seg_model(tmp_path)
    tag = f"!!python/object/apply:builtins.exec [\"open({str(marker)!r}, 'w').write('x')\"]"
    text = (model / "config.yaml").read_text() + f"extra: {tag}\n"
    yaml.unsafe_load(text)  # live
    marker.unlink()
    (model / "config.yaml").write_text(text)
    message = _refused(monkeypatch, capsys, marker, "seg", "predict", "--model", model, "--image", inputs.ct,
                       "--out", tmp_path / "pred")
    assert "config.yaml" in message


def _resumable_training(inputs: Inputs, tmp_path: Path) -> tuple[Path, Path]:
    """A model folder with a checkpoint to resume, and a manifest whose train/val cases pass the input checks."""
    model = _seg_model(tmp_path)
    checkpoint = model / "checkpoint"
    checkpoint.mkdir()
    shutil.copy(DEFAULT_MODEL_DIR / "model.safetensors", checkpoint / "last_model_e00001.safetensors")
    torch.save({"optimizer": {}, "scaler": {}}, checkpoint / "last_optimizer_e00001.pt")
    (checkpoint / "state.json").write_text(json.dumps({
        "epoch": 1, "iterations": 1, "stopped_by": None, "best_metric": 0.0, "best_liver_dice": 0.0,
        "best_epoch": 1, "selection_metric": "val_lesion_dice", "weights": "last_model_e00001.safetensors",
        "optimizer": "last_optimizer_e00001.pt"}))
    frame = pd.read_csv(inputs.manifest)
    for column in ("image", "label"):
        frame[column] = [str(inputs.manifest.parent / p) for p in frame[column]]
    frame["patient_id"] = [f"P{i // 2}" for i in range(len(frame))]
    frame["study_id"] = [f"P{i // 2}_S1" for i in range(len(frame))]
    frame["split"] = ["train"] * (len(frame) - 2) + ["val"] * 2
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    return model, tmp_path / "manifest.csv"


@pytest.mark.parametrize("planted", ["optimizer", "weights"])
def test_training_checkpoint_that_is_a_malicious_pickle_is_refused(planted: str, inputs: Inputs, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    model, manifest = _resumable_training(inputs, tmp_path)
    name = "last_optimizer_e00001.pt" if planted == "optimizer" else "last_model_e00001.safetensors"
    _torch_pickle(model / "checkpoint" / name, marker)
    before = sorted(model.rglob("*"))
    message = _refused(monkeypatch, capsys, marker, "seg", "train", "--resume", "--manifest", manifest,
                       "--out", model, "--device", "cpu")
    assert name in message
    assert sorted(model.rglob("*")) == before  # nothing new in the model folder (no cache, no log)


def _ne_model(inputs: Inputs, tmp_path: Path) -> Path:
    model = tmp_path / "ne"
    shutil.copytree(inputs.ne_model, model)
    return model


@pytest.mark.parametrize("kind", ["skops_with_untrusted_type", "pickle_as_skops", "pickle_as_xgboost_json"])
def test_phenotype_fold_files_never_unpickle(kind: str, inputs: Inputs, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    model = _ne_model(inputs, tmp_path)
    if kind == "skops_with_untrusted_type":
        sio.dump({"model": Payload(marker)}, model / "fold_1.skops")
        fragment = "untrusted type"
    elif kind == "pickle_as_skops":
        (model / "fold_1.skops").write_bytes(_pickle(marker))
        fragment = "not a readable skops file"
    else:
        (model / "fold_1.xgb.json").write_bytes(_pickle(marker))
        config = json.loads((model / "config.json").read_text())
        config["folds"][0]["xgboost"] = "fold_1.xgb.json"
        (model / "config.json").write_text(json.dumps(config))
        fragment = "not an XGBoost JSON model"
    message = _refused(monkeypatch, capsys, marker, "phenotype", "predict", "--model", model, "--features",
                       inputs.features, "--out", tmp_path / "p.csv")
    assert "fold_1." in message and fragment in message
    message = _refused(monkeypatch, capsys, marker, "analyze", inputs.ct, "--phenotype-model", model,
                       "--out", tmp_path / "report")
    assert "fold_1." in message and fragment in message
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "report").exists()


def test_phenotype_fold_file_outside_the_model_folder_is_refused(inputs: Inputs, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    model = _ne_model(inputs, tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["folds"][0]["skops"] = "../elsewhere.skops"
    (model / "config.json").write_text(json.dumps(config))
    message = _refused(monkeypatch, capsys, tmp_path / "marker", "phenotype", "predict", "--model", model,
                       "--features", inputs.features, "--out", tmp_path / "p.csv")
    assert "'../elsewhere.skops' is not a file in the folder" in message


def test_radiomics_parameter_file_with_a_python_tag_is_refused(inputs: Inputs, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    text = ("imageType:\n  Original: {}\nsetting:\n  label: !!python/object/apply:builtins.exec "
            f"[\"open({str(marker)!r}, 'w').write('x')\"]\n")
    yaml.unsafe_load(text)  # live
    marker.unlink()
    (tmp_path / "params.yaml").write_text(text)
    message = _refused(monkeypatch, capsys, marker, "radiomics", "extract", "--manifest", inputs.manifest,
                       "--params", tmp_path / "params.yaml", "--out", tmp_path / "out" / "f.csv")
    assert "params.yaml" in message


def test_synth_resume_part_with_pickled_arrays_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    out = tmp_path / "cohort"
    argv = ["synth", "--out", out, "--patients", "1", "--size", "tiny", "--seed", "3", "--no-overview"]
    assert run_cli(monkeypatch, *argv) == 0
    parts = out / ".synth_parts"
    parts.mkdir()  # a run interrupted after its first study: its parameters and that study's saved result
    (parts / "config.json").write_text(json.dumps(json.loads((out / "provenance.json").read_text())["parameters"]))
    (out / "manifest.csv").unlink()
    study = json.loads(json.dumps({"series_rows": [], "study_row": {}, "lesion_rows": [], "overview_ids": ["x"]}))
    (parts / "SYN-001_S1.json").write_text(json.dumps(study))
    np.savez(parts / "SYN-001_S1.npz", image_0=np.array([Payload(marker)], dtype=object),
             label_0=np.zeros(1))
    with np.load(parts / "SYN-001_S1.npz", allow_pickle=True) as unsafe:
        unsafe["image_0"]  # live
    marker.unlink()
    message = _refused(monkeypatch, capsys, marker, *argv, "--resume")
    assert "SYN-001_S1" in message and "use --overwrite" in message
