"""Phantom JSRT radiographs with their SCR masks and landmarks, in the real on-disk formats.

JSRT: `JPCLNnnn.IMG` (one nodule) and `JPCNNnnn.IMG` (none), raw 2048 x 2048 big-endian 12-bit
words stored like a film negative (raw = 4095 - display), with `CLNDAT_EN.txt` and `CNNDAT_EN.TXT`
carrying the documented quirks (a diagnosis spilling into an extra tab field, a record running into
the next with no line break, an age of `?`). SCR: 1024 x 1024 GIF masks of the same anatomy under
`scratch/fold{1,2}/masks/<object>/` (odd case numbers in fold 1) and `.pfs` landmark files; a second observer's
masks of the same objects under `observer2/scratch/...` (points clicked along each outline, placed a little
differently, joined by straight segments).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from cxrbench.fileio import write_bytes
from cxrbench.synthetic.anatomy import (
    SCR_LANDMARK_COUNTS,
    SCR_OBJECTS,
    prepare_output_dir,
    render_chest,
    sample_anatomy,
)

JSRT_SIZE = 2048
JSRT_PIXEL_MM = 0.175
JSRT_MAX_VALUE = 4095
SCR_SIZE = 1024

_SERIES_CODE = {"JPCLN": 1, "JPCNN": 2}  # keeps the two series' random streams apart
_OBSERVER2_STREAM = 2  # the second observer's own random stream: observer 1's files stay as they were
_OBSERVER2_DIR = "observer2"  # the second observer's root beside observer 1's scratch/, as SCR readers default to
_CLICK_SPACING_PX = 16  # a delineation point every ~5.6 mm of contour (1024 px masks of 0.35 mm)
_CLICK_SD_PX = 3.0  # where a second observer places each point: about 1 mm from the first one's outline
# Real JSRT counts per subtlety 1..5 and the contrast each gives the phantom nodule (display units). The
# subtlest nodules (0.08) are under three standard deviations of the lung markings (anatomy.render_chest:
# about 0.03, in blobs of nodule size), the obvious ones over fifteen: subtlety orders how findable they are.
_SUBTLETY_WEIGHTS = np.array([25, 29, 50, 38, 12], dtype=float)
_SUBTLETY_CONTRAST = np.array([0.08, 0.14, 0.22, 0.34, 0.52])
_MALIGNANT_SHARE = 100 / 154
# Malignancy shows in the image: carcinomas are larger (median diameter, lognormal spread 0.35) with
# irregular, spiculated margins; benign nodules smaller and smooth, some calcified (a denser core).
_MALIGNANT_MEDIAN_MM = 20.0
_BENIGN_MEDIAN_MM = 11.0
_BENIGN_CALCIFIED_SHARE = 0.4
_MALIGNANT = ("lung cancer", "adenocarcinoma", "squamous cell carcinoma", "small cell carcinoma",
              "large cell carcinoma", "metastasis")
_BENIGN = ("granuloma", "hamartoma", "pulmonary hematoma", "inflammatory mass", "tuberculoma",
           "sclerosing hemangioma")
_SEGMENTS = {
    "r.upper lobe": ("S1", "S2", "S3"),
    "r.middle lobe": ("S4", "S5"),
    "r.lower lobe": ("S6", "S8", "S9", "S10"),
    "l.upper lobe": ("S1+2", "S3", "S4", "S5"),
    "l.lower lobe": ("S6", "S8", "S9", "S10"),
}
_SPILLED_DIAGNOSIS_DETAIL = "(histologically proven)"
_LINE_END = "\r\n"


@dataclass(frozen=True)
class NoduleRecord:
    """One `CLNDAT_EN.txt` row; x, y are the nodule centre on the 2048 grid."""

    name: str
    subtlety: int
    size_mm: int
    age: int
    sex: str
    x: int
    y: int
    malignant: bool
    location: str
    diagnosis: str


@dataclass(frozen=True)
class NormalRecord:
    """One `CNNDAT_EN.TXT` row."""

    name: str
    age: int
    sex: str


@dataclass(frozen=True, eq=False)
class JsrtCase:
    raw: np.ndarray  # (2048, 2048) uint16 as stored: 4095 - display
    masks: dict[str, np.ndarray]  # SCR objects, bool (1024, 1024)
    age: int
    sex: str
    nodule: NoduleRecord | None


def _nodule_location(masks: dict[str, np.ndarray], row: int, col: int, rng: np.random.Generator) -> str:
    """Lobe from the side and the height within that lung, sometimes with a segment."""
    side = "right lung" if masks["right lung"][row, col] else "left lung"
    rows = np.flatnonzero(masks[side].any(axis=1))
    height = (row - rows[0]) / max(1, rows[-1] - rows[0])
    if side == "right lung":
        lobe = "r.upper lobe" if height < 0.38 else "r.middle lobe" if height < 0.62 else "r.lower lobe"
    else:
        lobe = "l.upper lobe" if height < 0.55 else "l.lower lobe"
    if rng.random() < 0.3:
        return f"{lobe}({rng.choice(_SEGMENTS[lobe])})"
    return lobe


def draw_nodule(image: np.ndarray, x: int, y: int, size_mm: float, contrast: float, *,
                spiculation: float = 0.0, phases: np.ndarray | None = None, calcified: bool = False) -> None:
    """Add an opacity of mean diameter `size_mm` centred on pixel (x, y) of a 2048 display image.

    The profile is a sphere's projected thickness, slightly softened at the rim; it must fit inside the image.
    `spiculation` > 0 makes the margin irregular, as in carcinomas: the radius varies with the angle by
    harmonics 5 to 9 (one phase each in `phases`) of that relative amplitude. A `calcified` nodule (as
    granulomas and hamartomas often are) has a denser core of half its radius.
    """
    radius = size_mm / JSRT_PIXEL_MM / 2
    reach = int(np.ceil(radius * (1 + spiculation))) + 1
    window = np.s_[y - reach : y + reach + 1, x - reach : x + reach + 1]
    offsets = np.arange(-reach, reach + 1, dtype=np.float32)
    distance2 = (offsets[None, :] ** 2 + offsets[:, None] ** 2) / np.float32(radius**2)
    if spiculation > 0:
        angle = np.arctan2(offsets[:, None], offsets[None, :])
        harmonics = np.arange(5, 10)[:, None, None]
        margin = 1 + spiculation * np.cos(harmonics * angle + phases[:, None, None]).mean(axis=0)
        distance2 = distance2 / (margin**2).astype(np.float32)
    profile = np.clip(1.0 - distance2, 0.0, None) ** 0.6
    if calcified:
        profile += 0.6 * np.clip(1.0 - 4 * distance2, 0.0, None) ** 0.6
    image[window] += np.float32(contrast) * profile


def _add_nodule(
    image: np.ndarray, masks: dict[str, np.ndarray], name: str, age: int, sex: str,
    rng: np.random.Generator,
) -> NoduleRecord:
    """Place a round opacity fully inside a lung and draw it on the 2048 display image in place."""
    lungs = (masks["left lung"] | masks["right lung"]).astype(np.uint8)
    depth = cv2.distanceTransform(lungs, cv2.DIST_L2, 5)  # SCR-grid pixels to the lung edge
    scr_mm = JSRT_PIXEL_MM * JSRT_SIZE / SCR_SIZE
    malignant = bool(rng.random() < _MALIGNANT_SHARE)
    median_mm = _MALIGNANT_MEDIAN_MM if malignant else _BENIGN_MEDIAN_MM
    size_mm = int(np.clip(np.rint(rng.lognormal(np.log(median_mm), 0.35)), 6, 60))
    size_mm = min(size_mm, int(2 * scr_mm * (depth.max() - 2)))
    radius_scr = size_mm / scr_mm / 2
    candidates = np.flatnonzero(depth.ravel() >= radius_scr + 2)
    row, col = divmod(int(candidates[rng.integers(candidates.size)]), SCR_SIZE)
    x = 2 * col + int(rng.integers(2))
    y = 2 * row + int(rng.integers(2))

    subtlety = int(rng.choice(5, p=_SUBTLETY_WEIGHTS / _SUBTLETY_WEIGHTS.sum())) + 1
    contrast = _SUBTLETY_CONTRAST[subtlety - 1] * rng.uniform(0.85, 1.15)
    if malignant:
        draw_nodule(image, x, y, size_mm, contrast, spiculation=rng.uniform(0.2, 0.4),
                    phases=rng.uniform(0, 2 * np.pi, 5))
    else:
        draw_nodule(image, x, y, size_mm, contrast, calcified=bool(rng.random() < _BENIGN_CALCIFIED_SHARE))
    return NoduleRecord(
        name=name, subtlety=subtlety, size_mm=size_mm, age=age, sex=sex, x=x, y=y,
        malignant=malignant, location=_nodule_location(masks, row, col, rng),
        diagnosis=str(rng.choice(_MALIGNANT if malignant else _BENIGN)),
    )


def synthesize_case(seed: int, stem: str) -> JsrtCase:
    """One JSRT case (`JPCLN001`, `JPCNN014`, ...), a pure function of the seed and the name."""
    series, number = stem[:5], int(stem[5:])
    rng = np.random.default_rng([seed, _SERIES_CODE[series], number])
    chest = render_chest(sample_anatomy(rng), SCR_SIZE, rng)
    image = cv2.resize(chest.image, (JSRT_SIZE, JSRT_SIZE), interpolation=cv2.INTER_LINEAR)
    grain = rng.standard_normal((SCR_SIZE, SCR_SIZE), dtype=np.float32)
    image += 0.006 * cv2.resize(grain, (JSRT_SIZE, JSRT_SIZE), interpolation=cv2.INTER_LINEAR)
    sex = "male" if rng.random() < 0.5 else "female"
    age = int(np.clip(np.rint(rng.normal(58.0, 12.0)), 16, 89))
    nodule = _add_nodule(image, chest.masks, f"{stem}.IMG", age, sex, rng) if series == "JPCLN" else None

    # exposure: map the display range to 12 bits, then store as a film negative
    low, high = rng.uniform(-0.06, 0.0), rng.uniform(1.0, 1.12)
    display = np.rint(np.clip((image - low) / (high - low), 0.0, 1.0) * JSRT_MAX_VALUE)
    raw = (JSRT_MAX_VALUE - display).astype(np.uint16)
    return JsrtCase(raw=raw, masks=chest.masks, age=age, sex=sex, nodule=nodule)


def encode_gif_mask(mask: np.ndarray) -> bytes:
    """0 background / 255 foreground greyscale GIF (full grey palette, so indices equal values)."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="GIF", optimize=False)
    return buffer.getvalue()


def contour_landmarks(mask: np.ndarray, count: int) -> np.ndarray:
    """`count` points spaced evenly along the outer contour of the mask's largest part, (x, y).

    Starts at the topmost (then leftmost) contour point so the order is reproducible.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)[:, 0, :].astype(np.float64)
    start = np.lexsort((contour[:, 0], contour[:, 1]))[0]
    contour = np.roll(contour, -start, axis=0)
    closed = np.vstack([contour, contour[:1]])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    at = np.linspace(0.0, arc[-1], count, endpoint=False)
    return np.stack([np.interp(at, arc, closed[:, 0]), np.interp(at, arc, closed[:, 1])], axis=1)


def second_delineation(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another observer's outline of the same object, drawn as SCR's observers drew: points clicked along its
    boundary (each placed a little differently) joined by straight segments."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    perimeter = cv2.arcLength(max(contours, key=cv2.contourArea), closed=True)
    points = contour_landmarks(mask, max(8, round(perimeter / _CLICK_SPACING_PX)))
    points = points + rng.normal(0.0, _CLICK_SD_PX, points.shape)
    drawn = np.zeros(mask.shape, dtype=np.uint8)
    cv2.fillPoly(drawn, [np.rint(points * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return drawn.astype(bool)


def format_points_file(masks: dict[str, np.ndarray]) -> str:
    """SCR `.pfs` text: per object `[Key=value]` header lines, then `{ x, y }` lines, then `}`."""
    lines: list[str] = []
    for name, count in SCR_LANDMARK_COUNTS.items():
        lines += [f"[Label={name}]", f"[Number of points={count}]", "{"]
        lines += [f"{{ {x:.2f}, {y:.2f} }}" for x, y in contour_landmarks(masks[name], count)]
        lines.append("}")
    return "\n".join(lines) + "\n"


def _clndat_text(records: list[NoduleRecord]) -> str:
    """Tab-separated nodule table with the real file's quirks, CRLF line ends.

    Record 1's diagnosis spills into an extra tab field, record 2 runs into record 3 with no line
    break, and the last record's age is `?`.
    """
    text = []
    for index, record in enumerate(records, start=1):
        diagnosis = record.diagnosis
        if index == 1:
            diagnosis += "\t" + _SPILLED_DIAGNOSIS_DETAIL
        age = "?" if index == len(records) else str(record.age)
        fields = [
            record.name, str(record.subtlety), str(record.size_mm), age, record.sex,
            str(record.x), str(record.y), "malignant" if record.malignant else "benign",
            record.location, diagnosis,
        ]
        runs_on = index == 2 and len(records) >= 3
        text.append("\t".join(fields) + ("" if runs_on else _LINE_END))
    return "".join(text)


def _cnndat_text(records: list[NormalRecord]) -> str:
    """Space-aligned normal-case table (fields separated by runs of spaces), CRLF line ends."""
    return "".join(
        f"{r.name}  {r.age:>3}  {r.sex:<6}  non-nodule{_LINE_END}" for r in records
    )


def write_jsrt_scr(jsrt_dir: Path, scr_dir: Path, *, n_nodule: int, n_normal: int, seed: int) -> None:
    """Write `n_nodule` + `n_normal` phantom JSRT cases and their SCR masks and landmarks."""
    if n_nodule < 0 or n_normal < 0 or n_nodule + n_normal == 0:
        raise ValueError(f"need at least one case, got n_nodule={n_nodule}, n_normal={n_normal}")
    if max(n_nodule, n_normal) > 999:
        raise ValueError("JSRT names have three digits: at most 999 cases per series")
    jsrt_dir, scr_dir = prepare_output_dir(jsrt_dir), prepare_output_dir(scr_dir)
    nodules: list[NoduleRecord] = []
    normals: list[NormalRecord] = []
    stems = [f"JPCLN{i:03d}" for i in range(1, n_nodule + 1)]
    stems += [f"JPCNN{i:03d}" for i in range(1, n_normal + 1)]
    for stem in stems:
        case = synthesize_case(seed, stem)
        write_bytes(jsrt_dir / f"{stem}.IMG", case.raw.astype(">u2").tobytes())
        fold = scr_dir / "scratch" / f"fold{1 if int(stem[5:]) % 2 else 2}"
        for name in SCR_OBJECTS:
            write_bytes(fold / "masks" / name / f"{stem}.gif", encode_gif_mask(case.masks[name]))
        write_bytes(fold / "points" / f"{stem}.pfs", format_points_file(case.masks).encode("ascii"))
        # the second observer: a parallel root (scr.observer2_root), its own random stream per case
        observer2 = np.random.default_rng([seed, _SERIES_CODE[stem[:5]], int(stem[5:]), _OBSERVER2_STREAM])
        fold2 = scr_dir / _OBSERVER2_DIR / "scratch" / fold.name
        for name in SCR_OBJECTS:
            write_bytes(fold2 / "masks" / name / f"{stem}.gif",
                        encode_gif_mask(second_delineation(case.masks[name], observer2)))
        if case.nodule is not None:
            nodules.append(case.nodule)
        else:
            normals.append(NormalRecord(name=f"{stem}.IMG", age=case.age, sex=case.sex))
    write_bytes(jsrt_dir / "CLNDAT_EN.txt", _clndat_text(nodules).encode("latin-1"))
    write_bytes(jsrt_dir / "CNNDAT_EN.TXT", _cnndat_text(normals).encode("latin-1"))
