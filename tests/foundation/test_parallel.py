"""Local Dask workers: one thread per numerical library and glibc's own malloc trim threshold.

distributed starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` unless told otherwise; with it, every freed
volume-sized array goes back to the kernel and is page-faulted in afresh by the next series (docs/benchmarks.md).
"""

from __future__ import annotations

import os

import dask
import dask.distributed  # registers the distributed.* configuration

from livermets.parallel import LOCAL_WORKER_ENV, dask_client


def _environment() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS",
                                                    "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def test_local_workers_keep_glibcs_trim_threshold_and_one_thread_per_library():
    assert dask.config.get(LOCAL_WORKER_ENV)["MALLOC_TRIM_THRESHOLD_"] == 65536  # distributed's own default
    with dask_client(workers=1, scheduler="local") as client:
        seen = list(client.run(_environment).values())
    assert seen == [{"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1"}]
    assert dask.config.get(LOCAL_WORKER_ENV)["MALLOC_TRIM_THRESHOLD_"] == 65536  # the setting was not left behind
