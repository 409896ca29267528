"""Train the ``cpu`` preset on a synthetic ``demo`` cohort within a time budget and evaluate the held-out test split.

Run by hand (not in CI); every step is a ``livermets`` CLI call so that this measures what a user gets:

    .venv/bin/python benchmarks/bench_seg_synthetic.py [--patients 48] [--minutes 15] [--model unet] [--work DIR]
        [--config cpu|YAML]

1. ``livermets synth --size demo --patients 48`` (skipped if the cohort exists in ``--work``): 106 train, 38 val and
   40 test series; 16 patients give only 38 training series, on which the network
   overfits within minutes, and 6 test scans, too few for a stable median,
2. ``livermets seg train --config cpu --max-minutes M --device cpu`` (skipped if the model exists),
3. ``livermets seg predict --split test`` (with and without ``--tta``),
4. ``livermets seg evaluate --size-strata 10`` on the test rows,
5. which generated lesions were found, by kind (hypo/rim/hyper) and diameter: each truth lesion of ``lesions.csv`` is
   the reference component (cc3d, 26-connectivity, as in ``seg evaluate``) at its centroid; lesions whose centroid
   falls outside the lesion label or on a component shared with another lesion are left out, and the count is printed.

Prints the training time and epochs, median lesion Dice, lesion sensitivity for lesions >= 10 mm, liver Dice and the
phantom-benchmark targets (median lesion Dice >= 0.6, sensitivity >= 0.8 for lesions >= 10 mm, liver Dice >= 0.9). The
machine load (other processes) is printed too: it changes how many epochs fit into the budget.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.imaging.io import read_label
from livermets.lesions.components import LESION_VALUE, label_components

LIVERMETS = [sys.executable, "-m", "livermets"]


def run(args: list[str]) -> float:
    print("$", " ".join(args[2:] if args[:2] == LIVERMETS[:2] else args), flush=True)
    tick = time.monotonic()
    subprocess.run(args, check=True)
    return time.monotonic() - tick


def truth_components(cohort: Path, test: pd.DataFrame) -> pd.DataFrame:
    """Each generated lesion of the test series with the reference component (``lesion_id``) at its centroid."""
    truth = pd.read_csv(cohort / "lesions.csv")
    truth = truth[truth["series_id"].isin(test["series_id"]) & (truth["voxels"] > 0)].copy()
    ids = np.zeros(len(truth), np.int64)
    for series_id, rows in truth.groupby("series_id"):
        label = read_label(test.loc[test["series_id"] == series_id, "label"].iloc[0])
        components = label_components(sitk.GetArrayViewFromImage(label) == LESION_VALUE).labels
        for position, row in zip(truth.index.get_indexer(rows.index), rows.itertuples(), strict=True):
            point = (row.centroid_x_mm, row.centroid_y_mm, row.centroid_z_mm)  # LPS, as SimpleITK's physical space
            x, y, z = label.TransformPhysicalPointToIndex(point)
            inside = all(0 <= i < n for i, n in zip((x, y, z), label.GetSize(), strict=True))
            ids[position] = components[z, y, x] if inside else 0
    truth["lesion_id"] = ids
    shared = truth.duplicated(["series_id", "lesion_id"], keep=False)
    return truth[(truth["lesion_id"] > 0) & ~shared]


def detection_by_kind(truth: pd.DataFrame, per_lesion: pd.DataFrame) -> pd.DataFrame:
    """Share of generated lesions detected, by kind and generated (equivalent-sphere) diameter."""
    reference = per_lesion[per_lesion["side"] == "reference"][["series_id", "lesion_id", "status"]]
    found = truth.merge(reference, on=["series_id", "lesion_id"], how="inner")
    found["size"] = pd.cut(found["diameter_mm"], [0, 10, 15, 20, np.inf], right=False,
                           labels=["< 10 mm", "10-15 mm", "15-20 mm", ">= 20 mm"])
    found["detected"] = found["status"] == "TP"
    table = found.pivot_table(index="kind", columns="size", values="detected", aggfunc=["mean", "size"],
                              observed=False)
    return pd.DataFrame(table["mean"].round(2).astype(str) + " of " + table["size"].astype(str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/livermets_bench_seg"))
    parser.add_argument("--patients", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--model", default="unet", choices=["unet", "segresnet"])
    parser.add_argument("--config", default="cpu")
    args = parser.parse_args()

    cohort = args.work / f"cohort_demo_p{args.patients}_s{args.seed}"
    if not (cohort / "manifest.csv").is_file():
        run([*LIVERMETS, "synth", "--out", str(cohort), "--patients", str(args.patients), "--size", "demo",
             "--seed", str(args.seed), "--no-overview"])
    manifest = pd.read_csv(cohort / "manifest.csv")
    print("cohort:", manifest.groupby("split")["series_id"].count().to_dict(), "series")
    test = manifest[manifest["split"] == "test"].copy()
    for column in ("image", "label"):
        test[column] = [str((cohort / p).resolve()) for p in test[column]]
    test_manifest = args.work / "test_manifest.csv"
    test.to_csv(test_manifest, index=False)

    model_dir = args.work / f"model_{args.model}_{Path(args.config).stem}_p{args.patients}_{args.minutes:g}min"
    load_before = os.getloadavg()
    if not (model_dir / "model.safetensors").is_file():
        train_seconds = run([*LIVERMETS, "seg", "train", "--model", args.model, "--manifest",
                             str(cohort / "manifest.csv"), "--out", str(model_dir), "--config", args.config,
                             "--device", "cpu", "--max-minutes", str(args.minutes)])
        print(f"training wall time {train_seconds / 60:.1f} min; load average before/after "
              f"{load_before[0]:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    log = pd.read_csv(model_dir / "train_log.csv")
    best = log.loc[log["epoch"] == log["best_epoch"].iloc[-1]].iloc[0]
    calibrated = (f" (at threshold {best['val_lesion_threshold']}: {best['val_lesion_dice_at_threshold']:.3f}, "
                  f"sensitivity {best['val_lesion_sensitivity']:.3f})" if "val_lesion_threshold" in log else "")
    print(f"epochs {int(log['epoch'].max())} in {log['elapsed_minutes'].iloc[-1]:.1f} min, best epoch "
          f"{int(best['epoch'])}: val lesion Dice {best['val_lesion_dice']:.3f}{calibrated}, val liver Dice "
          f"{best['val_liver_dice']:.3f}")
    calibration = model_dir / "lesion_threshold.csv"
    if calibration.is_file():
        table = pd.read_csv(calibration)
        chosen = table.loc[table["mean_val_lesion_dice"].idxmax()]
        print(f"lesion threshold {chosen['threshold']} (val lesion Dice {chosen['mean_val_lesion_dice']:.3f}; "
              f"argmax {table['mean_val_lesion_dice'].iloc[0]:.3f})")

    truth = truth_components(cohort, test)
    for tta in (False, True):
        name = "tta" if tta else "plain"
        pred = args.work / f"pred_{model_dir.name}_{name}"
        seconds = run([*LIVERMETS, "-q", "seg", "predict", "--model", str(model_dir), "--manifest", str(test_manifest),
                       "--out", str(pred), "--device", "cpu", *(["--tta"] if tta else [])])
        evaluation = args.work / f"eval_{model_dir.name}_{name}"
        run([*LIVERMETS, "-q", "seg", "evaluate", "--pred-dir", str(pred), "--manifest", str(test_manifest),
             "--out", str(evaluation), "--size-strata", "10", "--n-boot", "200"])
        table = pd.read_csv(evaluation / "table3.csv").iloc[0]
        per_scan = pd.read_csv(evaluation / "per_scan.csv")
        print(
            f"[{name}] test scans {len(per_scan)} ({int(table['n_ref_lesions'])} reference lesions, "
            f"{int(table['n_ref_ge10mm'])} >= 10 mm); predict {seconds:.0f} s total\n"
            f"  median lesion Dice {table['median_dice_lesion']:.3f} (target >= 0.6)\n"
            f"  lesion sensitivity >= 10 mm {table['sensitivity_ge10mm']:.3f} (target >= 0.8); all sizes "
            f"{table['sensitivity']:.3f}; PPV {table['ppv']:.3f}; FP/scan {table['fp_per_scan_mean']:.2f}\n"
            f"  median liver Dice {table['median_dice_liver']:.3f} (target >= 0.9)\n"
            f"  share detected by generated kind and diameter ({len(truth)} generated lesions with their own "
            f"reference component):\n{detection_by_kind(truth, pd.read_csv(evaluation / 'per_lesion.csv'))}",
            flush=True,
        )


if __name__ == "__main__":
    main()
