"""SCR: Segmentation in Chest Radiographs, reference masks for all 247 JSRT images.

Counts: 247 cases x 5 objects, drawn by two observers. Observer 1 is the reference standard; observer 2
gives the human-observer row of the benchmark.
Labels: right lung, left lung, heart, right clavicle, left clavicle (the patient's right is on the image's
left). Masks are 1024 x 1024 GIFs (0.35 mm pixels, half the JSRT resolution); any non-zero value is
foreground. Landmark points (`.pfs`) outline each object.
Folds: fold 1 = the 124 odd-numbered images (77 JPCLN + 47 JPCNN), fold 2 = the 123 even-numbered ones
(77 + 46). Train on one fold, test on the other, and report both directions.
Licence: free of charge for research and education; redistribution and commercial use are prohibited,
so the workflow verifies a user's copy and never fetches it. Download instructions:
https://www.isi.uu.nl/Research/Databases/SCR/ (the images themselves come from JSRT, see `jsrt`).
Citation: B. van Ginneken, M.B. Stegmann, M. Loog. Segmentation of anatomical structures in chest
radiographs using supervised methods: a comparative study on a public database. Medical Image Analysis
10(1):19-40, 2006; and the JSRT paper (Shiraishi et al., AJR 2000).

Layout (observer 1, under `scr_dir`):
    scratch/fold{1,2}/masks/<object>/<JSRT stem>.gif     object folder names as in OBJECTS (with spaces)
    scratch/fold{1,2}/points/<JSRT stem>.pfs
Second observer: a parallel root with the same layout. By default `<scr_dir>/observer2` (used when that
folder exists); any other folder can be passed as `observer2_dir`. Every reader here takes the root as
its first argument, so `read_case_masks(observer2_root(scr_dir), stem)` reads observer 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cxrbench.datasets.jsrt import CASES, STEM
from cxrbench.errors import DataError
from cxrbench.vocabulary import OBJECTS, SCR_MASK_SIZE, SCR_PIXEL_MM

MASK_SIZE, PIXEL_MM = SCR_MASK_SIZE, SCR_PIXEL_MM
OBSERVER2_DIRNAME = "observer2"
SCR_URL = "https://www.isi.uu.nl/Research/Databases/SCR/"
GET_FILES = (
    f"download the SCR masks as instructed at {SCR_URL} and unpack them so that "
    "scratch/fold1/masks/<object>/<stem>.gif exists under this folder"
)

_GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
_HEADER_LINE = re.compile(r"\[([^=\]]+)=(.*)\]")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_POINT_LINE = re.compile(rf"\{{\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\}}\s*,?")


def fold_of(stem: str) -> int:
    """SCR fold of a JSRT case: 1 for odd case numbers, 2 for even ones."""
    if not STEM.fullmatch(stem):
        raise ValueError(f"not a JSRT case name: {stem!r} (expected e.g. JPCLN001)")
    return 1 if int(stem[-3:]) % 2 else 2


def _check_object(obj: str) -> None:
    if obj not in OBJECTS:
        raise ValueError(f"unknown SCR object {obj!r}; expected one of {OBJECTS}")


def mask_path(scr_dir: str | Path, stem: str, obj: str) -> Path:
    """`scratch/fold{N}/masks/<object>/<stem>.gif` under the observer root `scr_dir`."""
    _check_object(obj)
    return Path(scr_dir) / "scratch" / f"fold{fold_of(stem)}" / "masks" / obj / f"{stem}.gif"


def points_path(scr_dir: str | Path, stem: str) -> Path:
    """`scratch/fold{N}/points/<stem>.pfs` under the observer root `scr_dir`."""
    return Path(scr_dir) / "scratch" / f"fold{fold_of(stem)}" / "points" / f"{stem}.pfs"


def observer2_root(scr_dir: str | Path) -> Path | None:
    """The default second-observer root, `<scr_dir>/observer2`, or None when it is absent."""
    root = Path(scr_dir) / OBSERVER2_DIRNAME
    return root if root.is_dir() else None


def read_mask(path: str | Path) -> np.ndarray:
    """A SCR mask GIF as a (1024, 1024) bool array; any non-zero grey value is foreground."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.size != (MASK_SIZE, MASK_SIZE):
                raise DataError(
                    path,
                    f"expected a 1024 x 1024 mask, found {image.size[0]} x {image.size[1]}",
                    f"replace it with the mask from the SCR download ({SCR_URL})",
                )
            # Through the palette to grey values, so a palette whose index 0 is not black still works.
            return np.asarray(image.convert("L")) > 0
    except FileNotFoundError as error:
        raise DataError(path, "SCR mask not found", GET_FILES) from error
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(path, f"cannot be decoded as a GIF mask: {error}", GET_FILES) from error


def read_case_masks(scr_dir: str | Path, stem: str) -> np.ndarray:
    """All five masks of a case as a (5, 1024, 1024) bool array in OBJECTS order."""
    return np.stack([read_mask(mask_path(scr_dir, stem, obj)) for obj in OBJECTS])


@dataclass(frozen=True)
class PfsBlock:
    """One point block of a `.pfs` file: the `[Key=value]` lines before it and its (n, 2) x, y points."""

    header: dict[str, str]
    points: np.ndarray


def read_pfs(path: str | Path) -> list[PfsBlock]:
    """Parse a SCR landmark file into its blocks.

    Format: `[Key=value]` header lines, then point lines `{ x, y }` (optionally after a lone `{` line and
    with a trailing comma), the block ending on a line that starts with `}`. Header lines belong to the
    block that follows them. Coordinates are returned as stored (float64).
    """
    path = Path(path)
    fix = f"replace it with the file from the SCR download ({SCR_URL})"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError as error:
        raise DataError(path, "SCR points file not found", GET_FILES) from error
    blocks: list[PfsBlock] = []
    header: dict[str, str] = {}
    points: list[tuple[float, float]] = []
    in_block = False
    for number, raw_line in enumerate(lines, start=1):
        line = raw_line.strip()
        if not line:
            continue
        if (match := _HEADER_LINE.fullmatch(line)) and not in_block:
            header[match[1].strip()] = match[2].strip()
        elif match := _POINT_LINE.fullmatch(line):
            in_block = True
            points.append((float(match[1]), float(match[2])))
        elif line == "{" and not in_block:
            in_block = True
        elif line.startswith("}") and in_block:
            blocks.append(PfsBlock(header, np.array(points, dtype=np.float64).reshape(-1, 2)))
            header, points, in_block = {}, [], False
        else:
            state = "inside a point block" if in_block else "between blocks"
            raise DataError(
                path,
                f"line {number}: unexpected {line[:60]!r} {state}; expected [Key=value], '{{ x, y }}' or '}}'",
                fix,
            )
    if in_block:
        raise DataError(path, "the last point block is not closed by a line starting with '}'", fix)
    if header:
        raise DataError(path, f"header lines {sorted(header)} are not followed by a point block", fix)
    if not blocks:
        raise DataError(path, "no point blocks found", fix)
    return blocks


def _gif_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the GIF logical screen descriptor, or None when the file is not a GIF."""
    with open(path, "rb") as handle:
        head = handle.read(10)
    if len(head) < 10 or head[:6] not in _GIF_SIGNATURES:
        return None
    return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")


def _names(names: list[str], shown: int = 4) -> str:
    """A few names and how many more, so that one problem stays one short line."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _observer_problems(root: Path, expected: list[str], observer: str) -> list[str]:
    """Missing, extra, misplaced and malformed masks under one observer root (header checks only)."""
    if not root.is_dir():
        return [f"{observer}: folder {root} not found"]
    problems, placed = [], set()
    for fold in (1, 2):
        masks_dir = root / "scratch" / f"fold{fold}" / "masks"
        in_fold = [stem for stem in expected if fold_of(stem) == fold]
        if masks_dir.is_dir():
            unknown = sorted(p.name for p in masks_dir.iterdir() if p.is_dir() and p.name not in OBJECTS)
            if unknown:
                problems.append(f"{observer}: {masks_dir} has unknown object folders {unknown}")
        for obj in OBJECTS:
            obj_dir = masks_dir / obj
            present = {p.stem: p for p in obj_dir.glob("*.gif")} if obj_dir.is_dir() else {}
            placed.update(present.values())
            missing = [stem for stem in in_fold if stem not in present]
            if missing and not present:
                problems.append(f"{observer}: {obj_dir}: no masks (expected {len(missing)})")
            elif missing:
                problems.append(f"{observer}: {obj_dir}: {len(missing)} masks missing: {_names(missing)}")
            extra = sorted(set(present) - set(in_fold))
            if extra:
                problems.append(f"{observer}: {obj_dir}: {len(extra)} masks not expected in fold {fold}: {_names(extra)}")
            malformed = [stem for stem in in_fold if stem in present and _gif_size(present[stem]) != (MASK_SIZE, MASK_SIZE)]
            for stem in malformed[:4]:
                size = _gif_size(present[stem])
                found = "not a GIF file" if size is None else f"{size[0]} x {size[1]}"
                problems.append(f"{observer}: {present[stem]}: expected a 1024 x 1024 GIF, found {found}")
            if len(malformed) > 4:
                problems.append(f"{observer}: {obj_dir}: {len(malformed) - 4} more masks of the wrong size or kind")
    if len(placed) < len(expected) * len(OBJECTS):
        problems += _masks_elsewhere(root, placed, observer)
    return problems


def _in_an_scr_layout(relative: Path) -> bool:
    """A GIF at <folder>/scratch/fold{1,2}/masks/<object>/: a second observer's copy kept inside this one."""
    parts = relative.parts
    layouts = (("scratch", "fold1", "masks"), ("scratch", "fold2", "masks"))
    return len(parts) > 5 and parts[-5:-2] in layouts and parts[-2] in OBJECTS


def _short_folder(folder: Path, longest: int = 30) -> str:
    """A folder relative to the observer root, only its own name when the whole is too long for a short line."""
    text = folder.as_posix() + "/"
    return text if len(text) <= longest else f".../{folder.name}/"


def _masks_elsewhere(root: Path, placed: set[Path], observer: str) -> list[str]:
    """Where GIFs outside the expected layout were found (a public mirror's own layout, say), and the layout."""
    second = root / OBSERVER2_DIRNAME
    elsewhere = [p for p in root.rglob("*") if p.suffix.lower() == ".gif" and p not in placed and p.is_file()
                 and second not in p.parents and not _in_an_scr_layout(p.relative_to(root))]
    if not elsewhere:
        return []
    folders: dict[str, int] = {}
    for path in elsewhere:
        folder = _short_folder(path.parent.relative_to(root))
        folders[folder] = folders.get(folder, 0) + 1
    where = _names([f"{folder} ({n})" for folder, n in sorted(folders.items())])
    return [f"{observer}: {len(elsewhere)} GIF masks found outside the SCR layout, in {where}",
            f"{observer}: expected scratch/fold{{1,2}}/masks/<object>/<case>.gif under {root}, with object folders "
            f"named {', '.join(repr(o) for o in OBJECTS)}",
            f"{observer}: fold 1 = odd case numbers, fold 2 = even: move them there"]


def verify_tree(
    scr_dir: str | Path,
    cases: tuple[str, ...] | list[str] = CASES,
    observer2_dir: str | Path | None = None,
) -> list[str]:
    """Every problem with a SCR copy, as readable lines; empty when it is complete and well formed.

    Checks the five masks of every case in `cases` under observer 1 (`scr_dir`) and, when present, the
    second observer (`observer2_dir`, or `<scr_dir>/observer2` when that exists): each in the right fold,
    none extra, each a 1024 x 1024 GIF (read from the header, not decoded).
    """
    scr_dir = Path(scr_dir)
    expected = list(dict.fromkeys(cases))
    problems = _observer_problems(scr_dir, expected, "observer 1")
    second = Path(observer2_dir) if observer2_dir is not None else observer2_root(scr_dir)
    if second is not None:
        problems += _observer_problems(second, expected, "observer 2")
    return problems


def require_tree(
    scr_dir: str | Path,
    cases: tuple[str, ...] | list[str] = CASES,
    observer2_dir: str | Path | None = None,
) -> Path | None:
    """Raise one DataError listing every problem verify_tree finds; return the second-observer root
    that was verified, or None when there is none."""
    problems = verify_tree(scr_dir, cases, observer2_dir)
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise DataError(scr_dir, f"the SCR copy has {len(problems)} problem(s):\n{listing}", GET_FILES)
    return Path(observer2_dir) if observer2_dir is not None else observer2_root(scr_dir)
