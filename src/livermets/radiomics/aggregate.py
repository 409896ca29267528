"""Per-lesion feature rows → one row per series: largest lesion, volume-weighted mean, lesion count.

Output columns: the id columns, ``lesion_count`` (all lesions), ``lesions_with_features``, ``total_volume_ml``,
then for every ``original_*`` feature ``largest_<feature>`` (the lesion with most voxels among those with
features) and ``vwmean_<feature>`` (mean over lesions weighted by voxel count), then the target columns.

Examples
--------
>>> import pandas as pd
>>> lesions = pd.DataFrame({"File": ["a", "a", "b"], "lesion_id": [1, 2, 1], "voxel_count": [10, 30, 5],
...                         "volume_ml": [0.01, 0.03, 0.005], "original_firstorder_Mean": [10.0, 50.0, 7.0]})
>>> out = aggregate_lesions(lesions)
>>> out["lesion_count"].tolist(), out["largest_original_firstorder_Mean"].tolist()
([2, 1], [50.0, 7.0])
>>> out["vwmean_original_firstorder_Mean"].tolist()
[40.0, 7.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from livermets.errors import UserInputError
from livermets.featuretable import ID_COLUMNS, TARGET_COLUMNS

KEY = "File"


def aggregate_lesions(lesions: pd.DataFrame, source: str = "per-lesion table") -> pd.DataFrame:
    """Aggregate a per-lesion table (from ``livermets radiomics extract --per-lesion``) to series level."""
    missing = [c for c in (KEY, "lesion_id", "voxel_count") if c not in lesions.columns]
    if missing:
        raise UserInputError(f"{source}: missing column {missing[0]!r} (expected a per-lesion table of radiomics "
                             "extract)")
    features = [c for c in lesions.columns if c.startswith("original_")]
    if not features:
        raise UserInputError(f"{source}: no original_* feature columns")
    frame = lesions.copy()
    values = frame[features].apply(pd.to_numeric, errors="coerce")
    has_features = values.notna().all(axis=1).to_numpy()
    weights = pd.to_numeric(frame["voxel_count"], errors="coerce").to_numpy(dtype=float)
    keys = frame[KEY].astype(str).to_numpy()
    order = list(dict.fromkeys(keys))  # series in first-appearance order
    position = {k: i for i, k in enumerate(order)}
    group = np.array([position[k] for k in keys], dtype=np.intp)
    n = len(order)

    count = np.bincount(group, minlength=n)
    usable = has_features & np.isfinite(weights)
    w = np.where(usable, weights, 0.0)
    weight_sum = np.bincount(group, weights=w, minlength=n)
    x = np.where(usable[:, None], values.to_numpy(dtype=float), 0.0)
    weighted = np.stack([np.bincount(group, weights=w * x[:, j], minlength=n) for j in range(x.shape[1])], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwmean = weighted / weight_sum[:, None]
    vwmean[weight_sum == 0] = np.nan

    # Largest usable lesion per series: sort by (series, voxel count) and take the last row of each series.
    candidates = np.flatnonzero(usable)
    ranked = candidates[np.lexsort((weights[candidates], group[candidates]))]
    last = np.r_[group[ranked][1:] != group[ranked][:-1], True] if len(ranked) else np.zeros(0, bool)
    largest = np.full((n, len(features)), np.nan)
    chosen = ranked[last]
    largest[group[chosen]] = values.to_numpy(dtype=float)[chosen]

    first = frame.groupby(group, sort=True).first()
    out = pd.DataFrame({c: first[c].to_numpy() for c in ID_COLUMNS if c in frame.columns})
    out["lesion_count"] = count
    out["lesions_with_features"] = np.bincount(group, weights=usable.astype(float), minlength=n).astype(int)
    if "volume_ml" in frame.columns:
        out["total_volume_ml"] = np.bincount(group, weights=pd.to_numeric(frame["volume_ml"]).to_numpy(float),
                                             minlength=n)
    blocks = [
        pd.DataFrame(largest, columns=[f"largest_{c}" for c in features]),
        pd.DataFrame(vwmean, columns=[f"vwmean_{c}" for c in features]),
        pd.DataFrame({c: first[c].to_numpy() for c in TARGET_COLUMNS if c in frame.columns}),
    ]
    return pd.concat([out, *blocks], axis=1)
