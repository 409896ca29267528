"""Run the paper protocol's BLAS-sensitive numerics under one OpenBLAS kernel, whatever kernel this process uses.

The paper fits LASSO and a ``newton-cg`` logistic regression on *unscaled* features (~1 to ~1e10). The LR problem is
ill-conditioned, so its coefficients follow the floating-point summation order of the BLAS kernel, and OpenBLAS
(built with ``DYNAMIC_ARCH``, as numpy's and scipy's wheels are) picks its kernel once, when it is loaded: from the
CPU, or from the ``OPENBLAS_CORETYPE`` environment variable. A process cannot switch kernels afterwards.

:data:`PINNED_KERNEL` (Haswell) is the kernel under which the notebook recipe gives the paper's LR numbers.
:func:`plan` decides where to compute: in this process when it already runs that kernel, otherwise in a child Python
process (``python -m livermets.phenotype.pinned``) started with ``OPENBLAS_CORETYPE`` set in the child's environment
only, before numpy loads there, and one BLAS thread. When the CPU cannot run the kernel (not x86-64, or no AVX2/FMA),
the numerics stay in this process and :func:`plan` returns a warning naming the kernel used instead.

Parent and child talk over an anonymous socket pair that only the two processes hold (no file, no path; the
:class:`multiprocessing.connection.Connection` protocol that process pools use): the parent sends
``(function, args, kwargs)``, the child answers ``("ok", value, kernel)``, ``("user_error", message, kernel)`` or
``("error", traceback, kernel)``; a
:class:`~livermets.errors.UserInputError` raised in the child is raised again in the parent with the same one-line
message. The child ends soon after its parent is killed. Importing this module runs nothing.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from livermets.errors import UserInputError

PINNED_KERNEL = "Haswell"
"""OpenBLAS core type of the paper protocol's numerics (threadpoolctl's ``architecture`` name)."""

CORETYPE_CPU_FEATURES: dict[str, tuple[str, ...]] = {
    "Haswell": ("AVX2", "FMA3"),
    "Zen": ("AVX2", "FMA3"),
    "SkylakeX": ("AVX512F", "AVX512_SKX"),
    "Cooperlake": ("AVX512_SKX", "AVX512BF16"),
    "SapphireRapids": ("AVX512_SPR",),
    "Sandybridge": ("AVX",),
    "Nehalem": ("SSE42",),
    "Prescott": ("SSE3",),
}
"""x86-64 ``OPENBLAS_CORETYPE`` values and the CPU features (numpy's run-time names) their kernels execute.

Forcing a core type whose instructions the CPU lacks kills the process with an illegal instruction (SkylakeX and
Cooperlake need AVX-512); OpenBLAS maps some core types to the kernel of another (Zen runs the Haswell kernel,
Prescott the Katmai kernel): threadpoolctl's ``architecture`` names the kernel that actually runs.
"""

KERNEL_CPU_FEATURES: tuple[str, ...] = CORETYPE_CPU_FEATURES[PINNED_KERNEL]
"""CPU features the Haswell kernel needs (numpy's runtime CPU-feature names)."""

WHERE_CHOICES = ("auto", "child", "process")


class KernelCrashError(RuntimeError):
    """The pinned child died of an illegal instruction: the CPU cannot run the pinned kernel after all."""


def blas_kernels() -> str:
    """OpenBLAS kernel(s) of this process (threadpoolctl's ``architecture``), e.g. ``"Haswell"``; ``"unknown"``.

    numpy's and scipy's OpenBLAS are both loaded first, so that both are reported.
    """
    import numpy  # noqa: F401 - loads numpy's OpenBLAS
    import scipy.linalg  # noqa: F401 - loads scipy's OpenBLAS
    from threadpoolctl import threadpool_info

    kernels = sorted(
        {str(lib.get("architecture")) for lib in threadpool_info() if lib.get("internal_api") == "openblas"}
    )
    return ", ".join(kernels) if kernels else "unknown"


def cpu_supports_pinned_kernel() -> tuple[bool, str]:
    """Whether this CPU can run :data:`PINNED_KERNEL`; the reason when it cannot.

    Forcing a kernel the CPU cannot execute kills the process with an illegal instruction, so this is checked
    before a child is started: x86-64 with AVX2 and FMA, as numpy detects them at run time.
    """
    return coretype_support(PINNED_KERNEL)


def coretype_support(coretype: str) -> tuple[bool, str]:
    """Whether this CPU can run the OpenBLAS kernel of ``coretype`` (a key of :data:`CORETYPE_CPU_FEATURES`).

    Returns ``(True, "")`` or ``(False, reason)``, e.g. ``"the CPU lacks AVX512F and AVX512_SKX"``.
    """
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return False, f"the CPU is {machine or 'unknown'}, not x86-64"
    if coretype not in CORETYPE_CPU_FEATURES:
        return False, f"unknown core type {coretype!r}"
    features = _cpu_features()
    if features is None:
        return False, "numpy does not report the CPU features"
    missing = [name for name in CORETYPE_CPU_FEATURES[coretype] if not features.get(name)]
    if missing:
        return False, f"the CPU lacks {' and '.join(missing)}"
    return True, ""


def _cpu_features() -> dict[str, bool] | None:
    """numpy's run-time CPU feature detection (``{"AVX2": True, ...}``), or ``None`` if unavailable."""
    import importlib

    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            return dict(importlib.import_module(module).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return None


@dataclass(frozen=True)
class Plan:
    """Where the BLAS-sensitive numerics run (``"process"`` or ``"child"``), and a warning when not pinned."""

    where: str
    kernel: str
    warning: str | None = None


def plan(where: str = "auto") -> Plan:
    """Choose where to compute.

    Parameters
    ----------
    where
        ``"auto"``: this process if it already runs :data:`PINNED_KERNEL`, else a pinned child (if the CPU can run
        the kernel, else this process with a warning); ``"child"``: always a pinned child when the CPU can run it;
        ``"process"``: this process, whatever its kernel (no warning; used to measure other kernels).
    """
    if where not in WHERE_CHOICES:
        raise UserInputError(f"where must be one of {', '.join(WHERE_CHOICES)}, got {where!r}")
    current = blas_kernels()
    if where == "process" or (where == "auto" and current == PINNED_KERNEL):
        return Plan("process", current)
    supported, reason = cpu_supports_pinned_kernel()
    if not supported:
        return Plan("process", current, unpinned_warning(current, reason))
    return Plan("child", PINNED_KERNEL)


def unpinned_warning(kernel: str, reason: str) -> str:
    """The one-sentence warning given when the paper numerics cannot run on :data:`PINNED_KERNEL`."""
    return (
        f"OpenBLAS kernel {PINNED_KERNEL}, under which the paper's LR numbers are reproduced, cannot be used here "
        f"({reason}); the paper protocol runs on kernel {kernel}, and its LR results can differ from the paper's "
        "(by up to 0.36 on the kernels measured; see docs/phenotype.md)"
    )


def child_environment(kernel: str = PINNED_KERNEL) -> dict[str, str]:
    """This process's environment with the child's OpenBLAS kernel and one OpenBLAS thread."""
    return {**os.environ, "OPENBLAS_CORETYPE": kernel, "OPENBLAS_NUM_THREADS": "1"}


class PinnedCall:
    """``function(*args, **kwargs)`` running in a child process pinned to ``kernel``; :meth:`result` waits for it.

    Use as a context manager: leaving the block early (an exception in the parent) terminates the child.
    """

    def __init__(self, function: Callable[..., Any], *args: Any, kernel: str = PINNED_KERNEL, **kwargs: Any) -> None:
        ours, theirs = socket.socketpair()
        self._output = tempfile.TemporaryFile()  # the child's stdout and stderr (an unlinked file: no path)
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "livermets.phenotype.pinned", str(theirs.fileno()), str(os.getpid())],
                env=child_environment(kernel),
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=self._output,
                pass_fds=(theirs.fileno(),),
            )
        self._channel = Connection(ours.detach())
        self._channel.send((function, args, kwargs))

    @property
    def pid(self) -> int:
        """Process id of the child."""
        return self._process.pid

    def __enter__(self) -> PinnedCall:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Terminate the child if it still runs and release the channel."""
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait()
        self._channel.close()
        self._output.close()

    def result(self) -> tuple[Any, str]:
        """Wait for the child; return ``(value, kernel)`` or raise what it raised (UserInputError: same message)."""
        try:
            status, payload, kernel = self._channel.recv()
        except EOFError:  # the child died before answering
            status = payload = kernel = None
        code = self._process.wait()
        self._output.seek(0)
        errors = self._output.read().decode(errors="replace")
        if errors.strip():
            sys.stderr.write(errors if errors.endswith("\n") else errors + "\n")
        if status is None:
            if code == -signal.SIGILL:
                raise KernelCrashError("the pinned child process stopped on an illegal instruction")
            raise RuntimeError(f"the pinned child process exited with code {code} without a result")
        if status == "user_error":
            raise UserInputError(str(payload))
        if status != "ok":
            raise RuntimeError(f"the pinned child process failed:\n{payload}")
        return payload, str(kernel)


def main(argv: list[str]) -> int:
    """Child entry point: ``python -m livermets.phenotype.pinned CHANNEL_FD PARENT_PID``.

    The child ends soon after its parent is gone (a killed command leaves no computing child behind).
    """
    from livermets.parallel import exit_with_parent

    descriptor, parent = argv
    exit_with_parent(int(parent))
    channel = Connection(int(descriptor))
    function, args, kwargs = channel.recv()
    try:
        from threadpoolctl import threadpool_limits

        kernel = blas_kernels()
        with threadpool_limits(limits=1, user_api="blas"):
            outcome: tuple[str, Any, str] = ("ok", function(*args, **kwargs), kernel)
    except UserInputError as exc:
        outcome = ("user_error", str(exc), blas_kernels())
    except Exception:
        outcome = ("error", traceback.format_exc(), blas_kernels())
    channel.send(outcome)
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
