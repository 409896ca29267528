"""Which model segments when none is given, and the one line that says which model is used.

The default is the best installed registry model (:func:`default_model_name`): TotalSegmentator's liver + liver
lesion pair (``ts-pair``, else ``ts-pair-fast``) when installed (``livermets models install ts-pair``), otherwise the
model shipped with livermets (``shipped``). The shipped model's folder ``livermets/segmentation/models/default`` is an
ordinary model folder (``config.yaml``, ``model.safetensors``, ``train_log.csv``, ``training_curve.png``,
``lesion_threshold.csv``, ``provenance.json``) plus ``RECIPE.md``: the commands that trained it
(``scripts/train_default_model.sh``), the data generator version and seed. Weights are safetensors (no pickle).

Examples
--------
>>> resolve_model(None).name
'default'
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from livermets.errors import UserInputError
from livermets.segmentation.install import is_installed, models_dir, verify_model
from livermets.segmentation.model_files import CONFIG_FILE, DEFAULT_MODEL_DIR, WEIGHTS_FILE
from livermets.segmentation.registry import default_order, entry

SHIPPED = "shipped"
INSTALL_HINT = "livermets models install ts-pair"
SHIPPED_MODEL_WARNING = ("Segmented with the model shipped with livermets, which was trained on synthetic CT built "
                         "from one real anatomy: on real CT it misses small metastases and marks about ten "
                         "false-positive lesions per scan (docs/benchmarks.md). Check the masks before using any "
                         f"number; `{INSTALL_HINT}` installs TotalSegmentator's liver and liver-lesion models, used "
                         "by default once installed.")
"""What the reports say when the shipped model segmented (a series report, and the cohort report of ``run``)."""
log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ModelInfo:
    """The model a prediction uses, as the report and the model line name it.

    ``name`` is the registry name (``ts-pair``, ``shipped``) or the folder's name; ``registry`` tells which;
    ``default`` that it was chosen because no model was given. ``version``, ``licence`` and ``citation`` come from
    the registry (``None`` for a folder).
    """

    name: str
    folder: Path
    engine: str
    registry: bool = False
    default: bool = False
    version: str | None = None
    licence: str | None = None
    citation: str | None = None

    @property
    def shipped(self) -> bool:
        return self.engine in ("monai", "folder") and self.folder.resolve() == DEFAULT_MODEL_DIR.resolve()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "folder": str(self.folder), "shipped": self.shipped}


def default_model_name() -> str:
    """The first installed model of the registry's ``default_order`` (``ts-pair``, ``ts-pair-fast``, ``shipped``)."""
    return next(name for name in default_order() if is_installed(name))


def registry_model(name: str, default: bool = False) -> ModelInfo:
    """A registry model ready to load: its installed files hashed again against ``install.json``.

    Raises
    ------
    UserInputError
        Unknown name, a model that is not installed or whose files changed, or a single nnU-Net component (give a
        pair, or its result folder with ``--label-map``).
    """
    item = entry(name)
    if item.engine == "monai":
        folder = resolve_model(None, warn=False)
    elif item.engine == "pair":
        if not is_installed(name):
            raise UserInputError(f"model {name} is not installed: livermets models install {name}")
        verify_model(name)  # every installed file hashed again against install.json
        folder = models_dir()  # a pair has no folder of its own: its components are installed side by side
    else:
        pairs = [n for n in default_order() if n != SHIPPED and name in entry(n).requires]
        raise UserInputError(f"model {name} is one part of a liver + lesion pair: use {' or '.join(pairs)} (its "
                             f"result folder also predicts, with the label map {item.label_map})")
    return ModelInfo(name, folder, item.engine, registry=True, default=default, version=item.version,
                     licence=item.licence, citation=item.citation)


def announce_model(info: ModelInfo) -> None:
    """Log the one line that says which registry model is used (nothing for a model folder given by path).

    The shipped model's line is a warning that says what it is trained on and how to install the better one.
    """
    if not info.registry:
        return
    how = "default: the best installed" if info.default else "as asked"
    if info.shipped:
        warn_default_model(how)
        return
    log.info("model: %s %s (%s; %s licence; cite %s)", info.name, info.version, how, info.licence,
             _short_citation(info.citation))


def _short_citation(citation: str | None) -> str:
    """``Wasserthal et al. 2023`` from a full reference (first author, year), or the DOI link."""
    if not citation:
        return "-"
    first = citation.split(",")[0].split()[0]
    year = re.search(r"\b(?:19|20)\d\d\b", citation)
    doi = re.search(r"https://doi\.org/\S+?(?=[).]?(?:\s|$))", citation)
    if year is None and doi is None:
        return citation.split(". ")[0]
    return " ".join(part for part in (f"{first} et al.", year and year.group(0), doi and doi.group(0)) if part)


def resolve_model(model: str | Path | None, warn: bool = True) -> Path:
    """``model`` as a Path, or the shipped model folder when ``model`` is None.

    With ``warn``, choosing the shipped model logs what it is trained on (:func:`warn_default_model`).

    Raises
    ------
    UserInputError
        The shipped model is requested but its files are missing from the installation.
    """
    if model is not None:
        return Path(model)
    if not (DEFAULT_MODEL_DIR / CONFIG_FILE).is_file() or not (DEFAULT_MODEL_DIR / WEIGHTS_FILE).is_file():
        raise UserInputError(f"model: the default model is missing from this installation ({DEFAULT_MODEL_DIR}); "
                             "give a model folder")
    if warn:
        warn_default_model()
    return DEFAULT_MODEL_DIR


def warn_default_model(how: str = "default") -> None:
    """Log that the shipped model is used, what that means for real CT, and how to install the better one."""
    log.warning("model: shipped (%s; trained on synthetic CT built from one real anatomy, it misses small "
                "metastases and marks about ten false-positive lesions per real CT, see docs/benchmarks.md); for "
                "TotalSegmentator's liver and liver-lesion models run: %s", how, INSTALL_HINT)
