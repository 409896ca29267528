"""Voxel overlaps between every reference lesion and every predicted lesion, in one pass.

The overlap matrix is the joint histogram of the two component-id volumes restricted to voxels where both are
lesion: one ``np.bincount`` over ``ref_id * (n_pred + 1) + pred_id``. No per-lesion pass over the volume.

Examples
--------
>>> import numpy as np
>>> ref = np.array([[[1, 1, 0, 2]]])
>>> pred = np.array([[[0, 1, 1, 1]]])
>>> overlap_matrix(ref, pred, 2, 1).tolist()
[[1], [1]]
"""

from __future__ import annotations

import numpy as np

from livermets.lesions.components import LesionComponents


def overlap_matrix(ref_labels: np.ndarray, pred_labels: np.ndarray, n_ref: int, n_pred: int) -> np.ndarray:
    """Voxel counts of the intersection of each reference and each predicted component.

    Parameters
    ----------
    ref_labels, pred_labels
        Component-id volumes of the same shape (0 = background, ids ``1..n``).
    n_ref, n_pred
        Number of components in each.

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(n_ref, n_pred)``; entry ``[i, j]`` is the overlap of reference lesion ``i + 1``
        with predicted lesion ``j + 1``.
    """
    if ref_labels.shape != pred_labels.shape:
        raise ValueError(f"shape mismatch: {ref_labels.shape} vs {pred_labels.shape}")
    if n_ref == 0 or n_pred == 0:
        return np.zeros((n_ref, n_pred), dtype=np.int64)
    ref_flat = ref_labels.reshape(-1)
    pred_flat = pred_labels.reshape(-1)
    both = np.flatnonzero((ref_flat != 0) & (pred_flat != 0))
    joint = ref_flat[both].astype(np.int64) * (n_pred + 1) + pred_flat[both].astype(np.int64)
    counts = np.bincount(joint, minlength=(n_ref + 1) * (n_pred + 1))
    return counts.reshape(n_ref + 1, n_pred + 1)[1:, 1:]


def component_overlaps(reference: LesionComponents, prediction: LesionComponents) -> np.ndarray:
    """:func:`overlap_matrix` of two labelled volumes, reading only the reference lesion voxels.

    The predicted ids are gathered at the (stored) reference lesion voxels, so the cost scales with the lesion
    volume rather than the scan volume.
    """
    if reference.labels.shape != prediction.labels.shape:
        raise ValueError(f"shape mismatch: {reference.labels.shape} vs {prediction.labels.shape}")
    n_ref, n_pred = reference.count, prediction.count
    if n_ref == 0 or n_pred == 0:
        return np.zeros((n_ref, n_pred), dtype=np.int64)
    pred_ids = prediction.labels.reshape(-1)[reference.voxels].astype(np.int64)
    both = pred_ids != 0
    joint = reference.voxel_ids[both].astype(np.int64) * (n_pred + 1) + pred_ids[both]
    counts = np.bincount(joint, minlength=(n_ref + 1) * (n_pred + 1))
    return counts.reshape(n_ref + 1, n_pred + 1)[1:, 1:]
