"""Run the livermets CLI in the test process and check the one-line error contract (exit 2, one ``error:`` line)."""

from __future__ import annotations

import sys

import pytest

from livermets import cli


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: object) -> int:
    """Run ``livermets ARGS`` in this process; its exit code."""
    monkeypatch.setattr(sys, "argv", ["livermets", *map(str, args)])
    try:
        cli.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def one_error_line(code: int, capsys: pytest.CaptureFixture[str]) -> str:
    """Assert exit code 2 and one ``error:`` line without traceback on stdout+stderr; return that line."""
    captured = capsys.readouterr()
    message = (captured.err + captured.out).strip()
    assert code == 2, message
    assert len(message.splitlines()) == 1 and message.startswith("error: "), message
    assert "Traceback" not in message
    return message
