"""Run TotalSegmentator's own Python API (the ``totalsegmentator`` package from PyPI) offline on stand-in weights.

Run as a child process by the equivalence test (TotalSegmentator sets environment variables and torch's thread
count for the whole process)::

    python totalseg_reference.py WEIGHTS_DIR HOME_DIR CT OUT_DIR

``HOME_DIR/config.json`` is written first with ``send_usage_stats: false`` (TotalSegmentator's ``send_usage_stats``
then returns without a request). Every socket connection to anything but 127.0.0.1 is refused and recorded in
``OUT_DIR/connections.json`` (the test checks it is empty). TotalSegmentator finds nnU-Net trainers by importing every
module of nnunetv2's trainer package (primus trainers need timm -> torchvision, which are not installed); the three
trainers the stand-ins name are registered in its own ``custom_trainers`` table instead, with nnunetv2's classes.

Outputs (multi-label NIfTI on the CT's grid): ``total_fast.nii.gz`` (task ``total --fast``: Dataset297),
``liver_lesions.nii.gz`` (task ``liver_lesions``: Dataset297 crop + Dataset591) and ``part1.nii.gz`` (Dataset291 alone
at 1.5 mm on the whole CT, the call ``total`` makes for its first part).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

ALLOWED = ("127.0.0.1", "::1", "localhost")


def guard_sockets(record: list[str]) -> None:
    """Refuse and record every connection to anything but the loopback address (local Unix sockets, which
    nnU-Net's worker processes use, stay allowed)."""
    original = socket.socket.connect

    def connect(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family != socket.AF_UNIX and host not in ALLOWED:
            record.append(str(address))
            raise OSError(f"livermets test: connection to {address} refused")
        return original(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    original_resolve = socket.getaddrinfo

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host not in ALLOWED and host is not None:
            record.append(f"dns:{host}")
            raise OSError(f"livermets test: name lookup of {host} refused")
        return original_resolve(host, *args, **kwargs)  # type: ignore[arg-type]

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def main(weights: Path, home: Path, ct: Path, out: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps({"totalseg_id": "livermets-test", "send_usage_stats": False,
                                                  "prediction_counter": 0, "statistics_disclaimer_shown": True}))
    os.environ["TOTALSEG_HOME_DIR"] = str(home)
    os.environ["TOTALSEG_WEIGHTS_PATH"] = str(weights)
    record: list[str] = []
    guard_sockets(record)
    try:
        run(ct, out)
    finally:
        (out / "connections.json").write_text(json.dumps(record))


def run(ct: Path, out: Path) -> None:
    import nibabel as nib
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoMirroring import (
        nnUNetTrainerNoMirroring,
    )
    from nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs_NoMirroring import (
        nnUNetTrainer_4000epochs_NoMirroring,
    )
    from totalsegmentator import nnunet as ts_nnunet
    from totalsegmentator.python_api import totalsegmentator

    ts_nnunet.custom_trainers.update({"nnUNetTrainer": nnUNetTrainer,
                                      "nnUNetTrainerNoMirroring": nnUNetTrainerNoMirroring,
                                      "nnUNetTrainer_4000epochs_NoMirroring": nnUNetTrainer_4000epochs_NoMirroring})
    timings = {}
    tick = time.perf_counter()
    totalsegmentator(ct, out / "total_fast.nii.gz", ml=True, fast=True, task="total", device="cpu", quiet=True,
                     nr_thr_saving=1)
    timings["total_fast_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    totalsegmentator(ct, out / "liver_lesions.nii.gz", ml=True, task="liver_lesions", device="cpu", quiet=True,
                     nr_thr_saving=1)
    timings["liver_lesions_s"] = time.perf_counter() - tick
    (out / "timings.json").write_text(json.dumps(timings))
    if "--part1" in sys.argv:
        part1, _, _ = ts_nnunet.nnUNet_predict_image(
            ct, None, 291, model="3d_fullres", folds=[0], trainer="nnUNetTrainerNoMirroring", tta=False,
            multilabel_image=True, resample=1.5, crop=None, task_name="total", nora_tag="None", preview=False,
            nr_threads_resampling=1, nr_threads_saving=1, quiet=True, device="cpu", plans="nnUNetPlans")
        nib.save(part1, out / "part1.nii.gz")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:5]))
