"""Seconds per synthetic CT volume for each size class (render + NIfTI writing), run by hand (not in CI).

    .venv/bin/python benchmarks/bench_synth.py [--studies 4] [--sizes tiny small demo]

Each study renders the thin SOFT volume (the expensive part) and derives the thick CAP volume from it, then writes
both images and labels as .nii.gz. Printed per size: wall and CPU seconds per study, per series (= study / 2), and
CPU seconds per 128x128x64 voxels of thin volume (target from the task: <= ~1 s per 128x128x64 volume).
The machine is shared: CPU time is the more stable number.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from livermets.synth.cohort import CohortConfig, make_study, plan_studies
from livermets.synth.sizes import SIZES

REFERENCE_VOXELS = 128 * 128 * 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    args = parser.parse_args()
    print(f"{'size':6s} {'thin grid':>14s} {'wall s/study':>13s} {'cpu s/study':>12s} {'cpu s/series':>13s} "
          f"{'cpu s per 128x128x64':>21s} {'write share':>12s}")
    for size in args.sizes:
        spec = SIZES[size]
        config = CohortConfig(patients=args.studies, seed=123, size=size, max_studies=1)
        plans = plan_studies(config)[: args.studies]
        make_study(config, plans[0], None)  # warm-up (imports, caches)
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu = time.perf_counter(), time.process_time()
            for plan in plans:
                make_study(config, plan, Path(tmp))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        render_cpu = time.process_time()
        for plan in plans:
            make_study(config, plan, None)
        render_cpu = time.process_time() - render_cpu
        n = len(plans)
        voxels = spec.matrix * spec.matrix * spec.thin_slices
        grid = f"{spec.matrix}x{spec.matrix}x{spec.thin_slices}"
        print(f"{size:6s} {grid:>14s} {wall / n:13.2f} {cpu / n:12.2f} {cpu / n / 2:13.2f} "
              f"{cpu / n * REFERENCE_VOXELS / voxels:21.2f} {1 - render_cpu / cpu:12.0%}")


if __name__ == "__main__":
    main()
