"""The one exception type for problems with a user's input.

The CLI turns a :class:`UserInputError` into a single line on stderr and exit code 2 (no traceback); every stage raises
it for bad files, columns, rows or parameters, naming the offending item in the message.
"""

from __future__ import annotations


class UserInputError(Exception):
    """Bad input from the user (file, column, row or parameter). The message must name what is wrong."""


EXIT_USER_ERROR = 2
