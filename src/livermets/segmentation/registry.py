"""The models livermets knows how to install and run (``registry.json``, shipped in the package).

Each entry gives its version, the files to download (URL, file name, SHA-256 and size when published), licence,
citation, training data, the classes it gives and how its output labels map onto livermets' (``label_map``), the
entries it needs (``requires``) and, for nnU-Net models, the preprocessing TotalSegmentator applies (the ``nnunet``
block: dataset, trainer, plans, configuration, folds, spacing, crop and its margin, orientation). An entry with
``engine: pair`` combines a liver model and a lesion model (``components``); ``shipped`` is the model inside the
package. See docs/models.md for the cards and for adding an entry.

Examples
--------
>>> entry("ts-pair").components
{'liver': 'ts-liver', 'lesion': 'ts-liver-lesions'}
>>> install_order("ts-pair")
['ts-liver', 'ts-liver-fast', 'ts-liver-lesions']
>>> entry("ts-liver-lesions").nnunet["configuration"]
'3d_fullres_high'
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livermets.errors import UserInputError

REGISTRY_FILE = Path(__file__).with_name("registry.json")
ENGINES = ("monai", "nnunet", "pair")


@dataclass(frozen=True)
class FileSpec:
    """One file of an entry: its URL, the file name it is matched by (``--from-file``), SHA-256 and size."""

    url: str
    filename: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry (see the module docstring)."""

    name: str
    version: str
    description: str
    engine: str
    licence: str
    citation: str
    classes: tuple[str, ...]
    label_map: str
    files: tuple[FileSpec, ...] = ()
    requires: tuple[str, ...] = ()
    components: dict[str, str] = field(default_factory=dict)
    nnunet: dict[str, Any] = field(default_factory=dict)
    licence_url: str | None = None
    training_data: str | None = None
    hash_note: str | None = None

    @property
    def published_hashes(self) -> bool:
        """Every file has a published SHA-256."""
        return all(f.sha256 is not None for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """The entry as in ``registry.json`` (plus its name)."""
        data: dict[str, Any] = {"name": self.name, "version": self.version, "description": self.description,
                                "engine": self.engine, "files": [f.__dict__ for f in self.files],
                                "licence": self.licence, "licence_url": self.licence_url,
                                "citation": self.citation, "training_data": self.training_data,
                                "classes": list(self.classes), "label_map": self.label_map,
                                "requires": list(self.requires)}
        if self.hash_note:
            data["hash_note"] = self.hash_note
        if self.components:
            data["components"] = dict(self.components)
        if self.nnunet:
            data["nnunet"] = dict(self.nnunet)
        return data


def _entry(name: str, raw: dict[str, Any]) -> ModelEntry:
    from livermets import __version__

    if raw["engine"] not in ENGINES:
        raise ValueError(f"{REGISTRY_FILE}: {name}: unknown engine {raw['engine']!r}")
    version = __version__ if raw["version"] == "package" else raw["version"]
    return ModelEntry(name=name, version=version, description=raw["description"], engine=raw["engine"],
                      licence=raw["licence"], citation=raw["citation"], classes=tuple(raw["classes"]),
                      label_map=raw["label_map"], files=tuple(FileSpec(**f) for f in raw.get("files", [])),
                      requires=tuple(raw.get("requires", [])), components=dict(raw.get("components", {})),
                      nnunet=dict(raw.get("nnunet", {})), licence_url=raw.get("licence_url"),
                      training_data=raw.get("training_data"), hash_note=raw.get("hash_note"))


@functools.lru_cache(maxsize=1)
def _registry() -> tuple[dict[str, ModelEntry], tuple[str, ...]]:
    data = json.loads(REGISTRY_FILE.read_text(encoding="utf-8"))
    entries = {name: _entry(name, raw) for name, raw in data["models"].items()}
    return entries, tuple(data["default_order"])


def entries() -> dict[str, ModelEntry]:
    """Every registry entry by name, in registry order."""
    return dict(_registry()[0])


def default_order() -> tuple[str, ...]:
    """Entry names in order of preference for the default model (the first installed one is used)."""
    return _registry()[1]


def is_registry_name(value: str | Path | None) -> bool:
    """``value`` is the name of a registry entry (a plain string without a path separator)."""
    return isinstance(value, str) and "/" not in value and value in _registry()[0]


def entry(name: str) -> ModelEntry:
    """The entry called ``name``.

    Raises
    ------
    UserInputError
        No entry has that name (the message lists the names).
    """
    found = _registry()[0].get(name)
    if found is None:
        raise UserInputError(f"model {name!r}: not in the registry (known: {', '.join(_registry()[0])})")
    return found


def install_order(name: str) -> list[str]:
    """The entries to install for ``name``: its requirements first (recursively), each once; ``name`` itself last
    unless it is a pair (which has no files of its own)."""
    order: list[str] = []

    def visit(current: str) -> None:
        item = entry(current)
        for needed in item.requires:
            visit(needed)
        if item.files and current not in order:
            order.append(current)

    visit(name)
    return order
