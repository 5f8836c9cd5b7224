"""source=gcs: copying NIH PNGs from a bucket, run on fsspec's in-memory filesystem (no network, no gcsfs)."""

from __future__ import annotations

import sys
from pathlib import Path

import fsspec
import pytest

from cxrbench.acquire import gcs
from cxrbench.errors import DataError


@pytest.fixture
def bucket() -> fsspec.AbstractFileSystem:
    """An in-memory `bucket/png/` holding three images (fresh for each test)."""
    fs = fsspec.filesystem("memory")
    fs.rm("/", recursive=True)  # the memory filesystem is shared by the whole process
    for k in range(3):
        fs.pipe(f"/bucket/png/00000001_00{k}.png", f"png {k}".encode())
    return fs


def test_copy_images_copies_what_is_missing_then_nothing(bucket: fsspec.AbstractFileSystem, tmp_path: Path) -> None:
    names = [f"00000001_00{k}.png" for k in range(3)]
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / names[0]).write_bytes(b"already here")

    gcs.copy_images(bucket, "/bucket", names, tmp_path, progress=False)

    assert [(tmp_path / "images" / n).read_bytes() for n in names] == [b"already here", b"png 1", b"png 2"]
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == names  # no .part left
    bucket.rm("/bucket/png", recursive=True)
    gcs.copy_images(bucket, "/bucket", names, tmp_path, progress=False)  # all present: the bucket is not read


def test_missing_objects_are_named_and_the_rest_copied(bucket: fsspec.AbstractFileSystem, tmp_path: Path) -> None:
    names = ["00000001_000.png", "00000009_000.png", "00000001_002.png"]
    with pytest.raises(DataError, match=r"1 images .* not in the bucket /bucket: /bucket/png/00000009_000.png"):
        gcs.copy_images(bucket, "/bucket", names, tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["00000001_000.png", "00000001_002.png"]


def test_billing_project_from_config_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(DataError, match="(?s)Requester Pays.*source.billing_project=<project id> or .*GOOGLE_CLOUD_PROJECT"):
        gcs.billing_project(None)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-env")
    assert gcs.billing_project(None) == "from-env"
    assert gcs.billing_project("configured") == "configured"


def test_missing_gcsfs_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # makes `import gcsfs` fail as when it is not installed
    with pytest.raises(DataError, match=r"pip install 'cxrbench\[gcs\]'"):
        gcs.open_bucket("project")


def test_metadata_must_be_placed_by_hand(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="(?s)bucket holds only images.*nihcc.app.box.com"):
        gcs.fetch_nih_png(tmp_path, bucket=gcs.NIH_BUCKET, project="p", progress=False)


def test_acquire_nih_gcs_source_fills_the_folder_from_the_bucket(
    bucket: fsspec.AbstractFileSystem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxrbench.stages.acquire_nih import prepare_nih
    from cxrbench.synthetic.nih import write_nih

    release, folder = tmp_path / "release", tmp_path / "downloads"
    write_nih(release, n_patients=2, max_followups=2, test_fraction=0.5, seed=1, min_prevalence=0.0)
    folder.mkdir()
    for metadata in release.glob("*.*"):  # placed by hand: the bucket has none
        (folder / metadata.name).write_bytes(metadata.read_bytes())
    for image in (release / "images").iterdir():
        bucket.pipe(f"/{gcs.NIH_BUCKET}/png/{image.name}", image.read_bytes())
    billed = []
    monkeypatch.setattr(gcs, "open_bucket", lambda project: billed.append(project) or bucket)
    source = {"kind": "gcs", "nih": str(folder), "bucket": f"/{gcs.NIH_BUCKET}", "billing_project": "my-project"}

    assert prepare_nih(source) == (folder, None)
    assert billed == ["my-project"]
    assert {p.name: p.read_bytes() for p in (folder / "images").iterdir()} == {
        p.name: p.read_bytes() for p in (release / "images").iterdir()}
