"""The cohort manifest: one row per CT series (schema, loading, validation, summary), and importers of public
liver datasets. See docs/cohort-and-imaging.md.

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.cohort import load_manifest, cohort_summary  # doctest: +SKIP
>>> cohort_summary(load_manifest("cohort/manifest.csv"))  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "Problem": "manifest",
    "HeaderGeometry": "manifest",
    "read_manifest": "manifest",
    "load_manifest": "manifest",
    "find_problems": "manifest",
    "find_geometry_problems": "manifest",
    "header_geometry": "manifest",
    "normalise": "manifest",
    "select_split": "manifest",
    "merge_manifests": "manifest",
    "cohort_summary": "summary",
    "import_dataset": "importers",
    "ImportResult": "importers.common",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
