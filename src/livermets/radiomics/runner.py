"""Cohort job: radiomics of every manifest series, in parallel, resumable, failures recorded.

Execution: in-process (1 worker), a :class:`concurrent.futures.ProcessPoolExecutor` (default, ``os.cpu_count()``
workers, SimpleITK limited to one thread per worker), or a Dask distributed cluster (``scheduler="local"`` starts a
``LocalCluster`` of single-threaded worker processes; any other value is a scheduler address such as
``tcp://10.0.0.5:8786``). The work unit is :func:`livermets.radiomics.series.run_series` in every case.

Kill safety and resuming (the *parts* design):

* each finished series is written atomically to its own small CSV in ``<out>.parts/`` as soon as it arrives, so
  killing the job at any moment loses at most the series being computed;
* at the end of a run (also after Ctrl-C) and at the start of the next one, the parts are merged with the existing
  ``<out>`` into a new ``<out>`` written atomically (temporary file + rename), then removed; a kill during the merge
  leaves the old ``<out>`` and the parts, and the next run merges again (rows are de-duplicated by key);
* series whose ``File`` is already in ``<out>`` are skipped, so re-running the same command continues the job.

Failures go to ``<out stem>.failures.csv`` (``File, series_id, reason``), rewritten atomically after each failure,
and to one warning each; the warnings of failures that come before any series succeeded wait for the first success
(a run in which nothing succeeds reports them once, through :attr:`RunSummary.failure_reasons`). Failed series are
retried by the next run; entries of series not attempted in this run are kept. A series whose
mask has more lesion components than ``ExtractionOptions.max_lesions`` is such a failure; the run summary also lists
it in :attr:`RunSummary.too_many_lesions`.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import logging
import multiprocessing
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from livermets.atomic import remove_stale_temporaries, write_csv, write_json
from livermets.errors import ParameterError, UserInputError
from livermets.featuretable import order_columns
from livermets.imaging.io import prediction_path
from livermets.parallel import completed, dask_client, exit_with_parent
from livermets.progress import make_progress
from livermets.provenance import provenance
from livermets.radiomics.extractor import make_extractor, resolve_params
from livermets.radiomics.series import (
    NO_LESION,
    ExtractionOptions,
    SeriesResult,
    SeriesTask,
    manifest_ids,
    run_series,
)

log = logging.getLogger(__name__)

KEY = "File"
FAILURE_COLUMNS = ["File", "series_id", "reason"]


@dataclass
class RunSummary:
    """What one run did; ``series_per_second`` and ``lesion_voxels_per_second`` count this run's attempts.

    ``too_many_lesions`` lists ``(label map, lesion component count)`` of this run's series skipped for exceeding
    ``ExtractionOptions.max_lesions`` (they are also among ``failed``); ``failure_reasons`` lists ``(series_id,
    reason)`` of this run's failures. ``no_lesion_series`` are the series whose lesion mask is empty: not failures,
    they have no features (listed in the failures table with the reason ``no lesion``, as the paper excluded them).
    """

    out: Path
    failures: Path
    already_done: int
    attempted: int
    succeeded: int
    failed: int
    seconds: float
    lesion_voxels: int
    too_many_lesions: list[tuple[str, int]] = field(default_factory=list)
    failure_reasons: list[tuple[str, str]] = field(default_factory=list)
    no_lesion_series: list[str] = field(default_factory=list)

    @property
    def no_lesion(self) -> int:
        return len(self.no_lesion_series)

    @property
    def series_per_second(self) -> float:
        return self.attempted / self.seconds if self.seconds > 0 else float("nan")

    @property
    def lesion_voxels_per_second(self) -> float:
        return self.lesion_voxels / self.seconds if self.seconds > 0 else float("nan")


def failures_path(out: str | os.PathLike[str]) -> Path:
    """``features.csv`` → ``features.failures.csv``."""
    out = Path(out)
    stem = out.name[: -len(".csv")] if out.name.endswith(".csv") else out.name
    return out.with_name(f"{stem}.failures.csv")


def provenance_path(out: str | os.PathLike[str]) -> Path:
    """``features.csv`` → ``features.provenance.json``."""
    out = Path(out)
    stem = out.name[: -len(".csv")] if out.name.endswith(".csv") else out.name
    return out.with_name(f"{stem}.provenance.json")


def parts_dir(out: str | os.PathLike[str]) -> Path:
    """Folder of per-series part files of a running (or killed) job."""
    out = Path(out)
    return out.with_name(f"{out.name}.parts")


def build_tasks(manifest: pd.DataFrame, masks: str | os.PathLike[str] | None = None) -> list[SeriesTask]:
    """One task per manifest row; the label map is ``masks/<series_id>_seg.nii.gz`` when ``masks`` is given.

    Raises
    ------
    UserInputError
        Two series with the same image file name (``File`` identifies a series in the output), or a missing
        ``masks`` folder.
    """
    if masks is not None and not Path(masks).is_dir():
        raise ParameterError("{masks}: folder not found: {path}", path=masks)
    tasks: list[SeriesTask] = []
    seen: dict[str, int] = {}
    for i, (_, row) in enumerate(manifest.iterrows()):
        ids = manifest_ids(row)
        key = str(ids[KEY])
        if key in seen:
            raise UserInputError(
                f"manifest rows {seen[key] + 1} and {i + 1}: same image file name {key!r}; the File column "
                "identifies a series in the feature table, so image file names must be unique"
            )
        seen[key] = i
        if masks is not None:
            label: str | None = str(prediction_path(masks, str(row["series_id"])))
        else:
            value = row.get("label")
            label = None if value is None or pd.isna(value) else str(value)
        tasks.append(SeriesTask(key=key, series_id=str(row["series_id"]), image=str(row["image"]), label=label,
                                ids=ids))
    return tasks


_PART_NAME = re.compile(r"[0-9a-f]{24}\.csv")  # the names _part_path gives (never an atomic_path temporary)


def _part_path(parts: Path, key: str) -> Path:
    return parts / f"{hashlib.sha1(key.encode('utf-8')).hexdigest()[:24]}.csv"


def merge_parts(out: str | os.PathLike[str], order: Sequence[str] = (), per_lesion: bool = False) -> int:
    """Merge ``<out>.parts/*.csv`` into ``<out>`` atomically, then delete the parts; return the number of rows.

    Rows are ordered by ``order`` (manifest order of ``File``), rows of other files after them; a series present
    both in ``<out>`` and in a part keeps the part's rows.
    """
    out = Path(out)
    parts = parts_dir(out)
    if parts.is_dir():
        remove_stale_temporaries(parts)  # a write killed mid-way leaves only a hidden temporary: not a part
    part_files = sorted(p for p in parts.glob("*.csv") if _PART_NAME.fullmatch(p.name)) if parts.is_dir() else []
    frames = []
    if out.exists() and out.stat().st_size > 0:
        frames.append(pd.read_csv(out))
    new = [pd.read_csv(p) for p in part_files]
    if not new:
        if parts.is_dir():
            shutil.rmtree(parts, ignore_errors=True)
        return len(frames[0]) if frames else 0
    new_frame = pd.concat(new, ignore_index=True)
    if frames:
        frames[0] = frames[0][~frames[0][KEY].astype(str).isin(set(new_frame[KEY].astype(str)))]
    frame = pd.concat([*frames, new_frame], ignore_index=True)
    rank = {k: i for i, k in enumerate(order)}
    position = frame[KEY].astype(str).map(lambda k: rank.get(k, len(rank))).to_numpy()
    lesion = (pd.to_numeric(frame["lesion_id"], errors="coerce").fillna(0).to_numpy()
              if per_lesion and "lesion_id" in frame.columns else np.zeros(len(frame)))
    frame = frame.iloc[np.lexsort((np.arange(len(frame)), lesion, position))].reset_index(drop=True)
    if not per_lesion:
        frame = order_columns(frame)
    write_csv(out, frame)
    shutil.rmtree(parts, ignore_errors=True)
    return len(frame)


def completed_keys(out: str | os.PathLike[str]) -> set[str]:
    """``File`` values already in ``<out>`` (call :func:`merge_parts` first to include a killed run's parts)."""
    out = Path(out)
    if not out.exists() or out.stat().st_size == 0:
        return set()
    try:
        done = pd.read_csv(out, usecols=[KEY])
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserInputError(f"{out}: existing output is not a feature table with a File column ({exc})") from None
    return set(done[KEY].astype(str))


def _worker_init(parent: int) -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    exit_with_parent(parent)  # a killed job leaves no worker behind


def _results(
    tasks: list[SeriesTask], options: ExtractionOptions, workers: int, scheduler: str | None
) -> Iterator[tuple[SeriesTask, SeriesResult]]:
    """Yield ``(task, result)`` as series finish, on the chosen executor."""
    if scheduler is not None:
        yield from _dask_results(tasks, options, workers, scheduler)
        return
    if workers <= 1:
        for task in tasks:
            yield task, run_series(task, options)
        return
    # Longest-first scheduling keeps both workers busy until the end instead of leaving one big series last.
    tasks = sorted(tasks, key=_estimated_cost, reverse=True)
    context = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(run_series, task, options): task for task in tasks}
        try:
            for future in cf.as_completed(futures):
                task = futures[future]
                yield task, _outcome(task, future.result)
        finally:
            for future in futures:
                future.cancel()


def _estimated_cost(task: SeriesTask) -> int:
    """Bytes of the series' files on disk: a cheap proxy for its extraction time (0 when missing)."""
    total = 0
    for path in (task.image, task.label):
        if path and os.path.isfile(path):
            total += os.path.getsize(path)
    return total


def _dask_results(
    tasks: list[SeriesTask], options: ExtractionOptions, workers: int, scheduler: str
) -> Iterator[tuple[SeriesTask, SeriesResult]]:
    with dask_client(workers, scheduler) as client:
        for task, get in completed(client, run_series, tasks, options=options):
            yield task, _outcome(task, get)


def _outcome(task: SeriesTask, get: Any) -> SeriesResult:
    try:
        result: SeriesResult = get()
    except UserInputError:
        raise
    except Exception as exc:  # a dead worker process or a lost Dask worker: record it, the next run retries
        return SeriesResult(task.key, task.series_id, [], f"worker error: {type(exc).__name__}: {exc}")
    return result


def run_extraction(
    tasks: list[SeriesTask],
    out: str | os.PathLike[str],
    options: ExtractionOptions | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    show_progress: bool = True,
    command: str = "livermets radiomics extract",
) -> RunSummary:
    """Extract features of all ``tasks`` not yet in ``out``; see the module docstring for resuming and failures.

    Parameters
    ----------
    tasks
        From :func:`build_tasks`.
    out
        Feature table CSV (created or extended).
    options
        Extraction options (default: the paper's extraction).
    workers
        Worker processes (default ``os.cpu_count()``; 1 = in this process).
    scheduler
        ``None`` (process pool), ``"local"`` (Dask LocalCluster) or a Dask scheduler address.

    Examples
    --------
    >>> from livermets.cohort.manifest import load_manifest
    >>> tasks = build_tasks(load_manifest("cohort/manifest.csv"))  # doctest: +SKIP
    >>> run_extraction(tasks, "features.csv", workers=2).succeeded  # doctest: +SKIP
    20
    """
    options = options or ExtractionOptions()
    out = Path(out)
    options = replace(options, params=str(resolve_params(options.params)))
    make_extractor(options.params)  # a bad parameter file stops here, once, not in every worker
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if scheduler is not None or workers > 1:
        options = replace(options, single_thread=True)
    order = [t.key for t in tasks]
    for target in (out, failures_path(out), provenance_path(out)):  # a kill inside their final write left these
        remove_stale_temporaries(target.parent, target.name)
    merge_parts(out, order, options.per_lesion)  # a killed run's finished series count as done
    done = completed_keys(out)
    todo = [t for t in tasks if t.key not in done]
    fail_path = failures_path(out)
    tally = _Tally(kept_failures=_kept_failures(fail_path, {t.key for t in todo} | done))
    parts = parts_dir(out)
    parts.mkdir(parents=True, exist_ok=True)
    log.debug("%d series in manifest, %d already in %s, %d to compute (%s)", len(tasks), len(tasks) - len(todo),
              out, len(todo), f"Dask {scheduler}" if scheduler else f"{workers} worker(s)")
    warnings = _FailureWarnings(bool(done))
    start = time.perf_counter()
    try:
        with make_progress() as progress:
            bar = progress.add_task("radiomics", total=len(todo), visible=show_progress)
            for task, result in _results(todo, options, workers, scheduler):
                tally.add(task, result, parts, fail_path, warnings)
                progress.advance(bar)
    finally:
        seconds = time.perf_counter() - start
        merge_parts(out, order, options.per_lesion)
        write_csv(fail_path, tally.failures_frame())
    summary = RunSummary(out, fail_path, len(tasks) - len(todo), len(todo), tally.succeeded, tally.failed, seconds,
                         tally.voxels, tally.over_limit,
                         [(str(f["series_id"]), str(f["reason"])) for f in tally.new_failures
                          if f["reason"] != NO_LESION], tally.no_lesion)
    parameters = {"options": asdict(options), "workers": workers, "scheduler": scheduler,
                  "params_yaml": Path(str(options.params)).read_text(encoding="utf-8"),
                  "summary": {k: v for k, v in asdict(summary).items()
                              if k not in ("out", "failures", "too_many_lesions", "failure_reasons")}}
    write_json(provenance_path(out), provenance(parameters, command))
    return summary


@dataclass
class _Tally:
    """This run's counts and failures, updated as results arrive (complete up to an interruption)."""

    kept_failures: list[dict[str, Any]]
    new_failures: list[dict[str, Any]] = field(default_factory=list)
    succeeded: int = 0
    failed: int = 0
    no_lesion: list[str] = field(default_factory=list)
    voxels: int = 0
    over_limit: list[tuple[str, int]] = field(default_factory=list)

    def failures_frame(self) -> pd.DataFrame:
        """The failures table: entries kept from earlier runs, then this run's."""
        return pd.DataFrame(self.kept_failures + self.new_failures, columns=FAILURE_COLUMNS)

    def add(self, task: SeriesTask, result: SeriesResult, parts: Path, fail_path: Path,
            warnings: _FailureWarnings) -> None:
        """Write a finished series' part file, or record and write its failure."""
        self.voxels += result.lesion_voxels
        if result.failure is None:
            write_csv(_part_path(parts, task.key), pd.DataFrame(result.rows))
            self.succeeded += 1
            warnings.success()
            return
        self.new_failures.append({"File": task.key, "series_id": task.series_id, "reason": result.failure})
        write_csv(fail_path, self.failures_frame())
        if result.failure == NO_LESION:  # not a failure: a series without lesion has no features
            self.no_lesion.append(task.series_id)
            return
        self.failed += 1
        warnings.failure(task.series_id, result.failure)
        if result.too_many_lesions is not None:
            self.over_limit.append((task.label or task.key, result.too_many_lesions))


class _FailureWarnings:
    """One warning per failed series, held back until a series succeeds (or ``anything_done`` from the start)."""

    def __init__(self, anything_done: bool) -> None:
        self.anything_done = anything_done
        self.pending: list[tuple[str, str]] = []

    def failure(self, series_id: str, reason: str) -> None:
        if self.anything_done:
            log.warning("%s: %s", series_id, reason)
        else:
            self.pending.append((series_id, reason))

    def success(self) -> None:
        self.anything_done = True
        for series_id, reason in self.pending:
            log.warning("%s: %s", series_id, reason)
        self.pending = []


def _kept_failures(path: Path, attempted_or_done: set[str]) -> list[dict[str, Any]]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    try:
        old = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return []
    if not set(FAILURE_COLUMNS) <= set(old.columns):
        return []
    keep = old[~old["File"].isin(attempted_or_done)]
    return [{str(k): v for k, v in record.items()} for record in keep[FAILURE_COLUMNS].to_dict("records")]
