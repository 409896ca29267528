"""Time `livermets reproduce paper --tables 4` against the paper's notebook method, alternately, in one run.

The baseline is ``../shared/anchors/paper_notebook_table4.py`` (the four published notebooks' calls as one script).
Both run as separate processes, alternately (anchor, livermets, anchor, livermets, ...), ``--repeats`` times each, so
that a machine shared with other work slows both alike; the script prints every pair and the median of the per-pair
wall-time ratios, and the same for CPU time (user + system of the process and its children: pool workers, the
pinned child), which load on the machine moves less. Outputs of every livermets run are checked byte-identical.

    .venv/bin/python benchmarks/bench_reproduce.py [--repeats 5] [--features CSV] [--before SRC]

``--before SRC`` adds a third command to every round, livermets imported from another source tree (for example
``git archive main src | tar -x -C /tmp/main``, then ``--before /tmp/main/src``), and checks its outputs equal too.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_CSV = SHARED / "data/nih_mip_msclc/Final_ResampledClassificationData.csv"
ANCHOR = SHARED / "anchors/paper_notebook_table4.py"
COMPARED = ("table4.csv", "supp_table2.csv", "lasso_features.csv", "test_predictions.csv")


def timed(command: list[str], src: str | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the command and all its children) of one command."""
    env = os.environ if src is None else {**os.environ, "PYTHONPATH": src}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _ours(features: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "livermets", "reproduce", "paper", "--features", str(features), "--out", str(out),
            "--tables", "4"]


def _summary(label: str, rows: list[tuple[float, float, float, float]]) -> None:
    wall = statistics.median(o / b for b, o, _, _ in rows)
    cpu = statistics.median(o / b for _, _, b, o in rows)
    print(f"{label}: median ratio to the notebook: wall {wall:.3f}x, CPU {cpu:.3f}x over {len(rows)} rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--features", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--before", default=None, help="source tree (its src folder) of a livermets to compare")
    args = parser.parse_args()
    anchor = [sys.executable, str(ANCHOR), str(args.features)]
    outputs: list[dict[str, bytes]] = []
    rows: dict[str, list[tuple[float, float, float, float]]] = {"livermets": [], "before": []}
    with tempfile.TemporaryDirectory() as scratch:
        for k in range(args.repeats):
            base_wall, base_cpu = timed(anchor)
            line = f"round {k + 1}: notebook {base_wall:5.1f} s (CPU {base_cpu:5.1f} s)"
            labels = [("before", args.before)] if args.before else []
            for label, src in ([("livermets", None)] + labels)[:: 1 if k % 2 == 0 else -1]:
                out = Path(scratch) / f"{label}{k}"
                wall, cpu = timed(_ours(args.features, out), src)
                outputs.append({name: (out / name).read_bytes() for name in COMPARED})
                rows[label].append((base_wall, wall, base_cpu, cpu))
                line += f" | {label} {wall:5.1f} s (CPU {cpu:5.1f} s) = {wall / base_wall:.3f}x"
            print(line, flush=True)
    for label, values in rows.items():
        if values:
            _summary(label, values)
    print(f"{os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.1f}")
    identical = all(run == outputs[0] for run in outputs)
    print("outputs (" + ", ".join(COMPARED) + ") of every run byte-identical: " + ("yes" if identical else "NO"))
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
