"""The CLI's log: a repeated warning once with its count, worker records counted where the command runs, no
temporary path, and the plausibility and shipped-model warnings of the pipeline tagged as repeated."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from livermets import logs
from livermets.atomic import staged_folder, write_text
from livermets.segmentation.default_model import warn_default_model
from livermets.segmentation.predict import _log_flags
from livermets.segmentation.qc import FLAG_CODES, FLAG_TITLES, QCFlag, QCRecord


def _warning_lines(text: str) -> list[str]:
    """The log lines of rich's handler (a record may wrap onto several lines: joined)."""
    records: list[str] = []
    for line in text.splitlines():
        if re.match(r"^(\[\d\d:\d\d:\d\d\]\s+)?\s*(WARNING|INFO|ERROR|DEBUG)\s", line):
            records.append(line)
        elif records and line.startswith(" "):
            records[-1] += " " + line.strip()
    return [" ".join(r.split()) for r in records if " WARNING " in f" {r} "]


def _record(series: str) -> QCRecord:
    return QCRecord(series, 1500.0, 2.0, 1, 0, 0, -1000.0, 400.0, 90.0, (1.8, 1.8, 5.0), 0.0,
                    flags=[QCFlag("spacing", "in-plane spacing 1.8 x 1.8 mm outside 0.5..1 mm (qc.pixel_mm)")])


def test_a_repeated_warning_is_printed_once_with_its_count(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(0)
    for k in range(36):
        _log_flags(_record(f"S{k:02d}"))
    logging.getLogger("livermets.other").warning("an ordinary warning")
    printed = _warning_lines(capsys.readouterr().err)  # only the ordinary warning, at once
    assert len(printed) == 1 and printed[0].endswith("WARNING an ordinary warning")
    logs.flush_repeated()
    lines = _warning_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert "spacing outside the model's range: 36 series; the first: S00: plausibility check spacing: in-plane" \
        in lines[0]
    logs.flush_repeated()  # flushed once: nothing left
    assert capsys.readouterr().err == ""


def test_one_item_prints_the_warning_itself_and_the_same_item_counts_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(0)
    for _ in range(3):  # the same series flagged three times
        _log_flags(_record("S1"))
    warn_default_model()  # not a repeated warning: printed at once
    logs.flush_repeated()
    lines = _warning_lines(capsys.readouterr().err)
    assert len(lines) == 2
    assert "model: shipped (default; trained on synthetic CT" in lines[0]
    assert "S1: plausibility check spacing: in-plane spacing 1.8 x 1.8 mm" in lines[1] and "series;" not in lines[1]


def test_verbose_prints_every_occurrence_and_then_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(1)
    for k in range(3):
        _log_flags(_record(f"S{k}"))
    assert len(_warning_lines(capsys.readouterr().err)) == 3
    logs.flush_repeated()
    assert "3 series" in _warning_lines(capsys.readouterr().err)[0]


def test_worker_records_are_replayed_and_counted_in_the_main_process(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(0)
    sent = []
    for k in range(2):  # what two worker processes send back with their results
        with logs.captured_records() as records:
            logging.getLogger("livermets.test").warning("W%d: a warning of its own", k)
            _log_flags(_record(f"W{k}"))
        sent.append(records)
    assert capsys.readouterr().err == ""  # captured, not printed
    assert all(len(r) == 2 for r in sent)
    for records in sent:
        logs.replay(records)
    logs.flush_repeated()
    lines = _warning_lines(capsys.readouterr().err)
    assert len(lines) == 3
    assert "W0: a warning of its own" in lines[0] and "W1: a warning of its own" in lines[1]
    assert "spacing outside the model's range: 2 series; the first: W0:" in lines[2]


def test_every_plausibility_flag_has_a_summary_title() -> None:
    assert set(FLAG_TITLES) == set(FLAG_CODES)


def test_no_temporary_path_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(0)
    log = logging.getLogger("livermets.test")
    with staged_folder(tmp_path / "report") as staged:
        assert ".partial-" in staged.name
        written = write_text(staged / "seg.dcm", "x")
        log.info("wrote DICOM SEG %s (3 frames)", written)
        log.warning("%s: cannot do that", staged / "qc.json")
        log.info(f"message with the path inline {staged / 'a.csv'}, and more")
    err = "".join(capsys.readouterr().err.split())  # rich wraps long lines anywhere: compare without spaces
    assert ".partial-" not in err
    for expected in (f"wrote DICOM SEG {tmp_path / 'report' / 'seg.dcm'} (3 frames)",
                     f"{tmp_path / 'report' / 'qc.json'}: cannot do that",
                     f"inline {tmp_path / 'report' / 'a.csv'}, and more"):
        assert "".join(expected.split()) in err


def test_final_path_of_temporary_names() -> None:
    assert logs.final_path("/a/.b.partial-x1_2/c/.d.csv.abcd1234.tmp.csv") == Path("/a/b/c/d.csv")
    assert logs.final_path("/a/b.partial-x/c") == Path("/a/b.partial-x/c")  # not a hidden staging folder
    assert logs.final_paths_in("kept /a/b.txt, moved /x/.y.old-ab12/z") == "kept /a/b.txt, moved /x/y/z"
