"""nnU-Net's working folders and process settings, set for the duration of one livermets call.

nnU-Net v2 reads its folders from the environment variables ``nnUNet_raw``, ``nnUNet_preprocessed`` and
``nnUNet_results`` each time it needs them. :func:`nnunet_environment` points them at folders inside a livermets model
folder and restores the previous environment afterwards, so nothing has to be configured by the user.

Examples
--------
>>> import os, tempfile
>>> model = tempfile.mkdtemp()
>>> with nnunet_environment(model) as folders:
...     os.environ["nnUNet_raw"] == str(folders.raw)
True
>>> "nnUNet_raw" in os.environ
False
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from livermets.errors import ParameterError, UserInputError

log = logging.getLogger(__name__)

INSTALL_RECIPE = (
    "pip install --no-deps nnunetv2==2.8.1 dynamic-network-architectures==0.4.4 plus their runtime dependencies "
    "pinned in requirements.lock (`make bootstrap` does both)"
)
"""How to install nnU-Net v2 next to the CPU torch (its declared timm/torchvision dependencies are left out)."""

REQUIRED_MODULES = ("nnunetv2", "dynamic_network_architectures", "batchgenerators", "batchgeneratorsv2",
                    "acvl_utils", "blosc2")
"""Modules nnU-Net v2 training and inference import."""

RAW, PREPROCESSED, RESULTS = "raw", "preprocessed", "results"
"""Names of nnU-Net's working folders inside a livermets nnU-Net model folder."""


@dataclass(frozen=True)
class NnunetFolders:
    """nnU-Net's three folders inside one livermets model folder."""

    raw: Path
    preprocessed: Path
    results: Path

    @classmethod
    def inside(cls, model_dir: str | os.PathLike[str]) -> NnunetFolders:
        """``MODEL/raw``, ``MODEL/preprocessed`` and ``MODEL/results`` (absolute paths)."""
        root = Path(model_dir).absolute()
        return cls(root / RAW, root / PREPROCESSED, root / RESULTS)


def require_nnunet() -> None:
    """Check that nnU-Net v2 and its runtime dependencies are importable (without importing them).

    Raises
    ------
    ParameterError
        A module is missing; the message gives the install recipe.
    """
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ParameterError("{model} nnunet: {missing} not installed; install with {recipe}",
                             missing=", ".join(missing), recipe=INSTALL_RECIPE)


@contextlib.contextmanager
def nnunet_environment(model_dir: str | os.PathLike[str],
                       augmentation_workers: int | None = None) -> Iterator[NnunetFolders]:
    """Point nnU-Net at ``MODEL/raw``, ``MODEL/preprocessed`` and ``MODEL/results`` for the block; restore after.

    Parameters
    ----------
    model_dir
        The livermets nnU-Net model folder (the three folders are created when missing).
    augmentation_workers
        Data-augmentation worker processes of nnU-Net's trainer (``nnUNet_n_proc_DA``); 0 augments in the training
        process itself. ``None`` keeps nnU-Net's own rule.

    Yields
    ------
    NnunetFolders
        The three folders.
    """
    folders = NnunetFolders.inside(model_dir)
    settings = {"nnUNet_raw": str(folders.raw), "nnUNet_preprocessed": str(folders.preprocessed),
                "nnUNet_results": str(folders.results)}
    if augmentation_workers is not None:
        if augmentation_workers < 0:
            raise UserInputError(f"augmentation_workers: must be >= 0, got {augmentation_workers}")
        settings["nnUNet_n_proc_DA"] = str(augmentation_workers)
    saved = {name: os.environ.get(name) for name in settings}
    for path in (folders.raw, folders.preprocessed, folders.results):
        path.mkdir(parents=True, exist_ok=True)
    try:
        os.environ.update(settings)
        yield folders
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def nnunet_prints_to_log() -> Iterator[None]:
    """Send what nnU-Net prints on stdout to the debug log (stdout belongs to the livermets command): its
    plans, citation banner and progress, so that a failure shows one error line."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        text = buffer.getvalue().strip()
        if text:
            log.debug("nnU-Net: %s", text)
