"""What a kill test's child process runs; kept free of heavy imports (the fork server preloads the stages)."""

from __future__ import annotations

import os
import runpy
import signal
import sys


def run_livermets(argv: list[str], log: str) -> None:
    """``python -m livermets ARGV`` in this (forked) process, stdout and stderr to ``log``.

    SIGINT gets Python's default handler first, unblocked, as in a terminal: a fork server started while SIGINT was
    ignored or blocked (by whichever library did so earlier in the same test worker) passes that on to every child it
    forks.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    sys.argv = ["livermets", *argv]
    runpy.run_module("livermets", run_name="__main__", alter_sys=True)


def nothing() -> None:
    """A child that does nothing: starts the fork server (and its preloading) before anything is timed."""
