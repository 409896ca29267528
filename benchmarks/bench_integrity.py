"""Cost of the integrity checks of `livermets.imaging.integrity` against a plain SimpleITK read.

Run by hand (not in CI):

    .venv/bin/python benchmarks/bench_integrity.py [--repeats 3] [--slices 150] [--keep /tmp/bench_integrity]

Times, best of ``--repeats``, for each input: the plain read (``sitk.ReadImage``, or ``ImageSeriesReader`` for the
DICOM folder), the checks alone (``check_image_file`` / ``check_series``) and ``io.read_image`` (checks + read; the
stream check of a compressed file runs in a thread alongside SimpleITK's read), wall and CPU time (CPU time counts
all threads), and the ratios to the plain read. Inputs: the real CT ``../shared/data/totalsegmentator/
example_ct.nii.gz`` (122 x 101 x 112 int32), its 20-slice DICOM series, and a synthetic 512 x 512 x ``--slices``
int16 CT (an ellipse of soft tissue in air with noise, about 2:1 gzip ratio like real CT) written as ``.nii.gz``,
``.nii``, ``.nrrd`` (gzip) and ``.mha`` (zlib) to a temporary folder (``--keep DIR`` writes them there instead and
keeps them). The checks of a compressed file decompress it once, so they cost about as much CPU as SimpleITK's own
decompression; with a free core, read_image's wall time stays close to the plain read. Uncompressed files and DICOM
headers cost little.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from livermets.imaging import dicom, integrity, io  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "totalsegmentator"


def _best(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall time and best CPU time (all threads of the process) of ``repeats`` calls, in seconds."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def synthetic_ct(slices: int) -> sitk.Image:
    """A 512 x 512 x ``slices`` int16 volume: soft tissue (40 HU) in air (-1024 HU), Gaussian noise of 15 HU."""
    rng = np.random.default_rng(0)
    y, x = np.ogrid[:512, :512]
    body = ((y - 256) / 200.0) ** 2 + ((x - 256) / 240.0) ** 2 <= 1
    array = np.empty((slices, 512, 512), np.int16)
    for z in range(slices):
        array[z] = np.where(body, 40, -1024) + rng.normal(0, 15, (512, 512)).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 2.0))
    return image


def _row(name: str, plain: tuple[float, float], check: tuple[float, float], full: tuple[float, float]) -> None:
    print(f"{name:<34} plain read {plain[0] * 1000:7.1f} ms (CPU {plain[1] * 1000:7.1f})   checks "
          f"{check[0] * 1000:6.1f} ms (CPU {check[1] * 1000:6.1f}, {check[0] / plain[0]:4.2f}x the plain read)   "
          f"read_image {full[0] * 1000:7.1f} ms (CPU {full[1] * 1000:7.1f}, {full[0] / plain[0]:4.2f}x)")


def bench_file(path: Path, repeats: int) -> None:
    plain = _best(lambda: sitk.ReadImage(str(path)), repeats)
    check = _best(lambda: integrity.check_image_file(path), repeats)
    full = _best(lambda: io.read_image(path), repeats)
    size = path.stat().st_size / 1e6
    _row(f"{path.name} ({size:.1f} MB)", plain, check, full)


def bench_dicom(folder: Path, repeats: int) -> None:
    series = dicom.choose_series(folder)

    def plain_read() -> None:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(list(series.files))
        reader.Execute()

    plain = _best(plain_read, repeats)
    check = _best(lambda: integrity.check_series(series.files), repeats)
    full = _best(lambda: dicom.read_series(series), repeats)
    _row(f"{folder.name} ({series.n_slices} DICOM files)", plain, check, full)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", type=int, default=150)
    parser.add_argument("--keep", type=Path, default=None,
                        help="Write the synthetic files here and keep them (files already there are reused).")
    args = parser.parse_args()
    print(f"date {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}  commit {_commit()}  "
          f"machine {platform.node()} {platform.platform()} ({os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f})  SimpleITK {sitk.Version.VersionString()}")
    for name in ("example_ct.nii.gz", "example_ct_dicom"):
        if not (SHARED / name).exists():
            print(f"skipped {name}: not found in {SHARED}")
        elif name.endswith(".gz"):
            bench_file(SHARED / name, args.repeats)
        else:
            bench_dicom(SHARED / name, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        image = synthetic_ct(args.slices)
        # Distinct base names: given ct.nii.gz, SimpleITK's NIfTI reader reads a ct.nii lying beside it.
        for name, compress in (("synthetic_gz.nii.gz", True), ("synthetic_plain.nii", False),
                               ("synthetic.nrrd", True), ("synthetic.mha", True)):
            path = folder / name
            if not path.exists():
                sitk.WriteImage(image, str(path), useCompression=compress)
            bench_file(path, args.repeats)


if __name__ == "__main__":
    main()
