"""Candidate crop centres per class for ``RandCropByLabelClassesd``, optionally balanced over lesions.

MONAI draws a lesion-centred crop by picking a lesion *voxel* uniformly, so a 40 mm metastasis (about 4,000 voxels on a
2 mm grid) is a crop centre 500 times as often as a 5 mm one. With ``lesion_centres: component`` every connected
lesion (26-connectivity, cc3d) contributes the same number of candidate voxels, drawn uniformly inside it; the
class ratios stay MONAI's, only the lesion class's candidates change.

Examples
--------
>>> import numpy as np
>>> label = np.zeros((1, 30, 30, 30), np.uint8); label[0, 1:21, 1:21, 1:21] = 2; label[0, 25, 25, 25] = 2
>>> idx = component_balanced_indices(label, num_classes=3, per_component=64, seed=0)
>>> lesion = np.unravel_index(idx[2], (30, 30, 30))
>>> int((lesion[0] == 25).sum()), len(idx[2])  # the one-voxel lesion holds half of the candidates
(64, 128)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import cc3d
import numpy as np
from monai.transforms import MapTransform
from monai.transforms.utils import map_classes_to_indices

LESION_CLASS = 2


def component_balanced_indices(
    label: Any, num_classes: int, per_component: int, seed: int = 0, max_samples_per_class: int | None = None
) -> list[np.ndarray]:
    """Flat voxel indices per class; the lesion class holds ``per_component`` draws from every lesion.

    Parameters
    ----------
    label
        (1, x, y, z) integer label map (LiTS values).
    num_classes
        Number of classes (3).
    per_component
        Candidates drawn, with replacement, inside each connected lesion.
    seed
        Seed of the draws (the indices are cached with the preprocessed volume, so they are drawn once).
    max_samples_per_class
        Cap for the other classes, as in ``ClassesToIndicesd``.
    """
    array = np.asarray(label)[0]
    indices = [np.asarray(i) for i in map_classes_to_indices(array[None], num_classes, None, 0.0,
                                                              max_samples_per_class)]
    components = cc3d.connected_components(array == LESION_CLASS, connectivity=26).ravel()
    voxels = np.flatnonzero(components)
    if voxels.size:
        order = np.argsort(components[voxels], kind="stable")
        voxels = voxels[order]
        counts = np.bincount(components[voxels])[1:]
        counts = counts[counts > 0]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        draws = np.random.default_rng(seed).random((counts.size, per_component))
        picks = starts[:, None] + (draws * counts[:, None]).astype(np.int64)
        indices[LESION_CLASS] = voxels[picks.ravel()]
    return indices


class ComponentBalancedIndicesd(MapTransform):
    """Store :func:`component_balanced_indices` of ``label_key`` in ``data[indices_key]`` (deterministic, cached)."""

    def __init__(self, label_key: str, indices_key: str, num_classes: int, per_component: int = 256,
                 seed: int = 0, max_samples_per_class: int | None = None) -> None:
        super().__init__(label_key)
        self.label_key, self.indices_key = label_key, indices_key
        self.num_classes, self.per_component, self.seed = num_classes, per_component, seed
        self.max_samples_per_class = max_samples_per_class

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        out[self.indices_key] = component_balanced_indices(
            out[self.label_key], self.num_classes, self.per_component, self.seed, self.max_samples_per_class
        )
        return out
