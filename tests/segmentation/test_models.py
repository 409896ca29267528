"""``livermets models``: installs from a web server on 127.0.0.1 and from files, hash checks, trust on first use,
verify, remove, list, and which model prediction uses.

The archives are built here with TotalSegmentator's folder layout and stand-in bytes (the real weights are never
downloaded); the server is ``http.server`` in a thread. A guard records every socket connection of the process and
fails on any address that is not loopback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import one_error_line, run_cli
from livermets.errors import UserInputError
from livermets.segmentation.default_model import default_model_name
from livermets.segmentation.install import (
    INSTALL_FILE,
    install_model,
    is_installed,
    list_models,
    model_dir,
    models_dir,
    verify_model,
)
from livermets.segmentation.predict import ModelChoice, plan_segmenter
from livermets.segmentation.registry import entry
from net_helpers import Server

TS_FILES = ("ts-liver", "ts-liver-fast", "ts-liver-lesions")


def weights_zip(folder: Path, name: str, payload: bytes | None = None, layout: bool = True) -> Path:
    """An archive named like entry ``name``'s file, laid out as TotalSegmentator's (stand-in checkpoint bytes)."""
    block = entry(name).nnunet
    base = f"{block['dataset']}/{block['trainer']}__{block['plans']}__{block['configuration']}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / entry(name).files[0].filename
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        if layout:
            zf.writestr(f"{base}/plans.json", json.dumps({"plans_name": block["plans"]}))
            zf.writestr(f"{base}/dataset.json", json.dumps({"labels": {"background": 0}}))
            zf.writestr(f"{base}/fold_0/checkpoint_final.pth", payload or os.urandom(300_000))
        else:
            zf.writestr("README.txt", "some other archive")
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty models home for this test."""
    monkeypatch.setenv("LIVERMETS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def leftovers(home: Path) -> list[str]:
    """Files and folders under the models home other than installed models and trust.json."""
    root = models_dir()
    if not root.exists():
        return []
    installed = {p.name for p in root.iterdir() if (p / INSTALL_FILE).is_file()}
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.relative_to(root).parts[0] not in installed and p.name != "trust.json"
                  and p != root / ".downloads")


def test_install_downloads_checks_unpacks_and_records(home: Path, tmp_path: Path, contacted: list[Any],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    archive = weights_zip(tmp_path / "src", "ts-liver")
    data = archive.read_bytes()
    with Server({archive.name: data}) as server:
        monkeypatch.setenv("LIVERMETS_MODELS_URL", server.url)
        with caplog.at_level(logging.WARNING):
            (result,) = install_model("ts-liver", progress=False)
    digest = hashlib.sha256(data).hexdigest()
    assert result.sha256 == digest and result.trust == "first-use"
    assert digest in caplog.text and "no published SHA-256" in caplog.text  # the warning prints the hash
    record = json.loads((model_dir("ts-liver") / INSTALL_FILE).read_text())
    assert record["sha256"] == digest and record["licence"] == "Apache-2.0" and record["trust"] == "first-use"
    assert record["url"] == entry("ts-liver").files[0].url and record["installed"]
    with zipfile.ZipFile(archive) as zf:  # every member unpacked as it is in the archive, with its hash recorded
        for info in zf.infolist():
            member = zf.read(info)
            assert (model_dir("ts-liver") / info.filename).read_bytes() == member
            assert record["files"][info.filename]["sha256"] == hashlib.sha256(member).hexdigest()
    assert json.loads((models_dir() / "trust.json").read_text()) == {entry("ts-liver").files[0].url: digest}
    assert leftovers(home) == []  # no archive, .part or temporary folder left
    assert [r[0] for r in server.requests] == ["GET"] and contacted  # one GET, nothing else sent anywhere


def test_wrong_hash_is_one_line_and_leaves_nothing(home: Path, tmp_path: Path, contacted: list[Any],
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    archive = weights_zip(tmp_path / "src", "ts-liver")
    with Server({archive.name: archive.read_bytes()}) as server:
        monkeypatch.setenv("LIVERMETS_MODELS_URL", server.url)
        code = run_cli(monkeypatch, "-q", "models", "install", "ts-liver", "--sha256", "0" * 64)
    line = one_error_line(code, capsys)
    assert archive.name in line and "does not match the expected " + "0" * 64 in line
    assert not model_dir("ts-liver").exists() and leftovers(home) == []


def test_a_broken_download_resumes_with_range(home: Path, tmp_path: Path, contacted: list[Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    archive = weights_zip(tmp_path / "src", "ts-liver-fast")
    data = archive.read_bytes()
    with Server({archive.name: data}, drop_first=True) as server:
        monkeypatch.setenv("LIVERMETS_MODELS_URL", server.url)
        with pytest.raises(UserInputError, match="download interrupted after .* the same command resumes it"):
            install_model("ts-liver-fast", progress=False)
        part = models_dir() / ".downloads" / (archive.name + ".part")
        kept = part.stat().st_size
        assert 0 < kept <= len(data) // 2 and not model_dir("ts-liver-fast").exists()
        (result,) = install_model("ts-liver-fast", sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert result.trust == "pinned" and not part.exists() and leftovers(home) == []
    assert server.requests[1][2] == f"bytes={kept}-"  # only the missing part was asked for
    verify_model("ts-liver-fast")


def test_a_server_that_is_gone_is_one_line(home: Path, contacted: list[Any], monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LIVERMETS_MODELS_URL", f"http://127.0.0.1:{port}")
    line = one_error_line(run_cli(monkeypatch, "-q", "models", "install", "ts-liver"), capsys)
    assert f"127.0.0.1:{port}" in line and "connection refused" in line
    assert not model_dir("ts-liver").exists() and leftovers(home) == []


@pytest.fixture
def archives(tmp_path: Path) -> Path:
    """A folder with stand-in archives of the three TotalSegmentator entries."""
    for name in TS_FILES:
        weights_zip(tmp_path / "archives", name)
    return tmp_path / "archives"


def test_from_file_installs_a_pair_and_it_becomes_the_default(home: Path, archives: Path, contacted: list[Any],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert default_model_name() == "shipped"
    assert run_cli(monkeypatch, "-q", "models", "install", "ts-pair", "--from-file", archives) == 0
    out = capsys.readouterr().out
    assert "licence Apache-2.0" in out and "https://doi.org/10.1148/ryai.230024" in out
    assert all(is_installed(n) for n in (*TS_FILES, "ts-pair", "ts-pair-fast")) and contacted == []
    assert default_model_name() == "ts-pair"
    plan = plan_segmenter(ModelChoice())
    assert plan.info.name == "ts-pair" and plan.info.default and plan.parts[0].kind == "pair"
    assert plan.info.licence == "Apache-2.0" and "Wasserthal" in (plan.info.citation or "")
    rows = {r["name"]: r for r in list_models()}
    assert rows["ts-pair"]["installed"] and rows["ts-pair"]["size"] > 3 * 300_000
    assert run_cli(monkeypatch, "-q", "models", "list") == 0
    assert "ts-pair           yes" in capsys.readouterr().out


def test_the_fast_pair_is_the_default_when_only_it_is_installed(home: Path, archives: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from livermets.segmentation.default_model import announce_model

    install_model("ts-pair-fast", from_files=[archives / entry(n).files[0].filename
                                              for n in ("ts-liver-fast", "ts-liver-lesions")])
    assert not is_installed("ts-pair") and default_model_name() == "ts-pair-fast"
    plan = plan_segmenter(ModelChoice())
    caplog.clear()
    with caplog.at_level(logging.INFO):
        announce_model(plan.info)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("model: ts-pair-fast v2.0.0-weights+v2.5.0-weights (default: the best installed; "
                           "Apache-2.0 licence; cite Wasserthal et al. 2023 https://doi.org/10.1148/ryai.230024)")


@pytest.mark.parametrize("case", ["not-a-zip", "truncated", "foreign-zip", "other-name", "missing-part"])
def test_bad_files_are_one_line_and_leave_nothing(case: str, home: Path, archives: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    name = entry("ts-liver").files[0].filename
    given: Path = archives / name
    expected = {"not-a-zip": "not a complete zip archive", "truncated": "not a complete zip archive",
                "foreign-zip": "not the weights of ts-liver", "other-name": "not a file of this model",
                "missing-part": "no archive for ts-liver-fast"}[case]
    if case == "not-a-zip":
        given = tmp_path / "bad" / name
        given.parent.mkdir()
        given.write_text("<html>a login page, not the weights</html>")
    elif case == "truncated":
        given = tmp_path / "bad" / name
        given.parent.mkdir()
        given.write_bytes((archives / name).read_bytes()[:200_000])
    elif case == "foreign-zip":
        given = weights_zip(tmp_path / "bad", "ts-liver", layout=False)
    elif case == "other-name":
        given = tmp_path / "bad" / "weights.zip"
        given.parent.mkdir()
        given.write_bytes((archives / name).read_bytes())
    target = "ts-pair" if case == "missing-part" else "ts-liver"
    line = one_error_line(run_cli(monkeypatch, "-q", "models", "install", target, "--from-file", given), capsys)
    assert expected in line and (case == "missing-part" or str(given) in line)
    assert not model_dir("ts-liver").exists() and leftovers(home) == []
    assert not (models_dir() / "trust.json").exists()  # a refused file is never trusted


def _small_ct(folder: Path) -> Path:
    """A small CT in HU (air around a soft-tissue block) written as NIfTI."""
    import numpy as np
    import SimpleITK as sitk

    array = np.full((8, 24, 24), -1000, np.int16)
    array[2:6, 6:18, 6:18] = 40
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 3.0))
    path = folder / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def test_trust_on_first_use_and_tampering(home: Path, archives: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    install_model("ts-pair", from_files=[archives])
    capsys.readouterr()
    checkpoint = next(model_dir("ts-liver-lesions").rglob("checkpoint_final.pth"))
    checkpoint.write_bytes(checkpoint.read_bytes()[:-1] + b"\0")  # one byte changed after installation
    line = one_error_line(run_cli(monkeypatch, "-q", "models", "verify", "ts-pair"), capsys)
    assert str(checkpoint) in line and "SHA-256 differs" in line
    with pytest.raises(UserInputError, match="SHA-256 differs"):  # and on use: prediction refuses the model
        plan_segmenter(ModelChoice())
    line = one_error_line(run_cli(monkeypatch, "-q", "seg", "predict", "--model", "ts-pair", "--image",
                                  _small_ct(tmp_path), "--out", tmp_path / "out"), capsys)
    assert "SHA-256 differs" in line and not (tmp_path / "out").exists()
    # remove, then another archive under the same name: refused against the hash accepted at first use
    assert run_cli(monkeypatch, "-q", "models", "remove", "ts-liver-lesions") == 0
    capsys.readouterr()
    assert not model_dir("ts-liver-lesions").exists() and not is_installed("ts-pair")
    other = weights_zip(tmp_path / "other", "ts-liver-lesions")
    line = one_error_line(run_cli(monkeypatch, "-q", "models", "install", "ts-liver-lesions", "--from-file", other),
                          capsys)
    assert "does not match the expected" in line and not model_dir("ts-liver-lesions").exists()
    assert run_cli(monkeypatch, "-q", "models", "install", "ts-liver-lesions", "--from-file",
                   archives / other.name) == 0  # the original archive is accepted again
    assert run_cli(monkeypatch, "-q", "models", "verify", "ts-pair") == 0


def test_without_installed_models_the_shipped_model_is_used_with_the_install_hint(
        home: Path, caplog: pytest.LogCaptureFixture) -> None:
    from livermets.segmentation.default_model import announce_model

    plan = plan_segmenter(ModelChoice())
    assert plan.info.name == "shipped" and plan.info.default and plan.info.shipped and plan.parts[0].kind == "monai"
    asked = plan_segmenter(ModelChoice(model="shipped"))
    assert asked.info.shipped and not asked.info.default and asked.parts[0].folder == plan.parts[0].folder
    with caplog.at_level(logging.INFO):
        announce_model(plan.info)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "livermets models install ts-pair" in record.getMessage()


def test_run_prints_the_model_line_once_not_once_per_worker() -> None:
    from livermets.analyze.cohort import _analyzer
    from livermets.analyze.single import AnalyzeOptions, Analyzer

    assert Analyzer(AnalyzeOptions()).announce  # analyze: the line comes when the model loads
    assert not _analyzer(AnalyzeOptions()).announce  # run: every worker's Analyzer is silent; run_cohort says it


@pytest.mark.parametrize(("args", "expected"), [
    (["seg", "predict", "--model", "ts-pair"], "model ts-pair is not installed: livermets models install ts-pair"),
    (["seg", "predict", "--model", "ts-liver"], "one part of a liver + lesion pair: use ts-pair"),
    (["seg", "predict", "--model", "ts-nothing"], "ts-nothing: not a trained model folder (no such folder)"),
    (["models", "install", "ts-nothing"], "model 'ts-nothing': not in the registry"),
    (["models", "install", "ts-pair", "--sha256", "00"], "--sha256 '00': expected 64 hexadecimal digits"),
    (["models", "install", "ts-pair", "--sha256", "0" * 64], "--sha256 pins one archive; ts-pair needs 3"),
    (["models", "verify", "ts-liver"], "model ts-liver is not installed"),
    (["models", "remove", "shipped"], "shipped is part of the package"),
    (["models", "remove", "ts-liver"], "model ts-liver is not installed"),
])
def test_cli_errors_are_one_line(args: list[str], expected: str, home: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    if args[:2] == ["seg", "predict"]:  # a real CT file: the image is checked before the model
        args = [*args, "--image", str(_small_ct(tmp_path)), "--out", str(tmp_path / "out")]
    line = one_error_line(run_cli(monkeypatch, "-q", *args), capsys)
    assert expected in line


def test_the_registry_matches_totalsegmentators_own_task_configuration() -> None:
    """Every TotalSegmentator entry as TotalSegmentator 2.18.0 defines it (its installed package, read offline)."""
    config = pytest.importorskip("totalsegmentator.map_tasks_config")
    from totalsegmentator.map_to_binary import class_map

    total = config.TASK_CONFIGS["total"]["sub_modes"]
    expected = {"ts-liver": (291, total["default"]), "ts-liver-fast": (297, total["fast"]),
                "ts-liver-lesions": (591, config.TASK_CONFIGS["liver_lesions"])}
    release = "https://github.com/wasserth/TotalSegmentator/releases/download"
    for name, (task_id, task) in expected.items():
        item, weights = entry(name), config.TASK_ID_WEIGHTS_CONFIGS[task_id]
        block = item.nnunet
        resample = task["resample"] if isinstance(task["resample"], list) else [task["resample"]] * 3
        assert item.files[0].url == f"{release}/{weights['version']}/{weights['foldername']}.zip", name
        assert item.version == weights["version"] and block["dataset"] == weights["foldername"], name
        assert (block["trainer"], block["configuration"]) == (task["trainer"], task.get("model", "3d_fullres")), name
        assert block["resample_mm"] == resample and block["folds"] == [0], name
        assert (block["crop"], block["crop_addon"], block["robust_crop"]) == (
            (task.get("crop") or [None])[0], task.get("crop_addon"), task.get("robust_crop", False)), name
        if block["crop"]:  # applied: python_api.py's crop_addon = [20,20,20] when the crop comes from `total`
            import inspect

            import totalsegmentator.python_api as api

            assert "crop_addon = [20,20,20] if crop_model is None" in inspect.getsource(api)
            assert block["crop_margin_mm"] == [20, 20, 20], name
        assert item.files[0].sha256 is None and item.hash_note and item.licence == "Apache-2.0", name
    assert class_map["total"][5] == "liver" and entry("ts-liver").label_map == entry("ts-liver-fast").label_map \
        == "liver=5"
    assert class_map["liver_lesions"][1] == "liver_lesions" and entry("ts-liver-lesions").label_map == "lesion=1"
    # TotalSegmentator crops the liver-lesion model with the 3 mm total model (task 297) when robust_crop is on
    assert entry("ts-liver-lesions").nnunet["crop_model"] == "ts-liver-fast"
    assert "ts-liver-fast" in entry("ts-liver-lesions").requires
