"""``livermets data``: the data registry, the mirror folder, downloads from a web server on 127.0.0.1 (good file,
wrong hash, broken then resumed, server gone), ``--from-file``, and the one-line message when nothing can be had.

The bytes served are the real registered files (the LiTS case and the IBSI tables, from the mirror folder through
``shared_data``); the registry is pointed at the local server. The ``contacted`` guard fails a test on any
connection beyond loopback.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import one_error_line, run_cli
from livermets.data import registry
from livermets.data.store import data_home, fetch_dataset, locate, require
from livermets.errors import UserInputError
from livermets.fetch import sha256sum
from net_helpers import Server

LITS = ("lits_tiny/volume.nii.gz", "lits_tiny/segmentation.nii.gz")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty livermets home and no mirror folder."""
    monkeypatch.setenv("LIVERMETS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIVERMETS_DATA_DIR", raising=False)
    monkeypatch.delenv("LIVERMETS_DATA_URL", raising=False)
    return tmp_path / "home"


def upstream_lits(shared_data: Callable[..., Path]) -> dict[str, bytes]:
    """The LiTS case as upstream serves it (uncompressed NIfTI), by URL file name."""
    return {registry.dataset("lits_tiny").files[k].url_name: gzip.decompress(shared_data(*p.split("/")).read_bytes())
            for k, p in enumerate(LITS)}


def point_registry_at(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real registry, with the LiTS URLs on the local server (``/up/<upstream name>``)."""
    real = registry._registry()
    lits = real["lits_tiny"]
    moved = tuple(dataclasses.replace(f, url=f"{server.url}/up/{f.url_name}") for f in lits.files)
    patched = {**real, "lits_tiny": dataclasses.replace(lits, files=moved)}
    monkeypatch.setattr(registry, "_registry", lambda: patched)


def test_every_registered_file_is_pinned() -> None:
    for item in registry.datasets().values():
        assert item.licence and item.licence_short and item.citation and item.source
        for spec in item.files:
            assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256), spec.path
            assert re.search(r"/[0-9a-f]{40}/", spec.url), f"{spec.url}: not at a pinned commit"
            assert spec.path.split("/")[0] == item.name and spec.size > 0


def test_download_checks_the_upstream_hash_and_keeps_the_registered_form(
        home: Path, shared_data: Callable[..., Path], contacted: list[Any], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    files = {f"up/{name}": data for name, data in upstream_lits(shared_data).items()}
    with Server(files) as server:
        point_registry_at(server, monkeypatch)
        with caplog.at_level(logging.INFO):
            done = fetch_dataset("lits_tiny", progress=False)
    assert [r[0] for r in server.requests] == ["GET", "GET"] and contacted
    assert [how for _, _, how in done] == ["download", "download"]
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fetching")]
    assert len(said) == 1 and f"from {server.url}/up/" in said[0] and "licence: CC BY-NC-SA 4.0" in said[0]
    assert f"kept in {data_home() / 'lits_tiny'}" in said[0]
    for path in LITS:  # kept gzip-compressed, its content the upstream file
        kept = data_home() / path
        assert locate(path) == kept
        assert gzip.decompress(kept.read_bytes()) == gzip.decompress(shared_data(*path.split("/")).read_bytes())
    assert not list((data_home() / ".downloads").rglob("*.*"))  # no .part, no download left behind


def test_a_wrong_file_is_one_line_and_nothing_is_kept(home: Path, shared_data: Callable[..., Path],
                                                      contacted: list[Any], monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    files = {f"up/{name}": data[:-1] + b"\x01" for name, data in upstream_lits(shared_data).items()}
    with Server(files) as server:
        point_registry_at(server, monkeypatch)
        line = one_error_line(run_cli(monkeypatch, "-q", "data", "fetch", "lits_tiny"), capsys)
    assert "does not match the expected" in line and "--from-file" in line
    assert locate(LITS[0]) is None and not [p for p in data_home().rglob("*") if p.is_file()]


def test_a_broken_download_resumes_with_range(home: Path, shared_data: Callable[..., Path], contacted: list[Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    files = {f"up/{name}": data for name, data in upstream_lits(shared_data).items()}
    with Server(files, drop_first=True) as server:
        point_registry_at(server, monkeypatch)
        with pytest.raises(UserInputError, match="interrupted after"):
            require(LITS[0], "the LiTS case", progress=False)
        part = data_home() / ".downloads" / "lits_tiny" / "volume.nii.gz.part"
        kept = part.stat().st_size
        assert 0 < kept < len(files["up/resized_liver.nii"]) and locate(LITS[0]) is None
        assert require(LITS[0], "the LiTS case", progress=False) == data_home() / LITS[0]
    assert (server.requests[1][1], server.requests[1][2]) == ("/up/resized_liver.nii", f"bytes={kept}-")
    assert not part.exists()


def test_server_gone_says_what_is_missing_and_how_to_get_it_offline(home: Path, contacted: list[Any],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LIVERMETS_DATA_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(UserInputError) as caught:
        require(registry.PAPER_FEATURES, "the paper's published feature table", progress=False)
    message = str(caught.value)
    assert "\n" not in message and "connection refused" in message
    assert "livermets data fetch nih_mip_msclc" in message
    assert "LIVERMETS_DATA_DIR to a folder holding nih_mip_msclc/Final_ResampledClassificationData.csv" in message
    assert not [p for p in data_home().rglob("*") if p.is_file()]


def test_the_mirror_folder_is_used_without_any_request(home: Path, shared_data: Callable[..., Path],
                                                       tmp_path: Path, contacted: list[Any],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "ibsi").mkdir(parents=True)
    for spec in registry.dataset("ibsi").files:
        (mirror / spec.path).write_bytes(shared_data(*spec.path.split("/")).read_bytes())
    (mirror / "lits_tiny").mkdir()
    (mirror / LITS[0]).write_bytes(b"not the LiTS case")
    monkeypatch.setenv("LIVERMETS_DATA_DIR", str(mirror))
    monkeypatch.setenv("LIVERMETS_DATA_URL", "http://127.0.0.1:9")  # would refuse: never asked
    for spec in registry.dataset("ibsi").files:
        assert require(spec.path, spec.name, progress=False) == mirror / spec.path
    assert locate(LITS[0]) is None  # a file with another hash is not used ...
    assert "SHA-256 differs" in caplog.text  # ... and it is said
    assert contacted == [] and not data_home().exists()


def test_from_file_takes_a_folder_and_checks_every_file(home: Path, shared_data: Callable[..., Path],
                                                        tmp_path: Path, contacted: list[Any],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    usb = tmp_path / "usb" / "deep"
    usb.mkdir(parents=True)
    for name, data in upstream_lits(shared_data).items():  # the upstream (uncompressed) files, by upstream name
        (usb / name).write_bytes(data)
    assert run_cli(monkeypatch, "data", "fetch", "lits_tiny", "--from-file", tmp_path / "usb") == 0
    assert "(2 file)" in capsys.readouterr().out and contacted == []
    assert all(locate(p) == data_home() / p for p in LITS)
    (usb / "resized_mask.nii").write_bytes(b"other")
    for path in LITS:
        (data_home() / path).unlink()
    line = one_error_line(run_cli(monkeypatch, "data", "fetch", "lits_tiny", "--from-file", usb), capsys)
    assert "lits_tiny/segmentation.nii.gz" in line and locate(LITS[0]) is None


def test_list_and_info_say_where_each_data_set_is(home: Path, shared_data: Callable[..., Path],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    csv = shared_data("nih_mip_msclc", "Final_ResampledClassificationData.csv")
    mirror = home.parent / "mirror"  # the paper's table only
    (mirror / "nih_mip_msclc").mkdir(parents=True)
    csv = Path(shutil.copy(csv, mirror / "nih_mip_msclc"))
    monkeypatch.setenv("LIVERMETS_DATA_DIR", str(mirror))
    assert run_cli(monkeypatch, "data", "list") == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert rows["nih_mip_msclc"] == "mirror"
    assert run_cli(monkeypatch, "data", "info", "nih_mip_msclc") == 0
    out = capsys.readouterr().out
    assert sha256sum(csv) in out and "never redistributes" in out
    assert one_error_line(run_cli(monkeypatch, "data", "info", "nope"), capsys).startswith("error: data set 'nope'")
    assert run_cli(monkeypatch, "data", "path", "nih_mip_msclc/Final_ResampledClassificationData.csv") == 0
    assert capsys.readouterr().out.strip() == str(csv)
    line = one_error_line(run_cli(monkeypatch, "data", "path", "totalsegmentator/example_ct_dicom"), capsys)
    assert "livermets data fetch totalsegmentator" in line
