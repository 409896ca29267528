"""Write a realistic training cohort (:mod:`livermets.synth.realistic`) as images, LiTS labels and a manifest.

Layout (every file atomic; ``manifest.csv`` last, so its presence marks a complete cohort)::

    OUT/images/REAL-0001.nii.gz   CT, int16 HU
    OUT/labels/REAL-0001.nii.gz   uint8, 0 background, 1 liver (incl. vessels and cysts), 2 lesion
    OUT/manifest.csv              series_id, study_id, patient_id, image, label, split + the case description
    OUT/lesions.csv               one row per inserted lesion (kind, diameter, contrast, centre)
    OUT/provenance.json           parameters, generator version, library versions

Each case is its own patient; ``val_fraction`` of the cases (at least one when there are three or more) form the
``val`` split, the rest ``train``. A killed run resumes with ``resume=True``: finished cases (their record in
``OUT/.realistic_parts/``) are not rendered again, and the result equals an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cc3d
import numpy as np
import pandas as pd

from livermets.atomic import write_csv, write_json
from livermets.errors import UserInputError
from livermets.imaging.io import write_image, write_label
from livermets.parallel import exit_with_parent
from livermets.provenance import provenance
from livermets.synth.realistic import RealisticConfig, render_case
from livermets.synth.resume import finish_folder, prepare_folder

log = logging.getLogger(__name__)

PARTS = ".realistic_parts"
MANIFEST_COLUMNS = ["series_id", "study_id", "patient_id", "image", "label", "split", "source", "phase", "pixel_mm",
                    "slice_thickness_mm", "noise_sd_hu", "liver_mean_hu", "vessel_contrast_hu", "n_lesions",
                    "n_lesions_truth", "n_cysts", "liver_volume_ml", "lesion_volume_ml", "dataset"]


def case_id(index: int) -> str:
    return f"REAL-{index + 1:04d}"


def case_splits(n: int, val_fraction: float, seed: int) -> list[str]:
    """``val`` for a seeded random ``val_fraction`` of the cases (>= 1 when n >= 3), ``train`` for the others."""
    n_val = max(1, round(val_fraction * n)) if n >= 3 and val_fraction > 0 else 0
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31 - 1,))).permutation(n)
    splits = ["train"] * n
    for i in order[:n_val]:
        splits[int(i)] = "val"
    return splits


def _record(config: RealisticConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


def _write_case(args: tuple[RealisticConfig, int, str, Path]) -> dict[str, Any]:
    """Render case ``index`` and write its image, label and record; return the record."""
    config, index, split, out = args
    case = render_case(config, index)
    sid = case_id(index)
    write_image(case.image(case.hu), out / "images" / f"{sid}.nii.gz")
    write_label(case.image(case.label), out / "labels" / f"{sid}.nii.gz")
    n_components = int(cc3d.connected_components(case.label == 2, connectivity=26).max())
    row = {"series_id": sid, "study_id": sid, "patient_id": sid, "image": f"images/{sid}.nii.gz",
           "label": f"labels/{sid}.nii.gz", "split": split, **case.record, "n_lesions": n_components,
           "dataset": "realistic"}
    result = {"row": row, "lesions": [{"series_id": sid, **lesion} for lesion in case.lesions]}
    write_json(out / PARTS / f"{sid}.json", result)
    return result


def generate_realistic(out: str | Path, config: RealisticConfig, workers: int = 1, overwrite: bool = False,
                       resume: bool = False) -> pd.DataFrame:
    """Render and write ``config.cases`` cases to ``out``; return the manifest.

    Examples
    --------
    >>> from livermets.synth.realistic import RealisticConfig, SourceScan  # doctest: +SKIP
    >>> src = SourceScan("ts", "ct.nii.gz", "seg.nii.gz")  # doctest: +SKIP
    >>> generate_realistic("realistic", RealisticConfig(cases=8, sources=(src,)), workers=2)  # doctest: +SKIP
    """
    out = Path(out)
    if workers < 1:
        raise UserInputError(f"workers {workers}: must be at least 1")
    if prepare_folder(out, PARTS, _record(config), overwrite, resume, subfolders=("images", "labels")):
        log.info("%s: the cohort is complete; nothing to resume", out)
        return pd.read_csv(out / "manifest.csv", dtype={"series_id": str, "patient_id": str})
    splits = case_splits(config.cases, config.val_fraction, config.seed)
    results: dict[int, dict[str, Any]] = {}
    for i in range(config.cases):
        part = out / PARTS / f"{case_id(i)}.json"
        if part.is_file():
            results[i] = json.loads(part.read_text(encoding="utf-8"))
    todo = [(config, i, splits[i], out) for i in range(config.cases) if i not in results]
    if results:
        log.info("resuming: %d of %d cases already written", len(results), config.cases)
    from livermets.progress import track

    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), initializer=exit_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            for args, result in zip(todo, track(pool.map(_write_case, todo), "realistic cases", total=len(todo)),
                                    strict=True):
                results[args[1]] = result
    else:
        for args in track(todo, "realistic cases"):
            results[args[1]] = _write_case(args)
    ordered = [results[i] for i in range(config.cases)]
    manifest = pd.DataFrame([r["row"] for r in ordered], columns=MANIFEST_COLUMNS)
    write_csv(out / "lesions.csv", pd.DataFrame([lesion for r in ordered for lesion in r["lesions"]]))
    record = provenance({**_record(config), "workers": workers}, command="livermets synth --mode realistic")
    record.pop("created_utc", None)
    write_json(out / "provenance.json", record)
    write_csv(out / "manifest.csv", manifest)  # last: its presence marks a complete cohort
    finish_folder(out, PARTS)
    log.info("wrote %d realistic cases to %s", len(manifest), out)
    return manifest
