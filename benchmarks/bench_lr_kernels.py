"""Measure how the paper protocol's LR result (Table 4) moves with the OpenBLAS kernel, and store the table.

For every ``OPENBLAS_CORETYPE`` below, one child process (the variable set for the child only) runs the paper
protocol's LR **in that process, unpinned** (``paper_protocol(..., models=("LR",), where="process")``): LASSO,
5-fold ShuffleSplit, train+val refit, 1000 study-level bootstraps. Core types that OpenBLAS maps to the same kernel
(threadpoolctl's ``architecture``) are grouped when their numbers are identical; a core type whose instructions the
CPU lacks dies of an illegal instruction and is listed under ``not_runnable``. The table is written to
``src/livermets/reproduce/lr_kernel_table.json``, which ``reproduce paper`` shows in REPORT.md.

Run by hand (not in CI), 30-60 s per core type:
    .venv/bin/python benchmarks/bench_lr_kernels.py [path/to/Final_ResampledClassificationData.csv]
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from livermets.atomic import write_text

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO.parent / "shared/data/nih_mip_msclc/Final_ResampledClassificationData.csv"
OUTPUT = REPO / "src/livermets/reproduce/lr_kernel_table.json"
CORETYPES = (
    "Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Sandybridge", "Bulldozer", "Piledriver",
    "Steamroller", "Excavator", "Nehalem", "Atom", "Barcelona", "Prescott", "Core2", "Penryn", "Dunnington", "Opteron",
    "Katmai",
)
METRICS = ("accuracy", "ppv", "npv", "sensitivity", "specificity", "f1", "auc")


def child(csv: str) -> None:
    """In the child: the unpinned LR of the paper protocol; one JSON line on stdout."""
    from livermets.phenotype.notebooks import load_paper_data
    from livermets.phenotype.protocols.paper import paper_protocol

    result = paper_protocol(load_paper_data(csv), models=("LR",), where="process", n_jobs=1)
    summary = result.run("LR").bootstrap.summary().set_index("metric")
    lr = {m: [round(float(summary.loc[m, c]), 6) for c in ("mean", "low95", "high95")] for m in METRICS}
    print(json.dumps({"kernel": result.blas_kernel, "lr": lr}))


def measure(csv: Path, coretype: str) -> dict[str, Any] | str:
    """The child's JSON for ``coretype``, or the reason it could not run."""
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
    done = subprocess.run([sys.executable, __file__, "--child", str(csv)], env=env, capture_output=True, text=True)
    if done.returncode == -4:
        return "illegal instruction: the CPU lacks this kernel's instructions (e.g. AVX-512)"
    if done.returncode != 0:
        return f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _metadata(csv: Path) -> dict[str, Any]:
    import numpy
    import scipy
    import sklearn
    from numpy._core._multiarray_umath import __cpu_features__ as features
    from threadpoolctl import threadpool_info

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    flags = [name for name in ("AVX2", "FMA3", "AVX512F") if features.get(name)]
    return {
        "measured": datetime.date.today().isoformat(),
        "commit": commit.stdout.strip(),
        "machine": f"{_cpu()}, {os.cpu_count()} cores, CPU features {'/'.join(flags)}",
        "versions": {
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
            "openblas": sorted({str(lib["version"]) for lib in threadpool_info() if lib["internal_api"] == "openblas"}),
        },
        "command": f"python benchmarks/bench_lr_kernels.py {csv.name}",
        "features": "unscaled (~1 to ~1e10): LR newton-cg is ill-conditioned, its solution follows the summation order",
    }


def main() -> None:
    csv = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CSV
    kernels: list[dict[str, Any]] = []
    not_runnable: dict[str, str] = {}
    for coretype in CORETYPES:
        got = measure(csv, coretype)
        if isinstance(got, str):
            not_runnable[coretype] = got
            print(f"{coretype:15s} {got}")
            continue
        print(f"{coretype:15s} -> {got['kernel']:12s} " + " ".join(f"{got['lr'][m][0]:.3f}" for m in METRICS))
        same = [k for k in kernels if k["kernel"] == got["kernel"] and k["lr"] == got["lr"]]
        if same:
            same[0]["coretypes"].append(coretype)
        else:
            kernels.append({"kernel": got["kernel"], "coretypes": [coretype], "lr": got["lr"]})
    table = {**_metadata(csv), "kernels": kernels, "not_runnable": not_runnable}
    write_text(OUTPUT, json.dumps(table, indent=1) + "\n")
    print(f"written {OUTPUT}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
