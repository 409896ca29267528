"""Numbers printed in Ty et al., Diagn Interv Radiol 2025 (Table 4, Supplementary Table 2, Figures 3-5).

Transcribed from the paper so that reports can show them beside livermets' numbers; a test checks them against
the project's reference file. Each Table 4 entry is ``(mean, low95, high95)``.
"""

from __future__ import annotations

TABLE4: dict[str, dict[str, tuple[float, float, float]]] = {
    "LR": {
        "accuracy": (0.79, 0.73, 0.85),
        "ppv": (0.81, 0.78, 0.83),
        "npv": (0.64, 0.33, 1.00),
        "sensitivity": (0.95, 0.90, 1.00),
        "specificity": (0.25, 0.17, 0.33),
        "f1": (0.87, 0.84, 0.91),
        "auc": (0.71, 0.59, 0.82),
    },
    "RF": {
        "accuracy": (0.77, 0.69, 0.85),
        "ppv": (0.82, 0.77, 0.86),
        "npv": (0.50, 0.25, 0.75),
        "sensitivity": (0.90, 0.85, 0.95),
        "specificity": (0.33, 0.17, 0.50),
        "f1": (0.86, 0.81, 0.90),
        "auc": (0.58, 0.48, 0.69),
    },
    "XGB": {
        "accuracy": (0.79, 0.73, 0.85),
        "ppv": (0.84, 0.81, 0.86),
        "npv": (0.56, 0.40, 0.75),
        "sensitivity": (0.90, 0.85, 0.95),
        "specificity": (0.42, 0.33, 0.50),
        "f1": (0.87, 0.83, 0.90),
        "auc": (0.63, 0.48, 0.78),
    },
}

SUPP_TABLE2: dict[str, dict[str, dict[str, float | None]]] = {
    "LR": {
        "none": {"pos_weight": None, "f1": 0.85, "auc": 0.55},
        "AUC": {"pos_weight": 0.25, "f1": 0.85, "auc": 0.56},
        "BAL": {"pos_weight": None, "f1": 0.70, "auc": 0.54},
        "F1": {"pos_weight": 4.9, "f1": 0.85, "auc": 0.55},
    },
    "RF": {
        "none": {"pos_weight": None, "f1": 0.86, "auc": 0.68},
        "AUC": {"pos_weight": 0.3, "f1": 0.84, "auc": 0.67},
        "BAL": {"pos_weight": None, "f1": 0.84, "auc": 0.67},
        "F1": {"pos_weight": 8.6, "f1": 0.85, "auc": 0.67},
    },
    "XGB": {
        "none": {"pos_weight": None, "f1": 0.84, "auc": 0.59},
        "AUC": {"pos_weight": 0.05, "f1": 0.30, "auc": 0.58},
        "BAL": {"pos_weight": 0.321, "f1": 0.72, "auc": 0.59},
        "F1": {"pos_weight": 0.8, "f1": 0.84, "auc": 0.59},
    },
}

FIGURE3: dict[str, dict[str, float]] = {
    "all": {"spearman_rho": 0.252, "spearman_p": 0.0059, "ranksum_stat": 2.191, "ranksum_p": 0.028},
    "cfdna": {"spearman_rho": 0.446, "spearman_p": 0.00057, "ranksum_stat": 3.225, "ranksum_p": 0.0013},
    "biopsy": {"spearman_rho": -0.0738, "spearman_p": 0.568, "ranksum_p": 0.253},
}

FIGURE5: dict[str, dict[str, float]] = {
    "correct": {"ne_score_mean": 0.127, "ne_score_median": 0.117, "min": -0.123, "max": 0.370},
    "incorrect": {"ne_score_mean": -0.007, "ne_score_median": -0.029, "min": -0.123, "max": 0.333},
    "biopsy": {"n": 20, "accuracy": 0.90, "auc": 0.984},
    "cfdna": {"n": 30, "accuracy": 0.733, "auc": 0.528},
}

FIGURE4_FEATURES: list[str] = [
    "original_shape_MajorAxisLength",
    "original_shape_Maximum2DDiameterRow",
    "original_shape_MeshVolume",
    "original_shape_MinorAxisLength",
    "original_shape_SurfaceArea",
    "original_shape_VoxelVolume",
    "original_firstorder_Energy",
    "original_firstorder_TotalEnergy",
    "original_firstorder_Variance",
    "original_gldm_DependenceNonUniformity",
    "original_gldm_GrayLevelNonUniformity",
    "original_gldm_LargeDependenceEmphasis",
    "original_gldm_LargeDependenceHighGrayLevelEmphasis",
    "original_glrlm_GrayLevelNonUniformity",
    "original_glrlm_RunLengthNonUniformity",
    "original_glszm_GrayLevelNonUniformity",
    "original_glszm_LargeAreaEmphasis",
    "original_glszm_LargeAreaHighGrayLevelEmphasis",
    "original_glszm_LargeAreaLowGrayLevelEmphasis",
    "original_glszm_ZoneVariance",
]

NOTEBOOK3_LR_FOLD_AUC: list[float] = [0.629630, 0.469136, 0.450000, 0.665385, 0.538462]
"""Validation AUC of the five unweighted LR fold models as printed in the paper's notebook 3."""
