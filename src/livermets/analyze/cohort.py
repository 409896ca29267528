"""``run``: :class:`~livermets.analyze.single.Analyzer` over every series of a manifest, resumable, on Dask.

Layout of ``OUT``::

    series/<series_id>/   one analyze folder per series (label.nii.gz, seg.dcm, lesions.csv, report.html, ...)
    summary.csv           one row per analysed series (burden, NE probability, plausibility flags) + manifest ids
    lesions.csv           every lesion, with series_id and patient_id
    features.csv          the published feature schema, ids and NE targets from the manifest (a training table)
    predictions.csv       the NE prediction of every series that has one (probability, class, fold spread)
    qc.csv                the plausibility measurements of every series
    failures.csv          series that could not be analysed, with the reason (retried by the next run)
    cohort_stats.json     burden vs NE at the patient level (n as patients, studies, series) and the caveats
    cohort_report.html    caveats, burden vs NE, per-patient timelines, failures
    run.json              options, counts, provenance

Each series folder appears whole or not at all (:mod:`livermets.analyze.folder`), so after a kill a new run skips
the finished series, deletes the partial one and redoes it; the cohort tables are rebuilt from the series folders.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from livermets.analyze.folder import remove_partials
from livermets.analyze.options import AnalyzeOptions
from livermets.atomic import remove_stale_temporaries, write_csv, write_json
from livermets.cohort.manifest import load_manifest
from livermets.errors import UserInputError
from livermets.logs import SentRecord, captured_records, replay
from livermets.progress import track
from livermets.provenance import provenance
from livermets.radiomics.series import manifest_ids
from livermets.segmentation.default_model import announce_model
from livermets.segmentation.engines.threads import available_cores, engine_threads

if TYPE_CHECKING:
    from livermets.analyze.single import Analyzer

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ["series_id", "image", "reason"]
MANIFEST_ID_COLUMNS = ["series_id", "study_id", "patient_id"]


@dataclass(frozen=True)
class SeriesJob:
    """One manifest row to analyse into ``out``."""

    series_id: str
    image: str
    out: str
    ids: dict[str, Any]


@dataclass
class RunSummary:
    """Counts of a run and where its outputs are."""

    out: Path
    n_series: int
    n_done_before: int
    n_analysed: int
    failures: list[dict[str, str]]


@functools.lru_cache(maxsize=2)
def _analyzer(options: AnalyzeOptions) -> Analyzer:
    """One loaded Analyzer per options and worker process (models are read once, not once per series)."""
    from livermets.analyze.single import Analyzer  # torch, MONAI, PyRadiomics: after the manifest is checked

    return Analyzer(options, announce=False)  # the model line is printed once, by run_cohort


def analyze_job(job: SeriesJob, options: AnalyzeOptions) -> tuple[str | None, list[SentRecord]]:
    """Analyse one series with ``options.threads`` threads (1 when unset; never raises for bad data).

    Returns ``None`` or the reason it failed, and the log records of the job, which the main process logs
    (:func:`livermets.logs.replay`): a worker's warnings are printed, and counted, where the command runs.
    """
    import SimpleITK as sitk
    import torch

    threads = options.threads or 1
    torch.set_num_threads(threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    with captured_records() as records:
        try:
            _analyzer(options).analyze(job.image, job.out, overwrite=True, series_id=job.series_id, ids=job.ids)
        except UserInputError as exc:
            return str(exc), records
        except Exception as exc:  # one broken series must not stop a cohort: record it, the next run retries
            return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}", records
    return None, records


def _jobs(manifest: str | Path, series_dir: Path) -> list[SeriesJob]:
    frame = load_manifest(manifest)
    duplicated = sorted(set(frame.loc[frame["series_id"].duplicated(), "series_id"].astype(str)))
    if duplicated:
        raise UserInputError(f"{manifest}: duplicate series_id {duplicated[:5]} (each names an output folder)")

    return [SeriesJob(str(row["series_id"]), str(row["image"]), str(series_dir / str(row["series_id"])),
                      manifest_ids(row)) for _, row in frame.iterrows()]


def _outcomes(jobs: list[SeriesJob], options: AnalyzeOptions, workers: int,
              scheduler: str) -> Iterator[tuple[SeriesJob, Callable[[], tuple[str | None, list[SentRecord]]]]]:
    if scheduler == "local" and workers <= 1:
        for job in jobs:
            yield job, functools.partial(analyze_job, job, options)
        return
    from livermets.parallel import completed, dask_client

    with dask_client(workers, scheduler) as client:
        yield from completed(client, analyze_job, jobs, options=options)


def _phenotype_model(analyzer: Analyzer) -> dict[str, Any] | None:
    """What the cohort report says about the run's phenotype model (``None`` without one)."""
    model = analyzer.phenotype
    if model is None:
        return None
    return {"model": str(model.path), "classifier": model.config.get("model"),
            "protocol": model.config.get("protocol"), "cv_performance": model.cv_performance}


def run_cohort(manifest: str | Path, out: str | Path, options: AnalyzeOptions, workers: int | None = None,
               scheduler: str = "local") -> RunSummary:
    """Analyse every manifest series not yet done in ``out``; then rebuild the cohort tables and report.

    Parameters
    ----------
    manifest
        Cohort manifest CSV (``series_id, study_id, patient_id, image``; ``ne_score``/``ne_class`` when known).
    out
        Output folder (created; an existing one is resumed).
    options
        :class:`AnalyzeOptions` for every series; the models are checked here, before any series runs.
    workers
        Worker processes (default: the cores this process may use); each gets ``options.threads`` threads, by
        default the cores shared among the local workers (a remote scheduler's workers: 1).
    scheduler
        ``local`` (a Dask cluster of ``workers`` processes on this machine, or this process for 1 worker) or the
        address of a running ``dask.distributed`` scheduler, e.g. ``tcp://10.0.0.5:8786``.
    """
    out = Path(out)
    series_dir = out / "series"
    jobs = _jobs(manifest, series_dir)  # a bad manifest fails first, before the model loads (and warns)
    workers = workers or available_cores()
    if options.threads is None:  # local workers share this machine's cores; a remote worker computes single-threaded
        options = replace(options, threads=engine_threads(None, workers) if scheduler == "local" else 1)
    analyzer = _analyzer(options)
    _ = analyzer.segmenter  # a bad model fails here in one line, before any worker starts
    announce_model(analyzer.model_info)
    remove_stale_temporaries(out)  # a kill inside the write of a cohort table left its hidden temporary
    removed = remove_partials(series_dir)
    if removed:
        log.info("removed %d partial series folder(s) left by an interrupted run", len(removed))
    todo = [job for job in jobs if not Path(job.out).is_dir()]
    failures: list[dict[str, str]] = []
    for job, get in track(_outcomes(todo, options, workers, scheduler), "Analysing", total=len(todo)):
        reason, records = get()
        replay(records)
        if reason is not None:
            log.warning("%s: %s", job.series_id, reason)
            failures.append({"series_id": job.series_id, "image": job.image, "reason": reason})
    from livermets.analyze.cohort_tables import write_cohort_outputs

    write_cohort_outputs(jobs, out, failures, _phenotype_model(analyzer))
    summary = RunSummary(out, len(jobs), len(jobs) - len(todo), len(todo) - len(failures), failures)
    write_json(out / "run.json", {"n_series": summary.n_series, "n_done_before": summary.n_done_before,
                                  "n_analysed": summary.n_analysed, "n_failed": len(failures),
                                  "provenance": provenance({**options.to_dict(), "workers": workers,
                                                            "scheduler": scheduler}, "livermets run")})
    write_csv(out / "failures.csv", pd.DataFrame(failures, columns=FAILURE_COLUMNS))
    return summary
