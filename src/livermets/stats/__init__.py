"""Tumour-burden statistics (paper Figure 3) and classifier failure analysis (Figure 5).

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.stats import burden_statistics  # doctest: +SKIP
>>> burden_statistics(features)["spearman"]  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "burden_statistics": "burden",
    "one_series_per_study": "burden",
    "volume_summary": "burden",
    "failure_analysis": "failure",
    "plot_burden": "plots",
    "plot_failure": "plots",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
