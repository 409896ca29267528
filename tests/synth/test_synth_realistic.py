"""The realistic generator: real anatomy, randomised appearance and acquisition, inserted lesions.

Expected values come from the configured ranges and from independent computations on the arrays (medians of the
real scan per TotalSegmentator class, component counts with scipy), never from the generator's own records alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from livermets import cli
from livermets.synth import insertion, tissues
from livermets.synth.realistic import RealisticConfig, SourceScan, draw_acquisition, render_case
from livermets.synth.realistic_cohort import case_splits, generate_realistic


@pytest.fixture(scope="module")
def source(shared_data: Callable[..., Path]) -> SourceScan:
    return SourceScan("ts", str(shared_data("totalsegmentator", "example_ct_sm.nii.gz")),
                      str(shared_data("totalsegmentator", "example_seg.nii.gz")))


def _coarse(source: SourceScan, **kwargs: object) -> RealisticConfig:
    """Coarse acquisition ranges keep the tests fast; the rendering code is the same."""
    defaults: dict[str, object] = {"cases": 4, "sources": (source,), "seed": 5, "pixel_mm": (1.6, 2.0),
                                   "slice_mm": (2.5, 4.0)}
    return RealisticConfig(**{**defaults, **kwargs})  # type: ignore[arg-type]


def test_a_case_depends_on_seed_and_index_only(source: SourceScan) -> None:
    a = render_case(_coarse(source, cases=4), 2)
    b = render_case(_coarse(source, cases=9), 2)  # another cohort size: same case
    c = render_case(_coarse(source, seed=6), 2)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.label, b.label) and a.record == b.record
    assert a.hu.shape != c.hu.shape or not np.array_equal(a.hu, c.hu)


def test_acquisition_draws_stay_in_their_ranges() -> None:
    config = RealisticConfig(cases=1, sources=(SourceScan("x", "ct", "seg"),))
    rng = np.random.default_rng(0)
    draws = [draw_acquisition(rng, config) for _ in range(300)]
    assert all(0.55 <= d.pixel_mm <= 1.0 and 0.6 <= d.slice_mm <= 5.0 and 5 <= d.noise_sd <= 25 for d in draws)
    phases = [d.phase or "source" for d in draws]
    assert set(phases) == {"source", "native", "arterial", "portal"}
    assert 0.6 < 1 - phases.count("source") / 300 < 0.8  # remap_probability 0.7


def test_tissue_groups_of_the_real_scan(source: SourceScan) -> None:
    hu = sitk.GetArrayFromImage(sitk.ReadImage(source.image)).astype(np.float32)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(source.labels))
    groups = tissue_groups = tissues.tissue_groups(labels, hu)
    assert (tissue_groups[labels == 5] == tissues.LIVER).mean() > 0.99  # liver (a few gas-like voxels aside)
    assert (groups[hu < -400] == tissues.AIR).all()
    assert np.median(hu[groups == tissues.BONE]) > 100  # ribs and vertebrae at 3 mm (partial volume)
    assert -250 < np.median(hu[groups == tissues.FAT]) < -40


@pytest.mark.parametrize("phase", tissues.PHASES)
def test_remapped_group_means_lie_in_the_phase_range(source: SourceScan, phase: tissues.Phase) -> None:
    hu = sitk.GetArrayFromImage(sitk.ReadImage(source.image)).astype(np.float32)
    groups = tissues.tissue_groups(sitk.GetArrayFromImage(sitk.ReadImage(source.labels)), hu)
    real = tissues.group_means(groups, hu)
    rng = np.random.default_rng(1)
    new = tissues.draw_group_hu(rng, phase)
    out = tissues.remap_intensities(hu, groups, real, new, {g: 1.2 for g in new})
    for group, (low, high) in {**tissues.COMMON_HU, **tissues.PHASE_HU[phase]}.items():
        if not np.isfinite(real[group]):
            continue
        median = float(np.median(out[groups == group]))
        assert low - 1 <= median <= high + 1, (tissues.GROUP_NAMES[group], median)
    assert tissues.PHASE_HU[phase][tissues.LIVER][0] >= 40 and tissues.PHASE_HU[phase][tissues.LIVER][1] <= 140
    # texture kept: deviations from the group mean are the real ones times the scale
    liver = groups == tissues.LIVER
    assert np.allclose(np.std(out[liver]), 1.2 * np.std(hu[liver]), rtol=1e-3)
    assert np.array_equal(out[groups == tissues.AIR], hu[groups == tissues.AIR])


def test_lesion_kinds_contrast_and_clipping() -> None:
    rng = np.random.default_rng(3)
    hu = rng.normal(100.0, 8.0, (60, 90, 90)).astype(np.float32)
    liver = np.zeros(hu.shape, np.float32)
    liver[5:55, 10:80, 10:80] = 1.0
    original = hu.copy()
    for kind, sign in (("hypo", -1), ("hyper", 1)):
        work = original.copy()
        spec = insertion.LesionSpec(kind, 20.0, 40.0)  # type: ignore[arg-type]
        occ, rows = insertion.insert_lesions(work, liver, (1.0, 1.0, 1.0), np.random.default_rng(4), [spec])
        inside = occ > 0.99
        assert rows[0]["kind"] == kind and inside.sum() > 0.5 * (4 / 3 * np.pi * 10**3) * 0.5
        assert sign * (np.median(work[inside]) - 100.0) == pytest.approx(40.0, abs=8.0)
        assert (occ[liver == 0] == 0).all()
        # noise inside the lesion matches the scan: the high-frequency deviations are the original ones
        residual = work[inside] - ndimage.gaussian_filter(work, 2.0)[inside]
        assert 0.6 < residual.std() / (original - ndimage.gaussian_filter(original, 2.0))[inside].std() < 1.4


def test_draw_lesions_ranges() -> None:
    rng = np.random.default_rng(0)
    drawn = [insertion.draw_lesions(rng) for _ in range(2000)]
    specs = [s for livers in drawn for s in livers]
    counts = np.array([len(livers) for livers in drawn])
    assert counts.max() <= 50 and counts.max() >= 30 and 0.15 < np.mean(counts == 0) < 0.25
    diameters = np.array([s.diameter_mm for s in specs])
    assert diameters.min() >= 5.0 and diameters.max() <= 120.0
    assert 15.0 < np.median(diameters) < 30.0  # most metastases 10-40 mm (LiTS)
    assert 0.3 < np.mean((diameters >= 10) & (diameters <= 40)) and 0.02 < np.mean(diameters > 80) < 0.1
    assert {s.kind for s in specs} == set(insertion.KINDS)
    assert all(10 <= s.contrast_hu <= 80 for s in specs)
    assert all(s.diameter_mm >= 12 for s in specs if s.kind in ("rim", "necrotic", "calcified"))
    assert all(s.diameter_mm > 30 for s in specs if s.bulge) and any(s.bulge for s in specs)
    assert all(s.diameter_mm > 15 for s in specs if s.satellites) and max(s.satellites for s in specs) == 4
    ranged = insertion.draw_lesions(rng, count=200, diameter_range_mm=(30.0, 100.0))
    assert all(30.0 <= s.diameter_mm <= 100.0 for s in ranged)


def _block_liver(shape: tuple[int, int, int] = (60, 90, 90)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    hu = rng.normal(100.0, 8.0, shape).astype(np.float32)
    liver = np.zeros(shape, np.float32)
    liver[5:55, 10:80, 10:80] = 1.0
    return hu, liver


def test_bulging_lesion_leaves_the_liver_and_plain_one_does_not() -> None:
    hu, liver = _block_liver()
    outside = []
    for bulge in (False, True):
        spec = insertion.LesionSpec("hypo", 50.0, 40.0, bulge=bulge)
        rng = np.random.default_rng(11)  # the same seed: the same centre and shape both times
        occ, _ = insertion.insert_lesions(hu.copy(), liver, (1.0, 1.0, 1.0), rng, [spec])
        outside.append(int(((occ >= 0.5) & (liver == 0)).sum()))
    assert outside[0] == 0
    assert outside[1] > 100  # an exophytic tumour: lesion voxels beyond the liver surface


def test_cysts_are_water_and_stay_liver() -> None:
    hu, liver = _block_liver()
    work = hu.copy()
    specs = [insertion.LesionSpec("cyst", 20.0, 0.0)]
    assert insertion.insert_cysts(work, liver, (1.0, 1.0, 1.0), np.random.default_rng(2), specs) == 1
    changed = np.abs(work - hu) > 40  # the liver is 100 HU, a cyst 0-15 HU
    assert 0.5 * 4 / 3 * np.pi * 10**3 < changed.sum() < 2 * 4 / 3 * np.pi * 10**3
    assert -10 < np.median(work[changed]) < 25
    rng = np.random.default_rng(0)
    drawn = [insertion.draw_cysts(rng) for _ in range(1000)]
    assert 0.25 < np.mean([bool(d) for d in drawn]) < 0.35
    assert all(5.0 <= c.diameter_mm <= 30.0 and c.kind == "cyst" for d in drawn for c in d)


def test_calcified_lesion_has_a_dense_core() -> None:
    hu, liver = _block_liver()
    spec = insertion.LesionSpec("calcified", 30.0, 30.0)
    occ, rows = insertion.insert_lesions(hu, liver, (1.0, 1.0, 1.0), np.random.default_rng(4), [spec])
    centre = tuple(int(round(rows[0][f"centre_{a}_mm"])) for a in "zyx")  # type: ignore[call-overload]
    assert hu[centre] > 200  # calcification, 150-450 HU
    rim = (occ > 0.99) & (ndimage.binary_erosion(occ > 0.99, iterations=3) == 0)
    assert np.median(hu[rim]) < 100  # hypo-attenuating edge


def test_rendered_case_labels_and_geometry(source: SourceScan) -> None:
    config = _coarse(source)
    case = render_case(config, 1)
    assert case.hu.dtype == np.int16 and case.label.dtype == np.uint8 and case.hu.shape == case.label.shape
    assert set(np.unique(case.label)) <= {0, 1, 2}
    assert 1.6 <= case.spacing[0] <= 2.0 and 2.5 <= case.spacing[2] <= 4.0
    liver = case.label > 0
    assert liver.sum() * np.prod(case.spacing) / 1000 > 300  # most of the real liver (about 1 L in this scan)
    liver_mean = float(np.median(case.hu[case.label == 1]))
    expected = case.record["liver_mean_hu"]
    assert abs(liver_mean - expected) < 15
    if case.record["phase"] != "source":
        low, high = tissues.PHASE_HU[case.record["phase"]][tissues.LIVER]
        assert low - 15 <= liver_mean <= high + 15


def test_cohort_writer_and_resume(source: SourceScan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _coarse(source, cases=3)
    out = tmp_path / "real"
    manifest = generate_realistic(out, config)
    assert list(manifest["split"]).count("val") == 1 and len(manifest) == 3
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labels" / "REAL-0002.nii.gz")))
    n_components = ndimage.label(label == 2, np.ones((3, 3, 3)))[1]
    assert manifest.loc[1, "n_lesions"] == n_components
    assert case_splits(20, 0.15, 0).count("val") == 3
    # A run killed after two cases resumes to the same files.
    from livermets.synth import realistic_cohort

    real_write = realistic_cohort._write_case

    def dies_on_third(args: tuple) -> dict:  # type: ignore[type-arg]
        if args[1] == 2:
            raise KeyboardInterrupt
        return real_write(args)

    monkeypatch.setattr(realistic_cohort, "_write_case", dies_on_third)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        generate_realistic(killed, config)
    assert not (killed / "manifest.csv").exists()
    monkeypatch.setattr(realistic_cohort, "_write_case", real_write)
    resumed = generate_realistic(killed, config, resume=True)
    pd.testing.assert_frame_equal(resumed, manifest)
    for i in (1, 2, 3):
        name = f"REAL-{i:04d}.nii.gz"
        for sub in ("images", "labels"):
            assert (killed / sub / name).read_bytes() == (out / sub / name).read_bytes()


def test_cli_realistic_mode_and_bad_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                          source: SourceScan, tmp_path: Path) -> None:
    def run(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["livermets", "-q", "synth", *args])
        try:
            cli.main()
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    assert run("--mode", "realistic", "--source-ct", source.image, "--out", str(tmp_path / "x")) == 2
    assert "--source-labels" in capsys.readouterr().err
    assert run("--mode", "nonsense", "--out", str(tmp_path / "y")) == 2
    assert run("--mode", "realistic", "--size", "tiny", "--source-ct", source.image, "--source-labels",
               source.labels, "--out", str(tmp_path / "w")) == 2
    assert "phantom mode" in capsys.readouterr().err
    assert run("--mode", "realistic", "--source-ct", source.image, "--source-labels", source.labels,
               "--liver-label", "200", "--patients", "1", "--out", str(tmp_path / "z")) == 2
    assert "no voxel with a liver label" in capsys.readouterr().err


def test_field_of_view_cuts_keep_the_liver_centre(source: SourceScan) -> None:
    from livermets.synth.realistic import _field_of_view, load_source

    loaded = load_source(source)
    spacing = np.asarray(loaded.spacing)
    liver_centre = np.argwhere(loaded.labels == tissues.TOTALSEG_LIVER).mean(0) * spacing
    body = np.argwhere(loaded.hu > -500)
    body_lo, body_hi = body.min(0) * spacing, body.max(0) * spacing
    rng = np.random.default_rng(0)
    boxes = [_field_of_view(rng, loaded) for _ in range(200)]
    assert all((lo <= liver_centre).all() and (liver_centre <= hi).all() for lo, hi in boxes)
    assert all((lo >= body_lo - 1e-6).all() and (hi <= body_hi + 1e-6).all() for lo, hi in boxes)
    assert sum(bool((lo > body_lo + 1).any() or (hi < body_hi - 1).any()) for lo, hi in boxes) > 100  # cut-offs


@pytest.mark.parametrize("contrast", [-20.0, 45.0])
def test_vessels_stay_in_the_liver_at_their_contrast(contrast: float) -> None:
    hu = np.full((40, 60, 60), 80.0, np.float32)
    liver = np.zeros(hu.shape, np.float32)
    liver[5:35, 10:50, 10:50] = 1.0
    occ = insertion.insert_vessels(hu, liver, (1.5, 1.0, 1.0), np.random.default_rng(2), contrast)
    assert (occ[liver == 0] == 0).all() and (occ > 0.99).sum() > 50  # a network of tubes, inside the liver only
    np.testing.assert_allclose(hu, 80.0 + contrast * occ, atol=1e-4)
