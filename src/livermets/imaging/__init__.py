"""CT and label-map input/output with exact geometry (SimpleITK): NIfTI/NRRD/MHA, DICOM series, DICOM SEG,
geometry checks and integrity checks. See docs/cohort-and-imaging.md.

The public names are imported on first use (PEP 562), so that importing the package (and ``livermets --help``) loads
no numerical library.

Examples
--------
>>> from livermets.imaging import read_image, read_label  # doctest: +SKIP
>>> image = read_image("ct.nii.gz")  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "read_image": "io",
    "read_label": "io",
    "write_image": "io",
    "write_label": "io",
    "label_image": "io",
    "image_info": "io",
    "is_image_path": "io",
    "geometry_differences": "geometry",
    "same_geometry": "geometry",
    "check_same_geometry": "geometry",
    "resample_label_to": "geometry",
    "orientation_code": "geometry",
    "reorient_like": "geometry",
    "DicomSeries": "dicom",
    "list_series": "dicom",
    "choose_series": "dicom",
    "read_series": "dicom",
    "write_dicom_seg": "dicom_seg",
    "read_dicom_seg": "dicom_seg",
    "read_seg": "dicom_seg",
    "seg_label_array": "dicom_seg",
    "check_image_file": "integrity",
    "check_series": "integrity",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
