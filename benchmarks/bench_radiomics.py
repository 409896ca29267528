"""Throughput of `livermets radiomics extract`: serial vs worker processes, and the effect of cropping.

Run by hand (not in CI):

    .venv/bin/python benchmarks/bench_radiomics.py [--patients 10] [--size small] [--workers 2] [--big-slices 300]

1. Writes a synthetic cohort with ``livermets synth`` (default 10 patients, size ``small``: at least 20 series),
   then extracts the paper's features twice in the same run: in-process (1 worker, SimpleITK on one thread like
   each parallel worker) and with ``--workers`` processes. Series without lesions fail fast ("no lesion") and are
   counted as attempted, as in a real run. Prints series/s, lesion voxels/s (label-2 voxels at the original
   resolution) and the speed-up.
2. Times one 512 x 512 x ``--big-slices`` scan with a single 2 cm lesion with and without the crop before
   PyRadiomics (both give identical features; the crop avoids B-spline coefficients for the whole scan).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from livermets.cohort.manifest import load_manifest  # noqa: E402
from livermets.radiomics.extractor import extract_roi, make_extractor  # noqa: E402
from livermets.radiomics.runner import RunSummary, build_tasks, run_extraction  # noqa: E402
from livermets.radiomics.series import ExtractionOptions  # noqa: E402


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _report(name: str, summary: RunSummary, cpu: float) -> None:
    # cpu/wall shows how many cores the run really got: on a shared machine other jobs cap the speed-up.
    print(f"{name:>14}: {summary.attempted} series in {summary.seconds:7.2f} s = "
          f"{summary.series_per_second:6.3f} series/s, {summary.lesion_voxels_per_second:10.0f} lesion voxels/s "
          f"({summary.failed} failed); CPU {cpu:6.1f} s, cores used {cpu / summary.seconds:4.2f}, "
          f"load average {os.getloadavg()[0]:.1f}")


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_check(workers: int) -> float:
    """Speed-up of trivial CPU-bound Python work with ``workers`` processes right now (the ceiling on this machine)."""
    import concurrent.futures as cf
    import multiprocessing

    chunks = [3_000_000] * (4 * workers)
    start = time.perf_counter()
    for n in chunks:
        _burn(n)
    serial = time.perf_counter() - start
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(_burn, chunks))
    return serial / (time.perf_counter() - start)


def cohort_throughput(root: Path, patients: int, size: str, workers: int, seed: int) -> None:
    cohort = root / "cohort"
    subprocess.run([sys.executable, "-m", "livermets", "-q", "synth", "--out", str(cohort), "--patients",
                    str(patients), "--size", size, "--seed", str(seed), "--no-overview"], check=True)
    tasks = build_tasks(load_manifest(cohort / "manifest.csv"))
    voxels = 0
    for task in tasks:
        voxels += int((sitk.GetArrayViewFromImage(sitk.ReadImage(str(task.label))) == 2).sum())
    print(f"cohort: {len(tasks)} series ({size}), {voxels} lesion voxels")
    # Baseline: one worker with the same per-worker configuration as the parallel workers (SimpleITK on one
    # thread), so the ratio measures process scaling; `--workers 1` in the CLI lets ITK use all cores.
    start = _cpu_seconds()
    serial = run_extraction(tasks, root / "serial.csv", ExtractionOptions(single_thread=True), workers=1,
                            show_progress=False)
    serial_cpu = _cpu_seconds() - start
    parallel = run_extraction(tasks, root / "parallel.csv", workers=workers, show_progress=False)
    parallel_cpu = _cpu_seconds() - start - serial_cpu
    _report("1 worker", serial, serial_cpu)
    _report(f"{workers} workers", parallel, parallel_cpu)
    print(f"speed-up: {parallel.series_per_second / serial.series_per_second:.2f}x "
          f"(trivial CPU-bound work with {workers} processes gets {machine_check(workers):.2f}x right now)")
    same = pd.read_csv(root / "serial.csv").equals(pd.read_csv(root / "parallel.csv"))
    print(f"tables identical: {same}")


def crop_effect(slices: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (slices, 512, 512)
    array = rng.normal(40, 20, shape).astype(np.int16)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    spacing = (0.78, 0.78, 1.25)
    lesion = (((z - slices // 2) * spacing[2]) ** 2 + ((y - 250) * spacing[1]) ** 2
              + ((x - 300) * spacing[0]) ** 2) < 10.0**2
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
    mask.CopyInformation(image)
    extractor = make_extractor()
    timings = {}
    results = {}
    for crop in (True, False):
        start = time.perf_counter()
        results[crop] = extract_roi(image, mask, extractor, crop=crop)
        timings[crop] = time.perf_counter() - start
    identical = all(str(results[True][k]) == str(results[False][k]) for k in results[False])
    print(f"512x512x{slices} scan, one lesion of {int(lesion.sum())} voxels: crop {timings[True]:.2f} s, "
          f"no crop {timings[False]:.2f} s ({timings[False] / timings[True]:.1f}x); identical features: {identical}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--size", default="small")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--big-slices", type=int, default=300, help="0 skips the crop measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="livermets_bench_radiomics_") as tmp:
        cohort_throughput(Path(tmp), args.patients, args.size, args.workers, args.seed)
    if args.big_slices:
        crop_effect(args.big_slices, args.seed)


if __name__ == "__main__":
    main()
