"""Reproduction of the paper's tables and figures from its published feature table, with a side-by-side report.

Built on :mod:`livermets.phenotype` (the paper and grouped protocols) and :mod:`livermets.stats`.

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.reproduce import reproduce_paper  # doctest: +SKIP
>>> reproduce_paper("Final_ResampledClassificationData.csv", "repro", tables="4")["table4"]  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "reproduce_paper": "runner",
    "write_report": "report",
    "measured_kernel_table": "kernels",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
