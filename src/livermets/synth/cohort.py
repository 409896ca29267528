"""Plan and write a synthetic cohort: patients -> studies -> two reconstructions (SOFT thin, CAP thick) per study.

Randomness: every patient and every study has its own :class:`numpy.random.SeedSequence` (``spawn_key`` = patient
index, study index), so a study's images do not depend on which other studies are generated, in which order, or by
how many worker processes. Same seed -> byte-identical files.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from livermets.atomic import atomic_path, write_csv, write_json
from livermets.errors import ParameterError
from livermets.imaging.io import write_image, write_label
from livermets.parallel import exit_with_parent
from livermets.provenance import provenance
from livermets.synth.anatomy import Anatomy, sample_anatomy
from livermets.synth.burden import BurdenModel, LesionDraw, sample_lesions
from livermets.synth.nescore import NEScoreModel, burden_normal_score, ne_score
from livermets.synth.phantom import render_study
from livermets.synth.resume import finish_folder, prepare_folder
from livermets.synth.sizes import get_size

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "series_id", "study_id", "patient_id", "image", "label", "ne_score", "ne_class", "sample_type", "split",
    "reconstruction", "slice_thickness_mm", "pixel_mm", "n_lesions", "n_lesions_truth", "lesion_volume_ml",
    "liver_volume_ml", "dataset",
]
RECONSTRUCTIONS = ("SOFT", "CAP")
LESION_COLUMNS = ["series_id", "study_id", "lesion_index", "kind", "diameter_mm", "volume_ml_truth",
                  "centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "voxels"]
SPLIT_KEY = 2**31 - 1


@dataclass(frozen=True)
class CohortConfig:
    """What to generate. ``patients`` >= 1; ``size`` one of tiny/small/demo; ``burden_link`` in [-1, 1]."""

    patients: int
    seed: int = 0
    size: str = "small"
    burden_link: float = 0.25
    positive_fraction: float = 0.75
    cfdna_fraction: float = 0.6
    max_studies: int = 4
    burden: BurdenModel = field(default_factory=BurdenModel)

    def __post_init__(self) -> None:
        if self.patients < 1:
            raise ParameterError("{patients} {value}: need at least 1 patient", value=self.patients)
        if self.seed < 0:
            raise ParameterError("{seed} {value}: must be a non-negative integer", value=self.seed)
        get_size(self.size)
        NEScoreModel(self.burden_link, self.positive_fraction)

    @property
    def ne_model(self) -> NEScoreModel:
        return NEScoreModel(burden_link=self.burden_link, positive_fraction=self.positive_fraction)


@dataclass(frozen=True)
class StudyPlan:
    """One study to render: ids, split, and the indices that key its random streams."""

    patient_index: int
    study_index: int  # 1-based
    patient_id: str
    study_id: str
    split: str


def patient_seed(seed: int, patient_index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(patient_index, 0))


def study_seed(seed: int, patient_index: int, study_index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(patient_index, study_index))


def patient_id(index: int) -> str:
    return f"SYN-{index + 1:03d}"


def assign_splits(n_patients: int, seed: int) -> list[str]:
    """Patient-level split ~60/20/20 in a seeded random order; val and test get >= 1 patient when N >= 3.

    N = 1: train; N = 2: train, test.
    """
    n_val = max(1, round(0.2 * n_patients)) if n_patients >= 3 else 0
    n_test = max(1, round(0.2 * n_patients)) if n_patients >= 2 else 0
    labels = ["test"] * n_test + ["val"] * n_val
    labels = labels + ["train"] * (n_patients - len(labels))
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_KEY,))).permutation(n_patients)
    splits = [""] * n_patients
    for label, patient in zip(labels, order, strict=True):
        splits[int(patient)] = label
    return splits


def studies_per_patient(rng: np.random.Generator, max_studies: int) -> int:
    """1 + Poisson(1), capped: mean ~2 studies per patient (paper: 178 CT sessions in 88 patients)."""
    return int(min(max_studies, 1 + rng.poisson(1.0)))


def plan_studies(config: CohortConfig) -> list[StudyPlan]:
    """All studies of the cohort in patient/study order."""
    splits = assign_splits(config.patients, config.seed)
    plans = []
    for p in range(config.patients):
        rng = np.random.default_rng(patient_seed(config.seed, p))
        sample_anatomy(rng)  # the anatomy draws come first in the patient's stream
        n = studies_per_patient(rng, config.max_studies)
        for s in range(1, n + 1):
            plans.append(StudyPlan(p, s, patient_id(p), f"{patient_id(p)}_S{s}", splits[p]))
    return plans


@dataclass
class StudyResult:
    """Rows for the cohort tables and the overview slices of one study."""

    series_rows: list[dict[str, Any]]
    study_row: dict[str, Any]
    lesion_rows: list[dict[str, Any]]
    overview: list[tuple[str, np.ndarray, np.ndarray]]


def _patient_state(config: CohortConfig, patient_index: int) -> tuple[Anatomy, float]:
    rng = np.random.default_rng(patient_seed(config.seed, patient_index))
    anatomy = sample_anatomy(rng)
    studies_per_patient(rng, config.max_studies)
    return anatomy, float(rng.standard_normal())


@dataclass(frozen=True)
class StudyTruth:
    """What is drawn for a study before rendering: lesions, NE score, sample type (cheap, no images)."""

    draw: LesionDraw
    ne_score: float
    ne_latent: float
    burden_normal_score: float
    sample_type: str

    def row(self, plan: StudyPlan) -> dict[str, Any]:
        return {
            "study_id": plan.study_id, "patient_id": plan.patient_id, "split": plan.split,
            "ne_score": self.ne_score, "ne_class": int(self.ne_score > 0), "ne_latent": round(self.ne_latent, 4),
            "burden_normal_score": round(self.burden_normal_score, 4), "sample_type": self.sample_type,
            "n_lesions_truth": self.draw.count, "burden_ml_truth": round(self.draw.volume_ml, 3),
        }


def draw_study(config: CohortConfig, plan: StudyPlan) -> tuple[StudyTruth, Anatomy, np.random.Generator]:
    """The study's truth, its patient's anatomy, and its random stream positioned where rendering continues."""
    anatomy, patient_noise = _patient_state(config, plan.patient_index)
    rng = np.random.default_rng(study_seed(config.seed, plan.patient_index, plan.study_index))
    draw = sample_lesions(rng, config.burden)
    z_burden = burden_normal_score(draw.volume_ml, float(rng.random()), config.burden)
    score, latent = ne_score(z_burden, patient_noise, float(rng.standard_normal()), config.ne_model)
    sample_type = "cfdna" if rng.random() < config.cfdna_fraction else "biopsy"
    return StudyTruth(draw, round(score, 4), latent, z_burden, sample_type), anatomy, rng


def study_truths(config: CohortConfig) -> pd.DataFrame:
    """The studies.csv table of a cohort without rendering any image (NE scores, burdens, splits)."""
    return pd.DataFrame([draw_study(config, plan)[0].row(plan) for plan in plan_studies(config)])


def make_study(config: CohortConfig, plan: StudyPlan, out: Path | None) -> StudyResult:
    """Draw, render and (if ``out`` is given) write one study; return its table rows."""
    spec = get_size(config.size)
    truth, anatomy, rng = draw_study(config, plan)
    draw, score, sample_type = truth.draw, truth.ne_score, truth.sample_type
    rendered = render_study(anatomy, draw, spec, rng)
    study_row = truth.row(plan)
    series_rows, lesion_rows, overview = [], [], []
    for recon in RECONSTRUCTIONS:
        series_id = f"{plan.study_id}_{recon}"
        image, label = rendered.images[recon], rendered.labels[recon]
        if out is not None:
            write_image(image, out / "images" / f"{series_id}.nii.gz")
            write_label(label, out / "labels" / f"{series_id}.nii.gz")
        stats = rendered.series_stats[recon]
        series_rows.append({
            "series_id": series_id, "study_id": plan.study_id, "patient_id": plan.patient_id,
            "image": f"images/{series_id}.nii.gz", "label": f"labels/{series_id}.nii.gz",
            "ne_score": score, "ne_class": int(score > 0), "sample_type": sample_type, "split": plan.split,
            "reconstruction": recon, "slice_thickness_mm": image.GetSpacing()[2],
            "pixel_mm": round(image.GetSpacing()[0], 4), "n_lesions": stats["n_components"],
            "n_lesions_truth": draw.count, "lesion_volume_ml": round(stats["lesion_ml"], 3),
            "liver_volume_ml": round(stats["liver_ml"], 3), "dataset": "synthetic",
        })
        for lesion in rendered.lesions:
            lesion_rows.append({"series_id": series_id, "study_id": plan.study_id, **lesion,
                                "voxels": int(rendered.lesion_voxels[recon][lesion["lesion_index"] - 1])})
        overview.append((series_id, *rendered.overview_slice(recon)))
    return StudyResult(series_rows, study_row, lesion_rows, overview)


def _make_study_task(args: tuple[CohortConfig, StudyPlan, Path]) -> StudyResult:
    return make_study(*args)


PARTS = ".synth_parts"  # per-study results of an unfinished run (removed when the cohort is complete)
OUTPUT_FILES = ("manifest.csv", "studies.csv", "lesions.csv", "overview.png", "provenance.json")


def _config_record(config: CohortConfig) -> dict[str, Any]:
    record = {k: v for k, v in asdict(config).items() if k != "burden"}
    record["burden_model"] = asdict(config.burden)
    return json.loads(json.dumps(record))  # tuples -> lists, as read back from JSON


def _save_part(parts: Path, study_id: str, result: StudyResult) -> None:
    with atomic_path(parts / f"{study_id}.npz") as tmp:
        arrays: dict[str, Any] = {f"image_{i}": image for i, (_, image, _) in enumerate(result.overview)}
        arrays |= {f"label_{i}": label for i, (_, _, label) in enumerate(result.overview)}
        np.savez_compressed(tmp, **arrays)
    write_json(parts / f"{study_id}.json", {
        "series_rows": result.series_rows, "study_row": result.study_row, "lesion_rows": result.lesion_rows,
        "overview_ids": [series_id for series_id, _, _ in result.overview]})


def _load_part(parts: Path, study_id: str) -> StudyResult | None:
    rows_path, arrays_path = parts / f"{study_id}.json", parts / f"{study_id}.npz"
    if not (rows_path.is_file() and arrays_path.is_file()):
        return None
    try:
        rows = json.loads(rows_path.read_text(encoding="utf-8"))
        with np.load(arrays_path, allow_pickle=False) as arrays:  # numeric arrays only: never unpickles
            overview = [(series_id, arrays[f"image_{i}"], arrays[f"label_{i}"])
                        for i, series_id in enumerate(rows["overview_ids"])]
        return StudyResult(rows["series_rows"], rows["study_row"], rows["lesion_rows"], overview)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise ParameterError("{part}: unreadable result of an interrupted run ({reason}); use {overwrite} to start "
                             "again", part=parts / study_id,
                             reason=f"{type(exc).__name__}: {' '.join(str(exc).split())[:150]}") from None


def iter_results(config: CohortConfig, out: Path | None, workers: int = 1,
                 done: dict[str, StudyResult] | None = None) -> Iterator[StudyResult]:
    """Render every study not in ``done`` (in parallel with ``workers`` > 1), yielding results in plan order."""
    plans = plan_studies(config)
    done = done or {}
    todo = [plan for plan in plans if plan.study_id not in done]
    if workers <= 1 or len(todo) <= 1:
        fresh: Iterator[StudyResult] = (make_study(config, plan, out) for plan in todo)
        pool = None
    else:
        # Workers are forked here, before the caller starts a progress bar thread.
        pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), initializer=exit_with_parent,
                                   initargs=(os.getpid(),))
        fresh = pool.map(_make_study_task, [(config, plan, out) for plan in todo])
    try:
        for plan in plans:
            yield done[plan.study_id] if plan.study_id in done else next(fresh)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def generate_cohort(out: str | Path, config: CohortConfig, workers: int = 1, overwrite: bool = False,
                    overview: bool = True, resume: bool = False) -> pd.DataFrame:
    """Write the cohort to ``out``; return the manifest (relative paths as written).

    With ``resume``, an interrupted (also a killed) run with the same parameters is completed: studies whose results
    were saved are not rendered again (the output is byte-identical to an uninterrupted run); a complete cohort is
    left as it is.

    Examples
    --------
    >>> manifest = generate_cohort("cohort", CohortConfig(patients=3, size="tiny"))  # doctest: +SKIP
    >>> sorted(manifest["split"].unique())  # doctest: +SKIP
    ['test', 'train', 'val']
    """
    out = Path(out)
    if workers < 1:
        raise ParameterError("{workers} {value}: must be at least 1", value=workers)
    if prepare_folder(out, PARTS, _config_record(config), overwrite, resume, subfolders=("images", "labels")):
        log.info("%s: the cohort is complete; nothing to resume", out)
        return pd.read_csv(out / "manifest.csv", dtype={"series_id": str, "study_id": str, "patient_id": str})
    parts = out / PARTS
    plans = plan_studies(config)
    done = {plan.study_id: r for plan in plans if (r := _load_part(parts, plan.study_id)) is not None}
    if done:
        log.info("resuming: %d of %d studies already done", len(done), len(plans))
    series_rows: list[dict[str, Any]] = []
    study_rows: list[dict[str, Any]] = []
    lesion_rows: list[dict[str, Any]] = []
    panels: list[tuple[str, np.ndarray, np.ndarray]] = []
    from livermets.progress import track

    results = iter_results(config, out, workers, done)
    first = next(results)  # starts the worker processes before the progress bar's thread exists
    chained = (r for head in ([first], results) for r in head)
    for plan, result in zip(plans, track(chained, "synth studies", total=len(plans)), strict=True):
        if plan.study_id not in done:
            _save_part(parts, plan.study_id, result)
        series_rows += result.series_rows
        study_rows.append(result.study_row)
        lesion_rows += result.lesion_rows
        panels += result.overview
    manifest = pd.DataFrame(series_rows, columns=MANIFEST_COLUMNS)
    write_csv(out / "studies.csv", pd.DataFrame(study_rows))
    write_csv(out / "lesions.csv", pd.DataFrame(lesion_rows, columns=LESION_COLUMNS))
    if overview:
        from livermets.synth.overview import write_overview

        write_overview(out / "overview.png", panels)
    record = provenance(_config_record(config), command="livermets synth")
    record.pop("created_utc", None)  # keeps the folder byte-identical for the same seed
    write_json(out / "provenance.json", record)
    write_csv(out / "manifest.csv", manifest)  # last: its presence marks a complete cohort
    finish_folder(out, PARTS)
    log.info("wrote %d series (%d studies, %d patients) to %s", len(manifest), len(study_rows), config.patients, out)
    return manifest


