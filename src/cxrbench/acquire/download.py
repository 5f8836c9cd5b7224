"""Resumable, verified HTTP downloads (stdlib urllib only) and the NIH ChestX-ray14 fetcher.

Bytes arrive in `<dest>.part`; an interrupted download resumes from the part's length with an HTTP
`Range` request. Only a download whose size and md5 match is renamed to `dest`, so a file under its
final name is always complete; a mismatching one is kept as `<dest>.corrupt` for inspection.

Idempotency uses a small `<dest>.verified` marker (JSON: size, mtime_ns, md5) rather than re-hashing:
re-reading the 45 GB of NIH archives on every workflow run would take minutes. The marker only counts
while the file's size and modification time are the ones recorded; a file replaced or rewritten since
is hashed again.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from cxrbench import __version__
from cxrbench.acquire.nih_archives import (
    ARCHIVES,
    METADATA_FILES,
    NIH_BOX_FOLDER,
    NihArchive,
    archive_by_number,
    find_local_copy,
    join_url,
)
from cxrbench.errors import DataError
from cxrbench.fileio import write_json

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# Server-side failures worth trying again; other 4xx answers will not change on a retry.
RETRYABLE_HTTP_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _TransientFailure(Exception):
    """A failure that another attempt may not meet (network down, connection cut, server busy)."""


class _RangeNotSatisfiable(Exception):
    """HTTP 416 to a resume request; carries the server's Content-Range (`bytes */<size>`)."""

    def __init__(self, content_range: str):
        super().__init__(content_range)
        self.content_range = content_range


def download(
    url: str,
    dest: str | Path,
    *,
    size: int | None,
    md5: str | None,
    timeout: float = 60,
    retries: int = 3,
    backoff: float = 2.0,
    progress: bool = True,
) -> Path:
    """Fetch `url` into `dest`, resuming any `<dest>.part`, and verify `size` and `md5` when given.

    A verified `dest` already present returns at once without network. Transient failures are
    retried `retries` times, waiting `backoff`, 2*`backoff`, 4*`backoff`... seconds; each retry
    resumes where the last stopped. Raises DataError on a checksum or size mismatch, a wrong
    Content-Range, an HTTP error, or when every attempt failed.
    """
    dest = Path(dest)
    md5 = None if md5 is None else md5.lower()
    if _verified_copy_present(dest, size, md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _sibling(dest, ".part")
    failures: list[str] = []
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            got_size, got_md5 = _fetch_into(url, dest, size=size, timeout=timeout, progress=progress)
            break
        except _TransientFailure as failure:
            failures.append(str(failure))
            log.warning("download of %s failed (attempt %d of %d): %s", url, attempt + 1, retries + 1, failure)
    else:
        raise DataError(
            dest,
            f"could not download {url} after {retries + 1} attempt(s); last error: {failures[-1]}",
            fix="check the network connection and that the URL is reachable, then run again "
            "(the bytes received so far are kept and the download resumes)",
        )
    _publish_if_valid(part, dest, url, size=size, md5=md5, got_size=got_size, got_md5=got_md5)
    return dest


def fetch_nih(
    dest_dir: str | Path,
    *,
    archives: Iterable[int | NihArchive] | None = None,
    base_url: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """Download the selected NIH image archives (all twelve by default) and the metadata files.

    `archives` holds archive numbers (1..12, checked against the published sizes and md5s) or
    NihArchive entries (a mirror's own repacked archives). `base_url` replaces the NIH Box prefix,
    for mirrors; metadata files are then fetched as `<base_url>/<file name>`. The NIH Box site has
    no direct links for the metadata, so without `base_url` they must already be in `dest_dir`.
    A copy already in `dest_dir` under the batch script's name (`images_01.tar.gz`) is used as is
    once verified. Returns the archive paths, then the metadata paths.
    """
    dest_dir = Path(dest_dir)
    selected = ARCHIVES if archives is None else [
        entry if isinstance(entry, NihArchive) else archive_by_number(entry) for entry in archives
    ]
    return fetch_archives(dest_dir, selected, base_url, progress) + fetch_metadata(dest_dir, base_url, progress)


def fetch_archives(dest_dir: Path, archives: Iterable[NihArchive], base_url: str | None, progress: bool) -> list[Path]:
    """Each archive verified in `dest_dir` (a copy there under either name is checked, not fetched again)."""
    fetched: list[Path] = []
    for archive in archives:
        target = find_local_copy(dest_dir, archive) or dest_dir / archive.file_name
        fetched.append(download(archive.url(base_url), target, size=archive.size, md5=archive.md5, progress=progress))
    return fetched


def fetch_metadata(dest_dir: Path, base_url: str | None, progress: bool) -> list[Path]:
    """The metadata files in `dest_dir`: from the mirror at `base_url`, else placed there by hand."""
    fetched: list[Path] = []
    missing: list[str] = []
    for name in METADATA_FILES:
        target = dest_dir / name
        if base_url is not None:
            fetched.append(download(join_url(base_url, name), target, size=None, md5=None, progress=progress))
        elif target.is_file():
            fetched.append(target)
        else:
            missing.append(name)
    if missing:
        raise DataError(
            dest_dir,
            f"NIH metadata file(s) {', '.join(missing)} are missing and have no direct download link",
            fix=f"download them from {NIH_BOX_FOLDER} into {dest_dir}, or pass base_url of a mirror that serves them",
        )
    return fetched


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _md5_of_prefix(path: Path, length: int) -> hashlib._Hash:
    """md5 state after the first `length` bytes of `path`, so hashing can continue with new bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while length and (block := handle.read(min(CHUNK_BYTES, length))):
            digest.update(block)
            length -= len(block)
    return digest


def _verified_copy_present(dest: Path, size: int | None, md5: str | None) -> bool:
    """True when `dest` holds the expected bytes; raises DataError (touching nothing) when it exists but differs."""
    if not dest.is_file():
        return False
    marker = _sibling(dest, ".verified")
    stat = dest.stat()
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if (
        isinstance(recorded, dict)
        and recorded.get("size") == stat.st_size
        and recorded.get("mtime_ns") == stat.st_mtime_ns
        and (size is None or size == stat.st_size)
        and (md5 is None or recorded.get("md5") == md5)
    ):
        return True

    got_md5 = _md5_of_prefix(dest, stat.st_size).hexdigest()
    problems = _mismatches(size=size, md5=md5, got_size=stat.st_size, got_md5=got_md5)
    if problems:
        raise DataError(
            dest,
            f"an existing {dest.name} does not match the expected file ({'; '.join(problems)})",
            fix=f"if it is an unfinished download, rename it to {_sibling(dest, '.part').name} to resume; "
            "otherwise delete it and run again to download it afresh",
        )
    _write_marker(dest, got_md5)
    return True


def _write_marker(dest: Path, md5: str) -> None:
    """Record that `dest`, as it is now (size, mtime), has this md5."""
    stat = dest.stat()
    write_json(_sibling(dest, ".verified"), {"md5": md5, "mtime_ns": stat.st_mtime_ns, "size": stat.st_size})


def _mismatches(*, size: int | None, md5: str | None, got_size: int, got_md5: str) -> list[str]:
    """Human-readable differences between what was expected and what was got."""
    problems = []
    if size is not None and got_size != size:
        problems.append(f"size: expected {size} bytes, got {got_size}")
    if md5 is not None and got_md5 != md5:
        problems.append(f"md5: expected {md5}, got {got_md5}")
    return problems


def _publish_if_valid(
    part: Path, dest: Path, url: str, *, size: int | None, md5: str | None, got_size: int, got_md5: str
) -> None:
    """Rename a verified part to `dest` and record the marker; keep a bad one as `<dest>.corrupt`."""
    problems = _mismatches(size=size, md5=md5, got_size=got_size, got_md5=got_md5)
    if problems:
        corrupt = _sibling(dest, ".corrupt")
        os.replace(part, corrupt)
        raise DataError(
            dest,
            f"the download of {dest.name} is corrupt ({'; '.join(problems)}); its bytes are kept in {corrupt.name}",
            fix=f"this archive must be fetched again from {url}: delete {corrupt.name} and run again "
            "(if it fails the same way, the source or the published checksum has changed)",
        )
    os.replace(part, dest)
    _write_marker(dest, got_md5)


def _open(url: str, dest: Path, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"cxrbench/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and offset:
            # The part already reaches (or passes) the end of the file the server has now.
            raise _RangeNotSatisfiable(error.headers.get("Content-Range", "")) from error
        if error.code in RETRYABLE_HTTP_STATUS:
            raise _TransientFailure(f"HTTP {error.code} {error.reason}") from error
        raise DataError(
            dest,
            f"{url} answered HTTP {error.code} {error.reason}",
            fix="check the URL (a mirror's base_url must serve the same file names); the file may have moved",
        ) from error
    except (OSError, http.client.HTTPException) as error:  # refused, DNS, timeout, reset
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        raise _TransientFailure(f"{type(reason).__name__}: {reason}") from error


def _fetch_into(url: str, dest: Path, *, size: int | None, timeout: float, progress: bool) -> tuple[int, str]:
    """One attempt: append the rest of the file to `<dest>.part`; return the part's final size and md5."""
    part = _sibling(dest, ".part")
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        log.warning("%s is longer than the expected %d bytes; starting over", part, size)
        offset = 0
    if size is not None and offset == size:
        return offset, _md5_of_prefix(part, offset).hexdigest()
    try:
        response = _open(url, dest, offset, timeout)
    except _RangeNotSatisfiable as refused:
        if refused.content_range == f"bytes */{offset}":
            return offset, _md5_of_prefix(part, offset).hexdigest()
        part.unlink()
        raise _TransientFailure(
            f"server refused to resume at byte {offset} (Content-Range {refused.content_range!r}); starting over"
        ) from None

    with response:
        if response.status == 206:
            end = _range_end(url, dest, response.headers.get("Content-Range"), offset, size)
        elif response.status == 200:
            if offset:
                log.warning("%s ignores Range requests; restarting %s from zero", url, part.name)
            offset = 0
            end = response.length  # None when the server announces no length
        else:
            raise DataError(dest, f"{url} answered HTTP {response.status}, expected 200 or 206", fix="check the URL")
        digest = _md5_of_prefix(part, offset) if offset else hashlib.md5(usedforsecurity=False)
        received = offset
        with open(part, "ab" if offset else "wb") as handle, tqdm(
            total=size if size is not None else end, initial=offset, unit="B", unit_scale=True,
            unit_divisor=1024, desc=dest.name, disable=not progress,
        ) as bar:
            while True:
                try:
                    block = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as error:
                    raise _TransientFailure(f"connection lost after {received} bytes: {error!r}") from error
                if not block:
                    break
                handle.write(block)
                digest.update(block)
                received += len(block)
                bar.update(len(block))
            handle.flush()
            os.fsync(handle.fileno())
    # urllib returns b"" instead of raising when the server closes early: compare with what was announced.
    if end is not None and received < end:
        raise _TransientFailure(f"connection closed after {received} of {end} bytes")
    return received, digest.hexdigest()


def _range_end(url: str, dest: Path, header: str | None, offset: int, size: int | None) -> int:
    """Where a 206 reply's Content-Range ends (exclusive); DataError unless it continues at `offset` to the end."""
    match = _CONTENT_RANGE.match(header or "")
    if match is not None:
        start, end = int(match[1]), int(match[2]) + 1
        total = end if match[3] == "*" else int(match[3])  # "*": total unknown, the range must reach the end
        if start == offset and end == total and (size is None or total == size):
            return end
    expected = f"bytes {offset}-{size - 1}/{size}" if size is not None else f"bytes {offset}-<end>/<total>"
    raise DataError(
        dest,
        f"{url} answered a resume request with Content-Range {header!r}, expected {expected!r}",
        fix="the server (or a proxy) mangles partial downloads: use another mirror, "
        f"or delete {_sibling(dest, '.part').name} to download from the start",
    )
