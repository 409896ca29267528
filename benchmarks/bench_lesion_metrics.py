"""Time the evaluation of one 512 x 512 x 700 scan pair with 150 reference lesions on one core.

Run by hand (not in CI), pinned to one core:

    taskset -c 0 .venv/bin/python benchmarks/bench_lesion_metrics.py [--slices 700] [--lesions 150] [--repeats 3]
        [--with-io]

Measured 2026-11-23 on the shared 2-core dev machine under load (other jobs running): evaluate_scan 0.8-1.9 s for
either rule (best of 3), 1.3-3.7 s with lesion diameters / size strata, lesion_table 0.7-1.6 s; read_label of both
maps (uncompressed NIfTI) 1.6-3 s. Target: <= 5 s per pair.

The masks are generated here (an ellipsoidal liver with spherical lesions of 2-15 voxel radius; the prediction is
the reference with lesions shifted by one voxel, 10% of them dropped and 10 small false positives added). Prints
the time of the core evaluation (cc3d labelling of both lesion masks, one-pass overlap histogram, matching, liver
and lesion Dice) for both rules, with and without lesion diameters (needed for size strata), and the time of the
lesion table of the reference.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from livermets.imaging.geometry import check_same_geometry  # noqa: E402
from livermets.imaging.io import read_label  # noqa: E402
from livermets.lesions.components import lesion_table  # noqa: E402
from livermets.lesions.scan_metrics import evaluate_scan  # noqa: E402


def _ball(radius: int) -> np.ndarray:
    grid = np.mgrid[-radius : radius + 1, -radius : radius + 1, -radius : radius + 1]
    return (grid**2).sum(axis=0) <= radius**2


def make_pair(slices: int, n_lesions: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reference and predicted label maps (z, y, x) of shape (slices, 512, 512)."""
    rng = np.random.default_rng(seed)
    shape = (slices, 512, 512)
    reference = np.zeros(shape, dtype=np.uint8)
    zc, yc, xc = slices // 2, 256, 256
    rz, ry, rx = slices * 0.35, 150, 180
    # The liver ellipsoid, written slice by slice to keep memory low.
    yy, xx = np.ogrid[:512, :512]
    for z in range(shape[0]):
        dz = (z - zc) / rz
        if abs(dz) < 1:
            reference[z][((yy - yc) / ry) ** 2 + ((xx - xc) / rx) ** 2 <= 1 - dz * dz] = 1
    prediction = reference.copy()
    placed = 0
    while placed < n_lesions:
        radius = int(rng.integers(2, 16))
        center = rng.normal([zc, yc, xc], [rz / 3, ry / 3, rx / 3]).astype(int)
        box = tuple(slice(c - radius, c + radius + 1) for c in center)
        if any(s.start < 1 or s.stop >= n - 1 for s, n in zip(box, shape, strict=True)):
            continue
        if np.any(reference[box] != 1):  # keep lesions separate and inside the liver
            continue
        ball = _ball(radius)
        reference[box][ball] = 2
        if rng.random() > 0.1:  # 10% missed by the "model"
            shifted = tuple(slice(s.start + 1, s.stop + 1) for s in box)
            prediction[shifted][ball] = 2
        placed += 1
    for _ in range(10):  # small false positives inside the liver
        center = rng.normal([zc, yc, xc], [rz / 3, ry / 3, rx / 3]).astype(int)
        box = tuple(slice(c - 1, c + 2) for c in center)
        if np.all(reference[box] == 1):
            prediction[box] = 2
    return reference, prediction


def _time(function, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=700)
    parser.add_argument("--lesions", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--with-io", action="store_true",
                        help="Also time reading both maps from uncompressed NIfTI with read_label (value check).")
    args = parser.parse_args()

    start = time.perf_counter()
    reference, prediction = make_pair(args.slices, args.lesions)
    print(f"generated {reference.shape} pair in {time.perf_counter() - start:.1f} s "
          f"({reference.size / 1e6:.0f} M voxels, {args.lesions} reference lesions)")
    spacing = (0.7, 0.7, 1.0)
    for rule in ("paper", "lits"):
        result = evaluate_scan(reference, prediction, spacing, rule=rule)
        counts = {k: result.row[k] for k in ("n_ref", "n_pred", "tp", "fn", "fp")}
        seconds = _time(lambda rule=rule: evaluate_scan(reference, prediction, spacing, rule=rule), args.repeats)
        print(f"evaluate_scan rule={rule:5s}: {seconds:.2f} s (best of {args.repeats})  {counts}  "
              f"dice_lesion={result.row['dice_lesion']:.3f}")
    seconds = _time(lambda: evaluate_scan(reference, prediction, spacing, rule="lits", size_strata_mm=(10,)),
                    args.repeats)
    print(f"evaluate_scan rule=lits + diameters/size strata: {seconds:.2f} s")
    image = sitk.GetImageFromArray(reference)
    image.SetSpacing(spacing)
    seconds = _time(lambda: lesion_table(image), 1)
    print(f"lesion_table (reference, no CT): {seconds:.2f} s")
    if args.with_io:
        with tempfile.TemporaryDirectory() as folder:
            paths = []
            for name, array in (("ref", reference), ("pred", prediction)):
                paths.append(Path(folder) / f"{name}.nii")
                sitk.WriteImage(sitk.GetImageFromArray(array), str(paths[-1]))
            start = time.perf_counter()
            ref_image, pred_image = read_label(paths[0]), read_label(paths[1])
            check_same_geometry(ref_image, pred_image, "ref", "pred")
            read_seconds = time.perf_counter() - start
            evaluate_scan(sitk.GetArrayViewFromImage(ref_image), sitk.GetArrayViewFromImage(pred_image), spacing)
            total = time.perf_counter() - start
            print(f"read_label x2 (uncompressed .nii): {read_seconds:.2f} s; read + evaluate: {total:.2f} s")
    print("target: <= 5 s per pair on one core")


if __name__ == "__main__":
    main()
