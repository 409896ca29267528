"""Each engine against PyTorch float32 on real CT: softmax within 1e-3, labels on >= 99.99 % of the voxels, the
same lesion count (nnU-Net result folders and the TotalSegmentator pair: tests/segmentation/nnunet); and the graph
cache (keyed by weights, input shape and engine version; nothing half-written)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cc3d
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from livermets.segmentation.config import config_from_dict, load_config
from livermets.segmentation.engines import export
from livermets.segmentation.engines.choose import engine_version
from livermets.segmentation.engines.runtime import EngineNetwork, compile_network
from livermets.segmentation.model_files import DEFAULT_MODEL_DIR
from livermets.segmentation.monai.networks import build_network
from livermets.segmentation.monai.transforms import IMAGE
from livermets.segmentation.options import PredictionOptions
from livermets.segmentation.predict import Segmenter

ENGINES = ["onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def real_ct(shared_data: Callable[..., Path]) -> sitk.Image:
    """The real LiTS case (a CT with liver tumours), its in-plane spacing corrected to the downsampled 5.3 mm (the
    header keeps the original 0.66 mm; see benchmarks/bench_seg_realct.py)."""
    ct = sitk.ReadImage(str(shared_data("lits_tiny", "volume.nii.gz")))
    ct.SetSpacing((0.664062 * 512 / 64, 0.664062 * 512 / 64, ct.GetSpacing()[2]))
    return ct


@pytest.fixture(scope="module")
def shipped_torch(real_ct: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """The shipped U-Net in PyTorch: class probabilities on the network grid and the label map on the CT's grid."""
    segmenter = Segmenter(DEFAULT_MODEL_DIR, device="cpu", options=PredictionOptions(engine="torch"))
    assert segmenter.engine == "torch" and not isinstance(segmenter.network, EngineNetwork)
    return probabilities(segmenter, real_ct), sitk.GetArrayFromImage(segmenter.predict_image(real_ct))


def probabilities(segmenter: Segmenter, ct: sitk.Image) -> np.ndarray:
    return segmenter.probabilities(segmenter.transforms({IMAGE: ct})[IMAGE].as_tensor()[None]).numpy()


def lesion_count(label: np.ndarray) -> int:
    return int(cc3d.connected_components(label == 2, connectivity=26, return_N=True)[1])


@pytest.mark.parametrize("engine", ENGINES)
def test_shipped_unet_on_real_ct_equals_pytorch(engine: str, real_ct: sitk.Image,
                                                shipped_torch: tuple[np.ndarray, np.ndarray]) -> None:
    reference, reference_label = shipped_torch
    segmenter = Segmenter(DEFAULT_MODEL_DIR, device="cpu", options=PredictionOptions(engine=engine))  # type: ignore[arg-type]
    assert segmenter.engine == engine and isinstance(segmenter.network, EngineNetwork)
    probs = probabilities(segmenter, real_ct)
    assert np.abs(probs - reference).max() <= 1e-3
    label = sitk.GetArrayFromImage(segmenter.predict_image(real_ct))
    assert (label == reference_label).mean() >= 0.9999
    assert (reference_label == 2).sum() > 0 and lesion_count(label) == lesion_count(reference_label)


def real_patch(ct: sitk.Image, shape: tuple[int, ...]) -> torch.Tensor:
    """A patch of the real CT, z-scored as nnU-Net's CT normalisation does (clipped, mean 0, sd 1)."""
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)[:shape[0], :shape[1], :shape[2]]
    hu = np.clip(hu, -200, 300)
    return torch.from_numpy((hu - hu.mean()) / hu.std())[None, None]


@pytest.mark.parametrize("engine", ENGINES)
def test_segresnet_and_fold_switching_equal_pytorch(engine: str, real_ct: sitk.Image) -> None:
    """A SegResNet (seeded weights) on a real CT patch, two weight sets in one engine network (nnU-Net's folds:
    ``load_state_dict`` selects the graph), each equal to PyTorch with those weights."""
    data = load_config("cpu").model_dump()
    data["model"] = "segresnet"
    data["network"]["segresnet"] = {**data["network"]["segresnet"], "init_filters": 8, "blocks_down": [1, 1, 1],
                                    "blocks_up": [1, 1]}
    network = build_network(config_from_dict(data, "test")).eval()
    folds = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        folds.append({k: torch.randn_like(v) * 0.1 if v.is_floating_point() else v
                      for k, v in network.state_dict().items()})
    x = real_patch(real_ct, (24, 48, 48))
    expected = []
    for weights in folds:
        network.load_state_dict(weights)
        with torch.no_grad():
            expected.append(torch.softmax(network(x), 1))
    fast = compile_network(network, tuple(x.shape), engine, threads=1, weight_sets=folds)
    for weights, softmax in zip(reversed(folds), reversed(expected), strict=True):
        fast.load_state_dict(weights)
        got = torch.softmax(fast(x), 1)
        assert (got - softmax).abs().max() <= 1e-3
        assert (got.argmax(1) == softmax.argmax(1)).float().mean() >= 0.9999
    assert not torch.equal(expected[0], expected[1])
    with pytest.raises(ValueError, match="these weights were not exported"):
        fast.load_state_dict(dict(folds[0]))  # a copy: not one of the sets the graphs hold


def small_unet() -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(3, 1, 3, channels=(4, 8), strides=(2,), num_res_units=0).eval()


def test_graph_cache_is_keyed_by_weights_shape_and_engine_version(tmp_path: Path) -> None:
    network, shape = small_unet(), (1, 1, 16, 16, 16)
    graph = export.exported_graph(network, shape, "onnxruntime", tmp_path)
    key = json.loads((graph.parent / "graph.json").read_text())
    assert key["engine_version"] == engine_version("onnxruntime") and key["input_shape"] == list(shape)
    assert key["weights_sha256"] == export.weights_checksum(dict(network.state_dict()))
    stamp = graph.stat().st_mtime_ns
    assert export.exported_graph(network, shape, "onnxruntime", tmp_path) == graph  # reused, not rewritten
    assert graph.stat().st_mtime_ns == stamp
    assert export.exported_graph(network, (1, 1, 16, 16, 32), "onnxruntime", tmp_path) != graph
    openvino = export.exported_graph(network, shape, "openvino", tmp_path)
    assert openvino.name == "network.xml" and (openvino.parent / "network.bin").is_file()
    with torch.no_grad():
        next(network.parameters()).add_(1.0)
    changed = export.exported_graph(network, shape, "onnxruntime", tmp_path)
    assert changed != graph and len(list(tmp_path.iterdir())) == 4


def test_openvino_export_never_calls_its_telemetry_sending_converter(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """ov.convert_model (ovc) sends usage telemetry to Google Analytics unless opted out; the export and the
    runtime must not reach it."""
    import openvino_telemetry
    from openvino.tools.ovc import convert_impl

    calls: list[str] = []
    monkeypatch.setattr(convert_impl, "init_ovc_telemetry", lambda *a, **k: calls.append("ovc telemetry"))
    monkeypatch.setattr(openvino_telemetry.Telemetry, "send_event", lambda *a, **k: calls.append("event"))
    monkeypatch.setenv("LIVERMETS_HOME", str(tmp_path))  # an empty graph cache: the export runs here
    network, shape = small_unet(), (1, 1, 16, 16, 16)
    fast = compile_network(network, shape, "openvino", threads=1)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (fast(x) - network(x)).abs().max() < 1e-4
    assert calls == []


def test_a_failed_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(network: torch.nn.Module, shape: tuple[int, ...], path: Path) -> None:
        path.write_bytes(b"half a graph")
        raise RuntimeError("killed")

    monkeypatch.setattr(export, "_export_onnx", broken)
    with pytest.raises(RuntimeError, match="killed"):
        export.exported_graph(small_unet(), (1, 1, 16, 16, 16), "openvino", tmp_path)
    assert list(tmp_path.iterdir()) == []
