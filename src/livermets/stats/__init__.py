"""Tumour-burden statistics (paper Figure 3) and classifier failure analysis (Figure 5).

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.stats import burden_statistics  # doctest: +SKIP
>>> burden_statistics(features)["spearman"]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "burden_statistics": "burden",
    "one_series_per_study": "burden",
    "volume_summary": "burden",
    "failure_analysis": "failure",
    "plot_burden": "plots",
    "plot_failure": "plots",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'livermets.stats' has no attribute {name!r}")
    return getattr(importlib.import_module(f"livermets.stats.{_WHERE[name]}"), name)
