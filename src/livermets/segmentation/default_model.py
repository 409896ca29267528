"""The segmentation model shipped with livermets, used when no model folder is given.

The folder ``livermets/segmentation/models/default`` is an ordinary model folder (``config.yaml``,
``model.safetensors``, ``train_log.csv``, ``training_curve.png``, ``lesion_threshold.csv``, ``provenance.json``) plus
``RECIPE.md``: the commands that trained it (``scripts/train_default_model.sh``), the data generator version and
seed. Weights are safetensors (no pickle).

Examples
--------
>>> resolve_model(None).name
'default'
"""

from __future__ import annotations

import logging
from pathlib import Path

from livermets.errors import UserInputError
from livermets.logs import repeated
from livermets.segmentation.model_files import CONFIG_FILE, WEIGHTS_FILE

DEFAULT_MODEL_DIR = Path(__file__).with_name("models") / "default"
log = logging.getLogger(__name__)


def resolve_model(model: str | Path | None, warn: bool = True) -> Path:
    """``model`` as a Path, or the shipped default model folder when ``model`` is None.

    With ``warn``, choosing the default model logs what it is trained on (:func:`warn_default_model`); a caller that
    checks its other inputs first passes ``warn=False`` and warns once the model is used.

    Raises
    ------
    UserInputError
        The default model is requested but its files are missing from the installation.
    """
    if model is not None:
        return Path(model)
    if not (DEFAULT_MODEL_DIR / CONFIG_FILE).is_file() or not (DEFAULT_MODEL_DIR / WEIGHTS_FILE).is_file():
        raise UserInputError(f"model: the default model is missing from this installation ({DEFAULT_MODEL_DIR}); "
                             "give a model folder")
    if warn:
        warn_default_model()
    return DEFAULT_MODEL_DIR


def warn_default_model() -> None:
    """Log that the shipped model is used and what that means for real CT."""
    log.warning("using the model shipped with livermets (trained on synthetic CT built from one real anatomy; on "
                "real CT it misses part of the liver and most metastases, see docs/benchmarks.md); for research "
                "results train on your own labelled scans and pass --model",
                extra=repeated("using the model shipped with livermets"))  # once per process: printed once
