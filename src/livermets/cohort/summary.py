"""Cohort counts in the shape of the paper's Table 1 (cohort) and Table 2 (splits)."""

from __future__ import annotations

import pandas as pd

ALL = "all"


def cohort_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts per split (and overall): patients, studies, series, NE-positive/negative series and studies.

    When present, also per sample type, and lesion counts from an ``n_lesions`` column (median and range per series).

    Returns
    -------
    pandas.DataFrame
        One row per split (``train``, ``val``, ``test``, then ``all``), one column per count.
    """
    groups: list[tuple[str, pd.DataFrame]] = []
    if "split" in frame.columns:
        order = [s for s in ("train", "val", "test") if (frame["split"] == s).any()]
        order += sorted(set(frame["split"].dropna()) - set(order))
        groups += [(str(s), frame[frame["split"] == s]) for s in order]
    groups.append((ALL, frame))
    rows = [{"split": name, **_counts(part)} for name, part in groups]
    return pd.DataFrame(rows).set_index("split")


def _counts(part: pd.DataFrame) -> dict[str, object]:
    row: dict[str, object] = {
        "patients": part["patient_id"].nunique(),
        "studies": part["study_id"].nunique(),
        "series": len(part),
    }
    if "ne_class" in part.columns:
        cls = pd.to_numeric(part["ne_class"], errors="coerce")
        row["ne_positive_series"] = int((cls == 1).sum())
        row["ne_negative_series"] = int((cls == 0).sum())
        per_study = part.assign(_c=cls).groupby("study_id")["_c"].first()
        row["ne_positive_studies"] = int((per_study == 1).sum())
        row["ne_negative_studies"] = int((per_study == 0).sum())
    if "sample_type" in part.columns:
        per_study_type = part.groupby("study_id")["sample_type"].first()
        for kind in ("biopsy", "cfdna"):
            row[f"{kind}_studies"] = int((per_study_type == kind).sum())
    if "n_lesions" in part.columns:
        n = pd.to_numeric(part["n_lesions"], errors="coerce")
        row["series_with_lesions"] = int((n > 0).sum())
        row["series_without_lesions"] = int((n == 0).sum())
        row["lesions_median"] = float(n[n > 0].median()) if (n > 0).any() else 0.0
        row["lesions_min"] = int(n[n > 0].min()) if (n > 0).any() else 0
        row["lesions_max"] = int(n.max()) if n.notna().any() else 0
    return row
