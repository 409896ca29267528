"""One progress style for every long loop: a live bar on a terminal, periodic log lines elsewhere.

When stderr is a terminal, :func:`make_progress` is a rich progress bar. When it is not (``make demo > log``, a
batch job, a pipe), the bar would only appear when the step ends; instead a log line (count, rate, ETA) is written
every ``interval`` seconds while a step runs, and a last one when a step that has written lines ends (or stops
early). Steps shorter than the interval write nothing, so a short command, or one that stops at bad input with
its one error line, prints no progress at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from livermets.logs import console

T = TypeVar("T")
log = logging.getLogger(__name__)

LOG_INTERVAL_S = 30.0
"""Seconds between two progress log lines of one step when stderr is not a terminal."""


def format_duration(seconds: float) -> str:
    """``'1 h 05 min'``, ``'2 min 03 s'`` or ``'7 s'``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


@dataclass
class _Step:
    description: str
    total: float | None
    visible: bool
    started: float
    completed: float = 0.0
    last_line: float = field(default=0.0)
    shown: bool = False  # a line of this step has been written


def _count(step: _Step) -> str:
    return f"{int(step.completed)}/{int(step.total)}" if step.total else f"{int(step.completed)}"


class LogProgress:
    """The subset of :class:`rich.progress.Progress` livermets uses, writing log lines instead of a bar.

    Parameters
    ----------
    interval
        Minimum seconds between two lines of one step (the first and last line are always written).
    clock
        Monotonic clock (injectable for tests).

    Examples
    --------
    >>> with LogProgress(interval=0) as progress:
    ...     step = progress.add_task("work", total=2)
    ...     progress.advance(step)
    ...     progress.advance(step)
    """

    def __init__(self, interval: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._steps: list[_Step] = []

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        for step in self._steps:
            if not step.visible or not step.shown or step.last_line == -1:
                continue
            if exc_type is None and step.total is None:  # an open-ended step ended normally
                self._line(step, final=True)
            else:  # left early (an error, Ctrl-C, a consumer that stopped): say where it stood
                log.info("%s: stopped at %s after %s", step.description, _count(step),
                         format_duration(self.clock() - step.started))

    def add_task(self, description: str, total: float | None = None, visible: bool = True, **_: Any) -> TaskID:
        """Start a step; returns its id."""
        now = self.clock()
        self._steps.append(_Step(description, total, visible, now, last_line=now))
        return TaskID(len(self._steps) - 1)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """Count ``advance`` more items of step ``task_id``; log a line when the interval has passed or it ended."""
        step = self._steps[task_id]
        step.completed += advance
        if not step.visible:
            return
        done = step.total is not None and step.completed >= step.total
        if (done and step.shown) or self.clock() - step.last_line >= self.interval:
            self._line(step, final=done)

    def _line(self, step: _Step, final: bool) -> None:
        now = self.clock()
        elapsed = now - step.started
        rate = step.completed / elapsed if elapsed > 0 else 0.0
        count = _count(step)
        step.shown = True
        if final:
            log.info("%s: %s done in %s", step.description, count, format_duration(elapsed))
            step.last_line = -1
            return
        eta = ""
        if step.total and rate > 0:
            eta = f", ETA {format_duration((step.total - step.completed) / rate)}"
        per = f"{rate:.2f}/s" if rate >= 1 else f"{1 / rate:.1f} s each" if rate > 0 else "rate unknown"
        log.info("%s: %s (%s%s)", step.description, count, per, eta)
        step.last_line = now


def make_progress() -> Progress | LogProgress:
    """A rich progress bar on stderr when it is a terminal, else :class:`LogProgress` (periodic log lines)."""
    if not console.is_terminal:
        return LogProgress(interval=LOG_INTERVAL_S)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar (terminal) or periodic progress log lines (log file, pipe)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
