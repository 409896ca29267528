"""Radiomics of every lesion mask with PyRadiomics (the paper's extraction settings), per series and per lesion,
in parallel and resumable; aggregation of per-lesion rows. See docs/radiomics.md.

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.cohort import load_manifest  # doctest: +SKIP
>>> from livermets.radiomics import build_tasks, run_extraction  # doctest: +SKIP
>>> run_extraction(build_tasks(load_manifest("cohort/manifest.csv")), "features.csv")  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "RunSummary": "runner",
    "build_tasks": "runner",
    "run_extraction": "runner",
    "merge_parts": "runner",
    "completed_keys": "runner",
    "ExtractionOptions": "series",
    "SeriesTask": "series",
    "SeriesResult": "series",
    "run_series": "series",
    "make_extractor": "extractor",
    "resolve_params": "extractor",
    "extract_roi": "extractor",
    "extract_lesions": "per_lesion",
    "aggregate_lesions": "aggregate",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
