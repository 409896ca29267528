"""The ``config.json`` of a phenotype model folder, read without the numerical libraries."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from livermets.errors import UserInputError


def read_model_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``config.json`` of a model folder of ``phenotype train``, checked (one :class:`UserInputError` naming the
    file); reads no model, so that a command can check its model folder before scikit-learn loads."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UserInputError(f"model folder {folder}: config.json not found")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{config_path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise UserInputError(f"{config_path}: not valid JSON (not UTF-8 text)") from None
    if not isinstance(config, dict) or not isinstance(config.get("folds", []), list):
        raise UserInputError(f"{config_path}: not a livermets phenotype model config (an object with a 'folds' list)")
    config.setdefault("folds", [])
    return config
