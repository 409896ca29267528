"""Output folders that appear whole or not at all (re-exported from :mod:`livermets.atomic`, where lower stages use
them too).

A folder is built under a hidden sibling name (``.NAME.partial-XXXX``) and renamed onto its final name only when every
file in it has been written, so an existing output folder is always complete: a killed job leaves only a partial
sibling, which :func:`remove_partials` deletes and the job redoes.
"""

from __future__ import annotations

from livermets.atomic import PARTIAL_MARK, remove_partials, staged_folder

__all__ = ["PARTIAL_MARK", "remove_partials", "staged_folder"]
