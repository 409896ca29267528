"""NE-phenotype classification from radiomics: LASSO selection, LR / RF / XGBoost, CV ensembles, bootstrap CIs.

Two protocols: ``paper`` reproduces the published notebooks exactly (row-level ShuffleSplit, LASSO fit once on
train+val); ``grouped`` is the rigorous default for new work (patient-grouped CV, everything fitted inside the
training folds, nested hyper-parameter search, permutation test, cluster bootstrap, calibration).
"""
