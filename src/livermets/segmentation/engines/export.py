"""The network exported for an engine, once, and cached in the model home.

A graph is kept in ``<home>/models/.engines/<key>/`` (:func:`livermets.fetch.home`; ``LIVERMETS_HOME`` moves it).
The key is a SHA-256 over the weights (:func:`~livermets.segmentation.model_files.weights_checksum`), the network's
architecture (its ``repr``), the input shape (the patch size), the engine and its version, PyTorch's version (the
exporter) and :data:`EXPORT_FORMAT`: when any of them changes, the graph is exported again. ``graph.json`` beside
the graph records them.

* ONNX Runtime reads ``network.onnx``: PyTorch's ONNX exporter (``torch.onnx.export(dynamo=True)``), float32,
  static shapes.
* OpenVINO reads ``network.xml`` + ``network.bin``, its own format, read from that ONNX graph by the runtime's ONNX
  frontend (``Core.read_model``). OpenVINO's conversion tool (``ov.convert_model``, ``ovc``) is never called: it
  sends usage telemetry unless the user opted out, and livermets sends nothing anywhere.

A graph is written to a temporary folder that is renamed into place, so a killed export leaves nothing half-written
and two processes exporting the same graph do not clash.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from livermets.segmentation.engines.choose import engine_version
from livermets.segmentation.model_files import weights_checksum

EXPORT_FORMAT = 5
"""Version of the export recipe below; raising it re-exports every cached graph."""
OPSET = 20
GRAPH_FILES = {"onnxruntime": ("network.onnx",), "openvino": ("network.xml", "network.bin")}
QUIET_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch.__trace", "onnxscript")
"""Loggers of the exporter, held at ERROR during an export (their INFO and DEBUG lines are the exporter's steps)."""
log = logging.getLogger(__name__)


def graph_cache() -> Path:
    """``<home>/models/.engines``: where exported graphs are kept."""
    from livermets.fetch import home

    return home() / "models" / ".engines"


def graph_key(network: torch.nn.Module, input_shape: tuple[int, ...], engine: str) -> dict[str, Any]:
    """What an exported graph depends on (its cache key is the SHA-256 of this, :func:`key_digest`)."""
    return {"weights_sha256": weights_checksum(dict(network.state_dict())),
            "architecture_sha256": hashlib.sha256(repr(network).encode()).hexdigest(),
            "input_shape": list(input_shape), "engine": engine, "engine_version": engine_version(engine),
            "torch_version": torch.__version__, "opset": OPSET, "export_format": EXPORT_FORMAT}


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def exported_graph(network: torch.nn.Module, input_shape: tuple[int, ...], engine: str,
                   cache: Path | None = None) -> Path:
    """The graph file of ``network`` for ``engine`` on inputs of ``input_shape`` (exported now if not cached).

    Returns the file the engine reads (``network.onnx`` or ``network.xml``).
    """
    key = graph_key(network, input_shape, engine)
    folder = (cache or graph_cache()) / key_digest(key)
    target = folder / GRAPH_FILES[engine][0]
    if all((folder / name).is_file() for name in GRAPH_FILES[engine]):
        return target
    folder.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting the network for %s (once per weights and patch size) into %s", engine, folder)
    with _staging(folder) as staging:
        onnx_path = staging / "network.onnx"
        _export_onnx(network, input_shape, onnx_path)
        if engine == "openvino":
            import openvino as ov

            # read by the runtime's ONNX frontend, never ov.convert_model: that tool sends usage telemetry
            ov.save_model(ov.Core().read_model(str(onnx_path)), str(staging / "network.xml"), compress_to_fp16=False)
            onnx_path.unlink()
        (staging / "graph.json").write_text(json.dumps(key, indent=2) + "\n")
    return target


@contextlib.contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """A temporary folder beside ``folder``, renamed to it when the block ends without error (or dropped when
    another process got there first)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name[:16]}-", dir=folder.parent))
    try:
        yield staging
        try:
            os.rename(staging, folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_onnx(network: torch.nn.Module, input_shape: tuple[int, ...], path: Path) -> None:
    """PyTorch's ONNX exporter on one float32 input of ``input_shape`` (static shapes), its chatter silenced; the
    instance norms written out (:func:`stable_norms`)."""
    example = torch.zeros(input_shape, dtype=torch.float32)
    network = stable_norms(network)
    quiet = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(network, (example,), str(path), dynamo=True, opset_version=OPSET,
                              input_names=["image"], output_names=["logits"], external_data=False, verbose=False)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


class _StableInstanceNorm(torch.nn.Module):
    """Instance norm written out so that ONNX Runtime and OpenVINO compute it as precisely as PyTorch does.

    Their instance-norm kernels take the variance as E[x^2] - E[x]^2 in float32 with one long sum per channel; that
    loses precision when a channel's mean is large against its spread, and over the millions of voxels of a 128^3
    patch. Here the mean comes first, the variance is that of the centred values, and each mean is taken over the
    last two axes first and then over the first (shorter sums). The output is the same function.
    """

    def __init__(self, norm: torch.nn.modules.instancenorm._InstanceNorm) -> None:
        super().__init__()
        self.eps = norm.eps
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - _mean(x)
        y = centred / torch.sqrt(_mean(centred * centred) + self.eps)
        if self.weight is None or self.bias is None:
            return y
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


def _mean(x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean over the spatial axes of (N, C, *spatial): nested means (the last two axes, then the rest)."""
    inner = tuple(range(max(2, x.dim() - 2), x.dim()))
    outer = tuple(range(2, max(2, x.dim() - 2)))
    mean = x.sum(dim=inner, keepdim=True) * (1.0 / math.prod(x.shape[d] for d in inner))
    if not outer:
        return mean
    return mean.sum(dim=outer, keepdim=True) * (1.0 / math.prod(x.shape[d] for d in outer))


def stable_norms(network: torch.nn.Module) -> torch.nn.Module:
    """A float32 CPU copy of ``network`` with its instance norms (those without running statistics) written out as
    :class:`_StableInstanceNorm`."""
    clone = copy.deepcopy(network).cpu().float().eval()
    for module in list(clone.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.modules.instancenorm._InstanceNorm) and not child.track_running_stats:
                setattr(module, child_name, _StableInstanceNorm(child))
    return clone
