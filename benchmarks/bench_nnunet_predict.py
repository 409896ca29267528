"""CPU inference of one CT with the nnU-Net backend (TTA off and on) beside the shipped MONAI U-Net.

Each configuration runs ``livermets seg predict --device cpu`` in its own child process; the script prints wall time,
the child's peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``) and the ratios to the MONAI run.

* CT: the real 3 mm example CT of ../shared/data/totalsegmentator (``example_ct_sm``, 366 x 303 x 90 mm) resampled
  onto ``--size`` voxels (default 512 x 512 x 150, as ``bench_analyze.py``); ``--crop F`` keeps the central fraction
  F of the field of view in-plane (fewer nnU-Net tiles: nnU-Net resamples to its own spacing, so its work follows the
  physical extent, not the voxel count). Without the shared data a phantom CT of the same size is used.
* nnU-Net model: ``--nnunet-model DIR`` (any nnU-Net v2 result folder or livermets nnU-Net model, with
  ``--label-map``), else a stand-in made here: nnU-Net's ``ExperimentPlanner`` on a LiTS-like dataset fingerprint
  (median spacing 1 x 0.77 x 0.77 mm, median shape 432 x 512 x 512) gives the standard 3d_fullres plan (128^3 patch,
  32..320 feature maps, as nnU-Net's LiTS model), with seeded random weights: the same compute as a trained model.
* MONAI: the model shipped with livermets (``--monai-model`` for another).

Run by hand on a quiet machine (a full-size run with TTA takes long on a small CPU: nnU-Net's TTA is 8 mirrored
passes)::

    .venv/bin/python benchmarks/bench_nnunet_predict.py --out /tmp/bench_nnunet
    .venv/bin/python benchmarks/bench_nnunet_predict.py --out /tmp/bench_nnunet --crop 0.5 --size 256x256x150
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CLI = [sys.executable, "-m", "livermets", "-q"]
LITS_LABELS = {"background": 0, "liver": 1, "cancer": 2}


def bench_ct(shared: Path, size: tuple[int, int, int], crop: float) -> sitk.Image:
    """example_ct_sm (or a phantom) on ``size`` voxels, the central ``crop`` fraction of its field of view."""
    source = shared / "totalsegmentator" / "example_ct_sm.nii.gz"
    if source.is_file():
        ct = sitk.ReadImage(str(source))
    else:
        print(f"{source} not found: using a phantom CT")
        ct = _phantom()
    extent = [n * s for n, s in zip(ct.GetSize(), ct.GetSpacing(), strict=True)]
    fov = [extent[0] * crop, extent[1] * crop, extent[2]]
    spacing = tuple(f / n for f, n in zip(fov, size, strict=True))
    origin = ct.TransformContinuousIndexToPhysicalPoint(
        ((1 - crop) / 2 * ct.GetSize()[0] - 0.5, (1 - crop) / 2 * ct.GetSize()[1] - 0.5, -0.5))
    origin = tuple(o + s / 2 for o, s in zip(origin, spacing, strict=True))
    return sitk.Resample(ct, size, sitk.Transform(), sitk.sitkLinear, origin, spacing, ct.GetDirection(), -1024.0,
                         sitk.sitkInt16)


def _phantom() -> sitk.Image:
    z, y, x = np.mgrid[0:30, 0:101, 0:122].astype(np.float32)
    hu = np.full(x.shape, -1000.0, np.float32)
    hu[((x - 61) / 55) ** 2 + ((y - 50) / 45) ** 2 < 1] = 40
    hu[((x - 45) / 25) ** 2 + ((y - 45) / 20) ** 2 + ((z - 15) / 12) ** 2 < 1] = 100
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((3.0, 3.0, 3.0))
    return image


def standin_nnunet_model(root: Path) -> Path:
    """nnU-Net result folder: the 3d_fullres plan nnU-Net's planner makes for a LiTS-like fingerprint, random
    weights (seed 0) in nnU-Net's checkpoint layout."""
    import torch
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    result = root / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    if (result / "fold_0" / "checkpoint_final.pth").is_file():
        return result
    name = "Dataset999_LiTSLike"
    raw, pre = root / "raw" / name, root / "preprocessed" / name
    (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
    (raw / "labelsTr").mkdir(exist_ok=True)
    pre.mkdir(parents=True, exist_ok=True)
    dataset = {"channel_names": {"0": "CT"}, "labels": LITS_LABELS, "numTraining": 1, "file_ending": ".nii.gz"}
    (raw / "dataset.json").write_text(json.dumps(dataset))
    tiny = sitk.Image(8, 8, 8, sitk.sitkInt16)
    sitk.WriteImage(tiny, str(raw / "imagesTr" / "case_0000.nii.gz"))
    sitk.WriteImage(sitk.Cast(tiny, sitk.sitkUInt8), str(raw / "labelsTr" / "case.nii.gz"))
    z_mm = [0.7, 0.8, 1.0, 1.0, 1.0, 1.0, 1.5, 2.0, 2.5, 5.0, 0.8]
    pixel = [0.6, 0.7, 0.77, 0.77, 0.77, 0.78, 0.8, 0.7, 0.9, 0.75, 0.77]
    slices = [700, 600, 432, 432, 432, 432, 300, 220, 180, 90, 500]
    fingerprint = {"spacings": [[z, p, p] for z, p in zip(z_mm, pixel, strict=True)],
                   "shapes_after_crop": [[n, 512, 512] for n in slices],
                   "foreground_intensity_properties_per_channel": {"0": {
                       "max": 3000.0, "mean": 99.4, "median": 101.0, "min": -1024.0, "percentile_00_5": -17.0,
                       "percentile_99_5": 201.0, "std": 39.4}},
                   "median_relative_size_after_cropping": 1.0}
    (pre / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
    environment = {"nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
                   "nnUNet_results": str(root / "results")}
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            planner = ExperimentPlanner(name)
            planner.plan_experiment()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    configuration = PlansManager(plans).get_configuration("3d_fullres")
    torch.manual_seed(0)
    network = get_network_from_plans(configuration.network_arch_class_name, configuration.network_arch_init_kwargs,
                                     configuration.network_arch_init_kwargs_req_import, 1, len(LITS_LABELS),
                                     allow_init=True, deep_supervision=True)
    (result / "fold_0").mkdir(parents=True, exist_ok=True)
    torch.save({"network_weights": network.state_dict(), "trainer_name": "nnUNetTrainer",
                "init_args": {"configuration": "3d_fullres", "fold": 0},
                "inference_allowed_mirroring_axes": (0, 1, 2)}, result / "fold_0" / "checkpoint_final.pth")
    (result / "plans.json").write_text(json.dumps(plans, indent=2))
    (result / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return result


def run_child(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one child process."""
    tick = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - tick
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"failed ({child.returncode}): {' '.join(command)}")
    return seconds, usage.ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--size", default="512x512x150", help="x x y x z voxels of the CT")
    parser.add_argument("--crop", type=float, default=1.0, help="central in-plane fraction of the field of view")
    parser.add_argument("--nnunet-model", type=Path, default=None)
    parser.add_argument("--label-map", default=None)
    parser.add_argument("--monai-model", type=Path, default=None)
    parser.add_argument("--skip-tta", action="store_true")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"{_dt.date.today()} commit {commit} {platform.processor() or platform.machine()} {os.cpu_count()} cores, "
          f"python {platform.python_version()}, load {os.getloadavg()[0]:.1f}")
    ct = bench_ct(args.shared, size, args.crop)  # type: ignore[arg-type]
    ct_path = args.out / f"ct_{'x'.join(map(str, size))}.nii.gz"
    sitk.WriteImage(ct, str(ct_path), useCompression=True)
    extent = [round(n * s) for n, s in zip(ct.GetSize(), ct.GetSpacing(), strict=True)]
    print(f"CT {ct.GetSize()} voxels, {tuple(round(s, 3) for s in ct.GetSpacing())} mm, {extent} mm")
    model = args.nnunet_model or standin_nnunet_model(args.out / "standin")
    label_map = ["--label-map", args.label_map] if args.label_map else []
    runs = {"monai U-Net (shipped)": ([] if args.monai_model is None else ["--model", str(args.monai_model)])}
    runs["nnU-Net, TTA off"] = ["--model", str(model), *label_map]
    if not args.skip_tta:
        runs["nnU-Net, TTA on (8 mirrorings)"] = ["--model", str(model), *label_map, "--tta"]
    results = {}
    for index, (name, extra) in enumerate(runs.items()):
        target = args.out / f"pred_{index}"
        shutil.rmtree(target, ignore_errors=True)
        results[name] = run_child([*CLI, "seg", "predict", "--image", str(ct_path), "--out", str(target),
                                   "--device", "cpu", *extra])
        print(f"{name}: {results[name][0]:.1f} s wall, peak RSS {results[name][1]:.2f} GB", flush=True)
    base_s, base_gb = results["monai U-Net (shipped)"]
    for name, (seconds, gb) in results.items():
        print(f"  {name}: time x{seconds / base_s:.2f}, memory x{gb / base_gb:.2f} vs MONAI")


if __name__ == "__main__":
    main()
