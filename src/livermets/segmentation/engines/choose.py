"""Which engine runs a network's forward pass: ``torch``, ``onnxruntime`` or ``openvino``.

``auto`` picks, on CPU, the engine measured fastest for the kind of network (docs/benchmarks.md, "Inference engines
on CPU"): for nnU-Net networks (livermets nnU-Net models, nnU-Net result folders, the TotalSegmentator models)
OpenVINO, then ONNX Runtime, then PyTorch, whichever is installed first; for MONAI networks PyTorch, which ran the
shipped U-Net's network as fast as either engine (its forward pass is under a tenth of a prediction's time). On
CUDA it is always PyTorch.

Examples
--------
>>> import torch
>>> resolve_engine("torch", torch.device("cpu"))
'torch'
>>> resolve_engine("fast", torch.device("cpu"))
Traceback (most recent call last):
...
livermets.errors.ParameterError: engine 'fast': expected auto, torch, onnxruntime or openvino
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import TYPE_CHECKING

from livermets.errors import ParameterError

if TYPE_CHECKING:
    import torch

ENGINES = ("torch", "onnxruntime", "openvino")
"""The engines, PyTorch eager first."""
AUTO_ORDER = ("openvino", "onnxruntime")
"""CPU engines ``auto`` tries for nnU-Net networks, fastest first (measured: docs/benchmarks.md)."""
AUTO_ORDER_BY_KIND = {"nnunet": AUTO_ORDER, "monai": ()}
"""CPU engines ``auto`` tries per kind of network; none: PyTorch."""
_DISTRIBUTION = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
_NEEDS = {"onnxruntime": ("onnxruntime", "onnx", "onnxscript"), "openvino": ("openvino", "onnx", "onnxscript")}
"""Modules an engine needs: its runtime, and ``onnx`` + ``onnxscript`` for PyTorch's ONNX exporter."""


def available_engines() -> tuple[str, ...]:
    """The engines this installation can run (PyTorch always)."""
    return tuple(name for name in ENGINES if all(importlib.util.find_spec(m) for m in _NEEDS.get(name, ())))


def engine_version(name: str) -> str:
    """The installed version of an engine's package (``torch``, ``onnxruntime`` or ``openvino``)."""
    return importlib.metadata.version(_DISTRIBUTION[name])


def resolve_engine(name: str | None, device: torch.device, kind: str = "nnunet") -> str:
    """The engine to use for ``name`` (``None`` or ``auto``: the fastest available one for a ``kind`` network,
    ``nnunet`` or ``monai``) on ``device``.

    Raises
    ------
    ParameterError
        An unknown name, an engine that is not installed, or an ONNX Runtime / OpenVINO engine asked for on CUDA.
    """
    name = name or "auto"
    if name not in ("auto", *ENGINES):
        raise ParameterError("{engine} {value!r}: expected auto, torch, onnxruntime or openvino", value=name)
    if device.type != "cpu":
        if name in ("auto", "torch"):
            return "torch"
        raise ParameterError("{engine} {value} runs on CPU; with {device} {where} use {engine} torch or auto",
                             value=name, where=device.type)
    available = available_engines()
    if name == "auto":
        return next((engine for engine in AUTO_ORDER_BY_KIND[kind] if engine in available), "torch")
    if name not in available:
        missing = ", ".join(m for m in _NEEDS[name] if importlib.util.find_spec(m) is None)
        raise ParameterError("{engine} {value}: not installed in this Python (pip install {missing})",
                             value=name, missing=missing)
    return name
