"""Lesion detection and segmentation metrics: connected components, lesion tables, matching rules, Table 3.

Modules: :mod:`components` (cc3d labelling, lesion table), :mod:`overlap` (joint histogram of component ids),
:mod:`matching` (``paper`` and ``lits`` rules), :mod:`dice`, :mod:`scan_metrics` (one scan pair),
:mod:`cohort_metrics` (Table 3 with patient-level bootstrap CIs), :mod:`evaluate` (``seg evaluate`` of a folder of
predictions), :mod:`figures` (Figure-2-like PNG).

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.lesions import evaluate_scan  # doctest: +SKIP
>>> evaluate_scan(reference, prediction, spacing_xyz=(0.8, 0.8, 2.5)).row["dice_lesion"]  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "LesionComponents": "components",
    "label_components": "components",
    "lesion_table": "components",
    "longest_axial_diameters": "components",
    "component_overlaps": "overlap",
    "overlap_matrix": "overlap",
    "MatchResult": "matching",
    "match": "matching",
    "match_paper": "matching",
    "match_lits": "matching",
    "dice_from_counts": "dice",
    "ScanEvaluation": "scan_metrics",
    "evaluate_scan": "scan_metrics",
    "stratum_names": "scan_metrics",
    "table3": "cohort_metrics",
    "table3_markdown": "cohort_metrics",
    "bootstrap_cis": "cohort_metrics",
    "EvaluationSettings": "evaluate",
    "evaluate_cohort": "evaluate",
    "overlay_figure": "figures",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
