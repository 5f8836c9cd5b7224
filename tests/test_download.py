"""Downloads and extraction against a real HTTP server on 127.0.0.1 started by each test (no internet)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cxrbench
from cxrbench.acquire import download, fetch_nih, safe_extract
from cxrbench.acquire.nih_archives import (
    ARCHIVES,
    METADATA_FILES,
    NIH_BOX_PREFIX,
    NihArchive,
    archive_by_number,
    find_local_copy,
)
from cxrbench.datasets import nih
from cxrbench.errors import DataError

pytestmark = pytest.mark.download

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST = {"retries": 2, "backoff": 0.01, "timeout": 5, "progress": False}


@dataclass
class FileServer:
    """What the test server serves and how it misbehaves; records every request's path and Range header."""

    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    cut_first_reply_after: int | None = None  # close the connection after this many body bytes, once
    content_range_shift: int = 0  # lie about where a partial reply starts
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    def url_of(self, name: str) -> str:
        return f"{self.url}/{name}"


def _handler_for(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            requested_range = self.headers.get("Range")
            server.requests.append((name, requested_range))
            body = server.files.get(name)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if requested_range and server.honour_range:
                start = int(requested_range.removeprefix("bytes=").removesuffix("-"))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                shown = start + server.content_range_shift
                self.send_header("Content-Range", f"bytes {shown}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if server.cut_first_reply_after is not None:
                payload = payload[: server.cut_first_reply_after]
                server.cut_first_reply_after = None
                self.close_connection = True
            self.wfile.write(payload)

    return Handler


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy configured in the environment must not see requests meant for 127.0.0.1."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def fake_png(rng: np.random.Generator, n_bytes: int) -> bytes:
    return PNG_SIGNATURE + rng.integers(0, 256, n_bytes, dtype=np.uint8).tobytes()


def make_tar_gz(members: dict[str, bytes], *, special: Sequence[tarfile.TarInfo] = ()) -> bytes:
    """A .tar.gz holding `members` (regular files) followed by the `special` header-only members.

    Byte-identical on every run: fixed member times and a zero gzip timestamp.
    """
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_500_000_000
            tar.addfile(info, io.BytesIO(data))
        for info in special:
            tar.addfile(info)
    return buffer.getvalue()


def image_members(seed: int, count: int = 3) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {f"images/{seed:08d}_{k:03d}.png": fake_png(rng, 3000) for k in range(count)}


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def free_port() -> int:
    """A port nothing listens on: bound by us for a moment, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_download_verifies_then_extracts(http_server: FileServer, tmp_path: Path) -> None:
    members = image_members(seed=1)
    archive_bytes = make_tar_gz(members)
    http_server.files["a.gz"] = archive_bytes
    dest = tmp_path / "images_001.tar.gz"

    got = download(http_server.url_of("a.gz"), dest, size=len(archive_bytes), md5=md5_of(archive_bytes), **FAST)

    assert got == dest and dest.read_bytes() == archive_bytes
    assert not (tmp_path / "images_001.tar.gz.part").exists()
    assert (tmp_path / "images_001.tar.gz.verified").is_file()
    assert http_server.requests == [("a.gz", None)]
    names = safe_extract(dest, tmp_path / "nih")
    assert names == list(members)
    for name, data in members.items():
        assert (tmp_path / "nih" / name).read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images_001.tar.gz", "images_001.tar.gz.verified", "nih"]


def test_second_download_makes_no_request_and_rehashes_without_marker(http_server: FileServer, tmp_path: Path) -> None:
    data = make_tar_gz(image_members(seed=2))
    http_server.files["a.gz"] = data
    dest = tmp_path / "images_002.tar.gz"
    download(http_server.url_of("a.gz"), dest, size=len(data), md5=md5_of(data), **FAST)
    first_mtime = dest.stat().st_mtime_ns

    download(http_server.url_of("a.gz"), dest, size=len(data), md5=md5_of(data), **FAST)
    (tmp_path / "images_002.tar.gz.verified").unlink()  # a copy placed by hand has no marker: it is hashed
    download(http_server.url_of("a.gz"), dest, size=len(data), md5=md5_of(data), **FAST)

    assert len(http_server.requests) == 1
    assert dest.stat().st_mtime_ns == first_mtime
    assert (tmp_path / "images_002.tar.gz.verified").is_file()

    tampered = bytes([data[0] ^ 0xFF]) + data[1:]
    dest.write_bytes(tampered)  # same size, new mtime: the marker no longer vouches for it
    with pytest.raises(DataError, match="md5: expected"):
        download(http_server.url_of("a.gz"), dest, size=len(data), md5=md5_of(data), **FAST)
    assert dest.read_bytes() == tampered and len(http_server.requests) == 1


def test_existing_file_that_differs_is_reported_and_left_alone(http_server: FileServer, tmp_path: Path) -> None:
    data = make_tar_gz(image_members(seed=3))
    http_server.files["a.gz"] = data
    dest = tmp_path / "images_003.tar.gz"
    tampered = bytes([data[0] ^ 0xFF]) + data[1:]  # same size: only the md5 can tell
    dest.write_bytes(tampered)

    with pytest.raises(DataError, match=r"md5: expected [0-9a-f]{32}, got [0-9a-f]{32}") as caught:
        download(http_server.url_of("a.gz"), dest, size=len(data), md5=md5_of(data), **FAST)

    assert "images_003.tar.gz.part" in str(caught.value)  # tells how to resume if it was unfinished
    assert dest.read_bytes() == tampered
    assert http_server.requests == []


@pytest.mark.parametrize("retries", [1, 0], ids=["retried-in-the-same-call", "resumed-by-a-second-call"])
def test_cut_connection_resumes_with_range(http_server: FileServer, tmp_path: Path, retries: int) -> None:
    data = make_tar_gz(image_members(seed=4, count=6))
    cut = len(data) // 2
    http_server.files["a.gz"] = data
    http_server.cut_first_reply_after = cut
    dest = tmp_path / "images_004.tar.gz"
    options = {**FAST, "retries": retries}

    if retries == 0:
        with pytest.raises(DataError, match="connection closed after"):
            download(http_server.url_of("a.gz"), dest, size=len(data), md5=md5_of(data), **options)
        assert (tmp_path / "images_004.tar.gz.part").read_bytes() == data[:cut]
        assert not dest.exists()
    download(http_server.url_of("a.gz"), dest, size=len(data), md5=md5_of(data), **options)

    assert http_server.requests == [("a.gz", None), ("a.gz", f"bytes={cut}-")]
    assert dest.read_bytes() == data
    assert not (tmp_path / "images_004.tar.gz.part").exists()


def test_server_ignoring_range_restarts_from_zero(http_server: FileServer, tmp_path: Path) -> None:
    data = make_tar_gz(image_members(seed=5, count=6))
    http_server.files["a.gz"] = data
    http_server.honour_range = False
    http_server.cut_first_reply_after = len(data) // 3
    dest = tmp_path / "images_005.tar.gz"

    download(http_server.url_of("a.gz"), dest, size=len(data), md5=md5_of(data), **FAST)

    assert http_server.requests == [("a.gz", None), ("a.gz", f"bytes={len(data) // 3}-")]
    assert dest.read_bytes() == data


def test_part_longer_than_the_archive_starts_over(http_server: FileServer, tmp_path: Path) -> None:
    data = make_tar_gz(image_members(seed=15))
    http_server.files["a.gz"] = data
    (tmp_path / "images_010.tar.gz.part").write_bytes(data + b"junk")

    download(http_server.url_of("a.gz"), tmp_path / "images_010.tar.gz", size=len(data), md5=md5_of(data), **FAST)

    assert http_server.requests == [("a.gz", None)]
    assert (tmp_path / "images_010.tar.gz").read_bytes() == data


def test_complete_part_without_known_size_is_accepted_on_416(http_server: FileServer, tmp_path: Path) -> None:
    data = b"Image Index,Finding Labels\n00000001_000.png,Cardiomegaly\n"
    http_server.files["Data_Entry_2017_v2020.csv"] = data
    dest = tmp_path / "Data_Entry_2017_v2020.csv"
    (tmp_path / "Data_Entry_2017_v2020.csv.part").write_bytes(data)

    download(http_server.url_of("Data_Entry_2017_v2020.csv"), dest, size=None, md5=None, **FAST)

    assert http_server.requests == [("Data_Entry_2017_v2020.csv", f"bytes={len(data)}-")]
    assert dest.read_bytes() == data


def test_wrong_content_range_is_a_data_error(http_server: FileServer, tmp_path: Path) -> None:
    data = make_tar_gz(image_members(seed=6))
    http_server.files["a.gz"] = data
    http_server.content_range_shift = 7
    part = tmp_path / "images_006.tar.gz.part"
    part.write_bytes(data[:100])

    with pytest.raises(DataError, match=r"Content-Range 'bytes 107-"):
        download(http_server.url_of("a.gz"), tmp_path / "images_006.tar.gz", size=len(data), md5=md5_of(data), **FAST)

    assert part.read_bytes() == data[:100]
    assert len(http_server.requests) == 1  # not retried: the server will say the same again


@pytest.mark.parametrize("damage", ["md5", "size"])
def test_corrupt_download_is_kept_aside_and_good_file_untouched(
    http_server: FileServer, tmp_path: Path, damage: str
) -> None:
    good = make_tar_gz(image_members(seed=7))
    second = make_tar_gz(image_members(seed=8))
    served = bytes([second[0] ^ 0xFF]) + second[1:] if damage == "md5" else second[:-10]
    http_server.files.update({"good.gz": good, "bad.gz": served})
    good_dest = tmp_path / "images_007.tar.gz"
    download(http_server.url_of("good.gz"), good_dest, size=len(good), md5=md5_of(good), **FAST)
    good_stat = good_dest.stat()
    dest = tmp_path / "images_008.tar.gz"

    with pytest.raises(DataError) as caught:
        download(http_server.url_of("bad.gz"), dest, size=len(second), md5=md5_of(second), **FAST)

    message = str(caught.value)
    assert "images_008.tar.gz" in message and http_server.url_of("bad.gz") in message
    expected = f"md5: expected {md5_of(second)}, got {md5_of(served)}" if damage == "md5" else (
        f"size: expected {len(second)} bytes, got {len(served)}"
    )
    assert expected in message
    assert (tmp_path / "images_008.tar.gz.corrupt").read_bytes() == served
    assert not dest.exists() and not (tmp_path / "images_008.tar.gz.part").exists()
    assert good_dest.read_bytes() == good and good_dest.stat().st_mtime_ns == good_stat.st_mtime_ns


def test_connection_refused_fails_quickly_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/images_009.gz"
    started = time.monotonic()

    with pytest.raises(DataError, match="after 3 attempt") as caught:
        download(url, tmp_path / "images_009.tar.gz", size=10, md5=None, **FAST)

    assert url in str(caught.value) and "ConnectionRefusedError" in str(caught.value)
    assert time.monotonic() - started < 5
    assert not (tmp_path / "images_009.tar.gz").exists()


def test_http_404_is_not_retried(http_server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="HTTP 404"):
        download(http_server.url_of("missing.gz"), tmp_path / "x.tar.gz", size=None, md5=None, **FAST)
    assert http_server.requests == [("missing.gz", None)]


def test_fetch_nih_uses_base_url_local_copies_and_is_idempotent(http_server: FileServer, tmp_path: Path) -> None:
    first, second = make_tar_gz(image_members(seed=10)), make_tar_gz(image_members(seed=11))
    http_server.files.update({"one.gz": first, "two.gz": second})
    http_server.files.update({name: f"{name} contents\n".encode() for name in METADATA_FILES})
    selection = [
        NihArchive(1, "one.gz", len(first), md5_of(first)),
        NihArchive(2, "two.gz", len(second), md5_of(second)),
    ]
    (tmp_path / "images_01.tar.gz").write_bytes(first)  # saved earlier by the official batch script

    paths = fetch_nih(tmp_path, archives=selection, base_url=http_server.url + "/", progress=False)

    metadata = [tmp_path / name for name in METADATA_FILES]
    assert paths == [tmp_path / "images_01.tar.gz", tmp_path / "images_002.tar.gz", *metadata]
    assert (tmp_path / "images_002.tar.gz").read_bytes() == second
    assert sorted(name for name, _ in http_server.requests) == sorted(["two.gz", *METADATA_FILES])
    assert all(header is None for _, header in http_server.requests)
    count = len(http_server.requests)
    assert fetch_nih(tmp_path, archives=selection, base_url=http_server.url, progress=False) == paths
    assert len(http_server.requests) == count


def test_fetch_nih_without_mirror_needs_metadata_placed_by_hand(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nihcc.app.box.com") as caught:
        fetch_nih(tmp_path, archives=[], progress=False)
    assert all(name in str(caught.value) for name in METADATA_FILES)

    for name in METADATA_FILES:
        (tmp_path / name).write_text("placed\n")
    assert fetch_nih(tmp_path, archives=[], progress=False) == [tmp_path / n for n in METADATA_FILES]


def test_nih_archive_table() -> None:
    assert [a.number for a in ARCHIVES] == list(range(1, 13))
    assert len({a.url_suffix for a in ARCHIVES}) == 12
    assert all(re.fullmatch(r"[0-9a-f]{32}", a.md5) for a in ARCHIVES)
    assert sum(a.size for a in ARCHIVES) == 45_079_862_784
    third = archive_by_number(3)
    assert (third.file_name, third.batch_script_name) == ("images_003.tar.gz", "images_03.tar.gz")
    assert third.url() == NIH_BOX_PREFIX + "f1t00wrtdk94satdfb9olcolqx20z2jp.gz"
    assert third.url("http://mirror.example/nih/") == "http://mirror.example/nih/f1t00wrtdk94satdfb9olcolqx20z2jp.gz"
    with pytest.raises(DataError, match="1 to 12"):
        archive_by_number(13)


def test_find_local_copy_prefers_the_nih_name(tmp_path: Path) -> None:
    archive = archive_by_number(12)
    assert find_local_copy(tmp_path, archive) is None
    (tmp_path / "images_12.tar.gz").write_bytes(b"x")
    assert find_local_copy(tmp_path, archive) == tmp_path / "images_12.tar.gz"
    (tmp_path / "images_012.tar.gz").write_bytes(b"x")
    assert find_local_copy(tmp_path, archive) == tmp_path / "images_012.tar.gz"


def _special(name: str, kind: bytes, link_target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link_target
    return info


def _unsafe_member(kind: str, outside: Path) -> tuple[dict[str, bytes], list[tarfile.TarInfo], str]:
    """(extra regular members, header-only members, the name the error must show) for one kind of attack."""
    if kind == "dotdot":
        return {"images/../../outside.txt": b"escaped"}, [], "images/../../outside.txt"
    if kind == "absolute":
        return {str(outside): b"escaped"}, [], str(outside)
    if kind == "symlink":
        return {}, [_special("images/link.png", tarfile.SYMTYPE, str(outside))], "images/link.png"
    if kind == "hardlink":
        return {}, [_special("images/hard.png", tarfile.LNKTYPE, "images/00000012_000.png")], "images/hard.png"
    return {}, [_special("images/pipe.png", tarfile.FIFOTYPE)], "images/pipe.png"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "fifo"])
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "outside.txt"
    extra, special, bad_name = _unsafe_member(kind, outside)
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(make_tar_gz({**image_members(seed=12, count=2), **extra}, special=special))
    work = tmp_path / "work"
    work.mkdir()

    with pytest.raises(DataError, match="refusing to extract") as caught:
        safe_extract(archive, work / "nih")

    assert "bad.tar.gz" in str(caught.value) and repr(bad_name) in str(caught.value)
    assert not outside.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "work"]
    assert list(work.iterdir()) == []  # neither dest nor the staging directory remain


def test_truncated_archive_leaves_no_partial_tree(tmp_path: Path) -> None:
    data = make_tar_gz(image_members(seed=13, count=8))
    archive = tmp_path / "images_001.tar.gz"
    archive.write_bytes(data[: int(len(data) * 0.8)])
    dest = tmp_path / "nih"

    with pytest.raises(DataError, match="not a readable .tar.gz"):
        safe_extract(archive, dest)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["images_001.tar.gz"]


def test_extraction_removes_the_staging_folder_of_a_killed_run_but_not_of_a_live_one(tmp_path: Path) -> None:
    archive = tmp_path / "images_001.tar.gz"
    archive.write_bytes(make_tar_gz(image_members(seed=15, count=2)))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    prefix = f".nih.{archive.name}.{socket.gethostname()}"
    killed = tmp_path / f"{prefix}.{dead.stdout.strip()}.x1.partial"
    live = tmp_path / f"{prefix}.{os.getpid()}.x2.partial"
    for folder in (killed, live):
        (folder / "images").mkdir(parents=True)
    safe_extract(archive, tmp_path / "nih")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([archive.name, "nih", live.name])


def test_extraction_is_idempotent_and_repairs_missing_or_short_files(tmp_path: Path) -> None:
    members = image_members(seed=14, count=4)
    archive = tmp_path / "images_001.tar.gz"
    archive.write_bytes(make_tar_gz(members))
    dest = tmp_path / "nih"
    names = safe_extract(archive, dest)
    files = [dest / name for name in names]
    inodes = [os.stat(f).st_ino for f in files]

    assert safe_extract(archive, dest) == names  # the record short-cuts: nothing rewritten
    assert [os.stat(f).st_ino for f in files] == inodes

    files[0].unlink()
    files[1].write_bytes(members[names[1]][:100])  # cut short by an interrupted copy
    assert safe_extract(archive, dest) == names
    assert all(f.read_bytes() == members[n] for f, n in zip(files, names))
    assert [os.stat(f).st_ino for f in files[2:]] == inodes[2:]  # same size: skipped, not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images_001.tar.gz", "nih"]


@pytest.fixture(scope="module")
def synthetic_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small synthetic NIH release (metadata + images/) and Google labels for it, written once."""
    from cxrbench.synthetic.google_labels import write_google_labels
    from cxrbench.synthetic.nih import write_nih

    root = tmp_path_factory.mktemp("release")
    write_nih(root / "nih", n_patients=8, max_followups=2, test_fraction=0.25, seed=3, min_prevalence=0.0)
    write_google_labels(root / "google", root / "nih", test_images=2, validation_images=2, all_findings_images=2, seed=3)
    return root / "nih", root / "google"


def _serve_mirror(http_server: FileServer, release: Path, tmp_path: Path) -> tuple[list[bytes], Path]:
    """Serve the release's images as two archives (part1.gz, part2.gz) and its metadata files; return the
    archives and the mirror's archive table."""
    images = sorted((release / "images").glob("*.png"))
    halves = [images[: len(images) // 2], images[len(images) // 2:]]
    archives = [make_tar_gz({f"images/{p.name}": p.read_bytes() for p in half}) for half in halves]
    http_server.files.update({f"part{k}.gz": data for k, data in enumerate(archives, 1)})
    http_server.files.update({name: (release / name).read_bytes() for name in METADATA_FILES})
    table = tmp_path / "mirror_archives.csv"
    table.write_text("number,url_suffix,size,md5\n" + "".join(
        f"{k},part{k}.gz,{len(data)},{md5_of(data)}\n" for k, data in enumerate(archives, 1)))
    return archives, table


def _run_acquire_nih(work: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    from cxrbench import config

    (work / "params.yaml").write_text(config.compose_yaml(overrides))
    env = {**os.environ, "PYTHONPATH": str(Path(cxrbench.__file__).parents[1])}
    return subprocess.run([sys.executable, "-m", "cxrbench.stages.acquire_nih"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)


def test_acquire_nih_stage_downloads_verifies_unpacks_and_reruns_for_free(
    http_server: FileServer, synthetic_release: tuple[Path, Path], tmp_path: Path
) -> None:
    nih_release, google = synthetic_release
    images = sorted((nih_release / "images").glob("*.png"))
    archives, table = _serve_mirror(http_server, nih_release, tmp_path)
    work = tmp_path / "project"
    work.mkdir()
    overrides = ["source=download", "datasets=[nih,google]", f"source.google={google}",
                 f"source.base_url={http_server.url}", f"source.archive_table={table}"]

    wrong_google = _run_acquire_nih(work, [*overrides, f"source.google={tmp_path / 'nothing'}"])
    assert wrong_google.returncode == 2 and "source.google does not point to" in wrong_google.stderr
    assert http_server.requests == [], "a wrong source.google must fail before anything is downloaded"

    first = _run_acquire_nih(work, overrides)
    assert first.returncode == 0, first.stderr
    raw, downloads = work / "data/raw/nih", work / "downloads/nih"
    assert sorted(p.name for p in (raw / "images").iterdir()) == [p.name for p in images]
    assert all((raw / name).read_bytes() == (nih_release / name).read_bytes() for name in METADATA_FILES)
    assert (raw / "images" / images[0].name).stat().st_ino == (downloads / "images" / images[0].name).stat().st_ino
    assert {p.name for p in raw.iterdir()} == {"images", *METADATA_FILES}  # no archives or markers
    manifest = (work / "data/manifests/nih.csv").read_text()
    assert manifest.count(",image\n") == len(images) and "images_001.tar.gz" not in manifest
    assert not (work / "data/raw/google").exists()  # acquire_google's output

    requests = len(http_server.requests)
    second = _run_acquire_nih(work, overrides)
    assert second.returncode == 0, second.stderr
    assert len(http_server.requests) == requests  # everything was there and verified: nothing fetched
    assert (work / "data/manifests/nih.csv").read_text() == manifest

    # The mirror now serves a damaged second archive in place of the one deleted here.
    for suffix in ("", ".verified"):
        (downloads / f"images_002.tar.gz{suffix}").unlink()
    http_server.files["part2.gz"] = bytes(b ^ 0xFF if i == 100 else b for i, b in enumerate(archives[1]))
    third = _run_acquire_nih(work, overrides)
    assert third.returncode == 2
    log = (work / "logs/acquire_nih.log").read_text()
    assert "images_002.tar.gz is corrupt" in log and "must be fetched again" in log
    assert sorted(p.name for p in (raw / "images").iterdir()) == [p.name for p in images]  # the good copy stays


def test_acquire_nih_stage_with_a_subset_links_and_lists_only_the_selected_archives_images(
    http_server: FileServer, synthetic_release: tuple[Path, Path], tmp_path: Path
) -> None:
    nih_release, google = synthetic_release
    images = sorted(p.name for p in (nih_release / "images").glob("*.png"))
    _, table = _serve_mirror(http_server, nih_release, tmp_path)
    work = tmp_path / "project"
    work.mkdir()
    overrides = ["source=download", "datasets=[nih]", f"source.base_url={http_server.url}",
                 f"source.archive_table={table}"]
    assert _run_acquire_nih(work, [*overrides, "source.archives=[1]"]).returncode == 0

    # The download folder keeps archive 1's images; data/raw/nih takes archive 2's alone.
    second = _run_acquire_nih(work, [*overrides, "source.archives=[2]"])
    assert second.returncode == 0, second.stderr
    raw = work / "data/raw/nih"
    assert len(list((work / "downloads/nih/images").iterdir())) == len(images)
    assert sorted(p.name for p in (raw / "images").iterdir()) == images[len(images) // 2:]
    listed = pd.read_csv(raw / nih.ARCHIVE_SUBSET)["image"].tolist()
    assert listed == images[len(images) // 2:]
    assert f"{nih.ARCHIVE_SUBSET},".encode() in (work / "data/manifests/nih.csv").read_bytes()


def test_local_source_with_archives_verifies_and_unpacks_them_once(
    synthetic_release: tuple[Path, Path], tmp_path: Path
) -> None:
    from cxrbench.stages.acquire_nih import prepare_nih

    nih_release, _ = synthetic_release
    images = sorted((nih_release / "images").glob("*.png"))
    halves = [images[:3], images[3:]]
    archives = [make_tar_gz({f"images/{p.name}": p.read_bytes() for p in half}) for half in halves]
    copy = tmp_path / "ChestXray-NIHCC"
    copy.mkdir()
    for name in METADATA_FILES:
        (copy / name).write_bytes((nih_release / name).read_bytes())
    (copy / "images_001.tar.gz").write_bytes(archives[0])  # the NIH site's name
    (copy / "images_02.tar.gz").write_bytes(archives[1])  # the batch script's name
    table = tmp_path / "archives.csv"
    table.write_text("number,url_suffix,size,md5\n" + "".join(
        f"{k},unused,{len(data)},{md5_of(data)}\n" for k, data in enumerate(archives, 1)))
    source = {"kind": "local", "nih": str(copy), "archives": None, "base_url": None, "archive_table": str(table)}

    assert prepare_nih(source) == (copy, None)
    assert sorted(p.name for p in (copy / "images").iterdir()) == [p.name for p in images]
    unpacked_at = (copy / "images" / images[0].name).stat().st_mtime_ns
    assert prepare_nih(source) == (copy, None)
    assert (copy / "images" / images[0].name).stat().st_mtime_ns == unpacked_at  # not unpacked again

    damaged = copy / "images_02.tar.gz"
    damaged.write_bytes(archives[1][:100] + bytes([archives[1][100] ^ 0xFF]) + archives[1][101:])  # same size
    os.utime(damaged, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new modification time
    with pytest.raises(DataError, match="images_02.tar.gz does not match"):
        prepare_nih(source)


def test_download_of_a_subset_fetches_and_checks_only_those_archives(
    http_server: FileServer, synthetic_release: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from cxrbench.stages.acquire_nih import prepare_nih

    nih_release, _ = synthetic_release
    images = sorted((nih_release / "images").glob("*.png"))
    _, table = _serve_mirror(http_server, nih_release, tmp_path)
    folder = tmp_path / "downloads"
    source = {"kind": "download", "nih": str(folder), "archives": [2], "base_url": http_server.url,
              "archive_table": str(table)}

    second_half = [p.name for p in images[len(images) // 2:]]
    assert prepare_nih(source) == (folder, second_half)
    assert sorted(name for name, _ in http_server.requests) == sorted(["part2.gz", *METADATA_FILES])
    assert sorted(p.name for p in (folder / "images").iterdir()) == second_half
    assert "selects 1 archive(s)" in caplog.text

    with pytest.raises(DataError, match=r"archive\(s\) \[3\], which the archive table does not list"):
        prepare_nih({**source, "archives": [2, 3]})
