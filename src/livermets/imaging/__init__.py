"""CT and label-map input/output with exact geometry (SimpleITK)."""
