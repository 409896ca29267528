"""The settings of ``analyze`` and ``run`` (no numerical library: the command line builds them before any import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AnalyzeOptions:
    """Settings of an ``analyze`` run (the same for every scan of a ``run``).

    Attributes
    ----------
    model
        Segmentation model: a folder, or a registry name (``ts-pair``, ``shipped``, ...; ``livermets models list``);
        ``None``: the best installed registry model (the shipped one, with a warning, when no other is installed).
    phenotype_model
        Folder from ``livermets phenotype train`` (``None``: no NE prediction).
    per_lesion
        Also apply the phenotype model to each lesion's own features (exploratory).
    tta, device
        Flip test-time augmentation; ``auto``, ``cpu`` or ``cuda``.
    series_uid
        For a DICOM folder holding several series: the one to analyse.
    show_identifiers
        Copy DICOM patient name, id, study date and accession number into the report.
    max_lesions
        More lesion components than this: features are not computed (a failed segmentation, not a scan to describe).
    radiomics_params
        PyRadiomics parameter file (``None``: the paper's settings).
    force_phenotype
        Write the NE probability even when the quality checks withhold it (:mod:`livermets.analyze.gate`); the
        reasons stay in every output and the report says so first.
    min_lesion_ml, min_lesion_diameter_mm
        Remove predicted lesions smaller than this (mL) or with a shorter longest axial diameter (mm); ``None``: the
        segmentation model's settings (defaults 0.03 mL and 3 mm), ``0``: that limit off
        (:mod:`livermets.segmentation.lesion_size`).
    engine, threads
        Engine of the segmentation network's forward pass (``auto``: the fastest installed on CPU) and its threads
        (``None``: the cores this process may use; ``run`` shares them among its local workers).
    """

    model: str | Path | None = None
    phenotype_model: str | Path | None = None
    per_lesion: bool = False
    tta: bool = False
    device: str = "auto"
    series_uid: str | None = None
    show_identifiers: bool = False
    max_lesions: int = 200
    radiomics_params: str | None = None
    force_phenotype: bool = False
    min_lesion_ml: float | None = None
    min_lesion_diameter_mm: float | None = None
    engine: str = "auto"
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
