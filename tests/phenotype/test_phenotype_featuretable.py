"""The schema in livermets.featuretable matches the real feature table's header; validation names the
bad column/row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from livermets import featuretable as ft
from livermets.errors import UserInputError

CSV = ("nih_mip_msclc", "Final_ResampledClassificationData.csv")


def test_schema_equals_published_header(shared_data):
    header = list(pd.read_csv(shared_data(*CSV), nrows=0).columns)
    assert header == ft.ALL_COLUMNS
    first, last = header.index("original_shape_Elongation"), header.index("Num_Lesions")
    assert header[first : last + 1] == ft.FEATURE_COLUMNS
    assert [c for c in header if c.startswith("diagnostics_")] == ft.DIAGNOSTICS_COLUMNS
    assert len(set(ft.ALL_COLUMNS)) == 152


def test_real_table_validates(shared_data):
    frame = ft.read_feature_table(shared_data(*CSV), targets=ft.TARGET_COLUMNS)
    assert frame.shape == (227, 152)
    assert frame["NE_Class"].isin([0, 1]).all()
    assert all(frame[c].dtype == np.float64 for c in ft.FEATURE_COLUMNS)


def _table(n: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, len(ft.FEATURE_COLUMNS))), columns=ft.FEATURE_COLUMNS)
    frame.insert(0, "unique_pt", [f"P{i // 2}" for i in range(n)])
    frame.insert(0, "unique_scandate", [f"S{i}" for i in range(n)])
    frame.insert(0, "File", [f"f{i}.nii.gz" for i in range(n)])
    frame["NE_Class"] = [0, 1] * (n // 2)
    return frame


def test_missing_column_named():
    with pytest.raises(UserInputError, match="missing column 'original_glcm_Idm'"):
        ft.validate_feature_table(_table().drop(columns="original_glcm_Idm"))


@pytest.mark.parametrize("bad", ["abc", np.nan, np.inf])
def test_bad_value_names_column_and_row(bad):
    frame = _table().astype({"original_shape_Flatness": object})
    frame.loc[2, "original_shape_Flatness"] = bad
    with pytest.raises(UserInputError, match=r"'original_shape_Flatness', row 4 \(File=f2.nii.gz\)"):
        ft.validate_feature_table(frame)


def test_bad_class_and_split_named():
    frame = _table()
    frame.loc[1, "NE_Class"] = 2
    with pytest.raises(UserInputError, match="'NE_Class', row 3"):
        ft.validate_feature_table(frame, targets=["NE_Class"])
    frame = _table()
    frame["Group"] = ["train", "val", "tst", "test"]
    with pytest.raises(UserInputError, match="'Group', row 4"):
        ft.validate_feature_table(frame, targets=["Group"])


def test_feature_group():
    groups = [ft.feature_group(c) for c in ft.FEATURE_COLUMNS]
    assert groups.count("shape") == 14 and groups.count("glcm") == 24 and groups.count("lesion count") == 1
    with pytest.raises(UserInputError):
        ft.feature_group("NE_Score")
