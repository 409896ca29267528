"""Synthetic abdominal CT cohorts with liver metastases, labels (LiTS 0/1/2), NE scores and per-lesion truth.

See :func:`livermets.synth.cohort.generate_cohort`, docs/phantoms.md and docs/synthetic-data.md.

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.synth import CohortConfig, generate_cohort  # doctest: +SKIP
>>> generate_cohort(CohortConfig(n_patients=4), "synthetic/")  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "CohortConfig": "cohort",
    "generate_cohort": "cohort",
    "generate_realistic": "realistic_cohort",
    "RealisticConfig": "realistic",
    "Anatomy": "anatomy",
    "sample_anatomy": "anatomy",
    "Grid": "phantom",
    "make_grid": "phantom",
    "render_study": "phantom",
    "Lesion": "lesions",
    "place_lesions": "lesions",
    "BurdenModel": "burden",
    "sample_lesions": "burden",
    "NEScoreModel": "nescore",
    "ne_score": "nescore",
    "simulate_scores": "nescore",
    "SizeSpec": "sizes",
    "get_size": "sizes",
    "write_overview": "overview",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
