"""The exception types for problems with a user's input.

The CLI turns a :class:`UserInputError` into a single line on stderr and exit code 2 (no traceback); every stage raises
it for bad files, columns, rows or parameters, naming the offending item in the message.

A bad parameter value or combination is a :class:`ParameterError`: its message names parameters by their Python
names (``n_boot must be >= 0``), and the command line prints the option flags in their place (``--n-boot must be >=
0``), so that the library never mentions flags and the CLI never shows Python names.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any


class UserInputError(Exception):
    """Bad input from the user (file, column, row or parameter). The message must name what is wrong."""


class ParameterError(UserInputError):
    """A bad parameter value or combination of parameters.

    Parameters
    ----------
    template
        The message, naming each parameter as ``{name}`` (its Python name); other fields are filled from ``values``
        with the usual format syntax (``{value!r}``).
    **values
        The values quoted in the message (never parsed as templates themselves).

    Examples
    --------
    >>> error = ParameterError("{n_boot} must be >= 0 (got {value})", value=-1)
    >>> str(error)
    'n_boot must be >= 0 (got -1)'
    >>> error.parameters
    ('n_boot',)
    >>> error.render({"n_boot": "--n-boot"})
    '--n-boot must be >= 0 (got -1)'
    """

    def __init__(self, template: str, **values: Any) -> None:
        self.template = template
        self.values = values
        super().__init__(self.render())

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt from template and values when it crosses a process boundary (a worker's error)."""
        return _rebuild, (type(self), self.template, self.values)

    @classmethod
    def about(cls, parameter: str, problem: str, value: Any = None) -> ParameterError:
        """``parameter value: problem`` for a parameter known only at run time (a field of an options object).

        >>> str(ParameterError.about("n_boot", "must be >= 0", -1))
        'n_boot -1: must be >= 0'
        """
        if not parameter.isidentifier():
            raise ValueError(f"not a parameter name: {parameter!r}")
        shown = "" if value is None else " {value}"
        return cls("{" + parameter + "}" + shown + ": {problem}", value=value, problem=problem)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The parameters the message names, in order of first mention."""
        fields = (field for _, field, _, _ in string.Formatter().parse(self.template) if field)
        names = (field.split("!")[0].split(".")[0].split("[")[0] for field in fields)
        return tuple(dict.fromkeys(name for name in names if name not in self.values))

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each parameter shown as ``names[parameter]`` (default: its Python name)."""
        shown = {parameter: (names or {}).get(parameter, parameter) for parameter in self.parameters}
        return self.template.format_map({**shown, **self.values})


def _rebuild(cls: type[ParameterError], template: str, values: dict[str, Any]) -> ParameterError:
    return cls(template, **values)


EXIT_USER_ERROR = 2
"""Exit code of bad input: one ``error:`` line, nothing written."""
EXIT_FAILURES = 3
"""Exit code of a batch command that finished but in which some series failed: everything that succeeded is written
and a failure table lists the others."""
