"""CPU inference engines side by side: PyTorch eager, ONNX Runtime and OpenVINO on the same CT, in one run.

For each network and engine the script runs one child process and records its wall time, CPU time (user + system,
from ``os.wait4``) and peak resident memory; then it compares each engine's label map with PyTorch's (voxel
agreement, lesion count). Before the timed run, a first child loads the model once with an empty graph cache: that
is the one-off cost of exporting the network for the engine (``first use``), kept out of the timed run.

* ``unet``: the shipped MONAI U-Net (``livermets seg predict``), on the real 3 mm example CT of
  ../shared/data/totalsegmentator resampled onto ``--size`` voxels (default 512 x 512 x 150, 366 x 303 x 90 mm).
* ``nnunet``: the stand-in of ``bench_nnunet_predict.py`` (nnU-Net's 3d_fullres plan for a LiTS-like fingerprint,
  128^3 patch, 32..320 feature maps, seeded random weights: a trained model's computation), TTA off, same CT.
* ``pair``: the TotalSegmentator liver + liver-lesion pair (``TotalSegPairSegmenter``) with the stand-in weights of
  ``tests/segmentation/nnunet/standin.py`` (``tiny=False``: the real architectures), on the real example CT
  resampled onto ``--pair-size`` voxels of ``--pair-spacing`` mm (default 320 x 320 x 100 at 0.5 x 0.5 x 1 mm,
  a 160 x 160 x 100 mm field of view; the stand-in crop model marks the whole field as liver, so the lesion model
  runs on all of it; ``bench_totalseg_pair.py`` explains the field of view).

Run by hand on a quiet machine (about 45 minutes on 2 cores with every network and engine)::

    .venv/bin/python benchmarks/bench_seg_inference.py --out /tmp/bench_engines
    .venv/bin/python benchmarks/bench_seg_inference.py --out /tmp/bench_engines --networks unet --engines torch,openvino
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CLI = [sys.executable, "-m", "livermets", "-q"]
LOAD_CHILD = """
import sys
from livermets.segmentation.options import PredictionOptions
from livermets.segmentation.predict import ModelChoice, load_segmenter
model, engine, label_map = sys.argv[1], sys.argv[2], sys.argv[3] or None
load_segmenter(ModelChoice(model=model, label_map=label_map), device="cpu", options=PredictionOptions(engine=engine))
"""
STAGES_CHILD = """
import json, sys
import SimpleITK as sitk
from livermets.segmentation.options import PredictionOptions
from livermets.segmentation.predict import load_segmenter
segmenter = load_segmenter("shipped", device="cpu", options=PredictionOptions(engine=sys.argv[2]))
ct = sitk.ReadImage(sys.argv[1])
segmenter.predict_image(ct)  # warm-up
segmenter.predict_image(ct)
print(json.dumps({k: v for k, v in segmenter.last_timings.items() if k.endswith("_s")}))
"""
PAIR_CHILD = """
import sys, json
from pathlib import Path
import SimpleITK as sitk
from livermets.segmentation.nnunet.totalseg import TotalSegPairSegmenter, TotalSegTask
from livermets.segmentation.options import PredictionOptions
weights, ct, out, engine = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
tasks = {name: TotalSegTask.from_registry(block, weights) for name, block in json.loads(sys.argv[5]).items()}
pair = TotalSegPairSegmenter(tasks["ts-liver-fast"], tasks["ts-liver-lesions"], device="cpu",
                             options=PredictionOptions(engine=engine))
if ct:
    out.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(pair.predict_image(sitk.ReadImage(ct), check=False), str(out / "label.nii.gz"))
    (out / "timings.json").write_text(json.dumps(pair.last_timings))
"""


def run_child(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (GB) of one child process."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_totalseg_pair import run_child as measured

    wall, cpu, peak = measured(command, env)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_gb": round(peak, 2)}


def compare(label: Path, reference: Path) -> dict[str, float]:
    """Voxel agreement with the PyTorch label map and both lesion counts (26-connected components of label 2)."""
    import cc3d

    got, ref = (sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in (label, reference))
    count = [int(cc3d.connected_components(a == 2, connectivity=26, return_N=True)[1]) for a in (got, ref)]
    return {"agreement": float(np.mean(got == ref)), "lesions": count[0], "torch_lesions": count[1]}


def networks(args: argparse.Namespace, out: Path) -> dict[str, dict[str, object]]:
    """What each network runs: the load (export) command, the timed command and where its label map lands."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.path.insert(0, str(REPO))
    from bench_nnunet_predict import bench_ct, standin_nnunet_model

    size = tuple(int(v) for v in args.size.lower().split("x"))
    ct = out / f"ct_{args.size}.nii.gz"
    sitk.WriteImage(bench_ct(SHARED, size, args.crop), str(ct), useCompression=True)  # type: ignore[arg-type]
    plans: dict[str, dict[str, object]] = {}
    for name in args.networks.split(","):
        if name == "pair":
            from tests.segmentation.nnunet.standin import make_standins
            from tests.segmentation.nnunet.test_totalseg_pair import BLOCKS

            from bench_totalseg_pair import bench_ct as pair_ct

            weights = out / "pair_standins"
            if not (weights / "zips").is_dir():
                make_standins(weights, SHARED / "totalsegmentator" / "example_ct_sm.nii.gz",
                              SHARED / "totalsegmentator" / "example_seg.nii.gz", tiny=False)
            psize = tuple(int(v) for v in args.pair_size.lower().split("x"))
            spacing = tuple(float(v) for v in args.pair_spacing.lower().split("x"))
            path = pair_ct(SHARED / "totalsegmentator" / "example_ct.nii.gz", psize, spacing, out / "ct_pair.nii.gz")
            blocks = json.dumps(BLOCKS)
            plans[name] = {"load": lambda e, w=weights, b=blocks: [sys.executable, "-c", PAIR_CHILD, str(w / "weights"),
                                                                   "", "", e, b],
                           "run": lambda e, d, w=weights, b=blocks, p=path: [
                               sys.executable, "-c", PAIR_CHILD, str(w / "weights"), str(p), str(d), e, b],
                           "label": "label.nii.gz", "ct": f"{psize} at {spacing} mm"}
            continue
        model, label_map = ("shipped", "") if name == "unet" else (str(standin_nnunet_model(out / "standin")), "")
        plans[name] = {"load": lambda e, m=model, lm=label_map: [sys.executable, "-c", LOAD_CHILD, m, e, lm],
                       "run": lambda e, d, m=model: [*CLI, "seg", "predict", "--image", str(ct), "--out", str(d),
                                                     "--device", "cpu", "--engine", e, "--model", m],
                       "label": f"{ct.name.removesuffix('.nii.gz')}_seg.nii.gz", "ct": f"{size} (real CT)"}
        if name == "unet":
            plans[name]["stages"] = lambda e, c=ct: [sys.executable, "-c", STAGES_CHILD, str(c), e]
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--networks", default="unet,nnunet,pair")
    parser.add_argument("--engines", default="torch,onnxruntime,openvino")
    parser.add_argument("--size", default="512x512x150", help="x x y x z voxels of the CT (unet, nnunet)")
    parser.add_argument("--crop", type=float, default=1.0, help="central in-plane fraction of the field of view "
                        "(unet, nnunet; as bench_nnunet_predict.py)")
    parser.add_argument("--pair-size", default="320x320x100")
    parser.add_argument("--pair-spacing", default="0.5x0.5x1.0")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    results: dict[str, object] = {"date": f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC", "commit": commit,
                                  "machine": f"{platform.machine()} {platform.processor()} {os.cpu_count()} cores",
                                  "load_at_start": os.getloadavg(), "command": " ".join(sys.argv)}
    print(results, flush=True)
    engines = args.engines.split(",")
    for name, plan in networks(args, args.out).items():
        rows: dict[str, dict[str, object]] = {"ct": {"grid": plan["ct"]}}
        for engine in engines:
            home = args.out / "home" / engine
            shutil.rmtree(home, ignore_errors=True)
            env = {**os.environ, "LIVERMETS_HOME": str(home),
                   "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
            first = run_child(plan["load"](engine), env)  # type: ignore[operator]
            target = args.out / f"{name}_{engine}"
            shutil.rmtree(target, ignore_errors=True)
            rows[engine] = {**run_child(plan["run"](engine, target), env), "first_use_load_s": first["wall_s"]}  # type: ignore[operator]
            summary = target / "predictions.csv"
            if summary.is_file():  # seg predict's own time for the scan (read, network, resampling, checks, write)
                rows[engine]["predict_s"] = float(summary.read_text().splitlines()[1].split(",")[5])
            if "stages" in plan:  # seconds per stage of Segmenter.predict_image, the second of two calls
                stages = subprocess.run(plan["stages"](engine), env=env, capture_output=True, text=True, check=True)  # type: ignore[operator]
                rows[engine]["stages_s"] = json.loads(stages.stdout.strip().splitlines()[-1])
            if engine != "torch" and "torch" in engines:
                rows[engine] |= compare(target / str(plan["label"]), args.out / f"{name}_torch" / str(plan["label"]))
            print(f"{name} {engine}: {rows[engine]}", flush=True)
        if "torch" in engines:
            for engine in engines:
                for key in ("wall_s", "cpu_s"):
                    rows[engine][f"{key}_ratio"] = round(float(rows[engine][key]) / float(rows["torch"][key]), 3)  # type: ignore[arg-type]
        results[name] = rows
    results["load_at_end"] = os.getloadavg()
    (args.out / "bench.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
