"""PyRadiomics through livermets on the IBSI 1 digital phantom vs the IBSI consensus reference values.

The phantom (5x4x4 voxels of 2 mm, grey levels 1..6) is computed as IBSI's phantom configuration prescribes: no
resampling, no discretisation beyond its integer levels (``params/ibsi_phantom.yaml``: bin width 1, whose bin edges
keep level g in bin g). Each of the 107 paper features either has an IBSI tag (compared within IBSI's tolerance), is
listed in :data:`KNOWN_DIFFERENCES` with the reason and the exact conversion that makes it comparable (the converted
value must then match too), or is listed in :data:`NO_IBSI_REFERENCE`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import SimpleITK as sitk

from livermets.featuretable import RADIOMICS_COLUMNS
from livermets.radiomics.extractor import IBSI_PHANTOM_PARAMS, extract_roi, make_extractor

# PyRadiomics feature → (IBSI code, IBSI tag of the reference table). 3D texture matrices: GLCM and GLRLM features
# are computed per direction and averaged (IBSI "3D_avg"); GLSZM, GLDM (IBSI NGLDM, alpha 0, distance 1) and NGTDM
# are 3D single matrices ("3D").
IBSI_NAMES: dict[str, tuple[str, str]] = {
    "shape_MeshVolume": ("RNU0", "morph_volume"),
    "shape_VoxelVolume": ("YEKZ", "morph_vol_approx"),
    "shape_SurfaceArea": ("C0JK", "morph_area_mesh"),
    "shape_SurfaceVolumeRatio": ("2PR5", "morph_av"),
    "shape_Sphericity": ("QCFX", "morph_sphericity"),
    "shape_Maximum3DDiameter": ("L0JK", "morph_diam"),
    "shape_MajorAxisLength": ("TDIC", "morph_pca_maj_axis"),
    "shape_MinorAxisLength": ("P9VJ", "morph_pca_min_axis"),
    "shape_LeastAxisLength": ("7J51", "morph_pca_least_axis"),
    "shape_Elongation": ("Q3CK", "morph_pca_elongation"),
    "shape_Flatness": ("N17B", "morph_pca_flatness"),
    "firstorder_Mean": ("Q4LE", "stat_mean"),
    "firstorder_Variance": ("ECT3", "stat_var"),
    "firstorder_Skewness": ("KE2A", "stat_skew"),
    "firstorder_Kurtosis": ("IPH6", "stat_kurt"),
    "firstorder_Median": ("Y12H", "stat_median"),
    "firstorder_Minimum": ("1GSF", "stat_min"),
    "firstorder_10Percentile": ("QG58", "stat_p10"),
    "firstorder_90Percentile": ("8DWT", "stat_p90"),
    "firstorder_Maximum": ("84IY", "stat_max"),
    "firstorder_InterquartileRange": ("SALO", "stat_iqr"),
    "firstorder_Range": ("2OJQ", "stat_range"),
    "firstorder_MeanAbsoluteDeviation": ("4FUA", "stat_mad"),
    "firstorder_RobustMeanAbsoluteDeviation": ("1128", "stat_rmad"),
    "firstorder_Energy": ("N8CA", "stat_energy"),
    "firstorder_RootMeanSquared": ("5ZWQ", "stat_rms"),
    "firstorder_Entropy": ("TLU2", "ih_entropy"),
    "firstorder_Uniformity": ("BJ5W", "ih_uniformity"),
    "glcm_MaximumProbability": ("GYBY", "cm_joint_max_3D_avg"),
    "glcm_JointAverage": ("60VM", "cm_joint_avg_3D_avg"),
    "glcm_SumSquares": ("UR99", "cm_joint_var_3D_avg"),
    "glcm_JointEntropy": ("TU9B", "cm_joint_entr_3D_avg"),
    "glcm_DifferenceAverage": ("TF7R", "cm_diff_avg_3D_avg"),
    "glcm_DifferenceVariance": ("D3YU", "cm_diff_var_3D_avg"),
    "glcm_DifferenceEntropy": ("NTRS", "cm_diff_entr_3D_avg"),
    "glcm_SumAverage": ("ZGXS", "cm_sum_avg_3D_avg"),
    "glcm_SumEntropy": ("P6QZ", "cm_sum_entr_3D_avg"),
    "glcm_JointEnergy": ("8ZQL", "cm_energy_3D_avg"),
    "glcm_Contrast": ("ACUI", "cm_contrast_3D_avg"),
    "glcm_Id": ("IB1Z", "cm_inv_diff_3D_avg"),
    "glcm_Idn": ("NDRX", "cm_inv_diff_norm_3D_avg"),
    "glcm_Idm": ("WF0Z", "cm_inv_diff_mom_3D_avg"),
    "glcm_Idmn": ("1QCO", "cm_inv_diff_mom_norm_3D_avg"),
    "glcm_InverseVariance": ("E8JP", "cm_inv_var_3D_avg"),
    "glcm_Correlation": ("NI2N", "cm_corr_3D_avg"),
    "glcm_Autocorrelation": ("QWB0", "cm_auto_corr_3D_avg"),
    "glcm_ClusterTendency": ("DG8W", "cm_clust_tend_3D_avg"),
    "glcm_ClusterShade": ("7NFM", "cm_clust_shade_3D_avg"),
    "glcm_ClusterProminence": ("AE86", "cm_clust_prom_3D_avg"),
    "glcm_Imc1": ("R8DG", "cm_info_corr1_3D_avg"),
    "glcm_Imc2": ("JN9H", "cm_info_corr2_3D_avg"),
    "glrlm_ShortRunEmphasis": ("22OV", "rlm_sre_3D_avg"),
    "glrlm_LongRunEmphasis": ("W4KF", "rlm_lre_3D_avg"),
    "glrlm_LowGrayLevelRunEmphasis": ("V3SW", "rlm_lgre_3D_avg"),
    "glrlm_HighGrayLevelRunEmphasis": ("G3QZ", "rlm_hgre_3D_avg"),
    "glrlm_ShortRunLowGrayLevelEmphasis": ("HTZT", "rlm_srlge_3D_avg"),
    "glrlm_ShortRunHighGrayLevelEmphasis": ("GD3A", "rlm_srhge_3D_avg"),
    "glrlm_LongRunLowGrayLevelEmphasis": ("IVPO", "rlm_lrlge_3D_avg"),
    "glrlm_LongRunHighGrayLevelEmphasis": ("3KUM", "rlm_lrhge_3D_avg"),
    "glrlm_GrayLevelNonUniformity": ("R5YN", "rlm_glnu_3D_avg"),
    "glrlm_GrayLevelNonUniformityNormalized": ("OVBL", "rlm_glnu_norm_3D_avg"),
    "glrlm_RunLengthNonUniformity": ("W92Y", "rlm_rlnu_3D_avg"),
    "glrlm_RunLengthNonUniformityNormalized": ("IC23", "rlm_rlnu_norm_3D_avg"),
    "glrlm_RunPercentage": ("9ZK5", "rlm_r_perc_3D_avg"),
    "glrlm_GrayLevelVariance": ("8CE5", "rlm_gl_var_3D_avg"),
    "glrlm_RunVariance": ("SXLW", "rlm_rl_var_3D_avg"),
    "glrlm_RunEntropy": ("HJ9O", "rlm_rl_entr_3D_avg"),
    "glszm_SmallAreaEmphasis": ("5QRC", "szm_sze_3D"),
    "glszm_LargeAreaEmphasis": ("48P8", "szm_lze_3D"),
    "glszm_LowGrayLevelZoneEmphasis": ("S1RA", "szm_lgze_3D"),
    "glszm_HighGrayLevelZoneEmphasis": ("K26C", "szm_hgze_3D"),
    "glszm_SmallAreaLowGrayLevelEmphasis": ("5RAI", "szm_szlge_3D"),
    "glszm_SmallAreaHighGrayLevelEmphasis": ("HW1V", "szm_szhge_3D"),
    "glszm_LargeAreaLowGrayLevelEmphasis": ("YH51", "szm_lzlge_3D"),
    "glszm_LargeAreaHighGrayLevelEmphasis": ("J17V", "szm_lzhge_3D"),
    "glszm_GrayLevelNonUniformity": ("JNSA", "szm_glnu_3D"),
    "glszm_GrayLevelNonUniformityNormalized": ("Y1RO", "szm_glnu_norm_3D"),
    "glszm_SizeZoneNonUniformity": ("4JP3", "szm_zsnu_3D"),
    "glszm_SizeZoneNonUniformityNormalized": ("VB3A", "szm_zsnu_norm_3D"),
    "glszm_ZonePercentage": ("P30P", "szm_z_perc_3D"),
    "glszm_GrayLevelVariance": ("BYLV", "szm_gl_var_3D"),
    "glszm_ZoneVariance": ("3NSA", "szm_zs_var_3D"),
    "glszm_ZoneEntropy": ("GU8N", "szm_zs_entr_3D"),
    "ngtdm_Coarseness": ("QCDE", "ngt_coarseness_3D"),
    "ngtdm_Contrast": ("65HE", "ngt_contrast_3D"),
    "ngtdm_Busyness": ("NQ30", "ngt_busyness_3D"),
    "ngtdm_Complexity": ("HDEZ", "ngt_complexity_3D"),
    "ngtdm_Strength": ("1X9X", "ngt_strength_3D"),
    "gldm_SmallDependenceEmphasis": ("SODN", "ngl_lde_3D"),
    "gldm_LargeDependenceEmphasis": ("IMOQ", "ngl_hde_3D"),
    "gldm_LowGrayLevelEmphasis": ("TL9H", "ngl_lgce_3D"),
    "gldm_HighGrayLevelEmphasis": ("OAE7", "ngl_hgce_3D"),
    "gldm_SmallDependenceLowGrayLevelEmphasis": ("EQ3F", "ngl_ldlge_3D"),
    "gldm_SmallDependenceHighGrayLevelEmphasis": ("JA6D", "ngl_ldhge_3D"),
    "gldm_LargeDependenceLowGrayLevelEmphasis": ("NBZI", "ngl_hdlge_3D"),
    "gldm_LargeDependenceHighGrayLevelEmphasis": ("9QMG", "ngl_hdhge_3D"),
    "gldm_GrayLevelNonUniformity": ("FP8K", "ngl_glnu_3D"),
    "gldm_DependenceNonUniformity": ("Z87G", "ngl_dcnu_3D"),
    "gldm_DependenceNonUniformityNormalized": ("OKJI", "ngl_dcnu_norm_3D"),
    "gldm_GrayLevelVariance": ("1PFV", "ngl_gl_var_3D"),
    "gldm_DependenceVariance": ("DNX2", "ngl_dc_var_3D"),
    "gldm_DependenceEntropy": ("FCBV", "ngl_dc_entr_3D"),
}

NO_IBSI_REFERENCE: dict[str, str] = {
    "shape_Maximum2DDiameterSlice": "PyRadiomics-specific (largest in-plane diameter); not an IBSI feature",
    "shape_Maximum2DDiameterColumn": "PyRadiomics-specific (largest coronal diameter); not an IBSI feature",
    "shape_Maximum2DDiameterRow": "PyRadiomics-specific (largest sagittal diameter); not an IBSI feature",
    "firstorder_TotalEnergy": "PyRadiomics-specific: Energy times voxel volume; not an IBSI feature",
    "glcm_MCC": "maximal correlation coefficient: not in the IBSI 1 reference table",
}

# Features PyRadiomics is known to define differently from IBSI, each with the exact conversion to the IBSI
# definition; the converted value must match the reference within tolerance.
N_PHANTOM_VOXELS = 74  # voxels in the phantom's ROI; checked against VoxelVolume below
_AXIS_FACTOR = math.sqrt(N_PHANTOM_VOXELS / (N_PHANTOM_VOXELS - 1))
KNOWN_DIFFERENCES: dict[str, tuple[str, Callable[[float], float]]] = {
    "firstorder_Kurtosis": (
        "PyRadiomics reports Pearson kurtosis mu4/sigma^4; IBSI stat_kurt is excess kurtosis (minus 3)",
        lambda value: value - 3.0,
    ),
    "shape_MajorAxisLength": (
        "PyRadiomics divides the voxel-coordinate covariance by N, the IBSI reference by N - 1: axis lengths "
        "4*sqrt(eigenvalue) are smaller by sqrt((N-1)/N)",
        lambda value: value * _AXIS_FACTOR,
    ),
    "shape_MinorAxisLength": ("as shape_MajorAxisLength (covariance over N instead of N - 1)",
                              lambda value: value * _AXIS_FACTOR),
    "shape_LeastAxisLength": ("as shape_MajorAxisLength (covariance over N instead of N - 1)",
                              lambda value: value * _AXIS_FACTOR),
}

# The shared TSV (PyRadiomics' own IBSI dictionary) has a few slips; these codes are checked against the corrected
# PyRadiomics names instead of its row text.
TSV_OVERRIDES: dict[str, str] = {
    "5RAI": "glszm_SmallAreaLowGrayLevelEmphasis",  # TSV lists the class as glcm
    "HW1V": "glszm_SmallAreaHighGrayLevelEmphasis",  # TSV lists the class as glcm
    "YH51": "glszm_LargeAreaLowGrayLevelEmphasis",  # TSV lists the class as glcm
    "J17V": "glszm_LargeAreaHighGrayLevelEmphasis",  # TSV lists the class as glcm
    "S1RA": "glszm_LowGrayLevelZoneEmphasis",  # TSV spells "Grey"
    "K26C": "glszm_HighGrayLevelZoneEmphasis",  # TSV spells "Grey"
    "3NSA": "glszm_ZoneVariance",  # TSV: ZoneSizeVariance
    "GU8N": "glszm_ZoneEntropy",  # TSV: ZoneSizeEntropy
}
NOT_IN_TSV = {"IPH6", "QWB0", "R8DG", "JN9H"}  # kurtosis, autocorrelation, Imc1, Imc2: no row text in the TSV


@pytest.fixture(scope="module")
def phantom_features(shared_data: Callable[..., Path]) -> dict[str, float]:
    image = sitk.ReadImage(str(shared_data("ibsi", "digital_phantom_image.nii.gz")))
    mask = sitk.ReadImage(str(shared_data("ibsi", "digital_phantom_mask.nii.gz")))
    result = extract_roi(image, mask, make_extractor(IBSI_PHANTOM_PARAMS))
    return {k.removeprefix("original_"): v for k, v in result.items() if k.startswith("original_")}


@pytest.fixture(scope="module")
def reference(shared_data: Callable[..., Path]) -> dict[str, tuple[float, float]]:
    table: dict[str, tuple[float, float]] = {}
    with shared_data("ibsi", "ibsi_1_digital_phantom_reference.csv").open() as handle:
        for row in csv.DictReader(handle, delimiter=";"):
            if row["reference value"].strip():
                table[row["tag"]] = (float(row["reference value"]), float(row["tolerance"] or 0.0))
    return table


def _within(value: float, expected: float, tolerance: float) -> bool:
    # IBSI phantom values are given to 3 significant digits with tolerance 0: allow half a unit of the last digit.
    rounding = 0.5 * 10 ** (math.floor(math.log10(abs(expected))) - 2) if expected else 0.0
    return abs(value - expected) <= tolerance + rounding + 1e-12


def test_every_paper_feature_is_classified() -> None:
    names = {c.removeprefix("original_") for c in RADIOMICS_COLUMNS}
    assert set(IBSI_NAMES) | set(NO_IBSI_REFERENCE) == names
    assert not set(IBSI_NAMES) & set(NO_IBSI_REFERENCE)
    assert set(KNOWN_DIFFERENCES) <= set(IBSI_NAMES)


def test_name_mapping_agrees_with_pyradiomics_ibsi_dictionary(shared_data: Callable[..., Path]) -> None:
    by_code: dict[str, str] = {}
    with shared_data("ibsi", "pyradiomics_to_ibsi_names.tsv").open() as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row.get("pyradiomics_feature_name"):
                by_code[row["IBSI_code"]] = f"{row['pyradiomics_feature_class']}_{row['pyradiomics_feature_name']}"
    by_code.update(TSV_OVERRIDES)
    for name, (code, _) in IBSI_NAMES.items():
        if code in NOT_IN_TSV:
            assert code not in by_code
            continue
        assert by_code.get(code) == name, f"{name}: TSV maps IBSI code {code} to {by_code.get(code)}"


def test_phantom_roi_size(phantom_features: dict[str, float]) -> None:
    assert phantom_features["shape_VoxelVolume"] == pytest.approx(N_PHANTOM_VOXELS * 8.0)


def test_phantom_matches_ibsi_reference(
    phantom_features: dict[str, float], reference: dict[str, tuple[float, float]]
) -> None:
    mismatches = []
    for name, (_, tag) in IBSI_NAMES.items():
        expected, tolerance = reference[tag]
        value = phantom_features[name]
        if name in KNOWN_DIFFERENCES:
            value = KNOWN_DIFFERENCES[name][1](value)
        if not _within(value, expected, tolerance):
            mismatches.append(f"{name} ({tag}): {value:.6g} vs IBSI {expected} ± {tolerance}")
    assert not mismatches, "\n".join(mismatches)


def test_known_differences_are_real_differences(
    phantom_features: dict[str, float], reference: dict[str, tuple[float, float]]
) -> None:
    # Each listed deviation must actually be needed: the unconverted PyRadiomics value misses the reference.
    for name in KNOWN_DIFFERENCES:
        expected, tolerance = reference[IBSI_NAMES[name][1]]
        if name == "shape_MajorAxisLength":
            continue  # the N vs N - 1 effect (0.7 %) is inside this feature's wider tolerance (0.1 mm of 11.4)
        assert not _within(phantom_features[name], expected, tolerance), name
