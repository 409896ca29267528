"""Plausibility checks of a predicted liver/lesion label map and its CT (flags, never rejections).

:func:`check_prediction` measures a prediction and its input and returns a :class:`QCRecord` with one
:class:`QCFlag` per failed check; thresholds come from :class:`livermets.segmentation.config.QCConfig`. The codes:

``no_liver``
    No liver or lesion voxel at all.
``liver_volume``
    Liver volume (labels 1 + 2, mL from the voxel spacing) outside ``liver_ml``.
``many_lesions``
    More than ``max_lesions`` lesion components (26-connected).
``speckle``
    At least ``speckle_min_count`` lesion components smaller than ``speckle_ml`` mL, or more than half of the
    components that small (counted on the prediction before the minimum lesion size removed any,
    :mod:`livermets.segmentation.lesion_size`).
``lesion_outside_liver``
    Lesion components with no liver voxel (label 1) in their 26-neighbourhood.
``not_ct``
    Intensities unlike CT in HU: minimum above ``ct_min_hu``, maximum below ``ct_max_hu`` or 99th percentile below
    ``ct_p99_hu``.
``spacing``
    In-plane spacing outside ``pixel_mm`` or slice thickness outside ``slice_mm`` (the range the model was trained on).
``liver_cut_off``
    More than ``edge_fraction`` of the liver voxels on the first or last slice or an in-plane edge of the image: the
    field of view misses part of the liver.

Arrays are in SimpleITK order ``(z, y, x)``; spacings are SimpleITK order ``(x, y, z)`` in mm. The lesion components
are labelled once (:func:`livermets.lesions.components.label_components`) and the liver contact is tested inside
each component's bounding box, so the cost is a few passes over the volume whatever the number of lesions.

Examples
--------
>>> import numpy as np, SimpleITK as sitk
>>> from livermets.segmentation.config import QCConfig
>>> ct = sitk.GetImageFromArray(np.full((4, 8, 8), -1000, np.int16))
>>> label = sitk.GetImageFromArray(np.zeros((4, 8, 8), np.uint8))
>>> [flag.code for flag in check_prediction(label, ct, QCConfig(), "s1").flags]
['no_liver', 'not_ct']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from livermets.errors import UserInputError
from livermets.imaging.geometry import geometry_differences, header_mm
from livermets.lesions.components import LESION_VALUE, LIVER_VALUE, LesionComponents, label_components
from livermets.segmentation.config import QCConfig
from livermets.segmentation.lesion_size import RemovedLesions

FLAG_CODES = (
    "no_liver", "liver_volume", "many_lesions", "speckle", "lesion_outside_liver", "not_ct", "spacing",
    "liver_cut_off",
)
"""Every flag code, in the order :func:`check_prediction` reports them."""
FLAG_TITLES = {
    "no_liver": "no liver predicted", "liver_volume": "liver volume outside the plausible range",
    "many_lesions": "more lesion components than qc.max_lesions", "speckle": "speckled lesion predictions",
    "lesion_outside_liver": "lesion components outside the liver", "not_ct": "intensities unlike CT",
    "spacing": "spacing outside the model's range", "liver_cut_off": "liver cut off by the field of view",
}
"""What each flag code says, as the summary of its repeated warnings (``spacing outside the model's range: 36
series``)."""

_P99_SAMPLES = 2_000_000
"""The 99th HU percentile is estimated from at most this many evenly spaced voxels."""


@dataclass(frozen=True)
class QCFlag:
    """One failed plausibility check: its ``code`` (see :data:`FLAG_CODES`) and a one-line ``message``."""

    code: str
    message: str


@dataclass
class QCRecord:
    """Measurements of one prediction and the flags they raise.

    Attributes
    ----------
    name
        Series id or file name the record describes.
    liver_ml, lesion_ml
        Volume of labels 1 + 2 and of label 2 in mL.
    n_lesions
        Lesion components (26-connected).
    n_speckles
        Lesion components smaller than ``QCConfig.speckle_ml`` mL, those removed by the minimum lesion size included.
    n_lesions_outside_liver
        Lesion components without a liver voxel in their 26-neighbourhood.
    hu_min, hu_max, hu_p99
        Minimum, maximum and (estimated) 99th percentile of the CT.
    spacing_mm
        Voxel spacing ``(x, y, z)`` in mm.
    liver_edge_fraction
        Fraction of the liver voxels on the image boundary (first/last slice, in-plane edges); 0 without liver.
    liver_edges
        Which boundaries the liver touches: ``first_slice``, ``last_slice``, ``in_plane_edge``.
    n_lesions_removed, removed_lesion_ml
        Lesion components removed by the minimum lesion size after prediction, and their volume in mL (not counted
        in ``n_lesions`` and ``lesion_ml``).
    min_lesion_ml, min_lesion_diameter_mm
        The minimum lesion size applied (``None``: the label map was checked as given).
    flags
        The failed checks (empty when the prediction looks plausible).
    """

    name: str
    liver_ml: float
    lesion_ml: float
    n_lesions: int
    n_speckles: int
    n_lesions_outside_liver: int
    hu_min: float
    hu_max: float
    hu_p99: float
    spacing_mm: tuple[float, float, float]
    liver_edge_fraction: float
    liver_edges: list[str] = field(default_factory=list)
    n_lesions_removed: int = 0
    removed_lesion_ml: float = 0.0
    min_lesion_ml: float | None = None
    min_lesion_diameter_mm: float | None = None
    flags: list[QCFlag] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        """Flag codes in report order."""
        return [flag.code for flag in self.flags]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping (the ``<series_id>.qc.json`` schema; see ``docs/plausibility-checks.md``).

        Examples
        --------
        >>> record = QCRecord("s1", 1500.0, 2.0, 1, 0, 0, -1000.0, 400.0, 90.0, (0.8, 0.8, 2.5), 0.0)
        >>> record.to_dict()["flags"], record.to_dict()["spacing_mm"]
        ([], [0.8, 0.8, 2.5])
        """
        data = asdict(self)
        data["spacing_mm"] = [header_mm(v) for v in self.spacing_mm]
        data.update({key: round(float(data[key]), 2) for key in ("liver_ml", "lesion_ml")})  # 0.01 mL
        data["removed_lesion_ml"] = round(float(data["removed_lesion_ml"]), 4)
        data["liver_edge_fraction"] = round(float(data["liver_edge_fraction"]), 4)
        data["flag_codes"] = self.codes
        return data


def check_prediction(label: sitk.Image, ct: sitk.Image, config: QCConfig, name: str,
                     removed: RemovedLesions | None = None) -> QCRecord:
    """Measure a predicted label map and its CT and flag what looks implausible.

    Parameters
    ----------
    label
        Predicted label map (0 background, 1 liver, 2 lesion) on the CT's grid.
    ct
        The CT in Hounsfield units the label map was predicted from.
    config
        Thresholds (``SegConfig.qc`` of the model).
    name
        Series id or file name, used in the messages and the record.
    removed
        What the minimum lesion size removed from the prediction before ``label``
        (:func:`livermets.segmentation.lesion_size.remove_small_lesions`): recorded, and counted among the speckles.

    Returns
    -------
    QCRecord
        Measured values and one :class:`QCFlag` per failed check (codes in :data:`FLAG_CODES` order).

    Raises
    ------
    UserInputError
        ``label`` and ``ct`` are not on the same grid.

    Examples
    --------
    >>> import numpy as np, SimpleITK as sitk
    >>> from livermets.segmentation.config import QCConfig
    >>> hu = np.full((20, 40, 40), -1000, np.int16); hu[2:18, 5:35, 5:35] = 60; hu[10, 20, 32] = 400
    >>> lab = np.zeros(hu.shape, np.uint8); lab[4:16, 10:30, 10:30] = 1; lab[8:10, 15:19, 15:19] = 2
    >>> ct, label = sitk.GetImageFromArray(hu), sitk.GetImageFromArray(lab)
    >>> for image in (ct, label):
    ...     image.SetSpacing((0.8, 0.8, 2.5))
    >>> record = check_prediction(label, ct, QCConfig(liver_ml=(5, 50)), "s1")
    >>> round(record.liver_ml, 2), record.n_lesions, record.codes
    (7.68, 1, [])
    """
    diffs = geometry_differences(label, ct)
    if diffs:
        raise UserInputError(f"{name}: label and ct must share one grid for the plausibility checks "
                             f"({'; '.join(diffs)})")
    array = sitk.GetArrayViewFromImage(label)
    spacing = tuple(float(s) for s in ct.GetSpacing())
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts = np.bincount(array.ravel(), minlength=3)
    organ_voxels = int(counts[LIVER_VALUE] + counts[LESION_VALUE])
    lesions = label_components(array == LESION_VALUE)
    hu_min, hu_max, hu_p99 = _hu_stats(ct)
    edge_fraction, edges = _liver_edges(array, organ_voxels)
    removed_ml = np.asarray(removed.volumes_ml if removed is not None else (), dtype=float)
    n_speckles = (np.count_nonzero(lesions.voxel_counts * voxel_ml < config.speckle_ml)
                  + np.count_nonzero(removed_ml < config.speckle_ml))
    limit = removed.limit.to_dict() if removed is not None else {}
    record = QCRecord(
        name=name,
        liver_ml=organ_voxels * voxel_ml,
        lesion_ml=int(counts[LESION_VALUE]) * voxel_ml,
        n_lesions=lesions.count,
        n_speckles=int(n_speckles),
        n_lesions_outside_liver=int(np.count_nonzero(~_touches_liver(lesions, array))),
        hu_min=hu_min,
        hu_max=hu_max,
        hu_p99=hu_p99,
        spacing_mm=(spacing[0], spacing[1], spacing[2]),
        liver_edge_fraction=edge_fraction,
        liver_edges=edges,
        n_lesions_removed=len(removed_ml),
        removed_lesion_ml=float(removed_ml.sum()),
        min_lesion_ml=limit.get("min_lesion_ml"),
        min_lesion_diameter_mm=limit.get("min_lesion_diameter_mm"),
    )
    record.flags = _flags(record, config)
    return record


def _hu_stats(ct: sitk.Image) -> tuple[float, float, float]:
    """Minimum, maximum and 99th percentile (from at most ``_P99_SAMPLES`` evenly spaced voxels) of the CT."""
    values = sitk.GetArrayViewFromImage(ct).reshape(-1)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    step = max(1, values.size // _P99_SAMPLES)
    p99 = float(np.percentile(values[::step], 99))
    return float(values.min()), float(values.max()), p99


def _liver_edges(array: np.ndarray, organ_voxels: int) -> tuple[float, list[str]]:
    """Fraction of liver voxels (labels 1 + 2) on the image boundary and the boundaries touched."""
    if organ_voxels == 0:
        return 0.0, []
    interior = int(np.count_nonzero(array[1:-1, 1:-1, 1:-1]))
    edges = []
    if np.any(array[0]):
        edges.append("first_slice")
    if np.any(array[-1]):
        edges.append("last_slice")
    if any(np.any(face) for face in (array[:, 0], array[:, -1], array[:, :, 0], array[:, :, -1])):
        edges.append("in_plane_edge")
    return (organ_voxels - interior) / organ_voxels, edges


def _touches_liver(lesions: LesionComponents, array: np.ndarray) -> np.ndarray:
    """Per lesion component: is a liver voxel (label 1) in its 26-neighbourhood? Works inside bounding boxes."""
    touches = np.zeros(lesions.count, dtype=bool)
    cube = np.ones((3, 3, 3), dtype=bool)
    shape = array.shape
    for index, box in enumerate(lesions.bounding_boxes):
        grown = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, shape, strict=True))
        lesion = lesions.labels[grown] == index + 1
        touches[index] = bool(np.any(ndimage.binary_dilation(lesion, structure=cube) & (array[grown] == LIVER_VALUE)))
    return touches


def _flags(record: QCRecord, config: QCConfig) -> list[QCFlag]:
    """The failed checks of a measured record, in :data:`FLAG_CODES` order."""
    flags = [*_anatomy_flags(record, config), *_input_flags(record, config)]
    order = {code: i for i, code in enumerate(FLAG_CODES)}
    return sorted(flags, key=lambda flag: order[flag.code])


def _anatomy_flags(r: QCRecord, config: QCConfig) -> list[QCFlag]:
    """Flags about the predicted liver and lesions."""
    flags = []
    low, high = config.liver_ml
    if r.liver_ml == 0:
        flags.append(QCFlag("no_liver", "no liver predicted (no voxel of label 1 or 2)"))
    elif not low <= r.liver_ml <= high:
        flags.append(QCFlag("liver_volume", f"liver volume {r.liver_ml:.0f} mL outside the plausible range "
                                            f"{low:g}..{high:g} mL (qc.liver_ml)"))
    if r.n_lesions > config.max_lesions:
        flags.append(QCFlag("many_lesions", f"{r.n_lesions} lesion components, more than qc.max_lesions = "
                                            f"{config.max_lesions}"))
    predicted = r.n_lesions + r.n_lesions_removed
    if r.n_speckles and (r.n_speckles >= config.speckle_min_count or 2 * r.n_speckles > predicted):
        removed = f"; {r.n_lesions_removed} removed by the minimum lesion size" if r.n_lesions_removed else ""
        flags.append(QCFlag("speckle", f"{r.n_speckles} of {predicted} predicted lesion components are smaller than "
                                       f"{config.speckle_ml:g} mL (qc.speckle_ml){removed}; speckle noise?"))
    if r.n_lesions_outside_liver:
        flags.append(QCFlag("lesion_outside_liver", f"{r.n_lesions_outside_liver} of {r.n_lesions} lesion "
                                                    "components do not touch the liver"))
    if r.liver_edges and r.liver_edge_fraction > config.edge_fraction:
        flags.append(QCFlag("liver_cut_off", f"the liver touches the image boundary ({', '.join(r.liver_edges)}; "
                                             f"{r.liver_edge_fraction:.2%} of its voxels): the field of view may "
                                             "miss part of the liver"))
    return flags


def _input_flags(r: QCRecord, config: QCConfig) -> list[QCFlag]:
    """Flags about the CT: intensities and voxel spacing."""
    flags = []
    reasons = []
    if r.hu_min > config.ct_min_hu:
        reasons.append(f"minimum {r.hu_min:g} HU above {config.ct_min_hu:g} (qc.ct_min_hu)")
    if r.hu_max < config.ct_max_hu:
        reasons.append(f"maximum {r.hu_max:g} HU below {config.ct_max_hu:g} (qc.ct_max_hu)")
    if r.hu_p99 < config.ct_p99_hu:
        reasons.append(f"99th percentile {r.hu_p99:g} HU below {config.ct_p99_hu:g} (qc.ct_p99_hu)")
    if reasons:
        flags.append(QCFlag("not_ct", f"intensities do not look like CT in HU: {'; '.join(reasons)}"))
    sx, sy, sz = r.spacing_mm
    (p_low, p_high), (s_low, s_high) = config.pixel_mm, config.slice_mm
    outside = []
    if not (p_low <= sx <= p_high and p_low <= sy <= p_high):
        outside.append(f"in-plane spacing {sx:g} x {sy:g} mm outside {p_low:g}..{p_high:g} mm (qc.pixel_mm)")
    if not s_low <= sz <= s_high:
        outside.append(f"slice thickness {sz:g} mm outside {s_low:g}..{s_high:g} mm (qc.slice_mm)")
    if outside:
        flags.append(QCFlag("spacing", f"{'; '.join(outside)}: the model was trained on scans in that range"))
    return flags
