"""The typed option objects: prediction (:class:`PredictionOptions`), radiomics (:class:`ExtractionOptions`) and
the grouped protocol (:class:`GroupedConfig`) are validated when created, name the bad parameter, and each
command-line option feeding them has the same name, so the CLI shows the flag."""

from __future__ import annotations

import math

import pytest

from cli_helpers import one_error_line, run_cli
from livermets.errors import ParameterError
from livermets.phenotype.grouped import GroupedConfig
from livermets.radiomics.series import ExtractionOptions
from livermets.segmentation.config import InferenceConfig
from livermets.segmentation.options import PredictionOptions


def _command(name: str):
    from livermets.cli import commands

    return next(c.callback for c in commands() if c.callback is not None and c.callback.__name__ == name)


@pytest.mark.parametrize(("values", "message"), [
    ({"overlap": 1.0}, "overlap 1.0: must be in [0, 1)"),
    ({"overlap": -0.1}, "overlap -0.1: must be in [0, 1)"),
    ({"overlap": math.nan}, "overlap nan: must be in [0, 1)"),
    ({"sw_batch_size": 0}, "sw_batch_size 0: must be a whole number >= 1"),
    ({"blend_mode": "median"}, "blend_mode median: expected one of gaussian, constant"),
    ({"resample": "cubic"}, "resample cubic: expected one of probabilities, labels"),
    ({"lesion_max_distance_mm": -1.0}, "lesion_max_distance_mm -1.0: must be a number >= 0"),
    ({"lesion_max_distance_mm": "everywhere"}, "lesion_max_distance_mm everywhere: must be a number >= 0"),
    ({"lesion_threshold": 0.0}, "lesion_threshold 0.0: must be in (0, 1)"),
    ({"lesion_threshold": 1.0}, "lesion_threshold 1.0: must be in (0, 1)"),
    ({"min_lesion_ml": -0.01}, "min_lesion_ml -0.01: must be a number >= 0"),
    ({"min_lesion_diameter_mm": math.inf}, "min_lesion_diameter_mm inf: must be a number >= 0"),
])
def test_prediction_options_name_the_bad_parameter(values, message):
    with pytest.raises(ParameterError) as caught:
        PredictionOptions(**values)
    assert str(caught.value) == message
    assert caught.value.parameters == (next(iter(values)),)


def test_prediction_options_accept_what_the_model_config_accepts():
    # Independent reference: the model config's own validation (pydantic) takes every accepted override.
    options = PredictionOptions(overlap=0.0, blend_mode="constant", sw_batch_size=3, resample="labels",
                                largest_liver=False, lesion_max_distance_mm=0.0, lesion_threshold=0.3)
    checked = InferenceConfig(**options.overrides())
    assert (checked.overlap, checked.blend_mode, checked.sw_batch_size, checked.resample) == (0.0, "constant", 3,
                                                                                              "labels")
    assert (checked.largest_liver, checked.lesion_max_distance_mm, checked.lesion_threshold) == (False, 0.0, 0.3)


def test_none_means_the_model_value_and_the_off_values_have_names():
    assert PredictionOptions().overrides() == {}
    off = PredictionOptions(lesion_threshold="argmax", lesion_max_distance_mm="keep_all")
    assert off.overrides() == {"lesion_threshold": None, "lesion_max_distance_mm": None}
    assert off.given() == ("lesion_max_distance_mm", "lesion_threshold")
    assert off.without("lesion_threshold").overrides() == {"lesion_max_distance_mm": None}


def test_every_prediction_option_is_an_option_of_seg_predict():
    from livermets.cli import flag_names

    flags = flag_names(_command("predict"))
    assert {name: flags[name] for name in PredictionOptions.__dataclass_fields__} == {
        "overlap": "--overlap", "blend_mode": "--blend", "sw_batch_size": "--sw-batch-size",
        "resample": "--resample", "largest_liver": "--largest-liver", "lesion_max_distance_mm":
        "--lesion-max-distance-mm", "lesion_threshold": "--lesion-threshold", "min_lesion_ml": "--min-lesion-ml",
        "min_lesion_diameter_mm": "--min-lesion-diameter-mm", "engine": "--engine", "threads": "--threads"}


@pytest.mark.parametrize(("values", "message"), [
    ({"roi": "tumour"}, "roi must be 'lesion' or 'liver' (got 'tumour')"),
    ({"lesion_count": "voxels"}, "lesion_count must be 'published' or 'components' (got 'voxels')"),
    ({"per_lesion": True, "roi": "liver"}, "per_lesion works with roi lesion only"),
    ({"max_lesions": -3}, "max_lesions must be 0 (no limit) or more (got -3)"),
])
def test_extraction_options_name_the_bad_parameter(values, message):
    with pytest.raises(ParameterError, match="^" + __import__("re").escape(message) + "$"):
        ExtractionOptions(**values)


@pytest.mark.parametrize(("args", "line"), [
    (["--roi", "tumour"], "error: --roi must be 'lesion' or 'liver' (got 'tumour')"),
    (["--num-lesions", "voxels"], "error: --num-lesions must be 'published' or 'components' (got 'voxels')"),
    (["--per-lesion", "--roi", "liver"], "error: --per-lesion works with --roi lesion only"),
])
def test_radiomics_extract_prints_the_flags(monkeypatch, capsys, tmp_path, args, line):
    code = run_cli(monkeypatch, "radiomics", "extract", "--manifest", tmp_path / "m.csv", "--out",
                   tmp_path / "f.csv", *args)
    assert one_error_line(code, capsys) == line
    assert not (tmp_path / "f.csv").exists()


@pytest.mark.parametrize(("values", "message"), [
    ({"model": "SVM"}, "model 'SVM': expected LR, RF or XGB"),
    ({"n_splits": 1}, "n_splits 1: must be a whole number >= 2"),
    ({"inner_splits": 1}, "inner_splits 1: must be a whole number >= 2"),
    ({"n_repeats": 0}, "n_repeats 0: must be a whole number >= 1"),
    ({"n_permutations": -1}, "n_permutations -1: must be a whole number >= 0"),
    ({"n_boot": 0}, "n_boot 0: must be a whole number >= 1"),
    ({"seed": -1}, "seed -1: must be a whole number >= 0"),
    ({"rf_trees": 0}, "rf_trees 0: must be a whole number >= 1"),
    ({"n_jobs": 0}, "n_jobs 0: must be a whole number other than 0 (-1: all cores)"),
    ({"alphas": ()}, "alphas (): must be one or more positive numbers"),
    ({"lr_cs": (1.0, -1.0)}, "lr_cs (1.0, -1.0): must be one or more positive numbers"),
])
def test_grouped_config_names_the_bad_parameter(values, message):
    with pytest.raises(ParameterError) as caught:
        GroupedConfig(**values)
    assert str(caught.value) == message


def test_grouped_config_is_frozen_and_canonical():
    config = GroupedConfig(model="xgb", alphas=[0.05])  # type: ignore[arg-type]
    assert (config.model, config.alphas) == ("XGB", (0.05,))
    with pytest.raises(AttributeError):
        config.n_boot = 5  # type: ignore[misc]


@pytest.mark.parametrize(("args", "line"), [
    (["--n-boot", "0"], "error: --n-boot 0: must be a whole number >= 1"),
    (["--n-repeats", "0"], "error: --n-repeats 0: must be a whole number >= 1"),
    (["--n-jobs", "0"], "error: --n-jobs 0: must be a whole number other than 0 (-1: all cores)"),
])
def test_phenotype_evaluate_prints_the_flags_before_reading_the_table(monkeypatch, capsys, tmp_path, args, line):
    code = run_cli(monkeypatch, "phenotype", "evaluate", "--features", tmp_path / "missing.csv", "--out",
                   tmp_path / "out", *args)
    assert one_error_line(code, capsys) == line
    assert not (tmp_path / "out").exists()
