"""Rerun the OpenBLAS-kernel-sensitive tests under every kernel this CPU can run; compare the published LR outputs.

``make test`` runs the suite on the kernel OpenBLAS picks for this CPU. This script (``make kernels``, part of
``make test``) covers the others, so that a kernel difference fails here before it fails on another machine:

1. for every ``OPENBLAS_CORETYPE`` of :data:`livermets.phenotype.pinned.CORETYPE_CPU_FEATURES` whose instructions the
   CPU has, a probe process started with that variable reports the kernel OpenBLAS really loads (threadpoolctl);
   core types that land on an already covered kernel are skipped, and every skip is printed with its reason;
2. under each remaining kernel, one ``pytest -m blas_kernel`` run, with the variable set in that child's environment
   only; its header must name the kernel asked for;
3. under every kernel (this process's own included), the published outputs that go through BLAS, LASSO's
   ``lasso_features.csv`` and LR's Table 4 rows of the pinned paper protocol, are written as CSV text and must be
   byte-identical across kernels.

Exit status 1 when anything fails. ``OPENBLAS_CORETYPE`` is never set for this process itself.
    python scripts/kernel_tests.py [pytest options, e.g. -x; not -q, which hides the header naming the kernel]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def published_csv() -> Path | None:
    """The paper's feature table from the data registry: ``$LIVERMETS_DATA_DIR``, the data home, or ``../shared/data``
    (the developers' layout, as in tests/conftest.py); ``None`` when absent."""
    from livermets.data import PAPER_FEATURES, locate, search_roots

    return locate(PAPER_FEATURES, [*search_roots(), REPO.parent / "shared" / "data"])


PUBLISHED = """
import sys
from livermets.phenotype.notebooks import load_paper_data
from livermets.phenotype.pinned import blas_kernels
from livermets.phenotype.protocols.paper import paper_protocol
result = paper_protocol(load_paper_data(sys.argv[1]), models=("LR",), n_jobs=1)
summary = result.run("LR").bootstrap.summary()
print("kernel:", blas_kernels(), "| LASSO and LR on:", result.blas_kernel)
print(result.lasso_table.to_csv(index=False) + summary.to_csv(index=False), end="")
"""


def _environment(coretype: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_CORETYPE"}
    return env if coretype is None else {**env, "OPENBLAS_CORETYPE": coretype}


def probe(coretype: str | None) -> str:
    """The OpenBLAS kernel a child started with ``OPENBLAS_CORETYPE=coretype`` loads (``None``: the CPU's own)."""
    code = "from livermets.phenotype.pinned import blas_kernels; print(blas_kernels())"
    done = subprocess.run([sys.executable, "-c", code], env=_environment(coretype), capture_output=True, text=True)
    if done.returncode != 0:
        return f"probe failed (exit {done.returncode})"
    return done.stdout.strip()


def kernels_to_run() -> tuple[str, dict[str, str]]:
    """This process's kernel and ``{kernel: coretype}`` for every other runnable kernel; prints every skip."""
    from livermets.phenotype.pinned import CORETYPE_CPU_FEATURES, coretype_support

    native = probe(None)
    print(f"kernel of this CPU (the main test run): {native}")
    chosen: dict[str, str] = {}
    for coretype in CORETYPE_CPU_FEATURES:
        runnable, reason = coretype_support(coretype)
        if not runnable:
            print(f"  skipped {coretype}: {reason}")
            continue
        kernel = probe(coretype)
        if kernel.startswith("probe failed"):
            print(f"  skipped {coretype}: {kernel}")
        elif kernel == native:
            print(f"  skipped {coretype}: loads kernel {kernel}, the main test run's")
        elif kernel in chosen:
            print(f"  skipped {coretype}: loads kernel {kernel}, covered by {chosen[kernel]}")
        else:
            chosen[kernel] = coretype
    return native, chosen


def marked_files() -> list[str]:
    """Test files holding ``blas_kernel`` tests (collecting only them keeps each run to seconds)."""
    return sorted(str(path.relative_to(REPO)) for path in (REPO / "tests").rglob("test_*.py")
                  if "pytest.mark.blas_kernel" in path.read_text(encoding="utf-8"))


def start_tests(coretype: str, extra: list[str]) -> subprocess.Popen[str]:
    """``pytest -m blas_kernel`` under ``coretype`` (its header names the kernel in use)."""
    return subprocess.Popen([sys.executable, "-m", "pytest", "-m", "blas_kernel", "-p", "no:cacheprovider", *extra,
                             *marked_files()], cwd=REPO, env=_environment(coretype), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def check_tests(run: subprocess.Popen[str], coretype: str, kernel: str) -> bool:
    """True when the run passed on the kernel asked for; prints its summary line."""
    output, _ = run.communicate()
    found = re.search(r"^OpenBLAS kernel: (.+)$", output, re.MULTILINE)
    used = found.group(1).strip() if found else "not reported"
    tail = output.strip().splitlines()[-1:] or ["no output"]
    print(f"  OPENBLAS_CORETYPE={coretype}: kernel {used}, {tail[0].strip('= ')}")
    if used != kernel:
        print(f"    FAILED: the tests ran on kernel {used}, not {kernel}")
        return False
    if run.returncode != 0:
        print(output[-6000:])
        return False
    return True


def published(csv: Path, coretype: str | None) -> str:
    """The published LASSO and LR Table 4 rows as CSV text, computed in a child under ``coretype``."""
    done = subprocess.run([sys.executable, "-c", PUBLISHED, str(csv)], env=_environment(coretype),
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
    return done.stdout


def main(extra: list[str]) -> int:
    csv = published_csv()
    if csv is None:
        print("data not found: nih_mip_msclc/Final_ResampledClassificationData.csv (fetch it with `livermets data "
              "fetch nih_mip_msclc`, or set LIVERMETS_DATA_DIR to a folder that holds it)")
        return 1 if os.environ.get("CI", "").lower() == "true" else 0
    started = time.perf_counter()
    native, chosen = kernels_to_run()
    ok = True
    outputs = {native: published(csv, None)}
    for kernel, coretype in chosen.items():  # the tests and the published outputs of one kernel side by side
        run = start_tests(coretype, extra)
        outputs[kernel] = published(csv, coretype)
        ok &= check_tests(run, coretype, kernel)
    reference = outputs[native]
    for kernel, text in outputs.items():
        header, _, body = text.partition("\n")
        same = body == reference.partition("\n")[2] and not text.startswith("failed")
        print(f"  published LASSO + LR Table 4 under {kernel}: {header} -> "
              f"{'identical' if same else 'DIFFERENT'} to {native}'s")
        ok &= same
    print("kernel tests: " + ("passed" if ok else "FAILED") + f" on {1 + len(chosen)} kernel(s) in "
          f"{time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
