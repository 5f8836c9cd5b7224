"""Safe, resumable extraction of .tar.gz archives (the NIH image archives).

Every member is checked before anything is written: absolute paths, `..` components, symbolic and
hard links, devices, FIFOs and any other non-regular member make the whole archive refused. Python's
own `filter="data"` runs as well, as a second line, but our checks do not depend on its version.

Members are extracted into a temporary sibling of `dest` and moved into place only once the whole
archive has been read, so a failure or interruption never leaves a partial tree in `dest`. A member
is skipped when `dest` already holds a regular file of that name and of the member's size: the tar
header gives no content checksum, and re-reading the file would cost as much as extracting it; a
file cut short by an interrupted copy has the wrong size and is replaced. The decode stage checks
image contents. When done, `dest/.<archive name>.extracted.json` records the archive's size and its
files with their sizes; while it is valid, a repeated call only checks those files' sizes and does
not decompress the archive again.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from cxrbench.errors import DataError
from cxrbench.fileio import partial_dir, write_json


def safe_extract(archive: str | Path, dest: str | Path) -> list[str]:
    """Extract `archive` (.tar.gz) into `dest`; return its regular files' relative POSIX paths, in archive order."""
    archive, dest = Path(archive), Path(dest).absolute()  # absolute: `dest.parent` must be a real sibling
    if not archive.is_file():
        raise DataError(archive, "archive not found", fix="download it first (fetch_nih) or correct the path")
    archive_size = archive.stat().st_size
    record = dest / f".{archive.name}.extracted.json"
    recorded = _recorded_files(record, archive_size)
    if recorded is not None and all(_present_with_size(dest / name, size) for name, size in recorded):
        return [name for name, _ in recorded]

    dest.parent.mkdir(parents=True, exist_ok=True)
    # named for this process: a killed run's is removed here, a concurrent run's left alone
    staging = partial_dir(dest.parent / f"{dest.name}.{archive.name}")
    try:
        files, directories = _extract_missing(archive, dest, staging)
        for name in directories:
            (dest / name).mkdir(parents=True, exist_ok=True)
        for name in files:
            staged = staging / name
            if staged.exists():  # absent when dest already had it
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, dest / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    listing = [[name, size] for name, size in files.items()]
    write_json(record, {"archive": archive.name, "archive_size": archive_size, "files": listing})
    return list(files)


def _extract_missing(archive: Path, dest: Path, staging: Path) -> tuple[dict[str, int], list[str]]:
    """Check every member and extract into `staging` those `dest` lacks; return files (name -> size) and directories."""
    files: dict[str, int] = {}
    directories: list[str] = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = _checked_name(archive, member)
                if name is None:
                    continue
                if member.isdir():
                    directories.append(name)
                    continue
                files[name] = member.size
                if not _present_with_size(dest / name, member.size):
                    tar.extract(member, staging, filter="data")
    except tarfile.FilterError as error:
        raise DataError(
            archive,
            f"tarfile's data filter refused member {error.tarinfo.name!r}: {error}",
            fix="this is not an intact NIH archive: delete it and fetch it again",
        ) from error
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(
            archive,
            f"not a readable .tar.gz archive ({type(error).__name__}: {error}); nothing was extracted",
            fix="the file is truncated or corrupt: delete it and fetch it again",
        ) from error
    return files, directories


def _checked_name(archive: Path, member: tarfile.TarInfo) -> str | None:
    """The member's normalised relative path (None for the archive root `.`); DataError if unsafe."""
    path = PurePosixPath(member.name)
    if path.is_absolute():
        problem = "an absolute path"
    elif ".." in path.parts:
        problem = "a path with a '..' component"
    elif member.issym():
        problem = f"a symbolic link (to {member.linkname!r})"
    elif member.islnk():
        problem = f"a hard link (to {member.linkname!r})"
    elif member.ischr() or member.isblk():
        problem = "a device file"
    elif member.isfifo():
        problem = "a FIFO"
    elif not (member.isreg() or member.isdir()):
        problem = f"of unsupported tar type {member.type!r}"
    else:
        return "/".join(path.parts) or None  # pathlib already dropped "." components
    raise DataError(
        archive,
        f"refusing to extract: member {member.name!r} is {problem}; nothing was written to the destination",
        fix="this is not an intact NIH archive (those hold only images/*.png): delete it and fetch it again",
    )


def _present_with_size(path: Path, size: int) -> bool:
    return path.is_file() and not path.is_symlink() and path.stat().st_size == size


def _recorded_files(record: Path, archive_size: int) -> list[tuple[str, int]] | None:
    """The files listed by an earlier complete extraction of this archive, or None if there is no valid record."""
    try:
        content = json.loads(record.read_text(encoding="utf-8"))
        if content["archive_size"] != archive_size:
            return None
        return [(str(name), int(size)) for name, size in content["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
