"""Training length in optimizer steps: exact counts, the epoch budget as a special case, the time cap, resume."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import tiny_config_dict
from livermets.cli import app
from livermets.errors import UserInputError
from livermets.segmentation.config import config_from_dict
from livermets.segmentation.monai import train as train_module
from livermets.segmentation.monai.train import PolySchedule, TrainingBudget, train_model

LR = 3e-3  # the tiny config's learning rate
BATCHES = 4  # 4 training scans, one image per batch
TIMINGS = ["epoch_seconds", "elapsed_minutes"]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny config with the poly schedule (so every step's rate matters), one epoch and no time cap.

    The memory format is fixed: ``auto`` times both layouts and may pick either, which changes float rounding.
    """
    data = tiny_config_dict()
    data["train"].update(lr_schedule="poly", memory_format="contiguous", max_epochs=1)  # type: ignore[attr-defined]
    path = tmp_path_factory.mktemp("iter_config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def ten_iterations(tiny_cohort: Path, config_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained for 10 optimizer steps in one uninterrupted run (2.5 epochs of 4 batches)."""
    out = tmp_path_factory.mktemp("iter_model") / "m"
    train_model(tiny_cohort, out, model="unet", config=config_file, device="cpu", max_iterations=10)
    return out


def _state(model_dir: Path) -> dict[str, object]:
    state: dict[str, object] = json.loads((model_dir / "checkpoint" / "state.json").read_text())
    return state


def _last_weights(model_dir: Path) -> Path:
    return model_dir / "checkpoint" / str(_state(model_dir)["weights"])


def _assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_file(a), load_file(b)
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert not different, f"{a} and {b} differ in {different}"


def test_max_iterations_below_one_is_rejected() -> None:
    for bad in (0, -3):
        data = tiny_config_dict()
        data["train"]["max_iterations"] = bad  # type: ignore[index]
        with pytest.raises(UserInputError, match="train.max_iterations"):
            config_from_dict(data)
    data = tiny_config_dict()
    data["train"]["max_iterations"] = 1  # type: ignore[index]
    assert config_from_dict(data).train.max_iterations == 1
    assert config_from_dict(tiny_config_dict()).train.max_iterations is None


def test_budget_counts_steps_and_the_schedule_ignores_time_with_an_iteration_budget() -> None:
    by_steps = TrainingBudget(batches_per_epoch=4, max_epochs=1, max_iterations=10, max_seconds=60.0)
    assert by_steps.total_iterations == 10 and by_steps.stop_reason == "iterations"
    assert [by_steps.steps_in_epoch(done) for done in (0, 4, 8, 10)] == [4, 4, 2, 0]
    assert not by_steps.finished(epoch=2, iterations=8) and by_steps.finished(epoch=3, iterations=10)
    by_epochs = TrainingBudget(batches_per_epoch=4, max_epochs=3, max_seconds=60.0)
    assert by_epochs.total_iterations == 12 and by_epochs.stop_reason == "epochs"
    assert by_epochs.steps_in_epoch(8) == 4 and by_epochs.finished(epoch=3, iterations=12)
    # The whole 60 s cap and a time share saved by an earlier run lie in the past: the epoch budget's rate is zero,
    # the iteration budget's follows its step count only.
    long_ago = time.monotonic() - 1000.0
    assert PolySchedule.for_budget(by_epochs, 0.5, long_ago).factor(6) == 0.0
    assert PolySchedule.for_budget(by_steps, 0.5, long_ago).factor(5) == (1 - 5 / 10) ** 0.9


def test_training_takes_exactly_the_iterations_whatever_max_epochs(ten_iterations: Path) -> None:
    log = pd.read_csv(ten_iterations / "train_log.csv")
    # max_epochs = 1 does not cut the run short; the third epoch is partial (2 of its 4 batches).
    assert log["epoch"].tolist() == [1, 2, 3]
    assert log["iterations"].tolist() == [4, 8, 10]
    assert log["val_liver_dice"].notna().all()  # the last, partial epoch is validated too
    # The poly rate depends on the step count only; the logged rate is each epoch's last step's.
    expected = [LR * (1 - step / 10) ** 0.9 for step in (3, 7, 9)]
    assert log["learning_rate"].tolist() == pytest.approx(expected, rel=1e-12)
    state = _state(ten_iterations)
    assert (state["epoch"], state["iterations"], state["stopped_by"]) == (3, 10, "iterations")
    assert sorted(p.name for p in (ten_iterations / "checkpoint").iterdir()) == [
        "last_model_e00003.safetensors", "last_optimizer_e00003.pt", "state.json"]


def test_epoch_budget_is_the_iteration_budget_of_whole_epochs(
    tiny_cohort: Path, config_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="livermets.segmentation.monai.train"):
        by_epochs = train_model(tiny_cohort, tmp_path / "epochs", model="unet", config=config_file, device="cpu",
                                max_epochs=2)
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    # One line per epoch with the iteration budget, the epoch's time and the ETA (0 s once the budget is spent).
    assert [line.split(" (")[0] for line in epochs] == ["epoch 1, iteration 4/8", "epoch 2, iteration 8/8"]
    assert all(" ETA " in line for line in epochs) and "ETA 0 s)" in epochs[1]
    by_steps = train_model(tiny_cohort, tmp_path / "steps", model="unet", config=config_file, device="cpu",
                           max_iterations=2 * BATCHES)
    assert (by_epochs.last_epoch, by_epochs.iterations, by_epochs.stopped_by) == (2, 8, "epochs")
    assert (by_steps.last_epoch, by_steps.iterations, by_steps.stopped_by) == (2, 8, "iterations")
    # Same crops and the same rate at every step: bit-identical weights and log values.
    _assert_same_weights(_last_weights(tmp_path / "epochs"), _last_weights(tmp_path / "steps"))
    _assert_same_weights(tmp_path / "epochs" / "model.safetensors", tmp_path / "steps" / "model.safetensors")
    log_epochs = pd.read_csv(tmp_path / "epochs" / "train_log.csv").drop(columns=TIMINGS)
    log_steps = pd.read_csv(tmp_path / "steps" / "train_log.csv").drop(columns=TIMINGS)
    pd.testing.assert_frame_equal(log_epochs, log_steps, check_exact=True)
    assert log_epochs["iterations"].tolist() == [4, 8]


def test_time_cap_stops_with_a_warning_and_resume_finishes_the_iterations(
    tiny_cohort: Path, config_file: Path, tmp_path: Path, ten_iterations: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "m"
    # A cap of 6 ms is over after any epoch: the run stops at the first epoch end.
    with caplog.at_level(logging.WARNING, logger="livermets.segmentation.monai.train"):
        capped = train_model(tiny_cohort, out, model="unet", config=config_file, device="cpu", max_iterations=10,
                             max_minutes=1e-4)
    assert (capped.last_epoch, capped.iterations, capped.stopped_by) == (1, 4, "max_minutes")
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("4 of 10 iterations" in m and "speed" in m for m in warning), warning
    state = _state(out)
    assert (state["iterations"], state["stopped_by"]) == (4, "max_minutes")
    assert pd.read_csv(out / "train_log.csv")["iterations"].tolist() == [4]

    resumed = train_model(tiny_cohort, out, model=None, device="cpu", max_minutes=60.0, resume=True)
    assert (resumed.last_epoch, resumed.iterations, resumed.stopped_by) == (3, 10, "iterations")
    assert pd.read_csv(out / "train_log.csv")["iterations"].tolist() == [4, 8, 10]
    # The cap never entered the learning rate (it would have been 0 from the first step): the capped and resumed
    # run is the uninterrupted one.
    _assert_same_weights(_last_weights(out), _last_weights(ten_iterations))

    # Resuming a finished training trains nothing.
    again = train_model(tiny_cohort, out, model=None, device="cpu", resume=True)
    assert (again.last_epoch, again.iterations, again.stopped_by) == (3, 10, "iterations")
    assert len(pd.read_csv(out / "train_log.csv")) == 3


class _Killed(Exception):
    pass


def test_killed_run_resumes_to_the_same_iteration_total(
    tiny_cohort: Path, config_file: Path, tmp_path: Path, ten_iterations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "m"
    step = train_module._train_step
    calls = 0

    def dies_in_the_second_epoch(run: object, batch: dict[str, object]) -> float:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise _Killed
        return step(run, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(train_module, "_train_step", dies_in_the_second_epoch)
    with pytest.raises(_Killed):
        train_model(tiny_cohort, out, model="unet", config=config_file, device="cpu", max_iterations=10)
    monkeypatch.undo()
    # The checkpoint is the last whole epoch's; the steps of the interrupted epoch are redone.
    state = _state(out)
    assert (state["epoch"], state["iterations"], state["stopped_by"]) == (1, 4, None)
    result = train_model(tiny_cohort, out, model=None, device="cpu", resume=True)
    assert (result.last_epoch, result.iterations, result.stopped_by) == (3, 10, "iterations")
    assert pd.read_csv(out / "train_log.csv")["iterations"].tolist() == [4, 8, 10]
    _assert_same_weights(_last_weights(out), _last_weights(ten_iterations))


def test_cli_iterations(tiny_cohort: Path, config_file: Path, tmp_path: Path) -> None:
    base = ["seg", "train", "--model", "unet", "--manifest", str(tiny_cohort), "--config", str(config_file),
            "--device", "cpu"]
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "m"), "--iterations", "5"])
    assert result.exit_code == 0, result.output
    assert "2 epoch(s), 5 iteration(s)" in result.output and "stopped by iterations" in result.output
    assert pd.read_csv(tmp_path / "m" / "train_log.csv")["iterations"].tolist() == [4, 5]
    both = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "both"), "--iterations", "5", "--max-epochs", "2"])
    assert isinstance(both.exception, UserInputError) and "--max-epochs" in str(both.exception)
    zero = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "zero"), "--iterations", "0"])
    assert isinstance(zero.exception, UserInputError) and "train.max_iterations" in str(zero.exception)
    assert not (tmp_path / "both").exists() and not (tmp_path / "zero").exists()
