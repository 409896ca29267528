"""Plausibility checks: each flag fires on a crafted label map + CT and on nothing else; predict_cohort records them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cc3d
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from conftest import tiny_config_dict
from livermets.errors import UserInputError
from livermets.segmentation.config import QCConfig, config_from_dict
from livermets.segmentation.predict import predict_cohort, qc_path
from livermets.segmentation.qc import FLAG_CODES, QCRecord, check_prediction

SPACING = (0.9, 0.9, 4.0)
MARGIN = 6
Box = tuple[slice, slice, slice]


def scene(
    spacing: tuple[float, float, float] = SPACING, liver_ml: float = 1500.0, start: tuple[int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, Box]:
    """CT (air, fat, a box liver of about ``liver_ml`` mL, one bone voxel) and its label map, ``(z, y, x)``."""
    side_mm = (liver_ml * 1000.0) ** (1 / 3)
    nx, ny, nz = (round(side_mm / s) for s in spacing)
    shape = (nz + 2 * MARGIN, ny + 2 * MARGIN, nx + 2 * MARGIN)
    hu = np.full(shape, -1000, np.int16)
    hu[2:-2, 2:-2, 2:-2] = -80
    z0, y0, x0 = start if start is not None else (MARGIN, MARGIN, MARGIN)
    liver = (slice(z0, z0 + nz), slice(y0, y0 + ny), slice(x0, x0 + nx))
    hu[liver] = 60
    hu[shape[0] // 2, 3, 3] = 700  # a rib
    label = np.zeros(shape, np.uint8)
    label[liver] = 1
    return hu, label, liver


def check(hu: np.ndarray, label: np.ndarray, spacing: tuple[float, float, float] = SPACING,
          **qc: object) -> QCRecord:
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing(spacing)
    ct.SetOrigin((-120.0, 30.0, -400.0))
    lab = sitk.GetImageFromArray(label)
    lab.CopyInformation(ct)
    return check_prediction(lab, ct, QCConfig(**qc), "case1")  # type: ignore[arg-type]


def add_cubes(label: np.ndarray, liver: Box, n: int, size: int = 2, step: int = 4) -> list[tuple[int, int, int]]:
    """``n`` separate lesion cubes of ``size`` voxels per side on a grid inside the liver; return their corners."""
    z = liver[0].start + 5
    ys = range(liver[1].start + 4, liver[1].stop - 4, step)
    xs = range(liver[2].start + 4, liver[2].stop - 4, step)
    corners = [(y, x) for y in ys for x in xs][:n]
    assert len(corners) == n
    for y, x in corners:
        label[z : z + size, y : y + size, x : x + size] = 2
    return [(z, y, x) for y, x in corners]


def test_clean_prediction_has_no_flags() -> None:
    hu, label, liver = scene()
    add_cubes(label, liver, 3, size=4, step=10)
    hu[label == 2] = 20
    record = check(hu, label)
    assert record.flags == []
    expected_ml = float((label > 0).sum()) * np.prod(SPACING) / 1000
    assert record.liver_ml == pytest.approx(expected_ml)
    assert 1400 < record.liver_ml < 1600
    assert record.lesion_ml == pytest.approx(3 * 64 * np.prod(SPACING) / 1000)
    assert (record.n_lesions, record.n_speckles, record.n_lesions_outside_liver) == (3, 0, 0)
    assert (record.hu_min, record.hu_max) == (-1000, 700)
    assert record.liver_edge_fraction == 0 and record.liver_edges == []
    data = json.loads(json.dumps(record.to_dict()))
    assert data["flags"] == [] and data["flag_codes"] == [] and data["spacing_mm"] == list(SPACING)


def test_no_liver() -> None:
    hu, label, _ = scene()
    record = check(hu, np.zeros_like(label))
    assert record.codes == ["no_liver"]
    assert record.liver_ml == 0 and record.n_lesions == 0


@pytest.mark.parametrize("liver_ml", [300.0, 5000.0])
def test_liver_volume(liver_ml: float) -> None:
    hu, label, _ = scene(liver_ml=liver_ml)
    record = check(hu, label)
    assert record.codes == ["liver_volume"]
    assert record.liver_ml == pytest.approx(liver_ml, rel=0.05)
    assert "mL" in record.flags[0].message
    assert check(hu, label, liver_ml=(100.0, 6000.0)).codes == []  # the range comes from the config


def test_many_lesions() -> None:
    hu, label, liver = scene()
    add_cubes(label, liver, 50, size=3, step=5)
    assert check(hu, label).codes == []  # exactly max_lesions is allowed
    add_cubes(label, liver, 51, size=3, step=5)
    record = check(hu, label)
    assert record.codes == ["many_lesions"]
    assert record.n_lesions == 51 and "51 lesion components" in record.flags[0].message


@pytest.mark.parametrize(
    ("n_big", "n_small", "flagged"),
    [(10, 5, True), (10, 4, False), (1, 2, True), (2, 2, False)],  # >= speckle_min_count, or more than half small
)
def test_speckle(n_big: int, n_small: int, flagged: bool) -> None:
    hu, label, liver = scene()
    corners = add_cubes(label, liver, n_big + n_small, size=3, step=5)  # 3 x 3 x 3 voxels: 0.087 mL
    for z, y, x in corners[:n_small]:  # n_small of the cubes shrunk to one voxel: 0.0032 mL
        label[z : z + 3, y : y + 3, x : x + 3] = 1
        label[z, y, x] = 2
    record = check(hu, label)
    assert record.n_lesions == n_big + n_small and record.n_speckles == n_small
    assert record.codes == (["speckle"] if flagged else [])
    assert ("0.03 mL (qc.speckle_ml)" in " ".join(f.message for f in record.flags)) == flagged


def test_speckle_is_physical_and_counts_removed_specks() -> None:
    """A component is a speck by its volume in mL, whatever the voxel size; the specks the minimum lesion size
    removed still count (they say the model's output was noisy)."""
    from livermets.segmentation.lesion_size import MinLesionSize, remove_small_lesions

    hu, label, liver = scene()
    corners = add_cubes(label, liver, 6, size=3, step=5)
    for z, y, x in corners[:5]:
        label[z : z + 3, y : y + 3, x : x + 3] = 1
        label[z, y, x] = 2  # 0.0032 mL
    assert check(hu, label, speckle_ml=0.003).n_speckles == 0  # below the limit in mL, not in voxels
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing(SPACING)
    lab = sitk.GetImageFromArray(label)
    lab.CopyInformation(ct)
    kept, removed = remove_small_lesions(lab, MinLesionSize(0.03, 3.0))
    record = check_prediction(kept, ct, QCConfig(), "case1", removed)
    assert (record.n_lesions, record.n_lesions_removed, record.n_speckles) == (1, 5, 5)
    assert record.removed_lesion_ml == pytest.approx(5 * np.prod(SPACING) / 1000)
    assert record.codes == ["speckle"] and "5 removed by the minimum lesion size" in record.flags[0].message
    assert record.to_dict()["min_lesion_ml"] == 0.03 and record.to_dict()["min_lesion_diameter_mm"] == 3.0


def test_lesion_outside_liver() -> None:
    hu, label, liver = scene()
    z0, y0, x0 = liver[0].start, liver[1].start, liver[2].start
    add_cubes(label, liver, 1)
    label[z0 - 2 : z0, y0 - 2 : y0, x0 - 2 : x0] = 2  # touches the liver's corner only (26-neighbour)
    assert check(hu, label, speckle_ml=0.02).codes == []  # 8-voxel cubes, 0.026 mL: not specks here
    label[z0 + 3 : z0 + 5, y0 - 4 : y0 - 2, x0 + 8 : x0 + 10] = 2  # in the fat, one voxel away from the liver
    record = check(hu, label, speckle_ml=0.02)
    assert record.codes == ["lesion_outside_liver"]
    assert (record.n_lesions, record.n_lesions_outside_liver) == (3, 1)


@pytest.mark.parametrize("variant", ["min", "max", "p99"])
def test_not_ct(variant: str) -> None:
    hu, label, _ = scene()
    if variant == "min":  # no air: a phantom or an image without its rescale intercept
        hu[hu == -1000] = -100
    elif variant == "max":  # nothing dense
        hu[hu == 700] = 60
    else:  # almost everything below 0 HU
        hu[label > 0] = -50
    record = check(hu, label)
    assert record.codes == ["not_ct"]
    assert {"min": "minimum", "max": "maximum", "p99": "99th percentile"}[variant] in record.flags[0].message


@pytest.mark.parametrize("spacing", [(1.2, 1.2, 4.0), (0.9, 0.4, 4.0), (0.9, 0.9, 0.5), (0.9, 0.9, 6.0)])
def test_spacing(spacing: tuple[float, float, float]) -> None:
    hu, label, _ = scene(spacing)
    record = check(hu, label, spacing)
    assert record.codes == ["spacing"]
    assert "trained" in record.flags[0].message
    assert ("in-plane" in record.flags[0].message) == (spacing[2] == 4.0)


@pytest.mark.parametrize(("start", "edge", "axis"), [((0, MARGIN, MARGIN), "first_slice", 0),
                                                     ((MARGIN, MARGIN, 0), "in_plane_edge", 2)])
def test_liver_cut_off(start: tuple[int, int, int], edge: str, axis: int) -> None:
    hu, label, liver = scene(start=start)
    record = check(hu, label)
    assert record.codes == ["liver_cut_off"]
    assert record.liver_edges == [edge]
    extent = liver[axis].stop - liver[axis].start
    assert record.liver_edge_fraction == pytest.approx(1 / extent)
    assert check(hu, label, edge_fraction=0.5).codes == []


def test_last_slice_is_an_edge_too() -> None:
    hu, label, _ = scene()
    label[-1, 20:30, 20:30] = 1  # a liver tongue on the last slice (a second component: only the edge matters)
    assert check(hu, label).liver_edges == ["last_slice"]


def test_label_on_another_grid_is_rejected() -> None:
    hu, label, _ = scene()
    ct = sitk.GetImageFromArray(hu)
    lab = sitk.GetImageFromArray(label)
    lab.SetSpacing((1.0, 1.0, 3.0))
    with pytest.raises(UserInputError, match="same grid|one grid"):
        check_prediction(lab, ct, QCConfig(), "case1")


def test_config_without_qc_section_loads_and_bad_thresholds_are_named() -> None:
    data = tiny_config_dict()
    assert "qc" in data
    del data["qc"]
    assert config_from_dict(data).qc == QCConfig()
    data["qc"] = {"liver_ml": [3500, 800]}
    with pytest.raises(UserInputError, match="qc.liver_ml"):
        config_from_dict(data)
    data["qc"] = {"max_lesion": 10}
    with pytest.raises(UserInputError, match="qc.max_lesion"):
        config_from_dict(data)


def test_predict_cohort_writes_qc_json_and_columns(
    trained_model: Path, tiny_cohort: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "pred"
    with caplog.at_level(logging.WARNING, logger="livermets.segmentation.predict"):
        table = predict_cohort(trained_model, out, manifest=tiny_cohort, split="test", device="cpu")
    sid = table["series_id"].iloc[0]
    record = json.loads(qc_path(out, sid).read_text())
    assert record["name"] == sid
    assert set(record) >= {"liver_ml", "lesion_ml", "n_lesions", "n_speckles", "n_lesions_outside_liver", "hu_min",
                           "hu_max", "hu_p99", "spacing_mm", "liver_edge_fraction", "liver_edges", "flags",
                           "flag_codes", "n_lesions_removed", "removed_lesion_ml"}
    assert (record["min_lesion_ml"], record["min_lesion_diameter_mm"]) == (0.03, 3.0)  # the provenance of the limit
    assert "spacing" in record["flag_codes"]  # the phantoms have 4 x 4 x 6 mm voxels
    assert record["flag_codes"] == [f["code"] for f in record["flags"]]
    assert set(record["flag_codes"]) <= set(FLAG_CODES)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{sid}_seg.nii.gz")))
    assert record["n_lesions"] == cc3d.connected_components(label == 2, connectivity=26, return_N=True)[1]
    summary = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert {"qc_flags", "n_lesions"} <= set(summary.columns)
    assert summary["qc_flags"].iloc[0] == ";".join(record["flag_codes"])
    assert summary["n_lesions"].iloc[0] == record["n_lesions"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "plausibility" in
                r.getMessage()]
    assert len(warnings) == len(record["flags"])
    assert all(m.startswith(f"{sid}: plausibility check {c}:") for m, c in zip(warnings, record["flag_codes"],
                                                                                 strict=True))

    permissive = QCConfig(liver_ml=(0.0, 1e9), max_lesions=10**6, speckle_ml=0.0, ct_min_hu=1e6, ct_max_hu=-1e6,
                          ct_p99_hu=-1e6, pixel_mm=(0.0, 100.0), slice_mm=(0.0, 100.0), edge_fraction=0.99)
    predict_cohort(trained_model, out, manifest=tiny_cohort, split="test", device="cpu", overwrite=True,
                   qc=permissive)
    assert json.loads(qc_path(out, sid).read_text())["flags"] == []
    summary = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert summary["qc_flags"].tolist() == [""]
