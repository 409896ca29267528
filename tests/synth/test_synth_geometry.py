"""The thick "CAP" reconstruction is the thin "SOFT" one averaged over consecutive slices (same acquisition)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.synth.sizes import SIZES


def test_thick_reconstruction_geometry_and_values(tiny_cohort: Path) -> None:
    manifest = pd.read_csv(tiny_cohort / "manifest.csv")
    k = SIZES["tiny"].thick_factor
    for study_id, rows in manifest.groupby("study_id"):
        assert sorted(rows["reconstruction"]) == ["CAP", "SOFT"]
        by = rows.set_index("reconstruction")
        soft = sitk.ReadImage(str(tiny_cohort / by.loc["SOFT", "image"]))
        cap = sitk.ReadImage(str(tiny_cohort / by.loc["CAP", "image"]))
        assert cap.GetSpacing()[:2] == soft.GetSpacing()[:2]
        assert cap.GetSpacing()[2] == k * soft.GetSpacing()[2]
        assert cap.GetSize()[:2] == soft.GetSize()[:2] and cap.GetSize()[2] * k == soft.GetSize()[2]
        assert cap.GetDirection() == soft.GetDirection()
        # A thick slab's centre is the mean of its thin slices' centres: both cover the same physical range.
        assert np.allclose(cap.GetOrigin()[:2], soft.GetOrigin()[:2])
        assert np.isclose(cap.GetOrigin()[2], soft.GetOrigin()[2] + (k - 1) / 2 * soft.GetSpacing()[2])
        thin = sitk.GetArrayFromImage(soft).astype(np.float64)
        thick = sitk.GetArrayFromImage(cap).astype(np.float64)
        averaged = thin.reshape(-1, k, *thin.shape[1:]).mean(axis=1)
        # Each volume is rounded to integer HU (<= 0.5 each); air clipped at -1024 in the thin slices is excluded.
        unclipped = thin.reshape(-1, k, *thin.shape[1:]).min(axis=1) > -1000
        assert np.abs(thick - averaged)[unclipped].max() <= 1.0, study_id
        # Same ne score and truth for both reconstructions.
        assert by["ne_score"].nunique() == 1 and by["n_lesions_truth"].nunique() == 1
        # Partial volume: liver volume agrees within 5 % between reconstructions.
        assert abs(by.loc["CAP", "liver_volume_ml"] / by.loc["SOFT", "liver_volume_ml"] - 1.0) < 0.05
