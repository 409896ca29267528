"""Grid sizes of the synthetic cohorts.

Every size keeps a realistic field of view (the 512-matrix FOV of 358-502 mm, i.e. 0.70-0.98 mm pixels on a real
scanner) and the same 240 mm cranio-caudal range around the liver; smaller sizes use proportionally coarser voxels.
The thin "SOFT" reconstruction is rendered; the thick "CAP" reconstruction averages ``thick_factor`` consecutive thin
slices (partial volume, lower noise), like a real thick-slice reconstruction of the same acquisition.
"""

from __future__ import annotations

from dataclasses import dataclass

from livermets.errors import ParameterError

REAL_MATRIX = 512
REAL_PIXEL_MM = (0.70, 0.98)  # in-plane spacing range on a 512 matrix (paper cohort)
Z_EXTENT_MM = 240.0


@dataclass(frozen=True)
class SizeSpec:
    """One size class: square in-plane ``matrix``, thin slices (count, thickness) and the thick/thin factor."""

    name: str
    matrix: int
    thin_slices: int
    thin_mm: float
    thick_factor: int

    @property
    def thick_mm(self) -> float:
        return self.thin_mm * self.thick_factor

    @property
    def thick_slices(self) -> int:
        return self.thin_slices // self.thick_factor

    def pixel_mm(self, real_pixel_mm: float) -> float:
        """In-plane spacing on this grid for a scan whose 512-matrix pixel is ``real_pixel_mm`` (same FOV)."""
        return real_pixel_mm * REAL_MATRIX / self.matrix


SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec("tiny", 64, 48, 5.0, 2),  # CAP 64x64x24 at 10 mm; pixels 5.6-7.8 mm
    "small": SizeSpec("small", 128, 96, 2.5, 2),  # CAP 128x128x48 at 5 mm; pixels 2.8-3.9 mm
    "demo": SizeSpec("demo", 192, 96, 2.5, 2),  # CAP 192x192x48 at 5 mm; pixels 1.9-2.6 mm
}


def get_size(name: str) -> SizeSpec:
    """The :class:`SizeSpec` called ``name``; :class:`~livermets.errors.ParameterError` for an unknown name."""
    try:
        return SIZES[name]
    except KeyError:
        raise ParameterError("{size} {value!r} is unknown (choose one of: {choices})", value=name,
                             choices=", ".join(SIZES)) from None
