"""Wall time of the first bad-input error of every command (target: at most 1.5 s), against ``python -c pass``.

Each command gets an input that is wrong in the most common way (a path that does not exist, a PNG given as a CT,
a folder without DICOM, an unknown option value) and must exit 2 with one ``error:`` line. Every case runs
``--repeat`` times in a fresh ``python -m livermets`` child process; the median is printed, with the baseline
``python -c pass`` and ``python -m livermets --help`` measured in the same run.

Run by hand on a quiet machine::

    .venv/bin/python benchmarks/bench_errors.py --repeat 5
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

CLI = [sys.executable, "-m", "livermets"]
TARGET_S = 1.5


def _png(path: Path) -> Path:
    """A tiny valid grey PNG (written with zlib, no imaging library)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    header = (8).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    pixels = zlib.compress(b"".join(b"\x00" + bytes(range(8)) for _ in range(8)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


def cases(tmp: Path) -> dict[str, list[str]]:
    """Command line of the first bad-input error of every command."""
    png = str(_png(tmp / "photo.png"))
    empty = tmp / "no_dicom"
    empty.mkdir()
    (empty / "notes.txt").write_text("not DICOM")
    missing = str(tmp / "missing.csv")
    nifti = str(tmp / "missing.nii.gz")
    out = str(tmp / "out")
    return {
        "analyze (wrong path)": ["analyze", nifti, "--out", out],
        "analyze (PNG as CT)": ["analyze", png, "--out", out],
        "analyze (folder without DICOM)": ["analyze", str(empty), "--out", out],
        "run": ["run", "--manifest", missing, "--out", out],
        "synth": ["synth", "--size", "huge", "--out", out],
        "cohort validate": ["cohort", "validate", missing],
        "cohort merge": ["cohort", "merge", missing, missing + "2", "--out", str(tmp / "m.csv")],
        "cohort summary": ["cohort", "summary", missing],
        "cohort import": ["cohort", "import", str(tmp / "nowhere"), "--format", "lits", "--out", out],
        "imaging info (PNG)": ["imaging", "info", png],
        "imaging convert": ["imaging", "convert", nifti, str(tmp / "x.nrrd")],
        "imaging check": ["imaging", "check", nifti, nifti],
        "imaging seg-to-nifti": ["imaging", "seg-to-nifti", str(tmp / "seg.dcm"), "--series", str(empty), "--out",
                                 str(tmp / "l.nii.gz")],
        "lesions table": ["lesions", "table", nifti, "--out", str(tmp / "l.csv")],
        "seg predict (PNG as CT)": ["seg", "predict", "--image", png, "--out", out],
        "seg train": ["seg", "train", "--model", "unet", "--manifest", missing, "--out", out],
        "seg evaluate": ["seg", "evaluate", "--pred-dir", str(tmp / "nowhere"), "--manifest", missing, "--out", out],
        "seg calibrate": ["seg", "calibrate", "--model", str(tmp / "nowhere"), "--manifest", missing],
        "seg export-nnunet": ["seg", "export-nnunet", "--manifest", missing, "--out", out],
        "phenotype evaluate": ["phenotype", "evaluate", "--features", missing, "--out", out],
        "phenotype train": ["phenotype", "train", "--features", missing, "--out", out],
        "phenotype predict": ["phenotype", "predict", "--model", str(tmp / "nowhere"), "--features", missing,
                              "--out", str(tmp / "p.csv")],
        "stats burden": ["stats", "burden", "--features", missing, "--out", out],
        "stats failure": ["stats", "failure", "--features", missing, "--predictions", missing, "--out", out],
        "reproduce paper": ["reproduce", "paper", "--features", missing, "--out", out],
        "radiomics extract": ["radiomics", "extract", "--manifest", missing, "--out", str(tmp / "f.csv")],
        "radiomics aggregate": ["radiomics", "aggregate", "--lesions", missing, "--out", str(tmp / "a.csv")],
    }


def timed(command: list[str], expect_error: bool = True) -> float:
    """Wall time (s) of one child; checks exit code 2 and one ``error:`` line when an error is expected."""
    tick = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - tick
    if expect_error:
        lines = (result.stderr + result.stdout).strip().splitlines()
        if result.returncode != 2 or len(lines) != 1 or not lines[0].startswith("error: "):
            raise SystemExit(f"{command}: expected exit 2 and one error line, got {result.returncode}: {lines}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="Runs per case (the median is reported).")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"date {_dt.date.today()}, commit {commit}, {platform.platform()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; median of {args.repeat} runs")
    baseline = statistics.median(timed([sys.executable, "-c", "pass"], False) for _ in range(args.repeat))
    helped = statistics.median(timed([*CLI, "--help"], False) for _ in range(args.repeat))
    print(f"{'python -c pass (baseline)':34s} {baseline:6.2f} s")
    print(f"{'livermets --help':34s} {helped:6.2f} s")
    worst = ("", 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in cases(Path(tmp)).items():
            seconds = statistics.median(timed([*CLI, *argv]) for _ in range(args.repeat))
            worst = max(worst, (name, seconds), key=lambda item: item[1])
            print(f"{name:34s} {seconds:6.2f} s  ({seconds / baseline:.0f}x baseline)")
    verdict = "within" if worst[1] <= TARGET_S else "ABOVE"
    print(f"max: {worst[0]} {worst[1]:.2f} s ({verdict} the {TARGET_S} s target)")


if __name__ == "__main__":
    main()
