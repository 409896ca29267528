"""Load nnU-Net v2 checkpoints (``fold_*/checkpoint_final.pth``) without running code from the file.

An nnU-Net checkpoint is a pickle (``torch.save`` of a dict): besides tensors and plain Python values (dict, list,
str, int, float, None) it holds a few numpy scalars from the training log (``numpy._core.multiarray.scalar`` with
their ``numpy.dtype``) and the ``torch.device`` of the training. :func:`load_checkpoint` unpickles it with
``torch.load(weights_only=True)``, PyTorch's restricted unpickler, allowing exactly those extra types
(:data:`SAFE_GLOBALS`); a file that needs anything else is refused with one line naming it. There is no way around
the refusal: livermets never unpickles arbitrary objects (docs/nnunet.md says how to re-save such a checkpoint's
weights alone in an environment that trusts it).

nnunetv2 is not imported here.

Examples
--------
>>> checkpoint = load_checkpoint("results/Dataset003_Liver/nnUNetTrainer__nnUNetPlans__3d_fullres/"
...                              "fold_0/checkpoint_final.pth")  # doctest: +SKIP
>>> sorted(checkpoint)[:4]  # doctest: +SKIP
['_best_ema', 'current_epoch', 'grad_scaler_state', 'inference_allowed_mirroring_axes']
"""

from __future__ import annotations

import importlib
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livermets.errors import UserInputError

log = logging.getLogger(__name__)

_MULTIARRAY: Any = importlib.import_module("numpy._core.multiarray")
_NUMERIC_DTYPES: tuple[Any, ...] = tuple(
    getattr(np.dtypes, name)
    for name in ("BoolDType", "Int8DType", "Int16DType", "Int32DType", "Int64DType", "UInt8DType", "UInt16DType",
                 "UInt32DType", "UInt64DType", "Float16DType", "Float32DType", "Float64DType", "LongDType",
                 "ULongDType", "LongLongDType", "ULongLongDType", "LongDoubleDType")
    if hasattr(np.dtypes, name)
)
SAFE_GLOBALS: list[Any] = [
    _MULTIARRAY.scalar,
    (_MULTIARRAY.scalar, "numpy.core.multiarray.scalar"),  # the name numpy 1.x writes
    np.dtype,
    *_NUMERIC_DTYPES,
    torch.device,
]
"""What an nnU-Net checkpoint may hold besides what ``weights_only=True`` allows anyway: numpy scalars (the value
and its numeric dtype; no object dtype) and ``torch.device``."""

CHECKPOINT_KEYS = ("network_weights",)
"""Keys every nnU-Net v2 checkpoint has (the rest is optional for prediction)."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an nnU-Net v2 checkpoint on the CPU, refusing anything but weights, plain values and numpy scalars.

    Parameters
    ----------
    path
        ``fold_<f>/checkpoint_final.pth`` (or any checkpoint nnU-Net's trainer wrote).

    Returns
    -------
    dict
        The checkpoint: ``network_weights`` (state dict), ``trainer_name``, ``init_args``,
        ``inference_allowed_mirroring_axes``, ...

    Raises
    ------
    UserInputError
        Not a file, not a torch checkpoint (e.g. truncated), refused by the restricted unpickler, or not an nnU-Net
        checkpoint (no ``network_weights`` state dict).
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the outcome is what counts
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the restricted unpickler ran no code; any failure means: not loadable this way
        refused = refused_type(exc)
        if refused is None:
            raise UserInputError(f"{path}: not a readable torch checkpoint ({_first_line(exc)})") from None
        raise UserInputError(
            f"{path}: refused to load: besides weights, plain values and numpy numbers the checkpoint holds "
            f"{refused}, which unpickling could run as code (see docs/nnunet.md: re-save its network_weights alone)"
        ) from None
    return _checked(checkpoint, path)


def _checked(checkpoint: Any, path: Path) -> dict[str, Any]:
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("network_weights"), dict):
        raise UserInputError(f"{path}: not an nnU-Net checkpoint (no network_weights state dict)")
    weights = checkpoint["network_weights"]
    if not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise UserInputError(f"{path}: not an nnU-Net checkpoint (network_weights is not a state dict of tensors)")
    return checkpoint


_REFUSED = (
    re.compile(r"Unsupported global: GLOBAL (\S+)"),
    re.compile(r"unsupported GLOBAL (\S+)"),
    re.compile(r"Can only build .* but got (<class '[^']+'>|\S+)"),
    re.compile(r"Unsupported class (\S+)"),
)


def refused_type(exc: BaseException) -> str | None:
    """The global or type PyTorch's restricted unpickler refused (e.g. ``posix.system``), or ``None`` when the
    failure is something else (a truncated or foreign file).

    Examples
    --------
    >>> refused_type(RuntimeError("Weights only load failed. ... Unsupported global: GLOBAL argparse.Namespace was"))
    'argparse.Namespace'
    >>> refused_type(RuntimeError("PytorchStreamReader failed reading zip archive")) is None
    True
    """
    text = str(exc)
    for pattern in _REFUSED:
        found = pattern.search(text)
        if found:
            return found.group(1).strip("<>").removeprefix("class ").strip("'")
    return None


def _first_line(exc: BaseException) -> str:
    """The informative part of a loading error, on one short line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):  # PyTorch's boilerplate around the real reason
        details = [line.removeprefix("Please file an issue with the following so that we can make `weights_only=True` "
                                     "compatible with your use case:").strip() for line in lines[1:]]
        details = [line.removeprefix("WeightsUnpickler error:").strip() for line in details
                   if not line.startswith("Check the documentation")]
        lines = [line for line in details if line] or lines
    text = lines[0] if lines else ""
    if not text or isinstance(exc, KeyError):
        text = f"{type(exc).__name__} {text}".strip()
    return text.split(". ")[0][:160]
