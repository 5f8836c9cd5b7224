"""JSRT: the Japanese Society of Radiological Technology chest radiograph database.

Counts: 247 posterior-anterior radiographs, 154 with one lung nodule (100 malignant, 54 benign; files
`JPCLN001` .. `JPCLN154`) and 93 without (`JPCNN001` .. `JPCNN093`).
Images: film digitised to 2048 x 2048 pixels of 0.175 mm, 12-bit values 0..4095 stored as headerless
big-endian 16-bit words (`<stem>.IMG`, exactly 8,388,608 bytes), grey direction of a film negative: every
common reader shows `4095 - v`. The current distribution also offers DICOM zips (`Nodule154images.zip`,
`NonNodule93images.zip`, one `<stem>.dcm` per case).
Labels: nodule present; for nodule cases subtlety 1..5 (extremely subtle .. obvious), size (mm), centre
x, y on the 2048 grid, malignant/benign, anatomic location and diagnosis; age and sex for every case
(`CLNDAT_EN.txt` and `CNNDAT_EN.TXT`, parsed by `read_metadata`).
Licence: free for research after registration; the files cannot be fetched automatically, so the workflow
only verifies a copy the user places. Register and download at http://db.jsrt.or.jp/eng.php.
Citation: Shiraishi J, Katsuragawa S, Ikezoe J, et al. Development of a digital image database for chest
radiographs with and without a lung nodule: receiver operating characteristic analysis of radiologists'
detection of pulmonary nodules. AJR 2000;174:71-74. doi:10.2214/ajr.174.1.1740071

Tree layout: any folder structure under the given root. Files are found by name, case-insensitively: the
raw distribution (`<stem>.IMG`) when any raw file is present, otherwise the DICOM one (`<stem>.dcm`),
and the two metadata files.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.errors import InvalidDicomError

from cxrbench.errors import DataError
from cxrbench.vocabulary import JSRT_MAX_VALUE, JSRT_PIXEL_MM, JSRT_SIZE

log = logging.getLogger(__name__)

NODULE_CASES: tuple[str, ...] = tuple(f"JPCLN{i:03d}" for i in range(1, 155))
NON_NODULE_CASES: tuple[str, ...] = tuple(f"JPCNN{i:03d}" for i in range(1, 94))
CASES: tuple[str, ...] = NODULE_CASES + NON_NODULE_CASES
PIXEL_MM, SIZE, MAX_VALUE = JSRT_PIXEL_MM, JSRT_SIZE, JSRT_MAX_VALUE
RAW_DTYPE = np.dtype(">u2")  # the .IMG word: big-endian unsigned 16-bit, holding 12-bit values
RAW_BYTES = SIZE * SIZE * RAW_DTYPE.itemsize
# verify reads every 256th row of each raw image (8 whole rows, one 4 KiB page each) for the byte-order check
SAMPLE_ROW_STEP = 256
NODULE_METADATA = "CLNDAT_EN.txt"
NON_NODULE_METADATA = "CNNDAT_EN.TXT"
METADATA_FILES = (NODULE_METADATA, NON_NODULE_METADATA)
REGISTRATION_URL = "http://db.jsrt.or.jp/eng.php"
GET_FILES = (
    f"register at {REGISTRATION_URL}, download the JSRT database (the 247 .IMG images or the DICOM zips, "
    f"and the clinical information with {NODULE_METADATA} and {NON_NODULE_METADATA}) and unpack it there"
)

STEM = re.compile(r"JPC[LN]N\d{3}")
_RECORD_START = re.compile(r"JPC[LN]N\d{3}\.IMG", re.IGNORECASE)
# A nodule record: fixed fields separated by any whitespace (tabs, or spaces in re-typed copies), then
# location and diagnosis as tab-separated text that may spill over into further tab fields.
_NODULE_RECORD = re.compile(
    r"""(?P<case>JPCLN\d{3})\.IMG\s+
        (?P<subtlety>[1-5])\s+
        (?P<size>\d+(?:\.\d+)?|\?)\s+
        (?P<age>\d+|\?)\s+
        (?P<sex>male|female)\s+
        (?P<x>\d+)\s+(?P<y>\d+)\s+
        (?P<malignancy>malignant|benign)
        (?:\s+(?P<text>.*))?""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)
_NON_NODULE_RECORD = re.compile(
    r"(?P<case>JPCNN\d{3})\.IMG\s+(?P<age>\d+|\?)\s+(?P<sex>male|female)\s+non-nodule",
    re.IGNORECASE,
)
_NODULE_LAYOUT = "file name, subtlety 1..5, size mm, age or ?, male|female, x, y, malignant|benign, location, diagnosis"
_NON_NODULE_LAYOUT = "file name, age or ?, male|female, non-nodule"
_METADATA_DTYPES = {
    "case": "str",
    "nodule": bool,
    "subtlety": "Int64",
    "size_mm": float,
    "age": "Int64",
    "sex": "str",
    "x": "Int64",
    "y": "Int64",
    "malignancy": "str",
    "location": "str",
    "diagnosis": "str",
}


def read_raw(path: str | Path, *, clip: bool = False) -> np.ndarray:
    """Read a JSRT `.IMG` file as (2048, 2048) native-order uint16 raw values (not inverted).

    Values above 4095 mean a wrong file (byte-swapped or not JSRT) and raise, unless `clip` is set, which
    clips them to 4095 and logs how many pixels were clipped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "JSRT raw image not found", GET_FILES)
    size = path.stat().st_size
    if size != RAW_BYTES:
        raise DataError(
            path,
            f"expected a headerless 2048 x 2048 big-endian 16-bit image of exactly {RAW_BYTES:,} bytes, "
            f"got {size:,} bytes",
            f"replace it with the original file from the JSRT distribution ({REGISTRATION_URL})",
        )
    image = np.fromfile(path, dtype=RAW_DTYPE).astype(np.uint16).reshape(SIZE, SIZE)
    over = int(np.count_nonzero(image > MAX_VALUE))
    if over:
        if not clip:
            raise DataError(
                path,
                f"{over:,} pixels exceed the 12-bit maximum {MAX_VALUE} (largest {int(image.max())}); "
                "expected big-endian 12-bit values",
                "check the file is an unmodified JSRT .IMG (not byte-swapped), or read it with clip=True",
            )
        log.warning("%s: clipped %d pixels above %d", path, over, MAX_VALUE)
        np.minimum(image, MAX_VALUE, out=image)
    return image


def to_display(raw: np.ndarray) -> np.ndarray:
    """Raw JSRT values to the display convention (bright bone, dark lung): `4095 - v`, uint16."""
    if raw.dtype != np.uint16 or (raw.size and int(raw.max()) > MAX_VALUE):
        raise ValueError("to_display expects uint16 raw values in 0..4095, as read_raw returns")
    return np.subtract(MAX_VALUE, raw, dtype=np.uint16)


def read_dicom(path: str | Path) -> np.ndarray:
    """Read a JSRT DICOM as a (2048, 2048) uint16 array in the display convention.

    MONOCHROME1 (high values dark) is inverted against the stored bit depth, `2**BitsStored - 1 - v`, so
    both photometric interpretations give the same picture as `to_display(read_raw(...))`.
    """
    path = Path(path)
    fix = f"replace it with the file from the JSRT DICOM zips ({REGISTRATION_URL})"
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as error:
        raise DataError(path, f"cannot be read as DICOM: {error}", fix) from error
    photometric = dataset.get("PhotometricInterpretation")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(path, f"expected a MONOCHROME1 or MONOCHROME2 image, found {photometric!r}", fix)
    try:
        pixels = dataset.pixel_array
    except (AttributeError, NotImplementedError, RuntimeError, ValueError) as error:
        raise DataError(path, f"pixel data cannot be decoded: {error}", fix) from error
    if pixels.shape != (SIZE, SIZE):
        raise DataError(path, f"expected a 2048 x 2048 image, found shape {pixels.shape}", fix)
    top = (1 << int(dataset.get("BitsStored", 16))) - 1
    if pixels.dtype.kind not in "ui" or int(pixels.min()) < 0 or int(pixels.max()) > top:
        raise DataError(path, f"expected unsigned integer pixels in 0..{top} (BitsStored)", fix)
    pixels = pixels.astype(np.uint16)
    if photometric == "MONOCHROME1":
        return np.subtract(top, pixels, dtype=np.uint16)
    return pixels


def read_image(path: str | Path, *, clip: bool = False) -> np.ndarray:
    """Either distribution, display convention: `.IMG` through read_raw + to_display, `.dcm` through read_dicom."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return read_dicom(path)
    return to_display(read_raw(path, clip=clip))


@dataclass
class _Tree:
    """What a scan of a JSRT folder found: image files per stem and metadata files per lower-case name."""

    raw: dict[str, list[Path]] = field(default_factory=dict)
    dicom: dict[str, list[Path]] = field(default_factory=dict)
    metadata: dict[str, list[Path]] = field(default_factory=dict)

    def images(self) -> tuple[str, dict[str, list[Path]]]:
        """The distribution in use: raw when any raw file is present, otherwise DICOM."""
        return ("raw", self.raw) if self.raw else ("DICOM", self.dicom)


def _scan(jsrt_dir: Path) -> _Tree:
    tree = _Tree()
    metadata_names = tuple(name.lower() for name in METADATA_FILES)
    for path in sorted(jsrt_dir.rglob("*")):
        if not path.is_file():
            continue
        suffix = path.suffix.lower()
        if STEM.fullmatch(path.stem.upper()) and suffix in (".img", ".dcm"):
            kind = tree.raw if suffix == ".img" else tree.dicom
            kind.setdefault(path.stem.upper(), []).append(path)
        elif path.name.lower() in metadata_names:
            tree.metadata.setdefault(path.name.lower(), []).append(path)
    return tree


def _metadata_file(tree: _Tree, jsrt_dir: Path, name: str) -> Path:
    found = tree.metadata.get(name.lower(), [])
    if not found:
        raise DataError(jsrt_dir, f"metadata file {name} not found (any capitalisation, any subfolder)", GET_FILES)
    if len(found) > 1:
        listing = ", ".join(str(p) for p in found)
        raise DataError(jsrt_dir, f"{name} found {len(found)} times: {listing}", "keep exactly one copy")
    return found[0]


def find_images(jsrt_dir: str | Path) -> dict[str, Path]:
    """Stem -> image file of the distribution present (raw `.IMG` preferred, else `.dcm`), sorted by stem."""
    jsrt_dir = Path(jsrt_dir)
    _, found = _scan(jsrt_dir).images()
    repeated = {stem: paths for stem, paths in found.items() if len(paths) > 1}
    if repeated:
        listing = "; ".join(", ".join(str(p) for p in paths) for paths in repeated.values())
        raise DataError(jsrt_dir, f"{len(repeated)} cases have more than one image file: {listing}", "keep one copy")
    return {stem: found[stem][0] for stem in sorted(found)}


def _decode_text(path: Path) -> str:
    """The metadata encoding is not documented: UTF-8 when valid, else Japanese Windows (cp932), lenient."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp932", errors="replace")


def _records(path: Path, text: str) -> list[tuple[int, str]]:
    """Split at every JSRT file name, so a record that runs into the next without a line break is still
    separate. Returns (line number, record text) pairs."""
    starts = [match.start() for match in _RECORD_START.finditer(text)]
    if not starts:
        raise DataError(path, "no records found: expected lines starting with a file name like JPCLN001.IMG", GET_FILES)
    if text[: starts[0]].strip():
        found = text[:40]
        raise DataError(path, f"line 1: expected a record starting with a JSRT file name, found {found!r}", GET_FILES)
    ends = starts[1:] + [len(text)]
    return [(text.count("\n", 0, start) + 1, text[start:end].strip()) for start, end in zip(starts, ends)]


def _bad_record(path: Path, line: int, record: str, layout: str) -> DataError:
    shown = record if len(record) <= 100 else record[:100] + "..."
    return DataError(
        path,
        f"line {line}: cannot parse record {shown!r}; expected: {layout}",
        "restore the file from the JSRT clinical-information download",
    )


def _optional_int(value: str) -> int | None:
    return None if value == "?" else int(value)


def _parse_nodule_file(path: Path) -> list[dict]:
    rows = []
    for line, record in _records(path, _decode_text(path)):
        match = _NODULE_RECORD.fullmatch(record)
        if match is None:
            raise _bad_record(path, line, record, _NODULE_LAYOUT)
        # Location is the first tab field of the text; the diagnosis is everything after it, with the
        # tabs and runs of spaces that split it into extra fields collapsed to single spaces.
        text_fields = [" ".join(part.split()) for part in (match["text"] or "").split("\t")]
        text_fields = [part for part in text_fields if part]
        size = match["size"]
        rows.append(
            {
                "line": line,
                "case": match["case"].upper(),
                "nodule": True,
                "subtlety": int(match["subtlety"]),
                "size_mm": float("nan") if size == "?" else float(size),
                "age": _optional_int(match["age"]),
                "sex": match["sex"].lower(),
                "x": int(match["x"]),
                "y": int(match["y"]),
                "malignancy": match["malignancy"].lower(),
                "location": text_fields[0] if text_fields else "",
                "diagnosis": " ".join(text_fields[1:]),
            }
        )
    return rows


def _parse_non_nodule_file(path: Path) -> list[dict]:
    rows = []
    for line, record in _records(path, _decode_text(path)):
        match = _NON_NODULE_RECORD.fullmatch(record)
        if match is None:
            raise _bad_record(path, line, record, _NON_NODULE_LAYOUT)
        rows.append(
            {
                "line": line,
                "case": match["case"].upper(),
                "nodule": False,
                "age": _optional_int(match["age"]),
                "sex": match["sex"].lower(),
            }
        )
    return rows


def _check_rows(path: Path, rows: list[dict]) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        if row["case"] in seen:
            raise DataError(
                path,
                f"line {row['line']}: {row['case']} already described on line {seen[row['case']]}",
                "keep one record per case",
            )
        seen[row["case"]] = row["line"]
        if row["nodule"] and not (row["x"] < SIZE and row["y"] < SIZE):
            raise DataError(
                path,
                f"line {row['line']}: nodule centre ({row['x']}, {row['y']}) lies outside the 2048 x 2048 grid",
                "restore the file from the JSRT clinical-information download",
            )


def _metadata_file_rows(tree: _Tree, jsrt_dir: Path, name: str) -> list[dict]:
    """Parse one metadata file: it must exist once, parse, and name each case at most once."""
    path = _metadata_file(tree, jsrt_dir, name)
    parse = _parse_nodule_file if name == NODULE_METADATA else _parse_non_nodule_file
    rows = parse(path)
    _check_rows(path, rows)
    return rows


def read_metadata(jsrt_dir: str | Path) -> pd.DataFrame:
    """Parse CLNDAT_EN.txt and CNNDAT_EN.TXT (any capitalisation, anywhere under `jsrt_dir`) into one table.

    Columns, one row per case sorted by case: case, nodule (bool), subtlety (Int64 1..5), size_mm (float),
    age (Int64), sex ('male'/'female'), x, y (Int64, 2048 grid), malignancy ('malignant'/'benign'),
    location, diagnosis (str). Nodule-only fields are NA for non-nodule cases; age is NA where the file
    says `?` (`?` is also accepted, as NaN, for the size, as public readers of the file do).
    Quirks handled: fields separated by tabs or runs of spaces; location/diagnosis text spilling into extra
    tab fields (the first is the location, the rest joins into the diagnosis); a record running into the
    next with no line break; undocumented encoding (UTF-8, else cp932 with replacement characters).
    """
    jsrt_dir = Path(jsrt_dir)
    tree = _scan(jsrt_dir)
    rows = [row for name in METADATA_FILES for row in _metadata_file_rows(tree, jsrt_dir, name)]
    table = pd.DataFrame(rows).reindex(columns=list(_METADATA_DTYPES)).astype(_METADATA_DTYPES)
    return table.sort_values("case", ignore_index=True)


def _image_problem(path: Path, kind: str) -> str | None:
    if kind == "raw":
        size = path.stat().st_size
        if size != RAW_BYTES:
            return f"{path}: expected {RAW_BYTES:,} bytes (2048 x 2048 x 2), got {size:,}"
        return _byte_order_problem(path)
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError) as error:
        return f"{path}: not a readable DICOM file ({error})"
    shape = (header.get("Rows"), header.get("Columns"))
    if shape != (SIZE, SIZE):
        return f"{path}: expected 2048 x 2048 pixels, the header says {shape[0]} x {shape[1]}"
    return None


def _sampled_rows(path: Path) -> np.ndarray:
    """Every SAMPLE_ROW_STEP-th row of a raw image. Whole rows, because a row is one 4 KiB page: a strided
    sample of columns would cost the same reads for fewer values."""
    row_bytes = SIZE * RAW_DTYPE.itemsize
    rows = []
    with open(path, "rb") as handle:
        for row in range(0, SIZE, SAMPLE_ROW_STEP):
            handle.seek(row * row_bytes)
            rows.append(handle.read(row_bytes))
    return np.frombuffer(b"".join(rows), dtype=RAW_DTYPE)


def _byte_order_problem(path: Path) -> str | None:
    """Sampled pixels above 12 bits, and whether the copy looks byte-swapped (most of them above).

    Swapping a 12-bit value's bytes puts its low byte on top, so nearly every pixel of a swapped film reads
    above 4095. A sample misses a few stray values, which read_raw then reports when the image is decoded."""
    sample = _sampled_rows(path)
    over = int(np.count_nonzero(sample > MAX_VALUE))
    if not over:
        return None
    found = (f"{path}: {over:,} of {sample.size:,} sampled pixels exceed the 12-bit maximum {MAX_VALUE} "
             f"(largest {int(sample.max())})")
    if over <= sample.size // 2:
        return (f"{found}: too few for a byte swap, so the file is damaged or not a JSRT .IMG; replace it with the "
                f"original ({REGISTRATION_URL})")
    swapped, expected = RAW_DTYPE.newbyteorder().str, RAW_DTYPE.str
    return (f"{found}: JSRT .IMG files are big-endian, this one looks byte-swapped (little-endian byte order, as some "
            f"converters write); replace it with the original, or swap it back with numpy: "
            f"np.fromfile(f, '{swapped}').astype('{expected}').tofile(f)")


def verify_tree(jsrt_dir: str | Path, cases: tuple[str, ...] | list[str] = CASES) -> list[str]:
    """Every problem with a JSRT copy, as readable lines; empty when the copy is complete and well formed.

    Checks the images of `cases` (present once, none extra, right size and a sample of 12-bit big-endian
    pixels, or a 2048 x 2048 DICOM header), that both metadata files exist and parse, and that they describe
    every expected case. `cases` defaults to all 247; pass a subset to verify a synthetic or partial copy the
    same way.
    """
    jsrt_dir = Path(jsrt_dir)
    if not jsrt_dir.is_dir():
        return [f"{jsrt_dir}: folder not found"]
    tree = _scan(jsrt_dir)
    kind, found = tree.images()
    expected = list(dict.fromkeys(cases))
    problems = []
    if not found:
        problems.append(f"no JSRT images found under {jsrt_dir} (expected JPCLN001.IMG .. or JPCLN001.dcm ..)")
    missing = [stem for stem in expected if stem not in found]
    if found and missing:
        problems.append(f"{len(missing)} {kind} images missing: {', '.join(missing)}")
    extra = sorted(set(found) - set(expected))
    if extra:
        problems.append(f"{len(extra)} {kind} images not in the expected case list: {', '.join(extra)}")
    for stem in expected:
        paths = found.get(stem, [])
        if len(paths) > 1:
            problems.append(f"{stem} has {len(paths)} {kind} files: {', '.join(str(p) for p in paths)}")
        elif paths and (problem := _image_problem(paths[0], kind)):
            problems.append(problem)
    for name in METADATA_FILES:
        try:
            described = {row["case"] for row in _metadata_file_rows(tree, jsrt_dir, name)}
        except DataError as error:
            problems.append(f"{error.path}: {error.problem}")
            continue
        nodule_file = name == NODULE_METADATA
        undescribed = [s for s in expected if s.startswith("JPCLN") == nodule_file and s not in described]
        if undescribed:
            problems.append(f"{name}: {len(undescribed)} expected cases not described: {', '.join(undescribed)}")
    return problems


def require_tree(jsrt_dir: str | Path, cases: tuple[str, ...] | list[str] = CASES) -> None:
    """Raise one DataError listing every problem verify_tree finds, with where to register for the data."""
    problems = verify_tree(jsrt_dir, cases)
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise DataError(jsrt_dir, f"the JSRT copy has {len(problems)} problem(s):\n{listing}", GET_FILES)
