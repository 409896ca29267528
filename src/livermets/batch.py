"""How a batch command ends: its exit code says whether any series failed.

A batch command (``run``, ``seg predict --manifest``, ``radiomics extract``) writes everything that succeeded and
lists the series that failed in a failure table. Its last line says how many failed and where that table is, and it
exits with :data:`~livermets.errors.EXIT_FAILURES` (3) when any failed, so that a script or a workflow manager can
tell this from success; ``--allow-failures`` makes it exit 0.
"""

from __future__ import annotations

from pathlib import Path

import typer

from livermets.errors import EXIT_FAILURES

ALLOW_FAILURES = typer.Option(False, "--allow-failures",
                              help="Exit 0 when some series failed (default: exit code 3; the failures are listed "
                                   "in the failure table either way).")


def finish_batch(failed: int, total: int, table: Path, allow_failures: bool = False) -> None:
    """Print the closing line of a batch in which ``failed`` of ``total`` series failed, and exit accordingly.

    Nothing happens when no series failed. Otherwise the line names the count and the failure ``table``, and the
    command ends with :data:`~livermets.errors.EXIT_FAILURES` (``typer.Exit``; the outputs written stay) unless
    ``allow_failures``.

    Examples
    --------
    >>> finish_batch(0, 12, Path("out/failures.csv"))
    >>> finish_batch(2, 12, Path("out/failures.csv"), allow_failures=True)
    2 of 12 series failed; failure table: out/failures.csv
    """
    if failed == 0:
        return
    typer.echo(f"{failed} of {total} series failed; failure table: {table}")
    if not allow_failures:
        raise typer.Exit(EXIT_FAILURES)
