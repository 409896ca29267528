"""Start, resume and finish a cohort folder so that a kill at any moment leaves a state ``--resume`` completes.

A run keeps its per-study (per-case) results in a hidden parts folder inside the output folder. The parts folder is
created whole, with the run's parameters in ``config.json`` (built under a partial name and renamed), so that its
presence always means "an unfinished run with these parameters". ``manifest.csv`` is written last and marks a complete
cohort; the parts folder is then renamed to a partial name and deleted. Resuming removes what a kill can leave
behind: partial folders and temporary files of interrupted writes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from livermets.atomic import PARTIAL_MARK, remove_partials, remove_stale_temporaries, staged_folder, write_json
from livermets.errors import ParameterError

CONFIG = "config.json"


def prepare_folder(out: Path, parts: str, record: dict[str, Any], overwrite: bool, resume: bool,
                   subfolders: Iterable[str] = ()) -> bool:
    """Make ``out`` ready for a run with parameters ``record``; True when ``resume`` finds the cohort complete.

    Raises
    ------
    ParameterError
        ``out`` is a file; ``resume`` of a run (or cohort) made with other parameters; a non-empty ``out`` without
        ``overwrite`` or ``resume``.
    """
    if out.exists() and not out.is_dir():
        raise ParameterError("{out} {value}: exists and is not a folder", value=out)
    if resume and out.is_dir():
        _clean_after_kill(out, parts, subfolders)
        saved = out / parts / CONFIG
        if saved.is_file():
            _check_same(json.loads(saved.read_text(encoding="utf-8")), record, out, "the unfinished run")
            return False
        if (out / "manifest.csv").is_file() and (out / "provenance.json").is_file():
            made = json.loads((out / "provenance.json").read_text(encoding="utf-8")).get("parameters", {})
            _check_same({k: made.get(k) for k in record}, record, out, "the cohort in this folder")
            shutil.rmtree(out / parts, ignore_errors=True)
            return True
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ParameterError("{out} {value}: folder is not empty (use {overwrite} to replace its cohort, or "
                                 "{resume} to finish an interrupted run)", value=out)
        (out / "manifest.csv").unlink(missing_ok=True)  # first, so that no stale manifest marks the folder complete
        shutil.rmtree(out)
    with staged_folder(out / parts, overwrite=True) as tmp:
        write_json(tmp / CONFIG, record)
    return False


def finish_folder(out: Path, parts: str) -> None:
    """Delete the parts folder of a complete cohort (renamed first, so that a kill leaves only a partial folder)."""
    done = out / f"{parts}{PARTIAL_MARK}done"
    os.replace(out / parts, done)
    shutil.rmtree(done)


def _clean_after_kill(out: Path, parts: str, subfolders: Iterable[str]) -> None:
    remove_partials(out)
    for folder in (out, out / parts, *(out / s for s in subfolders)):
        remove_stale_temporaries(folder)


def _check_same(saved: dict[str, Any], record: dict[str, Any], out: Path, what: str) -> None:
    if saved != record:
        changed = sorted(k for k in set(saved) | set(record) if saved.get(k) != record.get(k))
        raise ParameterError("{resume} {value}: {what} used different parameters ({changed})", value=out, what=what,
                             changed=", ".join(changed))
