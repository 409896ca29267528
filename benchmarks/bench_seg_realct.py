"""Segmentation on real CT: a held-out real scan with inserted metastases, and the real LiTS lesion.

Cases (all read from ../shared/data, never from the repository):

- ``ts_dicom_<k>``: the real TotalSegmentator DICOM series (512 x 512 x 20, 0.98 x 0.98 x 2 mm; held out of the default
  model's training data) with its TotalSegmentator liver as the liver reference; variant 0 as it is (no lesion: false
  positives on a clean real liver), variants 1.. with metastases inserted by :mod:`livermets.synth.insertion`
  (seeded; the scan's own noise is kept inside the lesions);
- ``ts_large_<k>``: the same real scan with 1-3 large metastases of 30-100 mm inserted (half of them confluent with
  satellites, some bulging beyond the liver surface). The DICOM series covers 40 mm cranio-caudally, so these lesions
  are cut by the field of view through-plane, as a large tumour is on a partial scan;
- ``lits_tiny``: the real LiTS case with its real lesion, its in-plane spacing corrected to 5.3125 mm (the file's
  header keeps the pre-downsampling 0.664 mm).

For each model it prints liver Dice (median), lesion Dice (median over scans with lesions), and by both matching
rules (the paper's any-overlap and LiTS, IoU > 0.5) the sensitivity per size stratum (< 10, 10-20, 20-50, > 50 mm
longest axial diameter), PPV and false-positive lesions per scan; and the time to segment a 512 x 512 x 150 CT (the
real 3 mm example CT resampled onto that grid).

Run by hand::

    .venv/bin/python benchmarks/bench_seg_realct.py --model default --model /tmp/phantom_model --out /tmp/realct
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.imaging.geometry import geometry_differences, reorient_like
from livermets.imaging.io import read_image
from livermets.lesions.scan_metrics import evaluate_scan, stratum_names
from livermets.segmentation.lesion_size import model_min_lesion_size, remove_small_lesions
from livermets.segmentation.options import PredictionOptions
from livermets.segmentation.predict import Segmenter
from livermets.synth.insertion import LesionSpec, draw_lesions, insert_lesions

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LITS_PIXEL_MM = 0.664062 * 512 / 64
STRATA_MM = (10.0, 20.0, 50.0)
RULES = ("paper", "lits")


@dataclass
class Case:
    name: str
    image: sitk.Image
    truth: np.ndarray  # (z, y, x) LiTS labels


def _like(array: np.ndarray, reference: sitk.Image, dtype: type) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(dtype))
    image.CopyInformation(reference)
    return image


def _large_specs(rng: np.random.Generator) -> list[LesionSpec]:
    """1-3 metastases of 30-100 mm, half of them confluent (1-3 satellites)."""
    specs = draw_lesions(rng, count=int(rng.integers(1, 4)), diameter_range_mm=(30.0, 100.0))
    return [replace(s, satellites=int(rng.integers(1, 4)) if rng.random() < 0.5 else 0) for s in specs]


def dicom_cases(shared: Path, variants: int, large: int, seed: int) -> list[Case]:
    ct = read_image(shared / "totalsegmentator" / "example_ct_dicom")
    seg = reorient_like(sitk.ReadImage(str(shared / "totalsegmentator" / "example_seg_dicom.nii.gz")), ct)
    if geometry_differences(seg, ct):
        raise SystemExit(f"segmentation is not on the DICOM grid: {geometry_differences(seg, ct)}")
    hu0 = sitk.GetArrayFromImage(ct).astype(np.float32)
    liver = (sitk.GetArrayFromImage(seg) == 5).astype(np.float32)
    spacing_zyx = tuple(float(s) for s in reversed(ct.GetSpacing()))
    plan = [(f"ts_dicom_{k}", (k,)) for k in range(variants)] + [(f"ts_large_{k}", (1000 + k,)) for k in range(large)]
    cases = []
    for name, key in plan:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
        hu = hu0.copy()
        if name == "ts_dicom_0":
            specs: list[LesionSpec] = []
        elif name.startswith("ts_large"):
            specs = _large_specs(rng)
        else:
            specs = draw_lesions(rng, count=int(rng.integers(3, 9)))
        lesion_occ, _ = insert_lesions(hu, liver, spacing_zyx, rng, specs)  # type: ignore[arg-type]
        truth = liver.astype(np.uint8)
        truth[lesion_occ >= 0.5] = 2  # the liver includes its lesions
        cases.append(Case(name, _like(np.rint(hu), ct, np.int16), truth))
    return cases


def lits_case(shared: Path) -> Case:
    image = sitk.ReadImage(str(shared / "lits_tiny" / "volume.nii.gz"))
    label = sitk.ReadImage(str(shared / "lits_tiny" / "segmentation.nii.gz"))
    spacing = (LITS_PIXEL_MM, LITS_PIXEL_MM, image.GetSpacing()[2])
    image.SetSpacing(spacing)
    return Case("lits_tiny", image, sitk.GetArrayFromImage(label).astype(np.uint8))


def big_ct(shared: Path) -> sitk.Image:
    """The real 3 mm example CT resampled onto a 512 x 512 x 150 grid covering the same extent."""
    ct = read_image(shared / "totalsegmentator" / "example_ct.nii.gz")
    size = (512, 512, 150)
    spacing = tuple(n * s / m for n, s, m in zip(ct.GetSize(), ct.GetSpacing(), size, strict=True))
    return sitk.Resample(ct, size, sitk.Transform(), sitk.sitkLinear, ct.GetOrigin(), spacing, ct.GetDirection(),
                         -1024.0, sitk.sitkInt16)


def evaluate_model(model: str, cases: list[Case], options: PredictionOptions | None = None) -> pd.DataFrame:
    """One row per scan and rule: the scan's metrics with per-stratum counts.

    The prediction loses its lesions below the model's minimum lesion size, as ``seg predict`` and ``analyze`` do.
    """
    segmenter = Segmenter(model, options=options)
    limit = model_min_lesion_size(segmenter, options)
    rows = []
    for case in cases:
        tick = time.perf_counter()
        label, _ = remove_small_lesions(segmenter.predict_image(case.image, case.name), limit)  # as seg predict does
        predicted = sitk.GetArrayFromImage(label)
        seconds = time.perf_counter() - tick
        for rule in RULES:
            result = evaluate_scan(case.truth, predicted, case.image.GetSpacing(), case.name, rule=rule,
                                   size_strata_mm=STRATA_MM)
            rows.append({"model": model, **result.row, "seconds": round(seconds, 2)})
    return pd.DataFrame(rows)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def summarise(per_scan: pd.DataFrame) -> dict[str, float]:
    """Liver and lesion Dice, and per rule: sensitivity overall and per stratum, PPV, FP per scan."""
    paper = per_scan[per_scan["rule"] == "paper"]
    with_lesions = paper[paper["n_ref"] > 0]
    out: dict[str, float] = {"scans": len(paper), "liver_dice_median": float(paper["dice_liver"].median()),
                             "lesion_dice_median": float(with_lesions["dice_lesion"].median()),
                             "lesions": int(paper["n_ref"].sum())}
    for rule in RULES:
        part = per_scan[per_scan["rule"] == rule]
        out[f"{rule}_sensitivity"] = _ratio(part["tp"].sum(), part["n_ref"].sum())
        for name in stratum_names(STRATA_MM):
            out[f"{rule}_sens_{name}"] = _ratio(part[f"tp_{name}"].sum(), part[f"n_ref_{name}"].sum())
            if rule == "paper":
                out[f"n_ref_{name}"] = int(part[f"n_ref_{name}"].sum())
        out[f"{rule}_ppv"] = _ratio(part["tp_pred"].sum(), part["n_pred"].sum())
        out[f"{rule}_fp_per_scan"] = float(part["fp"].mean())
        out[f"{rule}_fp_per_scan_max"] = float(part["fp"].max())
    return out


def time_big(model: str, image: sitk.Image, repeats: int = 2) -> list[float]:
    segmenter = Segmenter(model)
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        segmenter.predict_image(image, "512x512x150")
        times.append(round(time.perf_counter() - tick, 1))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True,
                        help="model folder, or 'default' for the shipped model (repeat to compare)")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--variants", type=int, default=6, help="DICOM variants (the first without lesions)")
    parser.add_argument("--large", type=int, default=4, help="DICOM variants with 30-100 mm metastases")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, default=None, help="write per_scan.csv and summary.csv here")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    cases = [*dicom_cases(args.shared, args.variants, args.large, args.seed), lits_case(args.shared)]
    print(f"{len(cases)} real-CT cases; reference lesions: "
          + ", ".join(f"{c.name} {len(np.unique(c.truth)) > 2 and 'yes' or 'no'}" for c in cases))
    big = None if args.no_timing else big_ct(args.shared)
    per_scan, summary = [], []
    for model in args.model:
        from livermets.segmentation.default_model import resolve_model

        path = str(resolve_model(None if model == "default" else model))
        frame = evaluate_model(path, cases)
        per_scan.append(frame)
        row = {"model": model, **summarise(frame)}
        paper = frame[frame["rule"] == "paper"]
        subsets = {"ts_dicom": paper[paper["series_id"].str.startswith("ts_dicom")],
                   "ts_large": paper[paper["series_id"].str.startswith("ts_large")],
                   "lits_tiny": paper[paper["series_id"] == "lits_tiny"]}
        for name, part in subsets.items():
            row[f"{name}_liver_dice"] = float(part["dice_liver"].median())
            row[f"{name}_fp_per_scan"] = float(part["fp"].mean())
        if big is not None:
            row["seconds_512x512x150"] = time_big(path, big)[-1]
        summary.append(row)
        print(frame[["series_id", "rule", "dice_liver", "dice_lesion", "n_ref", "tp", "n_pred", "fp",
                     "seconds"]].to_string(index=False))
    table = pd.DataFrame(summary)
    print(table.T.to_string())
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        pd.concat(per_scan).to_csv(args.out / "per_scan.csv", index=False)
        table.to_csv(args.out / "summary.csv", index=False)


if __name__ == "__main__":
    main()
