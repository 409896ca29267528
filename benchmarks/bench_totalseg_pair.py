"""CPU time and peak memory of the TotalSegmentator pair in livermets beside TotalSegmentator's own run.

Both run on the same CT in the same invocation, each in its own child process; the script prints and writes
(``OUT/bench.json``) wall time, CPU time (user + system) and the child's peak resident memory (``ru_maxrss``
from ``os.wait4``).

* CT: the real example CT of ../shared/data/totalsegmentator (``example_ct.nii.gz``, 366 x 303 x 336 mm at 3 mm)
  resampled (linear) onto ``--size`` voxels (default 512 x 512 x 150) at ``--spacing`` (default 0.5 x 0.5 x 1 mm,
  a 256 x 256 x 150 mm field of view centred on the scan, -1024 HU outside), written as NIfTI.
* The stand-in crop model (Dataset297) marks nearly the whole field of view as liver, so the liver-lesion model runs
  on the whole field at 0.75 x 0.75 x 1 mm. The default field of view makes that input 341 x 341 x 150 voxels,
  about the size of a real liver crop with its margin (a 220 x 190 x 170 mm liver box plus 2 x 20 mm gives
  347 x 307 x 210); a 400 x 400 x 225 mm field would give 532 x 532 x 225 voxels, 3.6 times the work.
* Weights: stand-ins with the real architectures (``tests/segmentation/nnunet/standin.py`` with ``tiny=False``:
  nnU-Net's default PlainConvUNet topology for a 128-voxel patch at each model's spacing, 6 stages of 32..320 feature
  maps; TotalSegmentator's own plans.json are not published apart from its weights, so the patch size is assumed).
  Run time does not depend on the weight values.
* livermets: :class:`TotalSegPairSegmenter` (``--liver ts-liver-fast``: Dataset297 liver, which is also the crop;
  ``--liver ts-liver``: Dataset291 at 1.5 mm plus Dataset297 for the crop) and Dataset591 on the liver crop.
* TotalSegmentator 2.18.0: ``totalsegmentator(task="total", fast=True)`` then ``totalsegmentator(task=
  "liver_lesions")`` (which runs Dataset297 again for its crop), offline, usage statistics off
  (tests/segmentation/nnunet/totalseg_reference.py).

Run by hand on a quiet machine (a full-size run takes tens of minutes on 2 cores)::

    .venv/bin/python benchmarks/bench_totalseg_pair.py --out /tmp/bench_tspair
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "totalsegmentator"
LIVERMETS_CHILD = """
import sys, json, time
from pathlib import Path
import SimpleITK as sitk
from livermets.segmentation.nnunet.totalseg import TotalSegPairSegmenter, TotalSegTask
weights, ct, out, liver_name = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
blocks = json.loads(sys.argv[5])
tasks = {name: TotalSegTask.from_registry(block, weights) for name, block in blocks.items()}
pair = TotalSegPairSegmenter(tasks[liver_name], tasks["ts-liver-lesions"], crop=tasks["ts-liver-fast"], device="cpu")
label = pair.predict_image(sitk.ReadImage(ct))
sitk.WriteImage(label, str(out / "livermets_label.nii.gz"))
(out / "livermets_timings.json").write_text(json.dumps(pair.last_timings))
"""


def bench_ct(source: Path, size: tuple[int, ...], spacing: tuple[float, ...], path: Path) -> Path:
    """``source`` resampled onto ``size`` voxels of ``spacing`` mm centred on it, as an Int16 NIfTI."""
    ct = sitk.ReadImage(str(source))
    centre = ct.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in ct.GetSize()])
    direction = ct.GetDirection()
    half = [(n - 1) / 2 * s for n, s in zip(size, spacing, strict=True)]
    origin = [c - sum(direction[3 * r + a] * half[a] for a in range(3)) for r, c in enumerate(centre)]
    image = sitk.Resample(ct, size, sitk.Transform(), sitk.sitkLinear, origin, spacing, direction, -1024.0,
                          sitk.sitkInt16)
    sitk.WriteImage(image, str(path))
    return path


def run_child(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, with the child's own children) and peak RSS (GB) of one child."""
    tick = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - tick
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", default="512x512x150", help="x x y x z voxels of the CT")
    parser.add_argument("--spacing", default="0.5x0.5x1.0", help="x x y x z mm")
    parser.add_argument("--liver", default="ts-liver-fast", choices=("ts-liver-fast", "ts-liver"))
    parser.add_argument("--skip-totalsegmentator", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.segmentation.nnunet.standin import make_standins
    from tests.segmentation.nnunet.test_totalseg_pair import BLOCKS

    args.out.mkdir(parents=True, exist_ok=True)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    spacing = tuple(float(v) for v in args.spacing.lower().split("x"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    load = os.getloadavg()
    print(f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC commit {commit} {platform.machine()} "
          f"{os.cpu_count()} cores, load {load[0]:.1f}; CT {args.size} at {args.spacing} mm")
    weights = args.out / "standins"
    if not (weights / "zips").is_dir():
        make_standins(weights, SHARED / "example_ct_sm.nii.gz", SHARED / "example_seg.nii.gz", tiny=False)
    ct = bench_ct(SHARED / "example_ct.nii.gz", size, spacing, args.out / "ct.nii.gz")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    results: dict[str, object] = {"date": f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d}", "commit": commit,
                                  "machine": f"{platform.machine()} {os.cpu_count()} cores", "load_at_start": load,
                                  "size": size, "spacing_mm": spacing, "liver": args.liver}
    seconds, cpu, peak = run_child([sys.executable, "-c", LIVERMETS_CHILD, str(weights / "weights"), str(ct),
                               str(args.out), args.liver, json.dumps(BLOCKS)], env)
    results["livermets"] = {"wall_s": round(seconds, 1), "cpu_s": round(cpu, 1), "peak_rss_gb": round(peak, 2),
                            "steps": json.loads((args.out / "livermets_timings.json").read_text())}
    print(f"livermets pair ({args.liver} + ts-liver-lesions): {seconds:.1f} s wall, {cpu:.1f} s CPU, "
          f"peak {peak:.2f} GB")
    if not args.skip_totalsegmentator:
        seconds, cpu, peak = run_child([sys.executable, str(REPO / "tests/segmentation/nnunet/totalseg_reference.py"),
                                   str(weights / "weights"), str(args.out / "ts_home"), str(ct),
                                   str(args.out / "ts")], env)
        results["totalsegmentator"] = {"wall_s": round(seconds, 1), "cpu_s": round(cpu, 1),
                                       "peak_rss_gb": round(peak, 2),
                                       "steps": json.loads((args.out / "ts" / "timings.json").read_text())}
        print(f"TotalSegmentator 2.18.0 (total --fast, then liver_lesions): {seconds:.1f} s wall, {cpu:.1f} s CPU, "
              f"peak {peak:.2f} GB")
    results["load_at_end"] = os.getloadavg()
    (args.out / "bench.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
