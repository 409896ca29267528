""":class:`EngineNetwork`: a ``torch.nn.Module`` whose forward pass runs an exported graph in ONNX Runtime or
OpenVINO, a drop-in for the PyTorch network in MONAI's and nnU-Net's sliding windows.

Both engines run float32 (OpenVINO with ``INFERENCE_PRECISION_HINT`` f32, so it never lowers precision on CPUs with
bfloat16 units), with a fixed number of threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livermets.segmentation.engines.export import exported_graph
from livermets.segmentation.engines.threads import engine_threads

Runner = Callable[[np.ndarray], np.ndarray]


def _onnxruntime_runner(graph: Path, threads: int) -> Runner:
    import onnxruntime as ort

    settings = ort.SessionOptions()
    settings.intra_op_num_threads = threads
    settings.inter_op_num_threads = 1
    settings.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(graph), settings, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x})[0])

    return run


def _openvino_runner(graph: Path, threads: int) -> Runner:
    import openvino as ov

    compiled = ov.Core().compile_model(str(graph), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    output = compiled.output(0)

    def run(x: np.ndarray) -> np.ndarray:
        return np.array(request.infer({0: x})[output], copy=True)

    return run


RUNNERS: dict[str, Callable[[Path, int], Runner]] = {"onnxruntime": _onnxruntime_runner,
                                                     "openvino": _openvino_runner}


class EngineNetwork(torch.nn.Module):
    """The forward pass of one network (one graph per weight set, e.g. per nnU-Net fold) in an engine.

    Parameters
    ----------
    engine
        ``onnxruntime`` or ``openvino``.
    graphs
        Exported graph files (:func:`~livermets.segmentation.engines.export.exported_graph`), one per weight set.
    input_shape
        The shape each graph takes, (1, channels, *patch).
    threads
        Threads of the engine.
    weight_sets
        The state dicts the graphs were exported from, in the same order: nnU-Net's predictor calls
        ``load_state_dict`` with one of them before each fold's pass, which selects that fold's graph.
    """

    def __init__(self, engine: str, graphs: Sequence[Path], input_shape: tuple[int, ...], threads: int,
                 weight_sets: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__()
        self.engine = engine
        self.input_shape = tuple(input_shape)
        self.threads = threads
        self._runners = [RUNNERS[engine](Path(graph), threads) for graph in graphs]
        self._weight_sets = list(weight_sets)
        self._active = 0

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Select the graph exported from ``state_dict`` (one of ``weight_sets``, the same object)."""
        for index, weights in enumerate(self._weight_sets):
            if weights is state_dict:
                self._active = index
                return torch.nn.modules.module._IncompatibleKeys([], [])
        raise ValueError(f"{self.engine}: these weights were not exported (the graphs hold {len(self._runners)} "
                         "weight sets)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a (N, channels, *patch) float tensor, one window at a time."""
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            raise ValueError(f"{self.engine}: input of shape {tuple(x.shape)}, the graph takes (N, "
                             f"{', '.join(map(str, self.input_shape[1:]))})")
        run = self._runners[self._active]
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out = np.concatenate([run(array[i:i + 1]) for i in range(array.shape[0])])
        return torch.from_numpy(out).to(x.device)


def compile_network(network: torch.nn.Module, input_shape: tuple[int, ...], engine: str, threads: int | None = None,
                    weight_sets: Sequence[Mapping[str, Any]] = ()) -> torch.nn.Module:
    """``network`` itself for ``engine="torch"``, else an :class:`EngineNetwork` of its exported graph(s).

    ``threads``: the engine's threads (``None``: :func:`~livermets.segmentation.engines.threads.engine_threads`);
    given with ``torch``, PyTorch's intra-op threads are set to it. With ``weight_sets`` (nnU-Net's folds) one graph
    is exported per set, loading each into ``network`` in turn.
    """
    if engine == "torch":
        if threads is not None:
            torch.set_num_threads(threads)
        return network
    graphs = []
    for weights in weight_sets:
        network.load_state_dict(weights)
        graphs.append(exported_graph(network, tuple(input_shape), engine))
    if not weight_sets:
        graphs.append(exported_graph(network, tuple(input_shape), engine))
    return EngineNetwork(engine, graphs, tuple(input_shape), engine_threads(threads), weight_sets)
