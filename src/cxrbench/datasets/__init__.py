"""Readers for the datasets as distributed: one module per dataset, plain numpy arrays and pandas tables out.

Modules (each docstring gives counts, labels, licence, citation and where the files come from):
    jsrt           JSRT: 247 raw 2048 x 2048 radiographs, DICOM variant, clinical metadata
    scr            SCR: lung/heart/clavicle masks and landmark points for the JSRT images
    nih            NIH ChestX-ray14: metadata in its three published forms, boxes, split lists, PNGs
    google_labels  Google's radiologist labels for NIH subsets and the majority-vote rule behind them

Every malformed input raises `cxrbench.errors.DataError` naming the file (and the line or row), what was
expected and what to do. This package module holds the helpers the readers share: image decoding and
CSV rows with line numbers.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import cv2
import numpy as np

from cxrbench.errors import DataError

log = logging.getLogger(__name__)


def decode_grey8(data: bytes | np.ndarray, source: str | Path) -> np.ndarray:
    """Decode an encoded 8-bit image (PNG, BMP, JPEG) to a (H, W) uint8 greyscale array.

    Grey, grey+alpha, palette, RGB and RGBA files whose colour channels are equal all give the same array
    (alpha is ignored: the radiographs are opaque). Colour channels that differ are converted with the usual
    luma weights and a warning. OpenCV ignores embedded ICC profiles, so a profile never changes the values.
    """
    encoded = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if encoded.size else None
    if decoded is None:
        raise DataError(
            source,
            "cannot be decoded as an image: the file is truncated, corrupt or not an image",
            "replace it with an intact copy from the original archive",
        )
    if decoded.dtype != np.uint8:
        raise DataError(
            source,
            f"expected an 8-bit image, found {decoded.dtype} samples",
            "use the files as distributed; re-encoded 16-bit copies are not supported",
        )
    if decoded.ndim == 2:
        return decoded
    colour = decoded[..., :3]  # OpenCV order B, G, R; a 4th channel is alpha
    if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2]):
        return np.ascontiguousarray(colour[..., 0])
    log.warning("%s: colour channels differ; converting to greyscale with luma weights", source)
    return cv2.cvtColor(np.ascontiguousarray(colour), cv2.COLOR_BGR2GRAY)


def read_csv_rows(path: str | Path, get_files: str) -> tuple[list[str], list[list[str]], list[int]]:
    """A comma-separated file as (header, data rows, 1-based line number of each row).

    Accepts LF or CRLF line ends and a UTF-8 byte-order mark; blank lines are skipped. `get_files` says
    where the file comes from, for the error raised when it is missing.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as error:
        raise DataError(path, "file not found", get_files) from error
    except UnicodeDecodeError as error:
        raise DataError(
            path,
            f"byte {error.start} is not valid UTF-8; expected a plain-text CSV",
            "replace it with an unmodified copy of the published file",
        ) from error
    # One record per line (none of these files quotes a line break), so row i is line i + 1.
    rows = list(csv.reader(text.splitlines()))
    lines = [number for number, row in enumerate(rows, start=1) if row]
    if len(lines) < len(rows):
        rows = [row for row in rows if row]
    if not rows:
        raise DataError(path, "the file is empty; expected a header line and data rows", get_files)
    return rows[0], rows[1:], lines[1:]
