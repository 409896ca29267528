"""Segmentation on real CT: a held-out real scan with inserted metastases, and the real LiTS lesion.

Cases (all read from ../shared/data, never from the repository):

- ``ts_dicom_<k>``: the real TotalSegmentator DICOM series (512 x 512 x 20, 0.98 x 0.98 x 2 mm; held out of the default
  model's training data) with its TotalSegmentator liver as the liver reference; variant 0 as it is (no lesion: false
  positives on a clean real liver), variants 1.. with metastases inserted by :mod:`livermets.synth.insertion`
  (seeded; the scan's own noise is kept inside the lesions);
- ``lits_tiny``: the real LiTS case with its real lesion, its in-plane spacing corrected to 5.3125 mm (the file's
  header keeps the pre-downsampling 0.664 mm).

For each model it prints liver Dice (median), lesion Dice (median over scans with lesions), sensitivity for lesions of
at least 10 mm (longest axial diameter), PPV and false-positive lesions per scan (paper's any-overlap rule), and the
time to segment a 512 x 512 x 150 CT (the real 3 mm example CT resampled onto that grid).

Run by hand::

    .venv/bin/python benchmarks/bench_seg_realct.py --model default --model /tmp/phantom_model --out /tmp/realct
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.imaging.geometry import geometry_differences, reorient_like
from livermets.imaging.io import read_image
from livermets.lesions.scan_metrics import evaluate_scan
from livermets.segmentation.predict import Segmenter
from livermets.synth.insertion import draw_lesions, insert_lesions

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LITS_PIXEL_MM = 0.664062 * 512 / 64


@dataclass
class Case:
    name: str
    image: sitk.Image
    truth: np.ndarray  # (z, y, x) LiTS labels


def _like(array: np.ndarray, reference: sitk.Image, dtype: type) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(dtype))
    image.CopyInformation(reference)
    return image


def dicom_cases(shared: Path, variants: int, seed: int) -> list[Case]:
    ct = read_image(shared / "totalsegmentator" / "example_ct_dicom")
    seg = reorient_like(sitk.ReadImage(str(shared / "totalsegmentator" / "example_seg_dicom.nii.gz")), ct)
    if geometry_differences(seg, ct):
        raise SystemExit(f"segmentation is not on the DICOM grid: {geometry_differences(seg, ct)}")
    hu0 = sitk.GetArrayFromImage(ct).astype(np.float32)
    liver = (sitk.GetArrayFromImage(seg) == 5).astype(np.float32)
    spacing_zyx = tuple(float(s) for s in reversed(ct.GetSpacing()))
    cases = []
    for k in range(variants):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
        hu = hu0.copy()
        specs = [] if k == 0 else draw_lesions(rng, count=int(rng.integers(3, 9)))
        lesion_occ, _ = insert_lesions(hu, liver, spacing_zyx, rng, specs)  # type: ignore[arg-type]
        truth = liver.astype(np.uint8)
        truth[(lesion_occ >= 0.5) & (truth == 1)] = 2
        cases.append(Case(f"ts_dicom_{k}", _like(np.rint(hu), ct, np.int16), truth))
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


def evaluate_model(model: str, cases: list[Case]) -> pd.DataFrame:
    segmenter = Segmenter(model)
    rows = []
    for case in cases:
        tick = time.perf_counter()
        predicted = sitk.GetArrayFromImage(segmenter.predict_image(case.image, case.name))
        seconds = time.perf_counter() - tick
        result = evaluate_scan(case.truth, predicted, case.image.GetSpacing(), case.name, size_strata_mm=(10,))
        rows.append({"model": model, **result.row, "seconds": round(seconds, 2)})
    return pd.DataFrame(rows)


def summarise(per_scan: pd.DataFrame) -> dict[str, float]:
    with_lesions = per_scan[per_scan["n_ref"] > 0]
    n_ref10, tp10 = per_scan["n_ref_ge10mm"].sum(), per_scan["tp_ge10mm"].sum()
    n_pred = per_scan["n_pred"].sum()
    return {
        "scans": len(per_scan),
        "liver_dice_median": float(per_scan["dice_liver"].median()),
        "lesion_dice_median": float(with_lesions["dice_lesion"].median()),
        "lesions_ge10mm": int(n_ref10),
        "sensitivity_ge10mm": float(tp10 / n_ref10) if n_ref10 else float("nan"),
        "sensitivity_all": float(per_scan["tp"].sum() / per_scan["n_ref"].sum()),
        "ppv": float(per_scan["tp_pred"].sum() / n_pred) if n_pred else float("nan"),
        "fp_per_scan": float(per_scan["fp"].mean()),
        "fp_per_scan_max": float(per_scan["fp"].max()),
    }


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
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, default=None, help="write per_scan.csv and summary.csv here")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    cases = [*dicom_cases(args.shared, args.variants, args.seed), lits_case(args.shared)]
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
        subsets = {"ts_dicom": frame[frame["series_id"].str.startswith("ts_dicom")],
                   "lits_tiny": frame[frame["series_id"] == "lits_tiny"]}
        for name, part in subsets.items():
            row[f"{name}_liver_dice"] = float(part["dice_liver"].median())
            row[f"{name}_fp_per_scan"] = float(part["fp"].mean())
        if big is not None:
            row["seconds_512x512x150"] = time_big(path, big)[-1]
        summary.append(row)
        print(frame[["series_id", "dice_liver", "dice_lesion", "n_ref", "n_ref_ge10mm", "tp_ge10mm", "n_pred", "fp",
                     "seconds"]].to_string(index=False))
    table = pd.DataFrame(summary)
    print(table.T.to_string())
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        pd.concat(per_scan).to_csv(args.out / "per_scan.csv", index=False)
        table.to_csv(args.out / "summary.csv", index=False)


if __name__ == "__main__":
    main()
