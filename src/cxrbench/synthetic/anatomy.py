"""Chest-phantom geometry shared by the JSRT/SCR and NIH generators.

Everything is described in normalised image coordinates (x to the right, y down, both 0..1 of the
image side) so one anatomy can be drawn at any grid: 1024 px for the SCR masks and the JSRT image
they belong to, 256 px for the NIH phantoms. The patient's right is on the image's left, as on a
PA film. Grey values are in DISPLAY convention (air and lungs dark, tissue and bone bright), as
floats of roughly 0..1; the writers map them to each format's range. `prepare_output_dir` is the
writers' shared guard against mixing two runs in one directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cxrbench.errors import DataError

#: SCR object folder names (with spaces, as in the real archive).
SCR_OBJECTS: tuple[str, ...] = ("heart", "left clavicle", "left lung", "right clavicle", "right lung")

#: Landmarks per object in the SCR points files (166 in all).
SCR_LANDMARK_COUNTS: dict[str, int] = {
    "right lung": 44,
    "left lung": 50,
    "heart": 26,
    "right clavicle": 23,
    "left clavicle": 23,
}

# Lung outline control points for the image-left (patient right) lung, running from the apex down
# the lateral wall, along the diaphragm and back up the mediastinal border. Each point is
# (fraction from the lateral wall to the mediastinum, fraction from the apex to the diaphragm).
_LUNG_CONTROL = np.array(
    [
        (0.62, 0.00), (0.34, 0.05), (0.15, 0.18), (0.05, 0.40), (0.01, 0.65), (0.02, 0.88),
        (0.05, 1.03),  # costophrenic angle: the lowest lateral point
        (0.25, 0.95), (0.55, 0.90), (0.85, 0.92),  # diaphragm dome
        (1.00, 0.97), (1.02, 0.70), (0.98, 0.40), (0.90, 0.15), (0.78, 0.04),
    ],
    dtype=np.float64,
)
_DOME = slice(7, 10)
_SUBPIXEL_BITS = 4  # cv2 drawing with 1/16-pixel vertex precision
_RIBS_PER_SIDE = 9


@dataclass(frozen=True, eq=False)
class AnatomyParams:
    """Random but plausible chest proportions; `heart_scale`/`lung_scale` model findings."""

    center_x: float
    apex_y: float
    diaphragm_right_y: float  # image-left hemidiaphragm (patient right), usually the higher one
    diaphragm_left_y: float
    half_width: float  # midline to the lateral lung wall
    mediastinum_half_width: float
    heart_half_axes: tuple[float, float]
    heart_angle_deg: float
    heart_offset_x: float  # heart centre to the patient's left of the midline
    clavicle_drop: tuple[float, float]  # medial end below the apex, per side (image left, right)
    lung_jitter: np.ndarray  # (2, len(_LUNG_CONTROL), 2) per-lung control point offsets
    tissue_tone: float
    lung_tone: float
    heart_tone: float
    bone_tone: float
    heart_scale: float = 1.0  # > 1: enlarged heart (cardiomegaly)
    lung_scale: float = 1.0  # > 1: tall hyperinflated lungs with a flat diaphragm (emphysema)

    def shifted(self, dx: float, dy: float) -> AnatomyParams:
        """The same patient positioned slightly differently (a follow-up film)."""
        return dataclasses.replace(
            self,
            center_x=self.center_x + dx,
            apex_y=self.apex_y + dy,
            diaphragm_right_y=self.diaphragm_right_y + dy,
            diaphragm_left_y=self.diaphragm_left_y + dy,
        )


def sample_anatomy(rng: np.random.Generator) -> AnatomyParams:
    """Draw one patient's chest proportions and tissue tones."""
    apex_y = rng.uniform(0.09, 0.15)
    diaphragm_right_y = rng.uniform(0.68, 0.75)
    return AnatomyParams(
        center_x=0.5 + rng.normal(0.0, 0.012),
        apex_y=apex_y,
        diaphragm_right_y=diaphragm_right_y,
        diaphragm_left_y=diaphragm_right_y + rng.uniform(0.0, 0.03),
        half_width=rng.uniform(0.34, 0.39),
        mediastinum_half_width=rng.uniform(0.045, 0.06),
        heart_half_axes=(rng.uniform(0.15, 0.17), rng.uniform(0.105, 0.12)),
        heart_angle_deg=rng.uniform(18.0, 34.0),
        heart_offset_x=rng.uniform(0.03, 0.05),
        clavicle_drop=(rng.uniform(0.07, 0.10), rng.uniform(0.07, 0.10)),
        lung_jitter=rng.normal(0.0, 0.012, size=(2, len(_LUNG_CONTROL), 2)),
        tissue_tone=rng.uniform(0.50, 0.60),
        lung_tone=rng.uniform(0.16, 0.24),
        heart_tone=rng.uniform(0.66, 0.74),
        bone_tone=rng.uniform(0.10, 0.16),
    )


def closed_spline(points: np.ndarray, samples_per_segment: int = 12) -> np.ndarray:
    """Closed uniform Catmull-Rom curve through `points`, as (n, 2) floats."""
    p0 = np.roll(points, 1, axis=0)[:, None, :]
    p1 = points[:, None, :]
    p2 = np.roll(points, -1, axis=0)[:, None, :]
    p3 = np.roll(points, -2, axis=0)[:, None, :]
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[None, :, None]
    curve = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    return curve.reshape(-1, 2)


def _lung_outline(params: AnatomyParams, side: int) -> np.ndarray:
    """Outline of one lung before the heart and mediastinum are cut out; side 0 = image left."""
    sign = -1.0 if side == 0 else 1.0
    lateral_x = params.center_x + sign * params.half_width * min(1.08, params.lung_scale**0.5)
    medial_x = params.center_x + sign * params.mediastinum_half_width
    diaphragm_y = params.diaphragm_right_y if side == 0 else params.diaphragm_left_y
    bottom_y = params.apex_y + (diaphragm_y - params.apex_y) * params.lung_scale
    control = _LUNG_CONTROL.copy()
    # a hyperinflated lung pushes the dome down flat
    control[_DOME, 1] = 1.0 - (1.0 - control[_DOME, 1]) / params.lung_scale**4
    control = control + params.lung_jitter[side] * [1.0, 0.5]
    x = lateral_x + control[:, 0] * (medial_x - lateral_x)
    y = params.apex_y + control[:, 1] * (bottom_y - params.apex_y)
    return closed_spline(np.stack([x, y], axis=1))


def heart_geometry(params: AnatomyParams) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Centre, half-axes and tilt (degrees, clockwise on the image) of the heart ellipse."""
    a, b = (axis * params.heart_scale for axis in params.heart_half_axes)
    angle = np.deg2rad(params.heart_angle_deg)
    vertical_extent = float(np.hypot(a * np.sin(angle), b * np.cos(angle)))
    diaphragm_y = params.apex_y + (
        0.5 * (params.diaphragm_right_y + params.diaphragm_left_y) - params.apex_y
    ) * params.lung_scale
    # the heart sits on the diaphragm (covering the lungs' medial bases) and grows to the patient's left
    center = (
        params.center_x + params.heart_offset_x + 0.45 * (a - params.heart_half_axes[0]),
        diaphragm_y + 0.01 - vertical_extent,
    )
    return center, (a, b), params.heart_angle_deg


def _heart_outline(params: AnatomyParams) -> np.ndarray:
    (cx, cy), (a, b), angle_deg = heart_geometry(params)
    t = np.linspace(0.0, 2 * np.pi, 96, endpoint=False)
    angle = np.deg2rad(angle_deg)
    x, y = a * np.cos(t), b * np.sin(t)
    return np.stack(
        [cx + x * np.cos(angle) - y * np.sin(angle), cy + x * np.sin(angle) + y * np.cos(angle)],
        axis=1,
    )


def _clavicle_outline(params: AnatomyParams, side: int) -> np.ndarray:
    """A curved bone band from the sternal end to the shoulder."""
    sign = -1.0 if side == 0 else 1.0
    medial = np.array([params.center_x + sign * 0.035, params.apex_y + params.clavicle_drop[side]])
    lateral = np.array(
        [params.center_x + sign * (params.half_width + 0.03), params.apex_y + 0.005]
    )
    control = 0.5 * (medial + lateral) + [0.0, -0.03]
    t = np.linspace(0.0, 1.0, 24)[:, None]
    centre = (1 - t) ** 2 * medial + 2 * (1 - t) * t * control + t**2 * lateral
    tangent = np.gradient(centre, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    half_thickness = (0.014 - 0.004 * t) * (1.0 + 0.1 * side)
    return np.concatenate([centre + normal * half_thickness, (centre - normal * half_thickness)[::-1]])


def _mediastinum_outline(params: AnatomyParams) -> np.ndarray:
    (_, heart_y), _, _ = heart_geometry(params)
    half = params.mediastinum_half_width
    cx = params.center_x
    return np.array(
        [(cx - half, 0.0), (cx + half, 0.0), (cx + 1.15 * half, heart_y), (cx - 1.15 * half, heart_y)]
    )


def _body_outline(params: AnatomyParams) -> np.ndarray:
    """Trunk silhouette: neck at the top edge, shoulders, chest wall down to the bottom edge."""
    cx, hw, top = params.center_x, params.half_width, params.apex_y
    half = [
        (0.085, -0.01), (0.10, top - 0.05), (hw - 0.02, top - 0.06), (hw + 0.10, top - 0.02),
        (hw + 0.09, top + 0.15), (hw + 0.08, 0.55), (hw + 0.11, 1.01),
    ]
    left = [(cx - dx, y) for dx, y in half]
    right = [(cx + dx, y) for dx, y in reversed(half)]
    return np.array(left + right)


def outlines(params: AnatomyParams) -> dict[str, np.ndarray]:
    """Normalised outlines of every structure (lungs before the heart is cut out of them)."""
    return {
        "right lung": _lung_outline(params, 0),
        "left lung": _lung_outline(params, 1),
        "heart": _heart_outline(params),
        "right clavicle": _clavicle_outline(params, 0),
        "left clavicle": _clavicle_outline(params, 1),
        "mediastinum": _mediastinum_outline(params),
        "body": _body_outline(params),
    }


def fill_polygon(outline: np.ndarray, size: int) -> np.ndarray:
    """Boolean mask of a normalised polygon on a size x size grid (pixel centres at i + 0.5)."""
    mask = np.zeros((size, size), np.uint8)
    vertices = np.rint((outline * size - 0.5) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [vertices], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return mask.astype(bool)


def _object_masks(shapes: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """SCR-style masks: lungs exclude the heart and mediastinum; clavicles overlap the lungs."""
    heart = fill_polygon(shapes["heart"], size)
    centre = heart | fill_polygon(shapes["mediastinum"], size)
    return {
        "heart": heart,
        "left clavicle": fill_polygon(shapes["left clavicle"], size),
        "left lung": fill_polygon(shapes["left lung"], size) & ~centre,
        "right clavicle": fill_polygon(shapes["right clavicle"], size),
        "right lung": fill_polygon(shapes["right lung"], size) & ~centre,
    }


def smooth_noise(rng: np.random.Generator, size: int, feature: float) -> np.ndarray:
    """Zero-mean, roughly unit-variance blobby noise, blobs about `feature` (of the side) wide.

    Drawn on a coarse grid and resized up, so the cost hardly grows with `size`.
    """
    coarse = max(4, int(round(2.0 / feature)))
    field = rng.standard_normal((coarse, coarse), dtype=np.float32)
    field = (field - field.mean()) / (field.std() + 1e-6)
    return cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC)


def _rib_layer(params: AnatomyParams, size: int) -> np.ndarray:
    """Posterior rib arcs (0..1), from the spine up-and-out then down the lateral wall."""
    layer = np.zeros((size, size), np.uint8)
    scale = size * (1 << _SUBPIXEL_BITS)
    bottom = max(params.diaphragm_right_y, params.diaphragm_left_y) * params.lung_scale
    spacing = (bottom - params.apex_y) / _RIBS_PER_SIDE
    thickness = max(1, int(round(0.012 * size)))
    for side, sign in enumerate((-1.0, 1.0)):
        for rib in range(_RIBS_PER_SIDE):
            top_y = params.apex_y + (rib + 0.2) * spacing
            axes = (params.half_width * 0.98, 0.13 + 0.004 * rib)
            centre = (params.center_x + sign * 0.02, top_y + axes[1])
            start, end = (180.0, 270.0) if side == 0 else (270.0, 360.0)
            cv2.ellipse(
                layer,
                (int(centre[0] * scale), int(centre[1] * scale)),
                (int(axes[0] * scale), int(axes[1] * scale)),
                0.0, start, end, 255, thickness, cv2.LINE_AA, _SUBPIXEL_BITS,
            )
    return layer.astype(np.float32) / 255.0


@dataclass(frozen=True, eq=False)
class RenderedChest:
    image: np.ndarray  # float32 display values, about 0..1
    masks: dict[str, np.ndarray]  # SCR objects at the same grid


def render_chest(params: AnatomyParams, size: int, rng: np.random.Generator) -> RenderedChest:
    """Draw the normal chest at size x size with lung markings, ribs, clavicles and soft edges."""
    shapes = outlines(params)
    masks = _object_masks(shapes, size)
    body = fill_polygon(shapes["body"], size)
    mediastinum = fill_polygon(shapes["mediastinum"], size)
    lungs = masks["left lung"] | masks["right lung"]

    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = coords[None, :], coords[:, None]
    # soft tissue is thicker towards the midline and the abdomen
    tissue = params.tissue_tone + 0.10 * (1.0 - np.abs(x - params.center_x) * 2.2) + 0.05 * y
    image = np.where(body, tissue, np.float32(0.04)).astype(np.float32)

    # vessels fan out from the hila, so the lungs are brighter near them; hila and carina follow
    # the lungs, not the heart, so that cardiomegaly changes nothing but the heart
    hilum_y = params.apex_y + 0.38 * (params.diaphragm_right_y - params.apex_y)
    hilum_dx = np.abs(x - params.center_x) - params.mediastinum_half_width - 0.03
    hilar = np.exp(-(hilum_dx**2 + (y - hilum_y) ** 2) / 0.018)
    markings = 0.025 * smooth_noise(rng, size, 0.03) + 0.02 * smooth_noise(rng, size, 0.1)
    lung_grey = params.lung_tone + 0.10 * hilar + markings + 0.05 * np.clip(y - 0.55, 0, None)
    image = np.where(lungs, lung_grey, image)

    image = np.where(mediastinum, np.float32(params.heart_tone + 0.05), image)
    image = np.where(masks["heart"], np.float32(params.heart_tone), image)
    trachea = mediastinum & (np.abs(x - params.center_x) < 0.012) & (y < hilum_y - 0.02)
    image = np.where(trachea, image - 0.22, image)

    clavicles = masks["left clavicle"] | masks["right clavicle"]
    ribs = np.where(body, _rib_layer(params, size), np.float32(0.0))
    image += np.float32(params.bone_tone) * (clavicles + np.float32(0.45) * ribs)
    image = cv2.GaussianBlur(image, (0, 0), max(0.6, 0.0025 * size))
    return RenderedChest(image=image, masks=masks)


def prepare_output_dir(path: Path) -> Path:
    """Create `path` for a writer; refuse one that already holds files (never mix two runs)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DataError(
            path,
            "expected an empty or missing directory for the synthetic data",
            "remove it or write somewhere else (the caller renames the finished directory into place)",
        )
    path.mkdir(parents=True, exist_ok=True)
    return path
