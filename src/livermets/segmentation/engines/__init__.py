"""CPU inference engines: the network forward pass in ONNX Runtime or OpenVINO instead of PyTorch.

Only the forward pass moves. Sliding-window tiling, Gaussian blending, test-time mirroring, resampling and
post-processing stay MONAI's, nnU-Net's and livermets' own, so an engine changes no step around the network.

Modules: :mod:`choose` (which engine runs: ``auto`` is the fastest installed one on CPU, PyTorch on CUDA),
:mod:`threads` (how many threads: the cores of this process's CPU affinity and cgroup limit), :mod:`export` (the
network exported once per weights, input shape and engine version, and cached in the model home), :mod:`runtime`
(:class:`EngineNetwork`, a ``torch.nn.Module`` whose forward pass runs the cached graph).

Examples
--------
>>> from livermets.segmentation.engines import resolve_engine  # doctest: +SKIP
>>> resolve_engine("auto", torch.device("cpu"))  # doctest: +SKIP
'openvino'
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "ENGINES": "choose",
    "available_engines": "choose",
    "engine_version": "choose",
    "resolve_engine": "choose",
    "available_cores": "threads",
    "engine_threads": "threads",
    "graph_cache": "export",
    "exported_graph": "export",
    "EngineNetwork": "runtime",
    "compile_network": "runtime",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
