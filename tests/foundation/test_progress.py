"""Progress when stderr is not a terminal: a line per interval and one at the end; short steps write nothing."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from livermets import progress
from livermets.progress import LogProgress, make_progress, track


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "livermets.progress"]


def test_lines_per_interval_and_at_the_end_with_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, logger="livermets.progress")
    with LogProgress(interval=30, clock=clock) as bar:
        step = bar.add_task("radiomics", total=10)
        for _ in range(10):
            clock.now += 10.0  # 10 s per item: a line every third item (30 s), ETA from the mean rate
            bar.advance(step)
    assert _messages(caplog) == [
        "radiomics: 3/10 (10.0 s each, ETA 1 min 10 s)",
        "radiomics: 6/10 (10.0 s each, ETA 40 s)",
        "radiomics: 9/10 (10.0 s each, ETA 10 s)",
        "radiomics: 10/10 done in 1 min 40 s",
    ]


def test_a_step_left_early_says_where_it_stopped(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, logger="livermets.progress")
    with pytest.raises(KeyboardInterrupt), LogProgress(interval=3600, clock=clock) as bar:
        step = bar.add_task("Segmenting", total=5)
        clock.now += 4000.0
        bar.advance(step)
        raise KeyboardInterrupt
    assert _messages(caplog)[-1] == "Segmenting: stopped at 1/5 after 1 h 06 min"


def test_hidden_empty_and_short_steps_write_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A step shorter than the interval prints nothing, also when it stops early (bad input: one error line only)."""
    clock = Clock()
    caplog.set_level(logging.INFO, logger="livermets.progress")
    with LogProgress(interval=0) as bar:
        hidden = bar.add_task("hidden", total=2, visible=False)
        bar.advance(hidden)
        bar.add_task("empty", total=0)
    with LogProgress(interval=30, clock=clock) as bar:
        short = bar.add_task("short", total=3)
        for _ in range(3):
            clock.now += 5.0
            bar.advance(short)
    with pytest.raises(ValueError), LogProgress(interval=30, clock=clock) as bar:
        bar.add_task("failing", total=3)
        clock.now += 5.0
        raise ValueError
    assert _messages(caplog) == []


def test_not_a_terminal_gives_log_lines_not_a_bar(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(progress, "console", Console(file=io.StringIO()))  # a log file, not a terminal
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)
    assert isinstance(make_progress(), LogProgress)
    caplog.set_level(logging.INFO, logger="livermets.progress")
    assert list(track([1, 2, 3], "work")) == [1, 2, 3]
    assert _messages(caplog)[0].startswith("work: 1/3 (") and _messages(caplog)[-1].startswith("work: 3/3 done in ")
