"""The public data sets livermets knows (``registry.json``, shipped in the package).

Each data set gives a description, licence, citation and source (repository and pinned commit), and its files: the
path it is kept under (``<data set>/<file>``, the layout of a local mirror folder), the URL at a pinned commit, the
SHA-256 and size of the file as kept. A file kept in another form than the one downloaded (e.g. gzip-compressed
here, uncompressed upstream) has a ``download`` block: the SHA-256 and size of the downloaded file and what is done
with it (``then: gzip``). See docs/data.md.

Examples
--------
>>> spec = dataset("nih_mip_msclc").files[0]
>>> spec.path, spec.sha256[:12]
('nih_mip_msclc/Final_ResampledClassificationData.csv', 'ca99bc7c4aa4')
>>> dataset_of("totalsegmentator/example_ct_dicom").name
'totalsegmentator'
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from livermets.errors import UserInputError

REGISTRY_FILE = Path(__file__).with_name("registry.json")
PAPER_FEATURES = "nih_mip_msclc/Final_ResampledClassificationData.csv"
"""The paper's published feature table (path in the data registry)."""


@dataclass(frozen=True)
class DataFile:
    """One registered file: ``path`` (``<data set>/<file>``), ``url``, ``sha256`` and ``size`` of the kept file, and
    for a file transformed after download, the downloaded file's ``download_sha256``/``download_size`` and ``then``
    (``gzip``)."""

    path: str
    url: str
    sha256: str
    size: int
    download_sha256: str | None = None
    download_size: int | None = None
    then: str | None = None

    @property
    def name(self) -> str:
        """The file name as kept (``volume.nii.gz``)."""
        return PurePosixPath(self.path).name

    @property
    def url_name(self) -> str:
        """The file name in the URL (``resized_liver.nii``)."""
        return PurePosixPath(self.url).name


@dataclass(frozen=True)
class DataSet:
    """One registered data set (see the module docstring)."""

    name: str
    description: str
    licence: str
    licence_short: str
    licence_url: str | None
    citation: str
    source: str
    files: tuple[DataFile, ...]
    note: str | None = None

    @property
    def size(self) -> int:
        """Bytes of every file as kept."""
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """The entry as in ``registry.json`` (plus its name)."""
        return {"name": self.name, "description": self.description, "licence": self.licence,
                "licence_short": self.licence_short, "licence_url": self.licence_url, "citation": self.citation,
                "source": self.source, "note": self.note, "files": [dict(f.__dict__) for f in self.files]}


def _file(raw: dict[str, Any]) -> DataFile:
    download = raw.get("download") or {}
    return DataFile(path=raw["path"], url=raw["url"], sha256=raw["sha256"], size=int(raw["size"]),
                    download_sha256=download.get("sha256"), download_size=download.get("size"),
                    then=download.get("then"))


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, DataSet]:
    data = json.loads(REGISTRY_FILE.read_text(encoding="utf-8"))
    return {name: DataSet(name=name, description=raw["description"], licence=raw["licence"],
                          licence_short=raw["licence_short"], licence_url=raw.get("licence_url"),
                          citation=raw["citation"], source=raw["source"],
                          files=tuple(_file(f) for f in raw["files"]), note=raw.get("note"))
            for name, raw in data["datasets"].items()}


def datasets() -> dict[str, DataSet]:
    """Every registered data set by name, in registry order."""
    return dict(_registry())


def dataset(name: str) -> DataSet:
    """The data set called ``name``.

    Raises
    ------
    UserInputError
        No data set has that name (the message lists the names).
    """
    found = _registry().get(name)
    if found is None:
        raise UserInputError(f"data set {name!r}: not in the registry (known: {', '.join(_registry())})")
    return found


def dataset_of(path: str) -> DataSet:
    """The data set holding ``path`` (``<data set>/<file>`` or a folder of its files, e.g. the DICOM series).

    Raises
    ------
    UserInputError
        No registered file is, or is under, ``path``.
    """
    if not files_under(path):
        raise UserInputError(f"{path}: not a registered data file or folder (data sets: {', '.join(_registry())})")
    return dataset(PurePosixPath(path).parts[0])


def files_under(path: str) -> list[DataFile]:
    """The registered files that are ``path`` or lie under it (a folder); empty when none."""
    parts = PurePosixPath(path).parts
    found = _registry().get(parts[0]) if parts else None
    if found is None:
        return []
    return [f for f in found.files if PurePosixPath(f.path).parts[:len(parts)] == parts]
