"""SimpleITK images ⇄ MONAI MetaTensors with the physical geometry carried in the affine.

SimpleITK stores LPS physical coordinates and (z, y, x) numpy arrays; MONAI uses channel-first (C, x, y, z) tensors
with a RAS affine. Converting both ways through the affine lets any chain of MONAI spatial transforms (orientation,
spacing, crop, pad) be mapped back onto the exact input grid with one SimpleITK resampling.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from monai.data import MetaTensor

_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse


def lps_affine(image: sitk.Image) -> np.ndarray:
    """4×4 index → LPS-mm affine of a SimpleITK image (index order x, y, z)."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return affine


def image_to_metatensor(image: sitk.Image, dtype: np.dtype | type = np.float32, source: str = "") -> MetaTensor:
    """A (1, x, y, z) MetaTensor with a RAS affine describing ``image``'s grid.

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> img = sitk.Image(4, 3, 2, sitk.sitkInt16)
    >>> image_to_metatensor(img).shape
    torch.Size([1, 4, 3, 2])
    """
    # One copy: the transposed view is converted (strides kept), (z, y, x) → (x, y, z).
    array = sitk.GetArrayViewFromImage(image).transpose(2, 1, 0).astype(dtype)
    affine = torch.as_tensor(_LPS_RAS @ lps_affine(image), dtype=torch.float64)
    meta = {"original_affine": affine.clone(), "spatial_shape": np.asarray(image.GetSize()), "filename_or_obj": source}
    return MetaTensor(torch.from_numpy(array)[None], affine=affine, meta=meta)


def array_to_image(array: np.ndarray, ras_affine: np.ndarray | torch.Tensor) -> sitk.Image:
    """A SimpleITK image from an (x, y, z) or (C, x, y, z) array and its RAS affine (C>1 → vector image)."""
    lps = _LPS_RAS @ np.asarray(ras_affine, dtype=np.float64)
    linear = lps[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    direction = linear / spacing
    if array.ndim == 4:
        image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(3, 2, 1, 0)), isVector=True)
    else:
        image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    image.SetDirection(direction.flatten().tolist())
    return image
