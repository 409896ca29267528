"""How much the paper's LR result moves with the OpenBLAS kernel: a table measured once and shipped as data.

``lr_kernel_table.json`` (next to this module) is written by ``benchmarks/bench_lr_kernels.py``, which runs the
paper protocol's LR (LASSO, 5-fold ShuffleSplit, train+val refit, 1000 study-level bootstraps) in one child process
per ``OPENBLAS_CORETYPE``, *without* pinning, on one machine. Only kernels that ran are listed; kernels the
machine's CPU cannot execute are named under ``not_runnable`` with the reason. ``REPORT.md`` shows the table.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

TABLE_FILE = "lr_kernel_table.json"
METRIC_ORDER = ("accuracy", "ppv", "npv", "sensitivity", "specificity", "f1", "auc")


def measured_kernel_table() -> dict[str, Any]:
    """The stored measurement: ``kernels`` (one entry per kernel run: ``kernel``, ``coretypes``, ``lr``), metadata."""
    text = resources.files("livermets.reproduce").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    table: dict[str, Any] = json.loads(text)
    return table


def kernel_table_lines(table: dict[str, Any], paper_lr: dict[str, tuple[float, float, float]]) -> list[str]:
    """Markdown rows ``| kernel | OPENBLAS_CORETYPE values | seven LR means | largest |Δ| vs paper |``."""
    header = " | ".join(METRIC_ORDER)
    lines = [
        f"| OpenBLAS kernel | OPENBLAS_CORETYPE | {header} | max abs. Δ vs paper |",
        "|---|---|" + "---|" * len(METRIC_ORDER) + "---|",
        "| *paper* | | " + " | ".join(f"{paper_lr[m][0]:.2f}" for m in METRIC_ORDER) + " | |",
    ]
    for entry in table["kernels"]:
        means = [float(entry["lr"][m][0]) for m in METRIC_ORDER]
        delta = max(abs(value - paper_lr[m][0]) for value, m in zip(means, METRIC_ORDER, strict=True))
        lines.append(
            f"| {entry['kernel']} | {', '.join(entry['coretypes'])} | "
            + " | ".join(f"{value:.3f}" for value in means)
            + f" | {delta:.3f} |"
        )
    return lines
