"""Logging set-up for the CLI (rich handler on stderr); library code only calls ``logging.getLogger``."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)


def configure(verbosity: int = 0) -> None:
    """Send log records to stderr through rich; ``verbosity`` 0 = INFO, 1+ = DEBUG, -1 = WARNING."""
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("radiomics", "monai", "distributed", "matplotlib", "PIL", "highdicom"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
