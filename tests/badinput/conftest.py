"""Fixtures of the bad-input, safe-loading and kill tests (see ``badinput_data.py``)."""

from badinput_data import inputs

__all__ = ["inputs"]
