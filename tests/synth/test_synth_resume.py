"""An interrupted ``livermets synth`` run can be resumed and gives the same bytes as an uninterrupted one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from livermets.errors import UserInputError
from livermets.synth import cohort
from livermets.synth.cohort import PARTS, CohortConfig, generate_cohort


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resume_after_interruption(tiny_cohort: Path, tiny_config: CohortConfig, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "interrupted"
    real_make_study = cohort.make_study
    calls = []

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_make_study(*args, **kwargs)

    monkeypatch.setattr(cohort, "make_study", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_cohort(out, tiny_config)
    monkeypatch.setattr(cohort, "make_study", real_make_study)
    assert not (out / "manifest.csv").exists()
    assert len(list((out / PARTS).glob("*.json"))) == 3  # config + 2 finished studies

    with pytest.raises(UserInputError, match="folder is not empty"):
        generate_cohort(out, tiny_config)
    with pytest.raises(UserInputError, match="different parameters"):
        generate_cohort(out, CohortConfig(patients=tiny_config.patients, seed=tiny_config.seed + 1, size="tiny"),
                        resume=True)

    rendered = []
    monkeypatch.setattr(cohort, "make_study", lambda *a, **k: rendered.append(a[1].study_id) or real_make_study(*a))
    generate_cohort(out, tiny_config, resume=True)
    n_studies = len(cohort.plan_studies(tiny_config))
    assert len(rendered) == n_studies - 2  # the two saved studies were not rendered again
    assert not (out / PARTS).exists()
    assert _digests(out) == _digests(tiny_cohort)
