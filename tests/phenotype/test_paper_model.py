"""``--phenotype-model paper``: the NE model of the paper's published features, built once in the model home from the
table of the mirror folder, reused, built again for another table or version; without the table, one line."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sklearn

import livermets
from cli_helpers import one_error_line, run_cli
from livermets.analyze.cli import _phenotype_folder
from livermets.analyze.paper_option import no_phenotype_model_line
from livermets.errors import UserInputError
from livermets.featuretable import read_feature_table
from livermets.fetch import sha256sum
from livermets.phenotype import published as pm
from livermets.phenotype.model_config import read_model_config
from livermets.phenotype.training import predict_with_folder

CSV = ("nih_mip_msclc", "Final_ResampledClassificationData.csv")


@pytest.fixture(scope="module")
def built(shared_data: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A livermets home in which the paper model was built once, the table read from the mirror folder."""
    home = tmp_path_factory.mktemp("paper_model_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIVERMETS_HOME", str(home))
        patch.setenv("LIVERMETS_DATA_DIR", str(shared_data(*CSV).parents[1]))
        pm.paper_model(n_jobs=1, progress=False)
    yield home


@pytest.fixture
def env(built: Path, shared_data: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIVERMETS_HOME", str(built))
    monkeypatch.setenv("LIVERMETS_DATA_DIR", str(shared_data(*CSV).parents[1]))
    return built


def test_built_once_in_the_model_home_with_its_grouped_auc(env: Path, shared_data: Callable[..., Path]) -> None:
    folder = pm.paper_model_dir()
    assert folder == env / "models" / "ne-paper"
    config = read_model_config(folder)
    assert config["paper_model"] == {"data_sha256": sha256sum(shared_data(*CSV)),
                                     "livermets_version": livermets.__version__,
                                     "scikit_learn_version": sklearn.__version__, "protocol": "grouped",
                                     "model": "LR", "seed": 0}
    cv = config["cv_performance"]
    assert cv["protocol"] == "grouped" and 0.4 < cv["auc"] < 0.75  # near chance, as measured (docs/phenotype.md)
    frame = read_feature_table(shared_data(*CSV), targets=["NE_Score", "NE_Class"])
    probability = predict_with_folder(folder, frame.head(5), "published")["probability"]
    assert probability.between(0, 1).all()
    assert f"({cv['auc']:.2f})" in no_phenotype_model_line() and "--phenotype-model paper" in no_phenotype_model_line()


def test_reused_then_rebuilt_for_another_version(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    before = (pm.paper_model_dir() / "config.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        assert _phenotype_folder("paper") == pm.paper_model_dir()  # what analyze and run do with the word
    assert "building" not in caplog.text
    assert (pm.paper_model_dir() / "config.json").stat().st_mtime_ns == before
    asked: list[dict[str, object]] = []
    monkeypatch.setattr(livermets, "__version__", "0.0.0+other")
    monkeypatch.setattr(pm, "_build", lambda table, key, folder, n_jobs: asked.append(key))
    pm.paper_model()
    assert [k["livermets_version"] for k in asked] == ["0.0.0+other"]


def test_a_damaged_model_is_built_again(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = pm.paper_model_dir() / "config.json"
    saved = config.read_text()
    asked: list[object] = []
    monkeypatch.setattr(pm, "_build", lambda *args: asked.append(args))
    try:
        config.write_text(json.dumps({"folds": [], "paper_model": {"data_sha256": "0" * 64}}))
        pm.paper_model()
        config.write_text("{not json")
        pm.paper_model()
    finally:
        config.write_text(saved)
    assert len(asked) == 2


def test_without_table_nor_network_one_line_and_nothing_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                contacted: list[object],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LIVERMETS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIVERMETS_DATA_DIR", raising=False)
    monkeypatch.setenv("LIVERMETS_DATA_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(UserInputError, match="run `livermets data fetch nih_mip_msclc` where there is internet"):
        pm.paper_model()
    for argv in (["phenotype", "train", "--published"], ["phenotype", "evaluate", "--published"],
                 ["reproduce", "paper", "--tables", "4"]):
        code = run_cli(monkeypatch, *argv, "--out", tmp_path / "m")
        said = capsys.readouterr()
        (line,) = [x for x in (said.err + said.out).splitlines() if x.startswith("error:")]  # after the fetch line
        assert code == 2 and "Traceback" not in said.err
        assert "the paper's published feature table" in line and "connection refused" in line
    both = one_error_line(run_cli(monkeypatch, "phenotype", "train", "--published", "--features", "x.csv", "--out",
                                  tmp_path / "m"), capsys)
    assert "--features or --published, not both" in both
    assert not (tmp_path / "m").exists() and not pm.paper_model_dir().exists()
    assert not [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
