"""livermets: liver metastasis segmentation and NE-phenotype radiomics for SCLC."""

__version__ = "0.1.0"
