"""Kill safety: ``synth``, ``seg predict`` and ``radiomics extract`` killed with SIGKILL at random moments, then run
again (with ``--resume`` where the command has it), give exactly the files of an uninterrupted run.

Each run is a separate process executing ``python -m livermets ARGS`` (``runpy`` of the ``livermets`` package, the
same code path), forked from a multiprocessing fork server that has imported torch, MONAI and PyRadiomics already, so
that a run starts in milliseconds instead of ~10 s of imports. The uninterrupted reference run measures when the
command writes its first file and when it ends; the kills come after seeded random delays spread over that span (the
time in which a kill can leave something behind), each run in a fresh output folder. The ``livermets run`` command
has its own kill test in ``tests/analyze/test_run.py``.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from badinput_child import nothing, run_livermets
from badinput_data import Inputs

from livermets.radiomics.extractor import PAPER_PARAMS

CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(["livermets.cli", "livermets.synth.cohort", "livermets.segmentation.predict",
                                "livermets.radiomics.runner", "radiomics.featureextractor"])
KILLS = 3


def _start(argv: list[object], log: Path) -> multiprocessing.process.BaseProcess:
    process = CONTEXT.Process(target=run_livermets, args=([str(a) for a in argv], str(log)))
    process.start()
    return process


def _run(argv: list[object], log: Path, out: Path | None = None) -> tuple[float, float]:
    """Run to completion; the seconds until a first file appeared below ``out`` and until the end."""
    tick = time.perf_counter()
    process = _start(argv, log)
    first = None
    while process.is_alive():
        if first is None and out is not None and out.is_dir() and _files(out):
            first = time.perf_counter() - tick
        time.sleep(0.02)
    process.join(timeout=300)
    assert process.exitcode == 0, log.read_text()
    end = time.perf_counter() - tick
    return (end if first is None else first), end


def _killed(argv: list[object], log: Path, delay: float) -> None:
    process = _start(argv, log)
    time.sleep(delay)
    if process.pid is not None and process.is_alive():
        os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=60)


def _delays(first: float, end: float, seed: int) -> list[float]:
    """``KILLS`` seeded random delays, one in each of ``KILLS`` equal parts of the span from shortly before the first
    file appeared to the end of the run."""
    rng = random.Random(seed)
    start = 0.8 * first
    width = (end - start) / KILLS
    return [start + k * width + rng.uniform(0.0, width) for k in range(KILLS)]


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def _same_image(a: Path, b: Path) -> bool:
    ia, ib = sitk.ReadImage(str(a)), sitk.ReadImage(str(b))
    return (np.array_equal(sitk.GetArrayViewFromImage(ia), sitk.GetArrayViewFromImage(ib))
            and ia.GetPixelID() == ib.GetPixelID() and ia.GetSize() == ib.GetSize()
            and ia.GetSpacing() == ib.GetSpacing() and ia.GetOrigin() == ib.GetOrigin()
            and ia.GetDirection() == ib.GetDirection())


def assert_same_tree(reference: Path, resumed: Path, compare: dict[str, Callable[[Path, Path], bool]]) -> None:
    """The same file names (hidden files included) and, per file, the same bytes or ``compare[suffix]`` true."""
    want, got = _files(reference), _files(resumed)
    assert sorted(got) == sorted(want)
    for name, path in want.items():
        special = next((check for suffix, check in compare.items() if name.endswith(suffix)), None)
        if special is not None:
            assert special(path, got[name]), name
        else:
            assert path.read_bytes() == got[name].read_bytes(), name


def _kill_and_resume(tmp_path: Path, command: Callable[[Path], list[object]], resume: list[object],
                     compare: dict[str, Callable[[Path, Path], bool]], seed: int) -> list[str]:
    """Reference run, then per delay: a killed run and a completing rerun in a fresh folder; returns what each kill
    left behind (``"nothing"``, or the number of files) for the report."""
    reference = tmp_path / "reference"
    first, end = _run(command(reference), tmp_path / "reference.log", reference)
    left = []
    for k, delay in enumerate(_delays(first, end, seed)):
        out = tmp_path / f"killed{k}"
        _killed(command(out), tmp_path / f"killed{k}.log", delay)
        left.append(f"{delay:.1f}/{end:.1f} s: " + (f"{len(_files(out))} files" if out.exists() else "nothing"))
        _run([*command(out), *resume], tmp_path / f"resumed{k}.log")
        assert_same_tree(reference, out, compare)
    return left


def test_synth_killed_at_random_moments_resumes_to_identical_files(tmp_path: Path) -> None:
    def command(out: Path) -> list[object]:
        return ["synth", "--out", out, "--patients", "1", "--size", "tiny", "--seed", "3", "--workers", "1"]

    left = _kill_and_resume(tmp_path, command, ["--resume"], {}, seed=1)
    print("synth kills:", "; ".join(left))


def test_synth_after_ctrl_c_prints_the_command_that_resumes(tmp_path: Path) -> None:
    """SIGINT once the first study is done: exit code 130 and a last line naming the exact command that resumes
    (with --resume); that command finishes the cohort (that a resumed cohort equals an uninterrupted one is the kill
    test's part)."""
    def command(out: Path) -> list[object]:
        return ["synth", "--out", out, "--patients", "1", "--size", "tiny", "--seed", "3", "--no-overview"]

    out = tmp_path / "my cohort"
    process = _start(command(out), tmp_path / "interrupted.log")
    while process.is_alive() and not list((out / ".synth_parts").glob("*.npz")):
        time.sleep(0.01)
    assert process.pid is not None and process.is_alive(), "the run ended before the interrupt"
    os.kill(process.pid, signal.SIGINT)
    process.join(timeout=60)
    assert process.exitcode == 130 and not (out / "manifest.csv").exists()
    last = (tmp_path / "interrupted.log").read_text().strip().splitlines()[-1]
    prefix = "interrupted: no output is half-written; to continue where it stopped, run: "
    assert last.startswith(prefix), last
    printed = shlex.split(last[len(prefix):])
    assert printed == ["livermets", *map(str, command(out)), "--resume"]
    _run(printed[1:], tmp_path / "resumed.log")
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) > 0 and all((out / image).is_file() for image in manifest["image"])
    assert not (out / ".synth_parts").exists()


def _predictions_equal(a: Path, b: Path) -> bool:
    """predictions.csv without the columns of the run that made a label map (``seconds`` differs between any two
    runs; ``seconds`` and ``engine`` are empty for a series a killed run finished), output paths as names; the engine
    of every series predicted in the resumed run is the reference's."""
    ta, tb = (pd.read_csv(p, dtype={"engine": str}) for p in (a, b))
    if not set(tb["engine"].dropna()) <= set(ta["engine"]):
        return False
    ta, tb = (table.drop(columns=["seconds", "engine"]) for table in (ta, tb))
    for table in (ta, tb):
        table["prediction"] = [Path(p).name for p in table["prediction"]]
    return ta.equals(tb)


def test_seg_predict_killed_at_random_moments_resumes_to_identical_files(inputs: Inputs, tmp_path: Path) -> None:
    manifest = _small_ct_manifest(inputs, tmp_path / "data")

    def command(out: Path) -> list[object]:
        return ["seg", "predict", "--manifest", manifest, "--out", out, "--device", "cpu"]

    left = _kill_and_resume(tmp_path, command, [], {".nii.gz": _same_image, "predictions.csv": _predictions_equal},
                            seed=2)
    print("seg predict kills:", "; ".join(left))


def test_radiomics_extract_killed_at_random_moments_resumes_to_identical_files(inputs: Inputs,
                                                                              tmp_path: Path) -> None:
    frame = pd.read_csv(inputs.manifest)
    for column in ("image", "label"):
        frame[column] = [str(inputs.manifest.parent / p) for p in frame[column]]
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    params = tmp_path / "params.yaml"  # the paper's settings on a 4 mm grid: the same job, seconds instead of minutes
    params.write_text(PAPER_PARAMS.read_text().replace("resampledPixelSpacing: [1, 1, 1]",
                                                       "resampledPixelSpacing: [4, 4, 4]"))

    def command(out: Path) -> list[object]:
        out.mkdir(exist_ok=True)
        return ["radiomics", "extract", "--manifest", tmp_path / "manifest.csv", "--out", out / "features.csv",
                "--params", params, "--workers", "2"]

    left = _kill_and_resume(tmp_path, command, [], {"provenance.json": lambda a, b: True}, seed=3)
    print("radiomics extract kills:", "; ".join(left))


def _small_ct_manifest(inputs: Inputs, folder: Path) -> Path:
    """Three CTs cropped from the tiny phantoms (one sliding window each for the shipped model: fast)."""
    folder.mkdir()
    frame = pd.read_csv(inputs.manifest).head(3)
    images = []
    for series_id, image in zip(frame["series_id"], frame["image"], strict=True):
        ct = sitk.ReadImage(str(inputs.manifest.parent / image))
        cropped = ct[12:52, 12:52, 14:30]
        sitk.WriteImage(cropped, str(folder / f"{series_id}.nii.gz"))
        images.append(str(folder / f"{series_id}.nii.gz"))
    frame["image"] = images
    frame = frame.drop(columns=["label"])
    frame.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


@pytest.fixture(scope="module", autouse=True)
def _fork_server() -> None:
    """Start the fork server (importing the stages takes seconds) before any run is timed."""
    process = CONTEXT.Process(target=nothing)
    process.start()
    process.join(timeout=300)


@pytest.fixture(autouse=True)
def _no_stray_children() -> Iterator[None]:
    """Leave no run of a test behind."""
    yield
    for child in multiprocessing.active_children():
        child.kill()
