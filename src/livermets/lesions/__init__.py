"""Lesion detection and segmentation metrics: connected components, lesion tables, matching rules, Table 3.

Modules: :mod:`components` (cc3d labelling, lesion table), :mod:`overlap` (joint histogram of component ids),
:mod:`matching` (``paper`` and ``lits`` rules), :mod:`dice`, :mod:`scan_metrics` (one scan pair),
:mod:`cohort_metrics` (Table 3 with patient-level bootstrap CIs), :mod:`figures` (Figure-2-like PNG).
"""
