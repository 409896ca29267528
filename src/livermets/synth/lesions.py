"""Liver metastases: placement inside a patient's liver and their shape/enhancement, rendered box by box.

A lesion is an ellipsoid (random orientation, axis ratios from the burden draw) whose radius is modulated by a few
low-frequency angular waves (irregular, lobulated outline). Independent lesions keep a small gap from each
other (up to 30 tries per lesion); 15 % of lesions in scans with >= 5 lesions are instead placed against an earlier
lesion, so high-burden livers have touching/confluent lesions, as in real metastatic disease.
Enhancement kinds: ``hypo`` (hypo-attenuating, large ones with a necrotic centre), ``rim`` (enhancing rim around a
hypo-attenuating centre) and ``hyper`` (hyper-attenuating).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livermets.synth.anatomy import Anatomy
from livermets.synth.burden import KINDS, LesionDraw
from livermets.synth.shapes import F32, Array, random_rotation, smoothstep

N_CANDIDATES = 6000
P_CLUSTER = 0.15
N_TRIES = 30
MIN_GAP_MM = 3.0


@dataclass
class Lesion:
    """One lesion in patient coordinates (mm); HU profile from the centre (t=0) to the edge (t=1)."""

    index: int  # 1-based, order of the burden draw
    kind: str
    diameter_mm: float
    centre: Array  # (3,)
    semi: Array  # (3,) semi-axes in the lesion frame
    rotation: Array  # (3, 3) lesion frame -> patient frame
    waves: Array  # (m, 6): direction (3), angular frequency, phase, amplitude
    core_hu: float
    edge_hu: float
    transition: tuple[float, float]  # t-range over which HU moves from core to edge value

    @property
    def volume_ml(self) -> float:
        return float(np.pi / 6.0 * self.diameter_mm**3 / 1000.0)

    @property
    def reach_mm(self) -> float:
        """Radius of a sphere around ``centre`` containing the whole lesion."""
        return float(np.max(self.semi) * (1.0 + np.sum(np.abs(self.waves[:, 5]))))

    def evaluate(self, x: Array, y: Array, z: Array) -> tuple[Array, Array]:
        """(signed distance in mm, HU) at broadcast coordinates."""
        dx, dy, dz = x - self.centre[0], y - self.centre[1], z - self.centre[2]
        r = self.rotation
        # Coordinates in the lesion frame (columns of r are the lesion axes), scaled to the unit sphere.
        qx = (r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz) / self.semi[0]
        qy = (r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz) / self.semi[1]
        qz = (r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz) / self.semi[2]
        rho = np.sqrt(qx * qx + qy * qy + qz * qz)
        inv = 1.0 / np.maximum(rho, 1e-6)
        radius = np.ones_like(rho)
        for vx, vy, vz, omega, phase, amp in self.waves:
            radius = radius + amp * np.cos(omega * (qx * vx + qy * vy + qz * vz) * inv + phase)
        sd = (rho - radius) * (self.diameter_mm / 2.0)
        t = rho / radius
        hu = self.core_hu + (self.edge_hu - self.core_hu) * smoothstep(t, *self.transition)
        return sd.astype(F32, copy=False), hu.astype(F32, copy=False)


def _hu_profile(kind: str, diameter: float, liver_hu: float,
                rng: np.random.Generator) -> tuple[float, float, tuple[float, float]]:
    draws = rng.uniform(0.0, 1.0, 4)
    if kind == "hypo":
        edge = liver_hu - (25.0 + 45.0 * draws[0])  # 25-70 HU below liver
        necrotic = diameter > 25.0 and draws[1] < 0.6
        core = 10.0 + 20.0 * draws[2] if necrotic else edge + (draws[2] - 0.5) * 10.0
        return core, edge, (0.25, 0.75)
    if kind == "rim":
        core = liver_hu - (30.0 + 30.0 * draws[0])
        edge = liver_hu + 15.0 + 25.0 * draws[1]
        return core, edge, (0.5, 0.85)
    edge = liver_hu + 15.0 + 30.0 * draws[0]  # hyper-attenuating
    return edge + (draws[1] - 0.5) * 10.0, edge, (0.2, 0.9)


def _first_free(candidates: Array, radius: float, lesions: list[Lesion]) -> int:
    """Index of the first candidate centre not within touching distance (+ MIN_GAP_MM) of a placed lesion.

    Independent metastases rarely overlap; without this, 150 random lesions would merge into ~50 blobs.
    Falls back to the last candidate when all are taken (very high burden: confluence is then real).
    """
    if not lesions:
        return 0
    centres = np.array([lesion.centre for lesion in lesions])
    reach = np.array([lesion.reach_mm for lesion in lesions])
    distance = np.linalg.norm(candidates[:, None, :] - centres[None, :, :], axis=2)
    free = np.all(distance > reach[None, :] + radius * 1.2 + MIN_GAP_MM, axis=1)
    hits = np.flatnonzero(free)
    return int(hits[0]) if hits.size else len(candidates) - 1


def place_lesions(anatomy: Anatomy, draw: LesionDraw, rng: np.random.Generator) -> list[Lesion]:
    """Positions, orientations, outlines and HU for the lesions of ``draw`` inside ``anatomy``'s liver.

    Centres are drawn from points well inside the liver (signed distance below -0.6 r, capped at 20 mm) when
    possible; every lesion is clipped to the liver when rendered.
    """
    lo, hi = anatomy.liver_box()
    points = rng.uniform(lo, hi, (N_CANDIDATES, 3))
    depth = anatomy.liver_sd(points[:, 0], points[:, 1], points[:, 2])
    inside = depth < 0
    lesions: list[Lesion] = []
    for i in range(draw.count):
        diameter = float(draw.diameters_mm[i])
        r = diameter / 2.0
        kind = KINDS[int(draw.kinds[i])]
        cluster_draw, picks, direction = rng.random(), rng.random(N_TRIES), rng.standard_normal(3)
        pick = float(picks[0])
        spread = rng.uniform(0.75, 1.05)
        centre = None
        if lesions and draw.count >= 5 and cluster_draw < P_CLUSTER:
            other = lesions[int(pick * len(lesions))]
            candidate = other.centre + direction / np.linalg.norm(direction) * (r + other.diameter_mm / 2) * spread
            if float(anatomy.liver_sd(*candidate)) < -0.3 * r:
                centre = candidate
        if centre is None:
            for need in (min(0.6 * r, 20.0), 0.3 * r, 0.0):
                eligible = np.flatnonzero(inside & (depth < -need))
                if eligible.size:
                    tries = points[eligible[(picks * eligible.size).astype(np.int64)]]
                    centre = tries[_first_free(tries, r, lesions)]
                    break
        if centre is None:  # no liver at all: cannot happen for sampled anatomies, kept for safety
            centre = (lo + hi) / 2.0
        n_waves = 5
        directions = rng.standard_normal((n_waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        irregularity = rng.uniform(0.04, 0.2)
        amplitudes = irregularity * rng.uniform(0.3, 1.0, n_waves) / np.sqrt(n_waves / 2.0)
        waves = np.column_stack([directions, rng.uniform(1.5, 4.5, n_waves), rng.uniform(0, 2 * np.pi, n_waves),
                                 amplitudes])
        core, edge, transition = _hu_profile(kind, diameter, anatomy.hu["liver"], rng)
        lesions.append(Lesion(
            index=i + 1, kind=kind, diameter_mm=diameter, centre=np.asarray(centre, dtype=np.float64),
            semi=r * draw.axis_ratios[i], rotation=random_rotation(rng), waves=waves, core_hu=core, edge_hu=edge,
            transition=transition,
        ))
    return lesions
