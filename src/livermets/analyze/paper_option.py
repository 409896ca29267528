"""``--phenotype-model paper`` of ``analyze`` and ``run``: the NE model of the paper's published features.

:func:`resolve_phenotype_model` turns the word ``paper`` into the model folder of
:func:`livermets.phenotype.published.paper_model` (built, and its table fetched, on first use); any other value is
a model folder. :func:`no_phenotype_model_line` is the line printed when no phenotype model is given.
"""

from __future__ import annotations

from pathlib import Path

from livermets.phenotype.published import PAPER_MODEL

__all__ = ["no_phenotype_model_line", "resolve_phenotype_model"]


def resolve_phenotype_model(value: str | Path) -> Path:
    """``paper`` (the word, no path separator): the paper model's folder, built on first use; else ``value``.

    Raises
    ------
    UserInputError
        ``paper`` while the published features are neither local nor downloadable (one line saying how).
    """
    if isinstance(value, str) and value == PAPER_MODEL:
        from livermets.phenotype.published import paper_model

        return paper_model()
    return Path(value)


def no_phenotype_model_line() -> str:
    """How to get an NE probability, and how little the model that comes with livermets is worth."""
    from livermets.errors import UserInputError
    from livermets.phenotype.model_config import read_model_config
    from livermets.phenotype.published import paper_model_dir

    auc = "about 0.58"
    try:
        auc = f"{read_model_config(paper_model_dir())['cv_performance']['auc']:.2f}"
    except (UserInputError, KeyError, TypeError, ValueError):  # not built yet (or unreadable): the measured value
        pass
    return (f"no NE phenotype model given: `--phenotype-model {PAPER_MODEL}` uses the model of the paper's published "
            f"features (built on first use), whose patient-grouped CV AUC ({auc}) is near chance")
