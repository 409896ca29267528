"""Logging set-up for the CLI (rich handler on stderr); library code only calls ``logging.getLogger``.

Repeated warnings
    A warning that can repeat once per series (a plausibility flag, the shipped-model notice in every worker) is
    logged with ``extra=repeated(key, item)``. The CLI holds such records back and prints each ``key`` once when the
    command ends (:func:`flush_repeated`): the warning itself when it concerns one item, else one line with the count
    of distinct items and the first warning (``spacing outside the model's range: 36 series; the first: ...``). With
    ``-v`` every occurrence is also printed as it comes. Without the CLI's set-up (library use) the records are
    ordinary warnings.
Paths
    Messages never name a temporary path: a path inside a hidden staging folder (``.NAME.partial-XXXX``) or a
    temporary file of an atomic write is printed as the final path it is renamed to (:func:`final_path`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)

REPEAT_ATTRIBUTE = "livermets_repeat"
_STAGED = re.compile(r"^\.(?P<name>.+)\.(?:partial|old)-[A-Za-z0-9_]+$")  # atomic.staged_folder
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp.*$")  # atomic.atomic_path
_TOKEN = re.compile(r"[^\s'\"()\[\],;:]+")  # a path-like word of a message


def repeated(key: str, item: str | None = None, unit: str = "series") -> dict[str, Any]:
    """``extra`` of a warning that may repeat: the CLI prints it once per ``key``, with the count of ``item`` values.

    Examples
    --------
    >>> log = logging.getLogger("livermets.example")
    >>> log.warning("S1: slice thickness 5 mm outside 0.5..3 mm", extra=repeated("spacing outside the model's range",
    ...             "S1"))  # doctest: +SKIP
    """
    return {REPEAT_ATTRIBUTE: (key, item, unit)}


def final_path(path: str | os.PathLike[str]) -> Path:
    """The path a temporary path becomes: staging folders and temporary files of atomic writes by their final name.

    Examples
    --------
    >>> str(final_path("out/.report.partial-k2j_x9/seg.dcm"))
    'out/report/seg.dcm'
    >>> str(final_path("out/.features.csv.ab12cd34.tmp.csv"))
    'out/features.csv'
    """
    parts = []
    for part in Path(path).parts:
        match = _STAGED.match(part) or _TEMPORARY.match(part)
        parts.append(match["name"] if match else part)
    return Path(*parts)


def final_paths_in(text: str) -> str:
    """``text`` with every temporary path in it replaced by its :func:`final_path`.

    Examples
    --------
    >>> final_paths_in("wrote DICOM SEG /data/.ct1.partial-a_b3/seg.dcm (12 frames)")
    'wrote DICOM SEG /data/ct1/seg.dcm (12 frames)'
    """
    return _TOKEN.sub(lambda m: _final_word(m.group(0)), text)


def _final_word(word: str) -> str:
    if not _maybe_temporary(word):
        return word
    final = str(final_path(word))
    return final + "/" if word.endswith("/") else final


def _maybe_temporary(text: str) -> bool:
    return ".partial-" in text or ".old-" in text or ".tmp" in text


@dataclass
class _Group:
    """The warnings of one key: the first record, the distinct items in order, and how many records."""

    first: logging.LogRecord
    unit: str
    items: list[str] = field(default_factory=list)
    records: int = 0

    def add(self, item: str | None) -> None:
        self.records += 1
        if item is not None and item not in self.items:
            self.items.append(item)

    def summary(self, key: str) -> logging.LogRecord:
        """The one record printed for this key."""
        record = logging.makeLogRecord(self.first.__dict__)
        delattr(record, REPEAT_ATTRIBUTE)
        if len(self.items) > 1:
            record.msg, record.args = "%s: %d %s; the first: %s", (key, len(self.items), self.unit,
                                                                  self.first.getMessage())
        return record


class RepeatedWarnings(logging.Filter):
    """Handler filter: holds back records tagged by :func:`repeated` and gives one record per key at the end.

    It also replaces temporary paths in every message by their final path.
    """

    def __init__(self, verbose: bool = False) -> None:
        super().__init__()
        self.verbose = verbose
        self.groups: dict[str, _Group] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        _final_paths(record)
        tag = getattr(record, REPEAT_ATTRIBUTE, None)
        if tag is None:
            return True
        key, item, unit = tag
        group = self.groups.setdefault(key, _Group(record, unit))
        group.add(item)
        return self.verbose

    def summaries(self) -> list[logging.LogRecord]:
        """One record per key held back so far (in the order the keys first appeared); forgets them."""
        records = [group.summary(key) for key, group in self.groups.items()
                   if not (self.verbose and len(group.items) <= 1)]  # -v printed it already
        self.groups = {}
        return records


def _final_paths(record: logging.LogRecord) -> None:
    """Replace temporary paths in the record's message and arguments (in place)."""
    if isinstance(record.msg, str) and _maybe_temporary(record.msg):
        record.msg = final_paths_in(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(final_paths_in(str(a)) if isinstance(a, str | os.PathLike) and _maybe_temporary(str(a))
                            else a for a in record.args)


SentRecord = tuple[str, int, str, Any]
"""A log record as a worker process sends it back: logger name, level, message, :func:`repeated` tag or None."""


class _Collect(logging.Handler):
    def __init__(self, into: list[SentRecord]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append((record.name, record.levelno, record.getMessage(), getattr(record, REPEAT_ATTRIBUTE, None)))


@contextlib.contextmanager
def captured_records() -> Iterator[list[SentRecord]]:
    """Collect the log records of the block instead of printing them, e.g. in a worker process, which returns them
    with its result for :func:`replay` in the main process (so that repeated warnings are counted once there)."""
    records: list[SentRecord] = []
    root = logging.getLogger()
    handlers = root.handlers[:]
    root.handlers = [_Collect(records)]
    try:
        yield records
    finally:
        root.handlers = handlers


def replay(records: list[SentRecord]) -> None:
    """Log records sent back by :func:`captured_records` in this process."""
    for name, level, message, tag in records:
        logging.getLogger(name).log(level, "%s", message, extra=None if tag is None else {REPEAT_ATTRIBUTE: tag})


class PlainHandler(logging.StreamHandler):
    """One unwrapped line per record on the current ``sys.stderr`` (``[HH:MM:SS] LEVEL message``): used when stderr
    is not a terminal, so that a log file or a pipe gets whole lines (a path or a SHA-256 is never split)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)-8s %(message)s", datefmt="%X"))

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it; the current sys.stderr is always used
        pass


_handler: logging.Handler | None = None
_repeats: RepeatedWarnings | None = None


def configure(verbosity: int = 0) -> None:
    """Send log records to stderr (through rich on a terminal, else one plain line each); ``verbosity`` 0 = INFO,
    1+ = DEBUG, -1 = WARNING."""
    global _handler, _repeats
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    _handler = (RichHandler(console=console, show_path=False, rich_tracebacks=False) if console.is_terminal
                else PlainHandler())
    _repeats = RepeatedWarnings(verbose=verbosity > 0)
    _handler.addFilter(_repeats)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[_handler], force=True)
    for noisy in ("radiomics", "monai", "distributed", "matplotlib", "PIL", "highdicom", "numexpr"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def flush_repeated() -> None:
    """Print the repeated warnings held back since :func:`configure` (once per key, with their count)."""
    if _handler is None or _repeats is None:
        return
    for record in _repeats.summaries():
        if record.levelno >= logging.getLogger().getEffectiveLevel():
            _handler.handle(record)
