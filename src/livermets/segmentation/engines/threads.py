"""How many threads an engine may use: the cores this process may run on.

That is the CPU affinity of the process (``taskset``, a batch scheduler's CPU set), capped by a cgroup CPU quota
(``docker --cpus``, Kubernetes limits: cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), never ``os.cpu_count()``
alone, which counts the whole machine. ``run`` with several Dask workers on one machine gives each worker
``cores // workers`` threads, so that the workers together do not oversubscribe the cores.

Examples
--------
>>> available_cores() >= 1
True
>>> engine_threads(3)
3
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The cgroup's CPU quota in cores (``None``: no limit, or no cgroup file to read).

    Reads cgroup v2 ``cpu.max`` (``"max 100000"`` or ``"150000 100000"``) or v1 ``cpu/cpu.cfs_quota_us`` and
    ``cpu/cpu.cfs_period_us`` (quota ``-1``: no limit).
    """
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        cores = float(quota) / float(period)
    except (ValueError, ZeroDivisionError):
        return None
    return cores if cores > 0 else None


def available_cores(root: Path = CGROUP_ROOT) -> int:
    """Cores this process may use: its CPU affinity, capped by the cgroup quota (rounded up; at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, cores)


def engine_threads(threads: int | None = None, workers: int = 1) -> int:
    """Threads per process: ``threads`` when given, else the available cores shared by ``workers`` processes."""
    if threads is not None:
        return max(1, int(threads))
    return max(1, available_cores() // max(1, workers))
