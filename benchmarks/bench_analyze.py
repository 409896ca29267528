"""``livermets analyze`` on a CT of 512 x 512 x 150 voxels, and ``livermets run`` throughput with 1 and 2 workers.

1. analyze: the real 3 mm example CT of ../shared/data/totalsegmentator (``example_ct_sm`` with TotalSegmentator's
   liver) resampled onto 512 x 512 x 150 voxels, with metastases inserted into its liver (seeded), analysed by the CLI
   in a child process with the shipped segmentation model and a grouped LR phenotype model trained on the published
   table. Prints wall time and the child's peak resident memory (``ru_maxrss``).
2. run: ``--series`` tiny synthetic series (``livermets synth --size tiny``), analysed by ``livermets run`` with
   ``--workers 1`` and ``--workers 2`` (fresh output folders); prints wall time, series per minute and the ratio.

Run by hand on a quiet machine::

    .venv/bin/python benchmarks/bench_analyze.py --out /tmp/bench_analyze --series 100
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from livermets.synth.insertion import draw_lesions, insert_lesions

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CLI = [sys.executable, "-m", "livermets", "-q"]


def big_ct_with_lesions(shared: Path, seed: int) -> sitk.Image:
    """example_ct_sm resampled to 512 x 512 x 150 (linear), lesions inserted into its liver (label 5)."""
    ct = sitk.ReadImage(str(shared / "totalsegmentator" / "example_ct_sm.nii.gz"))
    seg = sitk.ReadImage(str(shared / "totalsegmentator" / "example_seg.nii.gz"))
    size = (512, 512, 150)
    spacing = tuple(n * s / m for n, s, m in zip(ct.GetSize(), ct.GetSpacing(), size, strict=True))
    grid = dict(size=size, transform=sitk.Transform(), outputOrigin=ct.GetOrigin(), outputSpacing=spacing,
                outputDirection=ct.GetDirection())
    big = sitk.Resample(ct, interpolator=sitk.sitkLinear, defaultPixelValue=-1024.0, outputPixelType=sitk.sitkFloat32,
                        **grid)
    liver = sitk.Resample(seg, interpolator=sitk.sitkNearestNeighbor, defaultPixelValue=0,
                          outputPixelType=sitk.sitkUInt8, **grid)
    hu = sitk.GetArrayFromImage(big)
    mask = (sitk.GetArrayFromImage(liver) == 5).astype(np.float32)
    rng = np.random.default_rng(seed)
    insert_lesions(hu, mask, tuple(reversed(spacing)), rng, draw_lesions(rng, count=6))  # type: ignore[arg-type]
    out = sitk.GetImageFromArray(np.rint(hu).astype(np.int16))
    out.CopyInformation(big)
    return out


def timed(command: list[str]) -> float:
    tick = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - tick


def bench_analyze(out: Path, shared: Path, phenotype: Path | None) -> None:
    ct_path = out / "ct_512x512x150.nii.gz"
    sitk.WriteImage(big_ct_with_lesions(shared, seed=7), str(ct_path), useCompression=True)
    extra = ["--phenotype-model", str(phenotype)] if phenotype else []
    for attempt in (1, 2):
        target = out / f"analyze_{attempt}"
        shutil.rmtree(target, ignore_errors=True)
        seconds = timed([*CLI, "analyze", str(ct_path), "--out", str(target), *extra])
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        burden = pd.read_csv(target / "summary.csv").iloc[0]
        print(f"analyze 512x512x150 (run {attempt}): {seconds:.1f} s wall, peak RSS so far {peak_gb:.2f} GB; "
              f"{int(burden['lesion_count'])} lesions found, liver {burden['liver_volume_ml']:.0f} mL")


def bench_run(out: Path, n_series: int, phenotype: Path | None) -> None:
    cohort = out / "cohort"
    if not (cohort / "manifest.csv").is_file():
        subprocess.run([*CLI, "synth", "--out", str(cohort), "--patients", str(max(2, n_series // 4 + 2)),
                        "--size", "tiny", "--seed", "5", "--no-overview"], check=True)
    frame = pd.read_csv(cohort / "manifest.csv", dtype=str).head(n_series)
    if len(frame) < n_series:
        raise SystemExit(f"the synthetic cohort has only {len(frame)} series")
    frame["image"] = [str((cohort / p).resolve()) for p in frame["image"]]
    manifest = out / f"manifest_{n_series}.csv"
    frame.drop(columns=["label"]).to_csv(manifest, index=False)
    extra = ["--phenotype-model", str(phenotype)] if phenotype else []
    times = {}
    for workers in (1, 2):
        target = out / f"run_{workers}"
        shutil.rmtree(target, ignore_errors=True)
        times[workers] = timed([*CLI, "run", "--manifest", str(manifest), "--out", str(target),
                                "--workers", str(workers), *extra])
        print(f"run {n_series} series, {workers} worker(s): {times[workers]:.1f} s wall, "
              f"{60 * n_series / times[workers]:.1f} series/min")
    print(f"throughput ratio 2 workers / 1 worker: {times[1] / times[2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--skip-run", action="store_true")
    parser.add_argument("--skip-analyze", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"{_dt.date.today()} commit {commit} {platform.processor() or platform.machine()} "
          f"{os.cpu_count()} cores, python {platform.python_version()}")
    published = args.shared / "nih_mip_msclc" / "Final_ResampledClassificationData.csv"
    phenotype = None
    if published.is_file():
        phenotype = args.out / "ne_lr"
        if not (phenotype / "config.json").is_file():
            subprocess.run([*CLI, "phenotype", "train", "--features", str(published), "--out", str(phenotype),
                            "--protocol", "grouped", "--model", "LR", "--n-jobs", "1"], check=True,
                           stdout=subprocess.DEVNULL)
    if not args.skip_analyze:
        bench_analyze(args.out, args.shared, phenotype)
    if not args.skip_run:
        bench_run(args.out, args.series, phenotype)


if __name__ == "__main__":
    main()
