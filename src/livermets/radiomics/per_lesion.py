"""Radiomics of each connected lesion (beyond the paper, which pooled all lesions of a series into one ROI).

Lesions are the 26-connected components of label 2 (:func:`livermets.lesions.components.label_components`, cc3d),
numbered as in :func:`livermets.lesions.components.lesion_table`, whose location columns (volume, centroid in mm,
bounding box, longest axial diameter, liver contact, HU mean) are kept. Each lesion's features come from a crop of
image and component mask around the lesion (bounding box plus :func:`.extractor.crop_margin`), so the cost follows
the lesion and there is no full-volume pass per lesion. PyRadiomics' resampling grid is then aligned at the crop's
corner rather than at the scan's corner: per-lesion values are reproducible but may differ in the last digits from a
whole-scan run on a mask holding that lesion alone.

A lesion PyRadiomics cannot describe (e.g. a single voxel, or a lesion flat in two dimensions) keeps its location
columns, gets NaN features and its reason in ``radiomics_error``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from livermets.featuretable import RADIOMICS_COLUMNS
from livermets.lesions.components import LESION_VALUE, label_components, lesion_table
from livermets.radiomics.extractor import crop_box, crop_margin, extract_roi

ERROR_COLUMN = "radiomics_error"


def extract_lesions(
    image: sitk.Image,
    label: sitk.Image,
    extractor: Any,
    *,
    crop: bool = True,
    lesion_value: int = LESION_VALUE,
) -> list[dict[str, Any]]:
    """One dict per connected lesion: location columns, ``original_*`` features and ``radiomics_error``.

    Parameters
    ----------
    image, label
        CT and label map on the same grid.
    extractor
        From :func:`livermets.radiomics.extractor.make_extractor`.
    crop
        ``False`` runs PyRadiomics on the full image with a full-size mask per lesion (slow; for checks only).

    Examples
    --------
    >>> from livermets.radiomics.extractor import make_extractor
    >>> rng = np.random.default_rng(0)
    >>> ct = sitk.GetImageFromArray(rng.integers(0, 80, (12, 24, 24)).astype(np.int16))
    >>> lab = np.zeros((12, 24, 24), np.uint8); lab[4:8, 3:8, 3:8] = 2; lab[4:8, 14:20, 14:20] = 2
    >>> lab_img = sitk.GetImageFromArray(lab); lab_img.CopyInformation(ct)
    >>> rows = extract_lesions(ct, lab_img, make_extractor())
    >>> [r["lesion_id"] for r in rows], rows[1]["voxel_count"]
    ([1, 2], 144)
    """
    array = sitk.GetArrayViewFromImage(label)
    components = label_components(array == lesion_value)
    locations = lesion_table(label, image, lesion_value=lesion_value).to_dict("records")
    margin = crop_margin(image.GetSpacing(), extractor.settings)
    rows: list[dict[str, Any]] = []
    for i, (location, box) in enumerate(zip(locations, components.bounding_boxes, strict=True)):
        lesion_id = i + 1
        start = (box[2].start, box[1].start, box[0].start)
        stop = (box[2].stop, box[1].stop, box[0].stop)
        if crop:
            index, size = crop_box(image.GetSize(), (start, stop), margin)
            region = (slice(index[2], index[2] + size[2]), slice(index[1], index[1] + size[1]),
                      slice(index[0], index[0] + size[0]))
            roi_image = sitk.RegionOfInterest(image, size, index)
            roi_mask = sitk.GetImageFromArray((components.labels[region] == lesion_id).astype(np.uint8))
            roi_mask.CopyInformation(roi_image)
        else:
            roi_image = image
            roi_mask = sitk.GetImageFromArray((components.labels == lesion_id).astype(np.uint8))
            roi_mask.CopyInformation(image)
        row: dict[str, Any] = {str(k): v for k, v in location.items()}
        try:
            features = extract_roi(roi_image, roi_mask, extractor, crop=False)
            row.update({k: v for k, v in features.items() if k.startswith("original_")})
            row[ERROR_COLUMN] = None
        except ValueError as exc:
            row.update(dict.fromkeys(RADIOMICS_COLUMNS, np.nan))
            row[ERROR_COLUMN] = " ".join(str(exc).split())[:300]
        rows.append(row)
    return rows
