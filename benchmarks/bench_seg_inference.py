"""Inference time per CT with the ``cpu`` preset: 512 x 512 x 150 (5 mm) and 512 x 512 x 700 (1 mm), +/- TTA.

Run by hand (not in CI):

    .venv/bin/python benchmarks/bench_seg_inference.py [--model MODEL_DIR] [--repeats 1]

``--model`` is a folder written by ``livermets seg train`` (e.g. the one of ``bench_seg_synthetic.py``); without it an
untrained network with the ``cpu`` preset config is used (the same compute; the post-processing then sees random
labels). The CTs are phantoms made here (body, liver with lesions, noise; HU, int16, 0.78 mm pixels). Prints seconds
per stage (read, preprocess, network, post-processing + resampling back, write) and input voxels per second.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from livermets.imaging.io import read_image, write_label
from livermets.segmentation.config import load_config, save_config
from livermets.segmentation.monai.networks import build_network, save_weights
from livermets.segmentation.options import PredictionOptions
from livermets.segmentation.predict import Segmenter


def phantom_ct(slices: int, thickness: float, seed: int = 0) -> sitk.Image:
    """A 512 x 512 x ``slices`` abdominal-like CT in HU (air, fat, body, liver with hypodense lesions, noise)."""
    rng = np.random.default_rng(seed)
    pixel = 0.78
    y, x = np.mgrid[0:512, 0:512].astype(np.float32)
    body = ((x - 256) / 200) ** 2 + ((y - 270) / 150) ** 2 < 1
    volume = np.full((slices, 512, 512), -1000, dtype=np.int16)
    z_mm = np.arange(slices) * thickness
    liver_centre = z_mm.mean()
    for k, z in enumerate(z_mm):
        plane = np.where(body, 40, -1000).astype(np.int16)
        dz = (z - liver_centre) / 90.0
        if abs(dz) < 1:
            scale = np.sqrt(1 - dz**2)
            liver = ((x - 190) / (110 * scale)) ** 2 + ((y - 250) / (85 * scale)) ** 2 < 1
            plane[liver] = 110
            for cx, cy, r in ((170, 240, 18), (220, 280, 10)):
                plane[liver & (((x - cx) ** 2 + (y - cy) ** 2) < (r * scale) ** 2)] = 60
        volume[k] = plane
    volume += rng.normal(0, 15, volume.shape).astype(np.int16)
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((pixel, pixel, thickness))
    image.SetOrigin((-200.0, -200.0, -float(z_mm[-1])))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--overlap", type=float, default=None, help="override the model's sliding-window overlap")
    parser.add_argument("--resample", choices=["probabilities", "labels"], default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_seg_inference_"))
    model_dir = args.model
    if model_dir is None:
        model_dir = work / "untrained"
        config = load_config("cpu")
        save_config(config, model_dir / "config.yaml")
        torch.manual_seed(0)
        save_weights(build_network(config), model_dir / "model.safetensors")
    print(f"model {model_dir}; torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    options = PredictionOptions(overlap=args.overlap, resample=args.resample)
    segmenter = Segmenter(model_dir, device="cpu", options=options)
    print(f"overlap {segmenter.inference.overlap}, blend {segmenter.inference.blend_mode}, "
          f"resample {segmenter.inference.resample}, TTA flips {segmenter.inference.tta_flip_axes}")
    for slices, thickness in ((150, 5.0), (700, 1.0)):
        path = work / f"ct_{slices}.nii.gz"
        sitk.WriteImage(phantom_ct(slices, thickness), str(path), useCompression=True)
        voxels = 512 * 512 * slices
        for tta in (False, True):
            for _ in range(args.repeats):
                tick = time.perf_counter()
                ct = read_image(path)
                read_s = time.perf_counter() - tick
                tick = time.perf_counter()
                label = segmenter.predict_image(ct, str(path), tta=tta)
                predict_s = time.perf_counter() - tick
                tick = time.perf_counter()
                write_label(label, work / f"label_{slices}.nii.gz")
                write_s = time.perf_counter() - tick
                t = segmenter.last_timings
                total = read_s + predict_s + write_s
                print(
                    f"512x512x{slices} ({thickness:g} mm) tta={'yes' if tta else 'no '}: total {total:6.1f} s "
                    f"({voxels / total / 1e6:5.2f} Mvoxel/s) = read {read_s:.1f} + preprocess {t['preprocess_s']:.1f} "
                    f"+ network {t['network_s']:.1f} + post/resample {t['postprocess_resample_s']:.1f} "
                    f"+ write {write_s:.1f}; network grid {t['network_grid']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
