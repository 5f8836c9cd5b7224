"""Phantom NIH ChestX-ray14 release: 1024 x 1024 PNGs, `Data_Entry_2017_v2020.csv`,
`BBox_List_2017.csv` and the patient-level split lists, byte-for-byte in the real files' layouts.

Each of the 14 findings has its own visual signature at a plausible place, large and contrasted
enough to survive area downsampling to 64 x 64. Label sets follow the published co-occurrence
matrix, with every class's prevalence raised to a floor so small sets still have positives, and
about half the images `No Finding`. A patient's follow-ups share the anatomy and, often, the
findings (drawn at the same place).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms

from cxrbench.errors import DataError
from cxrbench.fileio import write_bytes
from cxrbench.synthetic.anatomy import (
    AnatomyParams,
    heart_geometry,
    prepare_output_dir,
    render_chest,
    sample_anatomy,
    smooth_noise,
)

NIH_LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
BOX_LABELS: tuple[str, ...] = NIH_LABELS[:8]
BOX_FILE_SPELLING = {"Infiltration": "Infiltrate"}
NO_FINDING = "No Finding"
NIH_SIZE = 1024
NIH_IMAGE_COUNT = 112_120

DATA_ENTRY_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"

NO_FINDING_SHARE = 0.5
_KEEP_FINDINGS = 0.6  # chance a follow-up repeats the previous film's label set
_BOX_SHARE = 0.5  # share of eligible test images that get boxes
_RGBA_SHARE = 0.01
# (width, height, pixel spacing as the v2020 file prints it, relative frequency in the real file)
_ORIGINAL_GEOMETRY = (
    (2500, 2048, "0.168", 29986), (2992, 2991, "0.14300000000000002", 21961),
    (3056, 2544, "0.139", 15340), (2500, 2048, "0.171", 7141), (2048, 2500, "0.168", 5817),
    (2021, 2021, "0.194311", 4264), (2048, 2500, "0.171", 2838), (2544, 3056, "0.139", 2418),
)
# the 'up' filter at zlib level 1 encodes these films about 25% faster than OpenCV's default
_PNG_OPTIONS = [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP, cv2.IMWRITE_PNG_COMPRESSION, 1]
_RENDER_SIZE = 256  # findings are drawn here, then the film is resized to 1024
# salts keep the random streams of different purposes apart
_PLAN, _ANATOMY, _IMAGE, _FINDING, _RELEASE = 11, 12, 13, 14, 15

# The release page's co-occurrence table (section A.2, kept as package data), rows and columns in
# NIH_LABELS order. Off the diagonal: images carrying both labels. On the diagonal: images carrying
# that label ALONE (Hernia 110 of 227; Data_Entry_2017_v2020 has exactly 110 Hernia-only images). The
# totals row counts the images carrying the label at all; the diagonal does not.
# (named, not imported from cxrbench.published, whose results.yaml the generator never reads)
COOCCURRENCE_PATH = Path(__file__).parents[1] / "published" / "nih_cooccurrence.csv"


@functools.cache
def published_cooccurrence() -> tuple[np.ndarray, np.ndarray]:
    """The 14 x 14 table and its totals row from COOCCURRENCE_PATH, as floats."""
    with open(COOCCURRENCE_PATH, newline="", encoding="ascii") as handle:
        rows = list(csv.reader(handle))
    expected = [["label", *NIH_LABELS]] + [[label] for label in NIH_LABELS] + [["total"]]
    if [rows[0]] + [row[:1] for row in rows[1:]] != expected or any(len(row) != 15 for row in rows):
        raise DataError(COOCCURRENCE_PATH, "expected a 'label' header with the 14 NIH labels, their 14 rows "
                        "and a 'total' row", "restore the file from the repository")
    numbers = np.array([row[1:] for row in rows[1:]], dtype=np.float64)
    numbers.setflags(write=False)  # cached: shared by every caller
    return numbers[:14], numbers[14]


# ---------------------------------------------------------------------------------------------
# Labels


def class_prevalences(min_prevalence: float) -> np.ndarray:
    """Share of images carrying each label: the published totals over 112,120 images, raised to
    at least `min_prevalence` so that small synthetic sets have positives for every class."""
    if not 0.0 <= min_prevalence < 0.5:
        raise ValueError(f"min_prevalence must be in [0, 0.5), got {min_prevalence}")
    return np.maximum(published_cooccurrence()[1] / NIH_IMAGE_COUNT, min_prevalence)


@dataclass(frozen=True, eq=False)
class LabelModel:
    """Draw one label first (or none: No Finding), then each other label with a probability
    taken from the published co-occurrence of the two."""

    primary: np.ndarray  # (14,) chance that an image's first label is this one
    companion: np.ndarray  # (14, 14) chance that label j joins a first label i; zero diagonal

    def marginals(self) -> np.ndarray:
        """Expected share of images carrying each label."""
        return self.primary + self.primary @ self.companion

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One image's labels as a boolean vector in NIH_LABELS order (all False: No Finding)."""
        labels = np.zeros(len(NIH_LABELS), dtype=bool)
        first = int(np.searchsorted(np.cumsum(self.primary), rng.random(), side="right"))
        joins = rng.random(len(NIH_LABELS))  # drawn always, so the stream length never varies
        if first < len(NIH_LABELS):
            labels |= joins < self.companion[first]
            labels[first] = True
        return labels


def fit_label_model(prevalence: np.ndarray, no_finding_share: float = NO_FINDING_SHARE) -> LabelModel:
    """The label model whose marginals equal `prevalence` exactly and whose No Finding share is
    as close to `no_finding_share` as non-negative first-label chances allow.

    Companion chances are the published P(j | i) times a common factor; a larger factor puts more
    labels on each abnormal image, so fewer images need a first label. The factor is picked from
    a fixed grid; for it, the first-label chances solve marginals = primary (I + companion).
    """
    table, totals = published_cooccurrence()
    conditional = table / totals[:, None]
    np.fill_diagonal(conditional, 0.0)
    best: LabelModel | None = None
    for factor in np.linspace(0.0, 3.0, 301):
        companion = np.clip(factor * conditional, 0.0, 1.0)
        primary = np.linalg.solve(np.eye(len(NIH_LABELS)) + companion.T, prevalence)
        if primary.min() < 0.0 or primary.sum() > 1.0:
            continue
        gap = abs(1.0 - primary.sum() - no_finding_share)
        if best is None or gap < abs(1.0 - best.primary.sum() - no_finding_share):
            best = LabelModel(primary=primary, companion=companion)
    if best is None:
        raise ValueError(f"no label model reaches prevalences {np.round(prevalence, 3).tolist()}")
    return best


# ---------------------------------------------------------------------------------------------
# Study plan


@dataclass(frozen=True)
class NihImage:
    """One film's metadata (what Data_Entry_2017_v2020.csv says about it)."""

    patient: int
    followup: int
    labels: tuple[str, ...]  # in NIH_LABELS order; empty for No Finding
    age: int
    sex: str
    view: str
    width: int
    height: int
    spacing: str

    @property
    def name(self) -> str:
        return f"{self.patient:08d}_{self.followup:03d}.png"

    @property
    def finding_labels(self) -> str:
        return "|".join(sorted(self.labels)) if self.labels else NO_FINDING


def plan_patient(seed: int, patient: int, max_followups: int, model: LabelModel) -> list[NihImage]:
    """A patient's films: 1..max_followups follow-ups whose labels persist from film to film.

    The label sequence is a Markov chain that keeps the previous set or draws a fresh one, so
    every film is still distributed like the model (its stationary distribution).
    """
    rng = np.random.default_rng([seed, _PLAN, patient])
    n_followups = int(rng.integers(1, max_followups + 1))
    sex = "M" if rng.random() < 0.56 else "F"
    age = int(np.clip(np.rint(rng.normal(47.0, 17.0)), 1, 88))
    weights = np.array([g[3] for g in _ORIGINAL_GEOMETRY], dtype=float)
    weights /= weights.sum()
    images = []
    labels = model.sample(rng)
    for followup in range(n_followups):
        if followup and rng.random() >= _KEEP_FINDINGS:
            labels = model.sample(rng)
        width, height, spacing, _ = _ORIGINAL_GEOMETRY[int(rng.choice(len(weights), p=weights))]
        images.append(NihImage(
            patient=patient, followup=followup,
            labels=tuple(label for label, on in zip(NIH_LABELS, labels) if on),
            age=min(95, age), sex=sex, view="PA" if rng.random() < 0.6 else "AP",
            width=width, height=height, spacing=spacing,
        ))
        age += int(rng.random() < 0.5)
    return images


# ---------------------------------------------------------------------------------------------
# Findings: each drawer paints on the canvas and returns the finding's support (bool mask)

_LUNGS = ("right lung", "left lung")  # image left, image right


@dataclass(eq=False)
class _Canvas:
    image: np.ndarray  # float32 display values at _RENDER_SIZE
    masks: dict[str, np.ndarray]
    params: AnatomyParams
    size: int
    x: np.ndarray  # (1, size) normalised pixel-centre coordinates
    y: np.ndarray  # (size, 1)

    def extent(self, mask: np.ndarray) -> tuple[float, float, float, float]:
        """Normalised (top, bottom, left, right) of a mask."""
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        return top / self.size, bottom / self.size, left / self.size, right / self.size

    def depth(self, mask: np.ndarray) -> np.ndarray:
        """Normalised distance of each pixel inside `mask` to its edge."""
        return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5) / self.size

    def point_inside(self, mask: np.ndarray, min_depth: float,
                     rng: np.random.Generator) -> tuple[float, float]:
        """A random normalised point at least `min_depth` inside the mask (its deepest if none is)."""
        depth = self.depth(mask).ravel()
        candidates = np.flatnonzero(depth >= min(min_depth, depth.max()))
        row, col = divmod(int(candidates[rng.integers(candidates.size)]), self.size)
        return (col + 0.5) / self.size, (row + 0.5) / self.size

    def soften(self, layer: np.ndarray, sigma: float) -> np.ndarray:
        """Gaussian blur with sigma in normalised units."""
        return cv2.GaussianBlur(layer.astype(np.float32), (0, 0), max(0.5, sigma * self.size))

    def add(self, layer: np.ndarray) -> np.ndarray:
        """Add an opacity (positive) or lucency (negative) layer; support where it matters."""
        self.image += layer
        return np.abs(layer) > 0.05 * np.abs(layer).max()

    def blend(self, alpha: np.ndarray, tone: float) -> np.ndarray:
        """Replace the film by a flat `tone` with weight `alpha` (fluid, collapse, thickening)."""
        self.image = self.image * (1.0 - alpha) + alpha * np.float32(tone)
        return alpha > 0.05


def _lung_side(canvas: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A random lung's mask and the sign of its lateral direction in x."""
    side = int(rng.integers(2))
    return canvas.masks[_LUNGS[side]], -1.0 if side == 0 else 1.0


def _round_opacity(canvas: _Canvas, centre: tuple[float, float], radius: float, lobulation: float,
                   rng: np.random.Generator) -> np.ndarray:
    """0..1 projected sphere, its rim lobulated by a random 3-lobe wobble (computed locally)."""
    phase = rng.uniform(0, 2 * np.pi)
    layer = np.zeros((canvas.size, canvas.size), np.float32)
    reach = radius * (1.0 + lobulation) + 0.02
    rows = slice(max(0, int((centre[1] - reach) * canvas.size)), int((centre[1] + reach) * canvas.size) + 1)
    cols = slice(max(0, int((centre[0] - reach) * canvas.size)), int((centre[0] + reach) * canvas.size) + 1)
    dx, dy = canvas.x[:, cols] - centre[0], canvas.y[rows] - centre[1]
    wobble = 1.0 + lobulation * np.cos(3.0 * np.arctan2(dy, dx) + phase)
    layer[rows, cols] = np.sqrt(np.clip(1.0 - (dx**2 + dy**2) / (radius * wobble) ** 2, 0.0, None))
    return canvas.soften(layer, 0.004)


def _draw_atelectasis(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Plate (discoid) atelectasis: a dense, slightly tilted band across the lower zone."""
    lung, _ = _lung_side(c, rng)
    top, bottom, left, right = c.extent(lung)
    cx, cy = 0.5 * (left + right), top + rng.uniform(0.58, 0.75) * (bottom - top)
    half_length = rng.uniform(0.3, 0.42) * (right - left)
    half_thickness = rng.uniform(0.016, 0.022)
    tilt = rng.uniform(-0.2, 0.2)
    band = (np.abs(c.y - cy - tilt * (c.x - cx)) < half_thickness) & (np.abs(c.x - cx) < half_length) & lung
    return c.blend(c.soften(band, 0.003) * rng.uniform(0.7, 0.85), c.params.tissue_tone)


def _draw_cardiomegaly(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """The heart was enlarged before the film was rendered (see _anatomy_for)."""
    return c.masks["heart"]


def _draw_effusion(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Fluid in the base of one pleural space: its meniscus climbs the lateral chest wall."""
    lung, lateral = _lung_side(c, rng)
    top, bottom, left, right = c.extent(lung)
    medial_x, lateral_x = (right, left) if lateral < 0 else (left, right)
    towards_wall = np.clip((c.x - medial_x) / (lateral_x - medial_x), 0.0, 1.0)
    level = bottom - rng.uniform(0.18, 0.35) * (bottom - top)
    surface = level - rng.uniform(0.04, 0.08) * towards_wall**2
    fluid = lung & (c.y > surface)
    return c.blend(c.soften(fluid, 0.005) * 0.95, c.params.tissue_tone + 0.05)


def _draw_infiltration(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Patchy, mottled opacities over the mid zone of one lung."""
    lung, _ = _lung_side(c, rng)
    top, bottom, left, right = c.extent(lung)
    cx = 0.5 * (left + right) + rng.uniform(-0.1, 0.1) * (right - left)
    cy = top + rng.uniform(0.35, 0.55) * (bottom - top)
    ax, ay = rng.uniform(0.3, 0.45) * (right - left), rng.uniform(0.2, 0.3) * (bottom - top)
    zone = ((c.x - cx) / ax) ** 2 + ((c.y - cy) / ay) ** 2 < 1.0
    patches = (smooth_noise(rng, c.size, 0.05) > 0.2) & zone & lung
    return c.add(c.soften(patches, 0.006) * rng.uniform(0.24, 0.32))


def _draw_mass(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """One large round, lobulated opacity (> 3 cm)."""
    lung, _ = _lung_side(c, rng)
    radius = rng.uniform(0.045, 0.07)
    centre = c.point_inside(lung, 0.6 * radius, rng)
    return c.add(_round_opacity(c, centre, radius, 0.12, rng) * rng.uniform(0.35, 0.5))


def _draw_nodule(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """One to three small round opacities in one lung."""
    lung, _ = _lung_side(c, rng)
    layer = np.zeros_like(c.image)
    for _ in range(1 + int(rng.choice(3, p=[0.6, 0.25, 0.15]))):
        radius = rng.uniform(0.018, 0.028)
        centre = c.point_inside(lung, radius, rng)
        layer = np.maximum(layer, _round_opacity(c, centre, radius, 0.05, rng) * rng.uniform(0.4, 0.55))
    return c.add(layer)


def _draw_pneumonia(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """A fluffy, ill-defined airspace opacity low in one lung."""
    lung, _ = _lung_side(c, rng)
    top, bottom, left, right = c.extent(lung)
    cx = 0.5 * (left + right) + rng.uniform(-0.1, 0.1) * (right - left)
    cy = top + rng.uniform(0.6, 0.75) * (bottom - top)
    ax, ay = rng.uniform(0.28, 0.4) * (right - left), rng.uniform(0.1, 0.15) * (bottom - top)
    cloud = c.soften(((c.x - cx) / ax) ** 2 + ((c.y - cy) / ay) ** 2 < 1.0, 0.02)
    cloud *= 1.0 + 0.15 * smooth_noise(rng, c.size, 0.08)
    return c.add(cloud * c.soften(lung, 0.006) * rng.uniform(0.3, 0.4))


def _draw_pneumothorax(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Air between the chest wall and a collapsed apex: dark, no lung markings, with the thin
    bright visceral pleural line at its inner edge."""
    lung, lateral = _lung_side(c, rng)
    top, bottom, left, right = c.extent(lung)
    middle = 0.5 * (left + right)
    band = lung & (c.depth(lung) < rng.uniform(0.05, 0.09))
    band &= (c.y < top + rng.uniform(0.45, 0.7) * (bottom - top))
    band &= ((c.x - middle) * lateral > -0.15 * (right - left)) | (c.y < top + 0.12 * (bottom - top))
    inner = cv2.erode(band.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    pleura = band & ~inner & (c.depth(lung) > 0.01)  # the band's edge, but not the chest wall
    support = c.blend(c.soften(band, 0.002), c.params.lung_tone - rng.uniform(0.06, 0.09))
    c.image += 0.12 * c.soften(pleura, 0.002)
    return support


def _draw_consolidation(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """A whole upper lobe airless: dense, homogeneous, sharply cut off at the fissure."""
    lung, _ = _lung_side(c, rng)
    top, bottom, left, right = c.extent(lung)
    tilt = rng.uniform(-0.15, 0.15)
    fissure = top + rng.uniform(0.3, 0.45) * (bottom - top) + tilt * (c.x - 0.5 * (left + right))
    lobe = lung & (c.y < fissure)
    return c.blend(c.soften(lobe, 0.002) * rng.uniform(0.65, 0.85), c.params.tissue_tone + 0.02)


def _draw_edema(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Bilateral, symmetric perihilar haze ('bat wings') with Kerley B lines at the bases."""
    lungs = c.masks["right lung"] | c.masks["left lung"]
    sx, sy = rng.uniform(0.07, 0.1), rng.uniform(0.08, 0.12)
    haze = np.zeros_like(c.image)
    kerley = np.zeros((c.size, c.size), np.uint8)
    for name, lateral in zip(_LUNGS, (-1.0, 1.0)):
        top, bottom, left, right = c.extent(c.masks[name])
        medial_x = right if lateral < 0 else left
        hx = medial_x + lateral * 0.03
        hy = top + rng.uniform(0.45, 0.6) * (bottom - top)
        haze = np.maximum(haze, np.exp(-0.5 * (((c.x - hx) / sx) ** 2 + ((c.y - hy) / sy) ** 2)))
        wall_x = left if lateral < 0 else right
        for line_y in rng.uniform(top + 0.7 * (bottom - top), bottom - 0.05, size=4):
            start = (int(wall_x * c.size), int(line_y * c.size))
            cv2.line(kerley, start, (int((wall_x - lateral * 0.04) * c.size), start[1]), 1, 1)
    layer = (rng.uniform(0.26, 0.34) * haze + 0.08 * kerley) * c.soften(lungs, 0.006)
    return c.add(layer)


def _draw_emphysema(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Hyperinflated (see _anatomy_for) and hyperlucent lungs."""
    lungs = c.masks["right lung"] | c.masks["left lung"]
    c.image -= rng.uniform(0.06, 0.09) * c.soften(lungs, 0.004)
    return lungs


def _draw_fibrosis(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """A coarse reticular net (the zero crossings of smooth noise) in both upper, outer zones."""
    lungs = c.masks["right lung"] | c.masks["left lung"]
    top, bottom, _, _ = c.extent(lungs)
    net = np.exp(-((smooth_noise(rng, c.size, 0.035) / 0.4) ** 2)) + 0.2
    upper = np.clip((top + 0.65 * (bottom - top) - c.y) / (0.15 * (bottom - top)), 0.0, 1.0)
    outer = np.clip(np.abs(c.x - c.params.center_x) / 0.2, 0.0, 1.0)
    return c.add(rng.uniform(0.22, 0.28) * net * upper * outer * c.soften(lungs, 0.004))


def _draw_pleural_thickening(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """A dense rind along the lateral chest wall and over the apex of one lung."""
    lung, lateral = _lung_side(c, rng)
    top, bottom, left, right = c.extent(lung)
    along_wall = (c.x - 0.5 * (left + right)) * lateral > 0
    apical = c.y < top + 0.15 * (bottom - top)
    band = lung & (c.depth(lung) < rng.uniform(0.03, 0.045)) & (along_wall | apical)
    band &= c.y < top + 0.85 * (bottom - top)
    return c.blend(c.soften(band, 0.002) * rng.uniform(0.7, 0.9), c.params.tissue_tone)


def _draw_hernia(c: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Hiatus hernia: a round retrocardiac density with a gas bubble over a fluid level."""
    (hx, hy), (a, b), angle = heart_geometry(c.params)
    bottom = hy + np.hypot(a * np.sin(np.deg2rad(angle)), b * np.cos(np.deg2rad(angle)))
    radius = rng.uniform(0.055, 0.075)
    centre = (c.params.center_x + rng.uniform(-0.01, 0.05), bottom - radius - rng.uniform(0.0, 0.03))
    sac = _round_opacity(c, centre, radius, 0.03, rng)
    gas = (sac > 0.2) & (c.y < centre[1] - rng.uniform(0.2, 0.4) * radius)
    return c.add(rng.uniform(0.2, 0.27) * sac - 0.3 * c.soften(gas, 0.003))


_DRAWERS: dict[str, Callable[[_Canvas, np.random.Generator], np.ndarray]] = {
    "Atelectasis": _draw_atelectasis,
    "Cardiomegaly": _draw_cardiomegaly,
    "Effusion": _draw_effusion,
    "Infiltration": _draw_infiltration,
    "Mass": _draw_mass,
    "Nodule": _draw_nodule,
    "Pneumonia": _draw_pneumonia,
    "Pneumothorax": _draw_pneumothorax,
    "Consolidation": _draw_consolidation,
    "Edema": _draw_edema,
    "Emphysema": _draw_emphysema,
    "Fibrosis": _draw_fibrosis,
    "Pleural_Thickening": _draw_pleural_thickening,
    "Hernia": _draw_hernia,
}


def _finding_rng(seed: int, image: NihImage, label: str) -> np.random.Generator:
    """Per patient and finding, so a finding that persists is drawn at the same place."""
    return np.random.default_rng([seed, _FINDING, image.patient, NIH_LABELS.index(label)])


def _anatomy_for(seed: int, image: NihImage, rng: np.random.Generator,
                 finding_rngs: dict[str, np.random.Generator]) -> AnatomyParams:
    """The patient's anatomy, repositioned for this film and changed by shape-altering findings."""
    params = sample_anatomy(np.random.default_rng([seed, _ANATOMY, image.patient]))
    params = params.shifted(rng.normal(0.0, 0.01), rng.normal(0.0, 0.01))
    if "Cardiomegaly" in finding_rngs:
        params = dataclasses.replace(params, heart_scale=finding_rngs["Cardiomegaly"].uniform(1.3, 1.5))
    if "Emphysema" in finding_rngs:
        params = dataclasses.replace(params, lung_scale=finding_rngs["Emphysema"].uniform(1.1, 1.18))
    return params


@dataclass(frozen=True, eq=False)
class RenderedFilm:
    pixels: np.ndarray  # (1024, 1024) uint8
    boxes: dict[str, tuple[float, float, float, float]]  # label -> (x, y, w, h), 1024-pixel space


def render_film(seed: int, image: NihImage) -> RenderedFilm:
    """Draw one NIH phantom; a pure function of the seed and the film's metadata.

    Everything not tied to a finding comes from the film's own stream and is drawn in a fixed
    order, so removing a finding changes only that finding's pixels.
    """
    rng = np.random.default_rng([seed, _IMAGE, image.patient, image.followup])
    finding_rngs = {label: _finding_rng(seed, image, label) for label in image.labels}
    params = _anatomy_for(seed, image, rng, finding_rngs)
    low, high = rng.uniform(-0.04, 0.04), rng.uniform(0.95, 1.1)
    grain = rng.standard_normal((_RENDER_SIZE, _RENDER_SIZE), dtype=np.float32)
    chest = render_chest(params, _RENDER_SIZE, rng)
    coords = (np.arange(_RENDER_SIZE, dtype=np.float32) + 0.5) / _RENDER_SIZE
    canvas = _Canvas(chest.image, chest.masks, params, _RENDER_SIZE, coords[None, :], coords[:, None])
    scale = NIH_SIZE / _RENDER_SIZE
    boxes = {}
    for label, finding_rng in finding_rngs.items():
        support = _DRAWERS[label](canvas, finding_rng)
        if label in BOX_LABELS:
            rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
            margin = finding_rng.uniform(2.0, 12.0, size=4)  # loose, hand-drawn boxes
            x0 = max(0.0, cols[0] * scale - margin[0])
            y0 = max(0.0, rows[0] * scale - margin[1])
            x1 = min(float(NIH_SIZE), (cols[-1] + 1) * scale + margin[2])
            y1 = min(float(NIH_SIZE), (rows[-1] + 1) * scale + margin[3])
            boxes[label] = (x0, y0, x1 - x0, y1 - y0)

    # tone-map and quantise at the drawing grid; resizing uint8 afterwards is 10x cheaper
    film = (canvas.image - low) * np.float32(255.0 / (high - low)) + 1.5 * grain
    film = np.clip(film, 0.0, 255.0).astype(np.uint8)
    pixels = cv2.resize(film, (NIH_SIZE, NIH_SIZE), interpolation=cv2.INTER_LINEAR)
    return RenderedFilm(pixels=pixels, boxes=boxes)


# ---------------------------------------------------------------------------------------------
# Files


@functools.cache
def _srgb_profile() -> bytes:
    """LittleCMS's sRGB profile with a fixed creation date (it stamps the current time)."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[24:36] = struct.pack(">6H", 2017, 9, 26, 0, 0, 0)  # ICC header dateTimeNumber
    return bytes(profile)


def _encode_png(pixels: np.ndarray, mode: str) -> bytes:
    """`L` via OpenCV (fast), `RGBA` with R=G=B and opaque alpha, or `ICC`: `L` carrying an sRGB
    profile through PIL, as one real image does."""
    if mode == "ICC":
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", icc_profile=_srgb_profile())
        return buffer.getvalue()
    if mode == "RGBA":
        pixels = np.dstack([pixels, pixels, pixels, np.full_like(pixels, 255)])
    ok, encoded = cv2.imencode(".png", pixels, _PNG_OPTIONS)
    if not ok:
        raise RuntimeError("OpenCV failed to encode a PNG")
    return encoded.tobytes()


def _data_entry_text(images: list[NihImage]) -> str:
    rows = [DATA_ENTRY_HEADER] + [
        f"{im.name},{im.finding_labels},{im.followup},{im.patient},{im.age},{im.sex},{im.view},"
        f"{im.width},{im.height},{im.spacing},{im.spacing}"
        for im in images
    ]
    return "\n".join(rows) + "\n"


def _bbox_text(rows: list[tuple[str, str, tuple[float, float, float, float]]]) -> str:
    """Rows grouped by class in NIH order, then by image, numbers as the real file prints them."""
    rows = sorted(rows, key=lambda row: (BOX_LABELS.index(row[1]), row[0]))
    lines = [BBOX_HEADER] + [
        ",".join([name, BOX_FILE_SPELLING.get(label, label)] + [format(v, ".15g") for v in box])
        for name, label, box in rows
    ]
    return "\n".join(lines) + "\n"


def write_nih(nih_dir: Path, *, n_patients: int, max_followups: int, test_fraction: float, seed: int,
              min_prevalence: float = 0.05) -> None:
    """Write a phantom NIH release for patients 1..n_patients into `nih_dir`."""
    if n_patients < 2 or max_followups < 1:
        raise ValueError(f"need n_patients >= 2 and max_followups >= 1, got {n_patients}, {max_followups}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    nih_dir = prepare_output_dir(nih_dir)
    model = fit_label_model(class_prevalences(min_prevalence))
    images = [image for patient in range(1, n_patients + 1)
              for image in plan_patient(seed, patient, max_followups, model)]

    release_rng = np.random.default_rng([seed, _RELEASE])
    n_test = int(np.clip(round(test_fraction * n_patients), 1, n_patients - 1))
    test_patients = set((release_rng.permutation(n_patients)[:n_test] + 1).tolist())
    order = release_rng.permutation(len(images))
    n_rgba = min(len(images) - 1, max(1, round(_RGBA_SHARE * len(images))))
    modes = {int(order[0]): "ICC", **{int(i): "RGBA" for i in order[1 : 1 + n_rgba]}}
    gets_boxes = release_rng.random(len(images)) < _BOX_SHARE

    box_rows = []
    for index, image in enumerate(images):
        film = render_film(seed, image)
        write_bytes(nih_dir / "images" / image.name, _encode_png(film.pixels, modes.get(index, "L")))
        if image.patient in test_patients and gets_boxes[index]:
            box_rows += [(image.name, label, box) for label, box in film.boxes.items()]

    write_bytes(nih_dir / "Data_Entry_2017_v2020.csv", _data_entry_text(images).encode("ascii"))
    write_bytes(nih_dir / "BBox_List_2017.csv", _bbox_text(box_rows).encode("ascii"))
    test = [im.name for im in images if im.patient in test_patients]
    train_val = [im.name for im in images if im.patient not in test_patients]
    write_bytes(nih_dir / "test_list.txt", "\n".join(test).encode("ascii"))
    write_bytes(nih_dir / "train_val_list.txt", "\n".join(train_val).encode("ascii"))
