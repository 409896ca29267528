"""``livermets synth`` end to end and its one-line errors (exit code 2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from livermets import cli


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["livermets", "-q", *args])
    try:
        cli.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_synth_command_writes_a_cohort(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = tmp_path / "c"
    assert _run(monkeypatch, "synth", "--out", str(out), "--patients", "1", "--size", "tiny", "--seed", "3") == 0
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) >= 2 and (out / "overview.png").stat().st_size > 1000
    # A second run into the same folder is refused without --overwrite, accepted with it.
    assert _run(monkeypatch, "synth", "--out", str(out), "--patients", "1", "--size", "tiny") == 2
    assert _run(monkeypatch, "synth", "--out", str(out), "--patients", "1", "--size", "tiny", "--overwrite",
                "--no-overview") == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--patients", "0"], "--patients"),
    (["--size", "huge"], "--size"),
    (["--burden-link", "2"], "--burden-link"),
    (["--workers", "0"], "--workers"),
])
def test_bad_input_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path, args: list[str], message: str) -> None:
    code = _run(monkeypatch, "synth", "--out", str(tmp_path / "x"), *args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
