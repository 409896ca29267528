"""Dask for cohort jobs: a local process cluster or a ``distributed`` scheduler, results as they finish; and
:func:`exit_with_parent` for process-pool workers.

Examples
--------
>>> with dask_client(workers=2, scheduler="local") as client:  # doctest: +SKIP
...     for item, get in completed(client, len, ["ab", "c"]):
...         print(item, get())
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from livermets.errors import UserInputError

T = TypeVar("T")

LOCAL_WORKER_ENV = "distributed.nanny.pre-spawn-environ"
LOCAL_WORKER_ENVIRON = {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1,
                        "OPENBLAS_NUM_THREADS": 1}
"""Environment of local Dask workers: one thread per numerical library, glibc's own trim threshold (None unsets)."""

_DASK_LOGGERS = ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core",
                 "distributed.worker", "distributed.http.proxy")


def exit_with_parent(parent: int, period_s: float = 0.5) -> None:
    """Process-pool initializer: end this worker soon after process ``parent`` is gone.

    A forked pool worker holds both ends of its task pipe, so it would wait forever (and keep its memory, or finish
    writing a file) after its parent was killed with SIGKILL; a daemon thread watches the parent instead.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(period_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str = "local") -> Iterator[Any]:
    """A Dask client: ``local`` starts ``workers`` single-threaded worker processes; else connect to ``scheduler``.

    Raises
    ------
    UserInputError
        The scheduler address cannot be reached (the message names ``scheduler``).
    """
    from dask.distributed import Client, LocalCluster

    # distributed installs INFO-level loggers (scheduler/nanny chatter); keep them at WARNING unless run with -v.
    quiet = logging.DEBUG if logging.getLogger().level <= logging.DEBUG else logging.WARNING
    for name in _DASK_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    cluster = None
    if scheduler == "local":
        import dask

        # distributed's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, so glibc hands every freed block
        # above 64 KiB back to the kernel: each volume-sized array is then page-faulted in afresh, which costs these
        # jobs about a quarter of their CPU time (docs/benchmarks.md). Workers keep glibc's default instead.
        with dask.config.set({LOCAL_WORKER_ENV: LOCAL_WORKER_ENVIRON}):
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserInputError(f"scheduler {scheduler}: cannot connect to the Dask scheduler ({exc})") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            # Closing our own cluster: a worker still busy after the nanny's grace period is killed, as intended
            # ("Worker process still alive after 4.0 seconds, killing" once per worker is noise, not a problem).
            if quiet > logging.DEBUG:
                logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
            cluster.close()


def completed(client: Any, func: Callable[..., Any], items: Sequence[T],
              **kwargs: Any) -> Iterator[tuple[T, Callable[[], Any]]]:
    """Submit ``func(item, **kwargs)`` for every item; yield ``(item, get_result)`` in order of completion."""
    from dask.distributed import as_completed

    futures = client.map(func, items, pure=False, **kwargs)
    item_of = {future.key: item for future, item in zip(futures, items, strict=True)}
    for future in as_completed(futures):
        yield item_of[future.key], future.result
