"""Signed-distance primitives (mm) and anti-aliased occupancy, vectorised over broadcast coordinate arrays.

Negative inside, positive outside. Occupancy ``clip(0.5 - sd / width, 0, 1)`` with ``width`` about one voxel gives each
boundary voxel its partial-volume fraction, so painting tissues with it mimics the scanner's partial-volume effect.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

F32 = np.float32
Array = np.ndarray


def ellipsoid_sd(x: Array, y: Array, z: Array, centre: tuple[float, float, float],
                 semi: tuple[float, float, float]) -> Array:
    """Approximate signed distance to an axis-aligned ellipsoid (exact on the surface, good near it)."""
    px, py, pz = (x - centre[0]) / semi[0], (y - centre[1]) / semi[1], (z - centre[2]) / semi[2]
    k0 = np.sqrt(px * px + py * py + pz * pz)
    k1 = np.sqrt((px / semi[0]) ** 2 + (py / semi[1]) ** 2 + (pz / semi[2]) ** 2)
    return (k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)).astype(F32, copy=False)


def rotated_ellipsoid_sd(x: Array, y: Array, z: Array, centre: tuple[float, float, float],
                         semi: tuple[float, float, float], angle_z: float) -> Array:
    """Ellipsoid rotated by ``angle_z`` (radians) about the z axis."""
    c, s = np.cos(angle_z), np.sin(angle_z)
    dx, dy = x - centre[0], y - centre[1]
    return ellipsoid_sd(c * dx + s * dy, -s * dx + c * dy, z - centre[2], (0.0, 0.0, 0.0), semi)


def ellipse_sd(x: Array, y: Array, centre: tuple[float, float], semi_x: Array | float,
               semi_y: Array | float) -> Array:
    """Approximate signed distance to an ellipse (an infinite elliptic cylinder along z)."""
    px, py = (x - centre[0]) / semi_x, (y - centre[1]) / semi_y
    k0 = np.sqrt(px * px + py * py)
    k1 = np.sqrt((px / semi_x) ** 2 + (py / semi_y) ** 2)
    return (k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)).astype(F32, copy=False)


def capsule_sd(x: Array, y: Array, z: Array, a: Array, b: Array, r0: float, r1: float) -> Array:
    """Signed distance to a tapered capsule (vessel segment) from ``a`` (radius r0) to ``b`` (radius r1)."""
    ab = b - a
    length2 = max(float(ab @ ab), 1e-9)
    t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / length2, 0.0, 1.0)
    dx, dy, dz = x - a[0] - t * ab[0], y - a[1] - t * ab[1], z - a[2] - t * ab[2]
    return (np.sqrt(dx * dx + dy * dy + dz * dz) - (r0 + t * (r1 - r0))).astype(F32, copy=False)


def smooth_union(a: Array, b: Array, k: float) -> Array:
    """Polynomial smooth minimum: the union of two shapes with a fillet of about ``k`` mm."""
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return (np.minimum(a, b) - h * h * k * 0.25).astype(F32, copy=False)


def occupancy(sd: Array, width: float) -> Array:
    """Partial-volume fraction of a voxel of size ``width`` whose centre lies at signed distance ``sd``."""
    return np.clip(0.5 - sd / width, 0.0, 1.0).astype(F32, copy=False)


def smoothstep(v: Array, low: float, high: float) -> Array:
    t = np.clip((v - low) / (high - low), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(F32, copy=False)


def paint(volume: Array, occ: Array, value: Array | float) -> None:
    """Alpha-composite tissue ``value`` over ``volume`` in place with fractional ``occ``."""
    volume -= occ * (volume - value)


def _linear_upsampling(n_out: int, n_in: int) -> Array:
    """(n_out, n_in) matrix of linear-interpolation weights mapping ``n_in`` samples onto ``n_out`` (aligned ends)."""
    position = np.linspace(0.0, n_in - 1.0, n_out)
    low = np.minimum(np.floor(position).astype(np.int64), n_in - 2)
    frac = (position - low).astype(F32)
    matrix = np.zeros((n_out, n_in), F32)
    rows = np.arange(n_out)
    matrix[rows, low] = 1.0 - frac
    matrix[rows, low + 1] = frac
    return matrix


def smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float],
                 scale_mm: float) -> Array:
    """Unit-variance random field with correlation length ~``scale_mm``: coarse white noise, blurred, upsampled.

    ``spacing`` is per axis of ``shape`` (mm). The trilinear upsampling is done as three small matrix products, which
    is much faster than interpolating every voxel.
    """
    step = scale_mm / 2.0
    coarse_shape = tuple(max(2, int(np.ceil(n * s / step)) + 1) for n, s in zip(shape, spacing, strict=True))
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape, dtype=F32), 1.0, mode="wrap")
    coarse /= max(float(coarse.std()), 1e-6)
    mz, my, mx = (_linear_upsampling(n, c) for n, c in zip(shape, coarse_shape, strict=True))
    field = np.tensordot(mz, coarse, axes=(1, 0))  # (nz, cy, cx)
    field = np.matmul(my, field)  # (nz, ny, cx)
    return np.ascontiguousarray(np.matmul(field, mx.T), dtype=F32)


def random_rotation(rng: np.random.Generator) -> Array:
    """A uniformly random 3x3 rotation matrix."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
