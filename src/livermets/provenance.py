"""Record what produced an output: parameters, library versions, platform."""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from importlib import metadata
from typing import Any

from livermets import __version__

TRACKED_PACKAGES = (
    "numpy", "scipy", "pandas", "SimpleITK", "nibabel", "pydicom", "highdicom", "connected-components-3d",
    "scikit-learn", "xgboost", "skops", "torch", "monai", "pyradiomics", "dask", "matplotlib", "onnxruntime",
    "openvino",
)


def library_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the libraries that shape livermets' numbers (missing ones are left out)."""
    versions: dict[str, str] = {"livermets": __version__, "python": sys.version.split()[0]}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(parameters: dict[str, Any] | None = None, command: str | None = None) -> dict[str, Any]:
    """A JSON-ready record of a run: command, parameters, versions, platform and UTC time."""
    return {
        "command": command,
        "parameters": parameters or {},
        "versions": library_versions(),
        "platform": platform.platform(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
