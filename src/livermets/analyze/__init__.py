"""livermets analyze: one CT in, segmentation, lesions, features, phenotype, figures and a self-contained report out."""
