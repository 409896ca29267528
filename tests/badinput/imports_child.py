"""Child process of the import tests: run ``livermets`` once per command line, report the heavy libraries loaded.

Reads a JSON list of command lines on stdin; prints one JSON object per command line: its exit code and the heavy
top-level packages (torch, MONAI, PyRadiomics, ...) present in ``sys.modules`` after it. Kept free of heavy imports.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

HEAVY = ("torch", "monai", "radiomics", "nnunetv2", "dask", "distributed", "xgboost", "sklearn", "matplotlib")


def heavy_loaded() -> list[str]:
    """The heavy top-level packages imported so far."""
    return sorted(name for name in HEAVY if name in sys.modules)


def main() -> None:
    from livermets import cli

    for argv in json.load(sys.stdin):
        sys.argv = ["livermets", *argv]
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        print(json.dumps({"code": code, "heavy": heavy_loaded(), "stderr": stderr.getvalue()[-300:]}),
              flush=True)


if __name__ == "__main__":
    main()
