"""A patient's synthetic abdominal anatomy: analytic shapes in millimetres plus tissue Hounsfield units.

Coordinates are patient LPS (x towards the patient's left, y posterior, z superior), origin on the body axis, z from
0 to 240 mm (the scanned range around the liver). Every organ is an analytic signed-distance function, so the same
patient can be rendered on any grid (tiny/small/demo) and lesions can be placed by evaluating the liver at points.

HU defaults are portal-venous-phase values (liver 90-120, spleen ~110, renal cortex 150-200, aorta 140-190); the
noise level is calibrated to the real CT in ``shared/data/totalsegmentator`` (see docs/phantoms.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from livermets.synth.shapes import (
    F32,
    Array,
    capsule_sd,
    ellipse_sd,
    ellipsoid_sd,
    rotated_ellipsoid_sd,
    smooth_union,
)

Vec3 = tuple[float, float, float]


@dataclass
class Anatomy:
    """All per-patient shape and intensity parameters (mm, HU). Built by :func:`sample_anatomy`."""

    real_pixel_mm: float
    body_a: float
    body_b_anterior: float
    body_b_posterior: float
    body_taper: float
    body_wobble: Array  # (3, 2): amplitude, phase of angular harmonics 2..4
    fat_mm: float
    muscle_mm: float
    hu: dict[str, float]
    noise_sd: float
    visceral_fat_fraction: float
    vertebra_y: float
    vertebra_r: float
    disc_pitch: float
    disc_phase: float
    aorta: tuple[float, float, float]  # x, y, radius
    ivc: tuple[float, float, float, float]  # x, y, semi_x, semi_y
    dome_right: Vec3  # x, y, z of the right hemidiaphragm apex
    dome_left: Vec3
    dome_radius: float
    liver_right: tuple[Vec3, Vec3]  # centre, semi-axes
    liver_left: tuple[Vec3, Vec3]
    liver_waves: Array  # (m, 5): kx, ky, kz, phase, amplitude (surface perturbation, mm)
    gallbladder: tuple[Vec3, Vec3] | None
    spleen: tuple[Vec3, Vec3, float]
    kidneys: list[tuple[Vec3, Vec3, float]]
    stomach: tuple[Vec3, Vec3, float]  # centre, semi, gas level (y)
    heart: tuple[Vec3, Vec3]
    ribs: Array  # (k, 4): angle from anterior (rad, + = left), z phase, lowest z, radius
    rib_pitch: float
    vessels: Array  # (k, 9): a(3), b(3), r0, r1, intrahepatic flag
    extra: dict[str, float] = field(default_factory=dict)

    # ----------------------------------------------------------------------------------------------- body & cavity
    def body_sd(self, x: Array, y: Array, z: Array) -> Array:
        """Skin surface (elliptic, flatter posteriorly, slightly tapered and lobulated)."""
        theta = np.arctan2(y, x)
        wobble = 1.0 + sum(amp * np.cos((m + 2) * theta + phase) for m, (amp, phase) in enumerate(self.body_wobble))
        taper = 1.0 + self.body_taper * (z - 120.0) / 240.0
        semi_y = np.where(y > 0, self.body_b_posterior, self.body_b_anterior)
        return ellipse_sd(x, y, (0.0, 0.0), self.body_a * taper * wobble, semi_y * taper * wobble)

    def diaphragm_z(self, x: Array, y: Array) -> Array:
        """Height of the diaphragm: the higher of two paraboloid domes."""
        right = self.dome_right[2] - ((x - self.dome_right[0]) ** 2 + (y - self.dome_right[1]) ** 2) / (
            2.0 * self.dome_radius)
        left = self.dome_left[2] - ((x - self.dome_left[0]) ** 2 + (y - self.dome_left[1]) ** 2) / (
            2.0 * self.dome_radius)
        return np.maximum(right, left).astype(F32, copy=False)

    @property
    def canal_y(self) -> float:
        return self.vertebra_y + self.vertebra_r + 9.0

    def retroperitoneum_sd(self, x: Array, y: Array, z: Array) -> Array:
        """Spine, paraspinal muscles and aorta as one block that intra-abdominal organs must stay out of."""
        spine = ellipse_sd(x, y, (0.0, self.vertebra_y + 12.0), self.vertebra_r + 14.0, self.vertebra_r + 24.0)
        para_l = ellipse_sd(x, y, (27.0, self.canal_y + 12.0), 26.0, 24.0)
        para_r = ellipse_sd(x, y, (-27.0, self.canal_y + 12.0), 26.0, 24.0)
        aorta = ellipse_sd(x, y, self.aorta[:2], self.aorta[2] + 2.0, self.aorta[2] + 2.0)
        return np.minimum(np.minimum(spine, aorta), np.minimum(para_l, para_r)) + 0.0 * z

    # ------------------------------------------------------------------------------------------------------ liver
    def liver_sd(self, x: Array, y: Array, z: Array) -> Array:
        """The liver: two smoothly united, perturbed ellipsoids clipped by the wall, diaphragm and neighbours."""
        right = ellipsoid_sd(x, y, z, *self.liver_right)
        left = ellipsoid_sd(x, y, z, *self.liver_left)
        sd = smooth_union(right, left, 25.0)
        for kx, ky, kz, phase, amp in self.liver_waves:
            sd = sd + amp * np.sin(kx * x + ky * y + kz * z + phase)
        cavity = self.body_sd(x, y, z) + self.fat_mm + self.muscle_mm
        sd = np.maximum(sd, cavity + 1.5)
        sd = np.maximum(sd, z - self.diaphragm_z(x, y) + 2.5)
        sd = np.maximum(sd, 2.0 - self.retroperitoneum_sd(x, y, z))
        ivc = ellipse_sd(x, y, self.ivc[:2], self.ivc[2], self.ivc[3])
        sd = np.maximum(sd, 1.0 - ivc)
        kidney = rotated_ellipsoid_sd(x, y, z, *self.kidneys[0])
        sd = np.maximum(sd, 3.0 - kidney)
        if self.gallbladder is not None:
            sd = np.maximum(sd, 1.0 - ellipsoid_sd(x, y, z, *self.gallbladder))
        return sd.astype(F32, copy=False)

    def liver_box(self) -> tuple[Array, Array]:
        """Axis-aligned bounding box (lo, hi) in mm containing the liver."""
        boxes = []
        for centre, semi in (self.liver_right, self.liver_left):
            c, s = np.asarray(centre), np.asarray(semi)
            boxes.append((c - s, c + s))
        margin = float(np.sum(np.abs(self.liver_waves[:, 4]))) + 8.0
        lo = np.min([b[0] for b in boxes], axis=0) - margin
        hi = np.max([b[1] for b in boxes], axis=0) + margin
        return lo, hi

    def vessel_sd(self, x: Array, y: Array, z: Array, index: int) -> Array:
        seg = self.vessels[index]
        return capsule_sd(x, y, z, seg[0:3], seg[3:6], float(seg[6]), float(seg[7]))


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _vessel_tree(rng: np.random.Generator, start: Array, direction: Array, length: float, radius: float,
                 depth: int, segments: list[list[float]]) -> None:
    """Recursive bifurcating tree of tapered capsules (portal or hepatic venous branches)."""
    direction = direction / np.linalg.norm(direction)
    end = start + length * direction
    segments.append([*start, *end, radius, radius * 0.85, 1.0])
    if depth <= 1 or radius < 1.5:
        return
    for sign in (-1.0, 1.0):
        axis = np.cross(direction, rng.standard_normal(3))
        axis /= max(np.linalg.norm(axis), 1e-9)
        angle = sign * np.deg2rad(_u(rng, 25.0, 45.0))
        # Rodrigues rotation of the parent direction about a random perpendicular axis.
        child = direction * np.cos(angle) + np.cross(axis, direction) * np.sin(angle)
        _vessel_tree(rng, end, child, length * _u(rng, 0.6, 0.8), radius * 0.72, depth - 1, segments)


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's anatomy and tissue HU values (a fixed number of draws in a fixed order).

    The steps below draw in this order: body, tissue HU, spine and great vessels, liver, gallbladder, other organs,
    ribs, liver vessels, then the body taper, visceral fat fraction and disc pitch and phase.

    Examples
    --------
    >>> a = sample_anatomy(np.random.default_rng(0))
    >>> 40 <= a.hu["muscle"] <= 60
    True
    """
    body = _body(rng)
    a_in = body["body_a"] - body["fat_mm"] - body["muscle_mm"]
    b_post_in = body["body_b_posterior"] - body["fat_mm"] - body["muscle_mm"]
    hu, noise_sd = _tissue_hu(rng)
    spine = _spine_and_great_vessels(rng, b_post_in)
    b_in = 0.5 * (body["body_b_anterior"] + body["body_b_posterior"]) - body["fat_mm"] - body["muscle_mm"]
    frame, liver = _liver(rng, a_in, b_in)
    gallbladder = _gallbladder(rng, frame)
    organs = _organs(rng, a_in, b_post_in, spine["vertebra_y"], liver["dome_left"][2])
    ribs, rib_pitch = _ribs(rng, frame.cz)
    vessels, first_hepatic = _liver_vessels(rng, frame, liver["liver_left"][0], spine["ivc"])
    body_taper = _u(rng, -0.08, 0.08)
    visceral_fat_fraction = _u(rng, 0.3, 0.7)
    disc_pitch = _u(rng, 30.0, 36.0)
    disc_phase = _u(rng, 0.0, 36.0)
    return Anatomy(
        **body, body_taper=body_taper, hu=hu, noise_sd=noise_sd, visceral_fat_fraction=visceral_fat_fraction,
        **spine, disc_pitch=disc_pitch, disc_phase=disc_phase, **liver, gallbladder=gallbladder, **organs, ribs=ribs,
        rib_pitch=rib_pitch, vessels=vessels, extra={"first_hepatic": float(first_hepatic)},
    )


class _LiverFrame(NamedTuple):
    """Centre and semi-axes of the right lobe and the dome height: what later steps place organs against."""

    cx: float
    cy: float
    cz: float
    rx: float
    ry: float
    rz: float
    dome_z: float


def _body(rng: np.random.Generator) -> dict[str, Any]:
    """Body outline, pixel size, fat and muscle thickness (Anatomy fields)."""
    body_a = _u(rng, 145.0, 185.0)
    body_b_anterior = body_a * _u(rng, 0.68, 0.82)
    body_b_posterior = body_b_anterior * _u(rng, 0.85, 0.95)
    fov = 2.0 * body_a + _u(rng, 30.0, 110.0)
    real_pixel_mm = float(np.clip(fov / 512.0, 0.70, 0.98))
    fat_mm = 6.0 + (body_a - 145.0) / 40.0 * 24.0 + _u(rng, 0.0, 8.0)  # larger patients carry more fat
    muscle_mm = _u(rng, 8.0, 14.0)
    wobble = np.stack([rng.uniform(0.0, 0.025, 3), rng.uniform(0.0, 2 * np.pi, 3)], axis=1)
    return {
        "real_pixel_mm": real_pixel_mm, "body_a": body_a, "body_b_anterior": body_b_anterior,
        "body_b_posterior": body_b_posterior, "body_wobble": wobble, "fat_mm": fat_mm, "muscle_mm": muscle_mm,
    }


def _tissue_hu(rng: np.random.Generator) -> tuple[dict[str, float], float]:
    """Tissue HU values (a fatty liver in 10% of patients) and the noise standard deviation."""
    fatty_liver = rng.random() < 0.1
    liver_hu = _u(rng, 60.0, 85.0) if fatty_liver else _u(rng, 90.0, 120.0)
    hu = {
        "fat": _u(rng, -115.0, -85.0), "muscle": _u(rng, 40.0, 60.0), "liver": liver_hu,
        "spleen": _u(rng, 100.0, 125.0), "renal_cortex": _u(rng, 150.0, 200.0), "aorta": _u(rng, 140.0, 190.0),
        "portal": _u(rng, 150.0, 190.0), "hepatic_vein": _u(rng, 130.0, 170.0), "cortical_bone": _u(rng, 700.0, 1200.0),
        "cancellous_bone": _u(rng, 180.0, 320.0), "bowel": _u(rng, 15.0, 45.0), "lung": _u(rng, -880.0, -820.0),
        "gallbladder": _u(rng, 0.0, 25.0), "stomach_content": _u(rng, 0.0, 30.0), "blood_pool": _u(rng, 130.0, 170.0),
        "air": -1000.0, "csf": _u(rng, 5.0, 15.0), "disc": _u(rng, 70.0, 110.0), "renal_sinus_fat": -60.0,
    }
    hu["renal_medulla"] = hu["renal_cortex"] - _u(rng, 20.0, 50.0)
    return hu, _u(rng, 12.0, 20.0)


def _spine_and_great_vessels(rng: np.random.Generator, b_post_in: float) -> dict[str, Any]:
    """Vertebral body, aorta and inferior vena cava (Anatomy fields)."""
    vertebra_r = _u(rng, 16.0, 21.0)
    vertebra_y = b_post_in - 47.0 - vertebra_r - _u(rng, 0.0, 10.0)
    aorta = (_u(rng, 5.0, 15.0), vertebra_y - vertebra_r - _u(rng, 10.0, 16.0), _u(rng, 10.0, 13.5))
    ivc = (_u(rng, -30.0, -20.0), vertebra_y - vertebra_r - _u(rng, 8.0, 14.0), _u(rng, 11.0, 15.0),
           _u(rng, 8.0, 11.0))
    return {"vertebra_y": vertebra_y, "vertebra_r": vertebra_r, "aorta": aorta, "ivc": ivc}


def _liver(rng: np.random.Generator, a_in: float, b_in: float) -> tuple[_LiverFrame, dict[str, Any]]:
    """Liver lobes, surface waves and diaphragm domes (Anatomy fields) with the liver's frame."""
    # Right lobe against the right wall, left lobe anterior-medial; the dome sits under the right diaphragm.
    rx, ry, rz = a_in * _u(rng, 0.55, 0.66), b_in * _u(rng, 0.75, 0.9), _u(rng, 70.0, 92.0)
    dome_z = _u(rng, 180.0, 205.0)
    cx = -a_in + rx * _u(rng, 0.85, 1.0)
    cy = _u(rng, -25.0, 0.0)
    cz = dome_z - rz * _u(rng, 0.7, 0.85)
    right = ((cx, cy, cz), (rx, ry, rz))
    left = ((cx + rx * _u(rng, 0.6, 0.85), cy - ry * _u(rng, 0.5, 0.7), cz + rz * _u(rng, 0.05, 0.25)),
            (_u(rng, 60.0, 85.0), _u(rng, 25.0, 40.0), _u(rng, 30.0, 45.0)))
    n_waves = 6
    wavelengths = rng.uniform(50.0, 140.0, n_waves)
    directions = rng.standard_normal((n_waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    k = directions * (2 * np.pi / wavelengths)[:, None]
    amplitude = _u(rng, 3.0, 8.0) / np.sqrt(n_waves / 2.0)
    waves = np.column_stack([k, rng.uniform(0, 2 * np.pi, n_waves), rng.uniform(0.5, 1.0, n_waves) * amplitude])
    dome_right = (cx, cy + 10.0, dome_z)
    dome_left = (_u(rng, 50.0, 80.0), cy + 10.0, dome_z - _u(rng, 8.0, 25.0))
    liver = {
        "liver_right": right, "liver_left": left, "liver_waves": waves, "dome_right": dome_right,
        "dome_left": dome_left, "dome_radius": _u(rng, 90.0, 130.0),
    }
    return _LiverFrame(cx, cy, cz, rx, ry, rz, dome_z), liver


def _gallbladder(rng: np.random.Generator, frame: _LiverFrame) -> tuple[Vec3, Vec3] | None:
    """A gallbladder under the right lobe in 70% of patients (its four draws are made either way)."""
    cx, cy, cz, rx, ry, rz, _ = frame
    gb_draws = (rng.random(), _u(rng, 12.0, 18.0), _u(rng, 12.0, 18.0), _u(rng, 25.0, 40.0))
    if gb_draws[0] < 0.7:
        return (cx + 0.55 * rx, cy - 0.55 * ry, cz - 0.45 * rz), gb_draws[1:]
    return None


def _organs(
    rng: np.random.Generator, a_in: float, b_post_in: float, vertebra_y: float, dome_left_z: float
) -> dict[str, Any]:
    """Spleen, kidneys, stomach and heart (Anatomy fields)."""
    spleen = ((a_in * _u(rng, 0.55, 0.7), b_post_in * _u(rng, 0.1, 0.4), dome_left_z - _u(rng, 40.0, 65.0)),
              (_u(rng, 20.0, 30.0), _u(rng, 45.0, 60.0), _u(rng, 40.0, 58.0)), np.deg2rad(_u(rng, 30.0, 55.0)))
    z_kidney_left = _u(rng, 55.0, 90.0)
    kidneys = []
    for side, z_k in ((-1.0, z_kidney_left - _u(rng, 5.0, 20.0)), (1.0, z_kidney_left)):
        centre = (side * _u(rng, 58.0, 72.0), vertebra_y + _u(rng, -5.0, 10.0), z_k)
        semi = (_u(rng, 24.0, 30.0), _u(rng, 20.0, 26.0), _u(rng, 45.0, 58.0))
        kidneys.append((centre, semi, float(-side * np.deg2rad(_u(rng, 20.0, 40.0)))))
    stomach_centre = (_u(rng, 35.0, 65.0), -_u(rng, 20.0, 50.0), dome_left_z - _u(rng, 35.0, 60.0))
    stomach_semi = (_u(rng, 30.0, 50.0), _u(rng, 25.0, 40.0), _u(rng, 35.0, 55.0))
    stomach = (stomach_centre, stomach_semi, stomach_centre[1] - stomach_semi[1] * _u(rng, 0.2, 0.8))
    heart = ((_u(rng, 15.0, 35.0), -_u(rng, 20.0, 45.0), dome_left_z + _u(rng, 35.0, 50.0)),
             (_u(rng, 50.0, 65.0), _u(rng, 45.0, 55.0), _u(rng, 45.0, 55.0)))
    return {"spleen": spleen, "kidneys": kidneys, "stomach": stomach, "heart": heart}


def _ribs(rng: np.random.Generator, cz: float) -> tuple[Array, float]:
    """Ribs (angle, z phase, lowest z, radius per rib, both sides) and the rib pitch."""
    angles = np.deg2rad(np.arange(35.0, 170.0, 18.0))
    rib_pitch = _u(rng, 28.0, 34.0)
    z_costal = cz - _u(rng, 0.0, 20.0)
    drop = _u(rng, 50.0, 80.0)
    ribs = []
    for sign in (-1.0, 1.0):
        for angle in angles:
            lowest = z_costal - (np.rad2deg(angle) - 35.0) / 130.0 * drop
            ribs.append([sign * angle, _u(rng, 0.0, rib_pitch) * 0.3 + np.rad2deg(angle) * 0.35, lowest,
                         _u(rng, 4.5, 6.5)])
    return np.asarray(ribs), rib_pitch


def _liver_vessels(
    rng: np.random.Generator, frame: _LiverFrame, left_centre: Vec3, ivc: tuple[float, float, float, float]
) -> tuple[Array, int]:
    """Portal trunk and trees, then hepatic venous trees from the IVC confluence; index of the first hepatic one."""
    cx, cy, cz, rx, ry, rz, dome_z = frame
    segments: list[list[float]] = []
    hilum = np.array([cx + 0.45 * rx, cy - 0.1 * ry, cz - 0.2 * rz])
    segments.append([*(hilum + np.array([30.0, -5.0, -45.0])), *hilum, 7.5, 7.0, 0.0])  # extrahepatic trunk
    right_target = np.array([cx - 0.3 * rx, cy, cz + 0.1 * rz])
    left_target = np.array(left_centre)
    _vessel_tree(rng, hilum, right_target - hilum, 0.45 * rx, _u(rng, 5.0, 6.5), 4, segments)
    _vessel_tree(rng, hilum, left_target - hilum, 0.5 * float(np.linalg.norm(left_target - hilum)),
                 _u(rng, 4.0, 5.5), 4, segments)
    first_hepatic = len(segments)
    confluence = np.array([ivc[0], ivc[1], dome_z - 20.0])
    for target in (np.array([cx - 0.6 * rx, cy - 0.3 * ry, cz - 0.1 * rz]), np.array([cx + 0.3 * rx, cy - 0.6 * ry,
                   cz - 0.2 * rz]), np.array(left_centre)):
        _vessel_tree(rng, confluence, target - confluence, 0.45 * float(np.linalg.norm(target - confluence)),
                     _u(rng, 4.5, 6.0), 3, segments)
    return np.asarray(segments, dtype=np.float64), first_hepatic
