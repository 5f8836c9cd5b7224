"""NIH ChestX-ray14: 112,120 frontal radiographs of 30,805 patients with 14 text-mined labels.

Counts: 112,120 PNGs (`NNNNNNNN_FFF.png`, patient _ follow-up), 1024 x 1024, 8-bit; about 1% are RGBA
with equal colour channels instead of greyscale, one carries an ICC profile. Official split by patient:
`train_val_list.txt` 86,524 images (28,008 patients), `test_list.txt` 25,596 (2,797 patients).
Labels: LABELS below (the 14, `No Finding` otherwise; several joined with `|`). 984 boxes on 880 test
images for the first eight (BOX_LABELS) in `BBox_List_2017.csv`.
Metadata: `Data_Entry_2017.csv` exists in three published forms, all read by `read_data_entry`:
original (Oct 2017: CRLF, header with a trailing comma, zero-padded numbers, ages like `058Y`/`011M`/
`005D`, 16 impossible ages kept and flagged), Kaggle style (LF, trailing comma, plain integers) and
`Data_Entry_2017_v2020.csv` (LF, no trailing comma; 181 labels added on images with boxes; follow-up
numbers re-ordered by date). Some copies name the sex column `Patient Sex`.
Licence: CC0 (public domain). Attribution requested: link the NIH download site, cite the CVPR paper and
acknowledge the NIH Clinical Center as the data provider.
Where: https://nihcc.app.box.com/v/ChestXray-NIHCC (twelve `images_NNN.tar.gz` archives unpacking into
`images/`, plus the CSV and list files); also the Google Cloud bucket
`gs://gcs-public-data--healthcare-nih-chest-xray` and an Academic Torrents copy.
Citation: X. Wang, Y. Peng, L. Lu, Z. Lu, M. Bagheri, R.M. Summers. ChestX-ray8: Hospital-scale Chest
X-ray Database and Benchmarks on Weakly-Supervised Classification and Localization of Common Thorax
Diseases. IEEE CVPR 2017, pp. 3462-3471.

Tree layout expected by `require_tree`: the metadata, box and list files at the top of `nih_dir` and the
PNGs in `nih_dir/images/`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cxrbench.datasets import decode_grey8, read_csv_rows
from cxrbench.errors import DataError
from cxrbench.vocabulary import BOX_LABELS, LABELS, NO_FINDING

log = logging.getLogger(__name__)
DATA_ENTRY_NAMES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")  # the newest revision wins
BBOX_NAME = "BBox_List_2017.csv"
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"
IMAGES_DIR = "images"
# The images of the archives source.archives selected; acquire_nih writes it into data/raw/nih for a subset only.
ARCHIVE_SUBSET = "archive_subset.csv"
IMPOSSIBLE_AGE_YEARS = 120
DOWNLOAD_URL = "https://nihcc.app.box.com/v/ChestXray-NIHCC"
GET_FILES = f"download it from the NIH release ({DOWNLOAD_URL}) and place it here unmodified"

ENTRY_COLUMNS = (
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
)
SEX_COLUMN_ALIASES = {"Patient Sex": "Patient Gender"}
BBOX_COLUMNS = ("Image Index", "Finding Label", "Bbox [x", "y", "w", "h]")
BOX_LABEL_SPELLINGS = {"Infiltrate": "Infiltration"}  # the box file's spelling -> LABELS

IMAGE_NAME = re.compile(r"\d{8}_\d{3}\.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_AGE_UNIT_YEARS = {"Y": 1.0, "M": 12.0, "D": 365.25}  # divisor from the unit to years
_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SHOWN = 10  # offending rows quoted in an error message
_LABEL = "|".join(LABELS)
_FINDING_LABELS = f"{NO_FINDING}|(?:{_LABEL})(?:\\|(?:{_LABEL}))*"


def _listing(names: list[str] | set[str], limit: int = 20) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:limit])
    return shown + (f" (and {len(ordered) - limit} more)" if len(ordered) > limit else "")


def _raise_row_problems(path: Path, problems: list[tuple[int, str]], fix: str) -> None:
    """Raise one DataError quoting the first offending rows by line number, if there are any."""
    if not problems:
        return
    problems.sort()
    quoted = "\n".join(f"  line {line}: {text}" for line, text in problems[:_SHOWN])
    more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    raise DataError(path, f"{len(problems)} malformed row(s):\n{quoted}{more}", fix)


def _field_problems(raw: pd.DataFrame, lines: np.ndarray, fields: list[tuple[str, str, str]]) -> list[tuple[int, str]]:
    """Check every row against `fields` (column, regex, what was expected).

    One regex over the comma-joined row finds the bad rows quickly; only those are checked field by field
    to say which value is wrong.
    """
    row_pattern = re.compile(",".join(f"(?:{pattern})" for _, pattern, _ in fields))
    values = raw[[column for column, _, _ in fields]].to_numpy().tolist()
    bad_rows = [i for i, row in enumerate(values) if not row_pattern.fullmatch(",".join(row))]
    return [
        (int(lines[i]), f"{column}: expected {expected}, found {raw[column].iloc[i]!r}")
        for i in bad_rows
        for column, pattern, expected in fields
        if not re.fullmatch(pattern, raw[column].iloc[i])
    ]


def _flagged_rows(flags: pd.Series, lines: np.ndarray, what: str) -> list[tuple[int, str]]:
    return [(int(lines[i]), what) for i in np.flatnonzero(flags.to_numpy(dtype=bool))]


def _entry_fields(with_units: bool) -> list[tuple[str, str, str]]:
    if with_units:
        age = (r"\d{1,3}[YMD]", "an age like 058Y, 011M or 005D, as in the first row")
    else:
        age = (r"\d+", "an age in whole years, as in the first row")
    return [
        ("Image Index", IMAGE_NAME.pattern, "an image name like 00000001_000.png"),
        ("Finding Labels", _FINDING_LABELS, f"NIH labels joined with '|', or {NO_FINDING!r} alone"),
        ("Follow-up #", r"\d+", "a whole number"),
        ("Patient ID", r"\d+", "a whole number"),
        ("Patient Age", *age),
        ("Patient Gender", "[MF]", "M or F"),
        ("View Position", "PA|AP", "PA or AP"),
        ("OriginalImage[Width", r"\d+", "a whole number"),
        ("Height]", r"\d+", "a whole number"),
        ("OriginalImagePixelSpacing[x", _FLOAT, "a number"),
        ("y]", _FLOAT, "a number"),
    ]


def typed_entries(raw: pd.DataFrame, lines: np.ndarray, path: Path) -> tuple[pd.DataFrame, bool]:
    """Validate and type the 11 NIH metadata columns (named as ENTRY_COLUMNS, string values, RangeIndex).

    Returns the typed table (see read_data_entry) and whether ages carried units (`058Y`), which only the
    original 2017 form does. Shared with google_labels, whose label tables embed the same columns.
    """
    image, age = raw["Image Index"], raw["Patient Age"]
    with_units = bool(len(age)) and re.fullmatch(r"\d+[YMD]", age.iloc[0]) is not None
    problems = _field_problems(raw, lines, _entry_fields(with_units))
    problems += _flagged_rows(image.duplicated(keep=False), lines, "Image Index: expected each image once")
    _raise_row_problems(path, problems, "replace the file with an unmodified copy of the published metadata")
    patient = raw["Patient ID"].astype(np.int64)
    mismatch = patient != image.str[:8].astype(np.int64)
    problems = _flagged_rows(mismatch, lines, "Patient ID: expected the patient number in the image name")
    _raise_row_problems(path, problems, "replace the file with an unmodified copy of the published metadata")

    if with_units:
        age_years = age.str[:-1].astype(np.float64) / age.str[-1].map(_AGE_UNIT_YEARS).astype(np.float64)
    else:
        age_years = age.astype(np.float64)
    typed = pd.DataFrame(
        {
            "image": image,
            "finding_labels": raw["Finding Labels"],
            "follow_up": raw["Follow-up #"].astype(np.int64),
            "patient": patient,
            "age_years": age_years,
            "age_flag": np.where(age_years > IMPOSSIBLE_AGE_YEARS, "impossible", ""),
            "sex": raw["Patient Gender"],
            "view": raw["View Position"],
            "orig_width": raw["OriginalImage[Width"].astype(np.int64),
            "orig_height": raw["Height]"].astype(np.int64),
            "spacing_x": raw["OriginalImagePixelSpacing[x"].astype(np.float64),
            "spacing_y": raw["y]"].astype(np.float64),
        }
    )
    return typed.astype({"age_flag": "str"}), with_units


def _fixed_width_rows(
    path: Path, rows: list[list[str]], lines: list[int], columns: list[str], max_width: int
) -> pd.DataFrame:
    """Rows as a string table with `columns`; trailing fields up to `max_width` must be empty."""
    width = len(columns)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    problems = [
        (lines[i], f"expected {width} fields, found {lengths[i]}")
        for i in np.flatnonzero(lengths != width)
        if lengths[i] < width or lengths[i] > max_width or any(rows[i][width:])
    ]
    _raise_row_problems(path, problems, "replace the file with an unmodified copy of the published file")
    if (lengths > width).any():
        rows = [row[:width] for row in rows]
    return pd.DataFrame(rows, columns=columns, dtype="str")


def _header_names(header: list[str]) -> tuple[list[str], bool]:
    """Header field names stripped, without trailing empty fields; and whether there were any."""
    names = [name.strip() for name in header]
    trailing = bool(names) and names[-1] == ""
    while names and names[-1] == "":
        names.pop()
    return names, trailing


def read_data_entry(path: str | Path) -> pd.DataFrame:
    """Read any published form of the NIH metadata into one typed table, in file order.

    Columns: image (str), finding_labels (str), follow_up, patient (int64), age_years (float64; months
    and days converted with 12 and 365.25), age_flag ('' or 'impossible' above 120 years; such rows are
    kept), sex ('M'/'F'), view ('PA'/'AP'), orig_width, orig_height (int64), spacing_x, spacing_y
    (float64). `attrs["form"]` records the form: 'original_2017' (ages with units), 'kaggle' (header with
    a trailing comma, integer ages) or 'v2020' (no trailing comma).
    """
    path = Path(path)
    header, rows, lines = read_csv_rows(path, GET_FILES)
    names, trailing_comma = _header_names(header)
    names = [SEX_COLUMN_ALIASES.get(name, name) for name in names]
    if names != list(ENTRY_COLUMNS):
        raise DataError(
            path,
            f"line 1: unexpected header {header}; expected {','.join(ENTRY_COLUMNS)} "
            "(optionally 'Patient Sex' and a trailing comma)",
            f"check this is Data_Entry_2017.csv or Data_Entry_2017_v2020.csv; {GET_FILES}",
        )
    if not rows:
        raise DataError(path, "no data rows after the header", GET_FILES)
    raw = _fixed_width_rows(path, rows, lines, list(ENTRY_COLUMNS), len(ENTRY_COLUMNS) + 1)
    typed, with_units = typed_entries(raw, np.asarray(lines), path)
    typed.attrs["form"] = "original_2017" if with_units else ("kaggle" if trailing_comma else "v2020")
    return typed


def label_matrix(df: pd.DataFrame) -> np.ndarray:
    """(n, 14) uint8 multi-hot matrix in LABELS order from the finding_labels column."""
    parts = df["finding_labels"].str.split("|")
    labels = parts.explode()
    columns = pd.Index(LABELS).get_indexer(labels.to_numpy())
    unknown = (columns < 0) & (labels.to_numpy() != NO_FINDING)
    if unknown.any():
        raise ValueError(f"finding_labels holds unknown labels {sorted(set(labels[unknown]))}; use read_data_entry")
    rows = np.repeat(np.arange(len(df)), parts.str.len().to_numpy())
    matrix = np.zeros((len(df), len(LABELS)), dtype=np.uint8)
    matrix[rows[columns >= 0], columns[columns >= 0]] = 1
    return matrix


def read_bbox(path: str | Path) -> pd.DataFrame:
    """Read BBox_List_2017.csv: image, label (`Infiltrate` mapped to `Infiltration`), x, y, w, h (float64,
    top-left corner and size in the 1024-pixel image)."""
    path = Path(path)
    header, rows, lines = read_csv_rows(path, GET_FILES)
    names, _ = _header_names(header)
    if names != list(BBOX_COLUMNS):
        raise DataError(path, f"line 1: unexpected header {header}; expected {','.join(BBOX_COLUMNS)},,,", GET_FILES)
    raw = _fixed_width_rows(path, rows, lines, ["image", "label", "x", "y", "w", "h"], len(header))
    line_numbers = np.asarray(lines)
    box_labels = "|".join([*BOX_LABELS, *BOX_LABEL_SPELLINGS])
    fields = [
        ("image", IMAGE_NAME.pattern, "an image name like 00000001_000.png"),
        ("label", box_labels, f"one of {box_labels.replace('|', ', ')}"),
        *((column, _FLOAT, "a number") for column in ("x", "y", "w", "h")),
    ]
    _raise_row_problems(path, _field_problems(raw, line_numbers, fields), GET_FILES)
    boxes = raw.assign(label=raw["label"].replace(BOX_LABEL_SPELLINGS)).astype({c: np.float64 for c in "xywh"})
    empty = (boxes["w"] <= 0) | (boxes["h"] <= 0)
    _raise_row_problems(path, _flagged_rows(empty, line_numbers, "expected a positive width and height"), GET_FILES)
    return boxes


def read_split_list(path: str | Path) -> list[str]:
    """An official split list: one image name per line (LF, no final newline as published; CRLF and a
    final newline are tolerated). Names must look like `NNNNNNNN_NNN.png` and appear once."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as error:
        raise DataError(path, "split list not found", GET_FILES) from error
    except UnicodeDecodeError as error:
        raise DataError(path, f"byte {error.start} is not valid UTF-8; expected plain text", GET_FILES) from error
    names = [line.removesuffix("\r") for line in text.split("\n")]
    if names[-1] == "":
        names.pop()
    seen: dict[str, int] = {}
    problems = []
    for number, name in enumerate(names, start=1):
        if not IMAGE_NAME.fullmatch(name):
            problems.append((number, f"expected an image name like 00000001_000.png, found {name!r}"))
        elif name in seen:
            problems.append((number, f"{name} already listed on line {seen[name]}"))
        else:
            seen[name] = number
    _raise_row_problems(path, problems, GET_FILES)
    if not names:
        raise DataError(path, "the list is empty; expected one image name per line", GET_FILES)
    return names


def read_png(path: str | Path) -> np.ndarray:
    """An NIH PNG as (H, W) uint8 greyscale: mode L, RGBA with equal channels and files with an ICC profile
    all give the same values (OpenCV decodes every variant seen, so no PIL fallback is needed)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise DataError(path, "image not found", GET_FILES) from error
    if not data.startswith(PNG_SIGNATURE):
        raise DataError(path, "not a PNG file: the 8-byte PNG signature is missing", GET_FILES)
    return decode_grey8(data, path)


def find_data_entry(nih_dir: str | Path) -> Path | None:
    """The metadata file in `nih_dir`: Data_Entry_2017_v2020.csv when present, else Data_Entry_2017.csv."""
    return next((Path(nih_dir) / name for name in DATA_ENTRY_NAMES if (Path(nih_dir) / name).is_file()), None)


def write_archive_subset(nih_dir: str | Path, images: list[str]) -> None:
    """Record in `nih_dir` that it holds only `images`, those of the archives source.archives selected."""
    pd.DataFrame({"image": sorted(images)}).to_csv(Path(nih_dir) / ARCHIVE_SUBSET, index=False, lineterminator="\n")


def in_archive_subset(images: pd.Series, nih_dir: str | Path, what: str) -> pd.Series:
    """Which of `images` the NIH copy in `nih_dir` holds: all of them, or only those of the archives
    source.archives selected when acquire_nih recorded a subset there, logging how many of the `what` that
    leaves out."""
    path = Path(nih_dir) / ARCHIVE_SUBSET
    if not path.is_file():
        return pd.Series(True, index=images.index)
    kept = images.isin(pd.read_csv(path, dtype=str)["image"])
    log.info("source.archives took a subset of the NIH archives: %d of %d %s are in it, the other %d are left out",
             kept.sum(), len(kept), what, (~kept).sum())
    return kept


def _patients(names: list[str]) -> set[str]:
    return {name[:8] for name in names}


def verify_tree(nih_dir: str | Path, images: list[str] | None = None) -> list[str]:
    """Every problem with an NIH copy, as readable lines; empty when it is complete and consistent.

    Checks that the metadata, box and list files exist and parse, that the lists are disjoint by image and
    by patient and agree with the metadata, that boxes refer to known images, and that every listed image
    (or only `images`, when given) exists in `images/`.
    """
    nih_dir = Path(nih_dir)
    problems: list[str] = []

    def attempt(read, path: Path):
        try:
            return read(path)
        except DataError as error:
            problems.append(f"{error.path}: {error.problem}")
            return None

    entry_path = find_data_entry(nih_dir)
    entries = attempt(read_data_entry, entry_path) if entry_path else None
    if entry_path is None:
        problems.append(f"{nih_dir}: no metadata file ({' or '.join(DATA_ENTRY_NAMES)})")
    boxes = attempt(read_bbox, nih_dir / BBOX_NAME)
    train_val = attempt(read_split_list, nih_dir / TRAIN_VAL_LIST)
    test = attempt(read_split_list, nih_dir / TEST_LIST)
    known = set(entries["image"]) if entries is not None else None

    listed: list[str] | None = None
    if train_val is not None and test is not None:
        listed = train_val + test
        if both := set(train_val) & set(test):
            problems.append(f"{len(both)} images are in both split lists: {_listing(both)}")
        if shared := _patients(train_val) & _patients(test):
            problems.append(f"{len(shared)} patients have images in both split lists: {_listing(shared)}")
        if known is not None:
            if unknown := set(listed) - known:
                problems.append(f"{len(unknown)} listed images are not in the metadata: {_listing(unknown)}")
            if unlisted := known - set(listed):
                problems.append(f"{len(unlisted)} metadata images are in neither list: {_listing(unlisted)}")
    if boxes is not None and known is not None and (unknown := set(boxes["image"]) - known):
        problems.append(f"{len(unknown)} boxed images are not in the metadata: {_listing(unknown)}")

    wanted = images if images is not None else listed
    if images is not None and known is not None and (unknown := set(images) - known):
        problems.append(f"{len(unknown)} requested images are not in the metadata: {_listing(unknown)}")
    if wanted is not None:
        image_dir = nih_dir / IMAGES_DIR
        present = set(os.listdir(image_dir)) if image_dir.is_dir() else set()
        if missing := set(wanted) - present:
            problems.append(f"{len(missing)} images missing from {image_dir}: {_listing(missing)}")
    return problems


def require_tree(nih_dir: str | Path, images: list[str] | None = None) -> None:
    """Raise one DataError listing every problem verify_tree finds, with where to get the files."""
    problems = verify_tree(nih_dir, images)
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise DataError(
            nih_dir,
            f"the NIH ChestX-ray14 copy has {len(problems)} problem(s):\n{listing}",
            f"download the missing or damaged files from {DOWNLOAD_URL} (images from the images_NNN.tar.gz "
            "archives, unpacked into images/)",
        )
