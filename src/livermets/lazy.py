"""Lazy public APIs for the stage packages (PEP 562): a name is imported from its module on first use, so that
importing a package (and ``livermets --help``) loads no numerical library."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that imports ``name`` from ``<package>.<where[name]>`` when first asked for.

    Examples
    --------
    >>> getter = lazy_getattr("livermets", {"write_json": "atomic"})
    >>> getter("write_json").__name__
    'write_json'
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    return __getattr__
