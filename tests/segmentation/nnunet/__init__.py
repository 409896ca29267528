"""nnU-Net backend tests: a package, so that its conftest does not replace tests/segmentation/conftest.py
as the module ``conftest`` that the tests there import from."""
