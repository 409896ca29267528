"""Saving matplotlib figures the same way everywhere: headless, atomic, reproducible PNG bytes."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from livermets.atomic import atomic_path


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Write ``fig`` atomically (format from the suffix, PNG by default) and close it.

    PNGs carry no software/version stamp, so the same figure gives the same bytes on every run.
    """
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    metadata = {"Software": None} if fmt == "png" else None
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt, metadata=metadata)
    plt.close(fig)
    return Path(path)
