"""Synthetic abdominal CT cohorts with liver metastases, labels (LiTS 0/1/2), NE scores and per-lesion truth.

See :func:`livermets.synth.cohort.generate_cohort`, docs/phantoms.md and docs/synthetic-data.md.
"""
