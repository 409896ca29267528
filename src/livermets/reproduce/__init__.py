"""Reproduction of the paper's tables and figures from its published feature table, with a side-by-side report."""
