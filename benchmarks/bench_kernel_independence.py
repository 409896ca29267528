"""Measure what moves with the OpenBLAS kernel: intermediates unpinned, and the published outputs of the reproduction.

For every ``OPENBLAS_CORETYPE`` this CPU can run (see ``livermets.phenotype.pinned.CORETYPE_CPU_FEATURES``; core
types that map to an already measured kernel are skipped), one child process started with the variable set in its
environment only:

1. computes the paper protocol's LASSO and LR **in that process, unpinned** (``where="process"``) and stores the
   LASSO coefficients, the LR refit's coefficients and its test probabilities, the five CV fold models' test
   probabilities, and the same for the **pinned** protocol (``where="auto"``: LR in a Haswell child when needed);
2. runs ``livermets reproduce paper --tables 4``.

The parent prints the largest differences against the Haswell kernel and whether every published file of the
reproduction is byte-identical to Haswell's (REPORT.md compared without its wall-time and kernel-placement lines).
Run by hand (not in CI), ~1 min per kernel:
    .venv/bin/python benchmarks/bench_kernel_independence.py [Final_ResampledClassificationData.csv] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO.parent / "shared/data/nih_mip_msclc/Final_ResampledClassificationData.csv"
PUBLISHED = ("lasso_features.csv", "table4.csv", "supp_table2.csv", "test_predictions.csv", "figure3_stats.json",
             "figure5_stats.json", "REPORT.md")
VOLATILE = ("wall time", "ran on OpenBLAS kernel", "LASSO and every LR fit ran on")


def child(csv: str, out: str) -> None:
    """In the child: intermediates unpinned and pinned, saved to ``out/intermediates.npz``."""
    from livermets.phenotype.notebooks import load_paper_data
    from livermets.phenotype.protocols.paper import paper_protocol

    data = load_paper_data(csv)
    arrays: dict[str, np.ndarray] = {}
    for label, where in (("unpinned", "process"), ("pinned", "auto")):
        result = paper_protocol(data, models=("LR",), where=where, n_jobs=1, n_boot=1000)
        run = result.run("LR")
        arrays[f"{label}_lasso"] = result.lasso_table["coefficient"].to_numpy()
        arrays[f"{label}_lr_coef"] = np.asarray(run.refit.coef_).ravel()
        arrays[f"{label}_lr_probability"] = run.test_probability
        arrays[f"{label}_lr_fold_probability"] = run.test_fold_probability
        arrays[f"{label}_lr_table4"] = run.bootstrap.summary()[["mean", "low95", "high95"]].to_numpy()
        arrays[f"{label}_kernel"] = np.array(result.blas_kernel)
    np.savez(Path(out) / "intermediates.npz", **arrays)


def kernel_of(coretype: str) -> str:
    """The kernel threadpoolctl reports in a child started with ``OPENBLAS_CORETYPE=coretype``."""
    code = "from livermets.phenotype.pinned import blas_kernels; print(blas_kernels())"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OPENBLAS_CORETYPE": coretype},
                          capture_output=True, text=True, timeout=120)
    return done.stdout.strip() if done.returncode == 0 else f"failed (exit {done.returncode})"


def run_kernel(csv: Path, coretype: str, folder: Path) -> None:
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, __file__, "--child", str(csv), str(folder)], env=env, check=True)
    subprocess.run([sys.executable, "-m", "livermets", "reproduce", "paper", "--features", str(csv), "--out",
                    str(folder / "rep"), "--tables", "4"], env=env, check=True, capture_output=True)


def _report_text(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if not any(v in line for v in VOLATILE))


def compare(reference: Path, other: Path) -> tuple[dict[str, float], list[str]]:
    """Largest differences of the intermediates, and the published files that differ."""
    a, b = np.load(reference / "intermediates.npz"), np.load(other / "intermediates.npz")
    diffs = {}
    for key in a.files:
        if key.endswith("_kernel"):
            continue
        x, y = a[key].astype(float), b[key].astype(float)
        diffs[f"{key} abs"] = float(np.max(np.abs(x - y)))
        diffs[f"{key} rel"] = float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-300)))
    differ = []
    for name in PUBLISHED:
        ra, rb = reference / "rep" / name, other / "rep" / name
        same = _report_text(ra) == _report_text(rb) if name == "REPORT.md" else ra.read_bytes() == rb.read_bytes()
        if not same:
            differ.append(name)
    return diffs, differ


def main() -> None:
    from livermets.phenotype.pinned import CORETYPE_CPU_FEATURES, coretype_support

    parser = argparse.ArgumentParser()
    parser.add_argument("csv", nargs="?", default=str(DEFAULT_CSV))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="kernels-"))
    folders: dict[str, Path] = {}
    for coretype in CORETYPE_CPU_FEATURES:
        ok, reason = coretype_support(coretype)
        if not ok:
            print(f"{coretype:15s} skipped: {reason}")
            continue
        kernel = kernel_of(coretype)
        if kernel in folders:
            print(f"{coretype:15s} skipped: runs kernel {kernel}, already measured")
            continue
        print(f"{coretype:15s} -> kernel {kernel}", flush=True)
        folders[kernel] = root / coretype
        run_kernel(Path(args.csv), coretype, folders[kernel])
    reference = folders.get("Haswell")
    if reference is None:
        sys.exit("the Haswell kernel cannot run here: nothing to compare against")
    keys: list[str] = []
    rows = []
    for kernel, folder in folders.items():
        if folder == reference:
            continue
        diffs, differ = compare(reference, folder)
        keys = keys or list(diffs)
        rows.append((kernel, diffs, differ))
    print("\n| quantity | " + " | ".join(kernel for kernel, _, _ in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{diffs[key]:.2e}" for _, diffs, _ in rows) + " |")
    print("| published files differing from Haswell's | "
          + " | ".join(", ".join(differ) or "none" for _, _, differ in rows) + " |")
    print(f"\noutputs in {root}")


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
