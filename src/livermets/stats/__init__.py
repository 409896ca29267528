"""Tumour-burden statistics (paper Figure 3), classifier failure analysis (Figure 5), patient-level statistics.

Cohort p-values and CIs respect the clustering of series within studies within patients
(:mod:`livermets.stats.clustered`): one value per patient, CIs from a patient-level cluster bootstrap.

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.stats import burden_statistics  # doctest: +SKIP
>>> burden_statistics(features)["all"]["spearman_rho"]  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "burden_statistics": "burden",
    "one_series_per_study": "burden",
    "patient_table": "burden",
    "study_level_statistics": "burden",
    "volume_summary": "burden",
    "Units": "clustered",
    "clustered_spearman": "clustered",
    "patient_means": "clustered",
    "unit_counts": "clustered",
    "failure_analysis": "failure",
    "plot_burden": "plots",
    "plot_failure": "plots",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
