"""Stage decode_nih on bad images: quarantined in a listed report with the rest of the store intact, or a failure
naming every bad file; on missing images: a failure, unless source.archives took a subset and they are outside it."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from cxrbench import store
from cxrbench.datasets import nih
from cxrbench.errors import DataError
from cxrbench.stages import decode_nih


@pytest.fixture(scope="module")
def raw_nih(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder whose data/raw/nih is a small synthetic release with one truncated PNG and one non-PNG."""
    from cxrbench.synthetic.nih import write_nih

    project = tmp_path_factory.mktemp("project")
    raw = project / decode_nih.RAW
    write_nih(raw, n_patients=3, max_followups=2, test_fraction=0.34, seed=5, min_prevalence=0.0)
    images = sorted((raw / "images").glob("*.png"))
    assert len(images) >= 4
    images[1].write_bytes(images[1].read_bytes()[:5000])  # cut short
    images[3].write_bytes(b"\xff\xd8\xff\xe0 a JPEG under a PNG name")
    return project


def _params(on_bad_image: str) -> dict:
    return {"decode": {"nih": {"size": 16, "workers": 1, "on_bad_image": on_bad_image}}}


def test_quarantine_lists_bad_images_and_keeps_the_rest(raw_nih: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(raw_nih)
    images = sorted((decode_nih.RAW / "images").glob("*.png"))
    bad = {images[1].name, images[3].name}

    decode_nih.decode(_params("quarantine"))

    quarantined = pd.read_csv(decode_nih.STORE / "quarantine.csv")
    assert set(quarantined["image"]) == bad
    assert "PNG signature is missing" in quarantined.set_index("image").loc[images[3].name, "problem"]
    index = store.read_index(decode_nih.STORE)
    assert dict(zip(index["image"], index["ok"])) == {p.name: int(p.name not in bad) for p in images}
    pixels = store.open_array(store.find_images(decode_nih.STORE))
    for row, name in zip(index["row"], index["image"]):
        expected = np.zeros((16, 16), np.uint8) if name in bad else decode_nih.decode_one((str(images[row]), 16))[0]
        assert np.array_equal(pixels[row], expected), name

    # With `fail`, the error names both files and the quarantined store from before stays as it was.
    before = (decode_nih.STORE / "quarantine.csv").read_bytes(), store.find_images(decode_nih.STORE).read_bytes()
    with pytest.raises(DataError, match="2 images could not be decoded") as caught:
        decode_nih.decode(_params("fail"))
    assert all(name in str(caught.value) for name in bad)
    assert ((decode_nih.STORE / "quarantine.csv").read_bytes(), store.find_images(decode_nih.STORE).read_bytes()) == before


@pytest.fixture
def intact_raw_nih(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The current folder is a project whose data/raw/nih is a small intact synthetic release; its image names."""
    from cxrbench.synthetic.nih import write_nih

    monkeypatch.chdir(tmp_path)
    write_nih(decode_nih.RAW, n_patients=3, max_followups=2, test_fraction=0.34, seed=5, min_prevalence=0.0)
    return sorted(p.name for p in (decode_nih.RAW / "images").glob("*.png"))


def test_a_missing_image_fails_naming_it(intact_raw_nih: list[str]) -> None:
    missing = intact_raw_nih[1]
    (decode_nih.RAW / "images" / missing).unlink()
    with pytest.raises(DataError, match=f"1 images listed in {decode_nih.METADATA} are missing, e.g. {missing}"):
        decode_nih.decode(_params("fail"))
    assert not decode_nih.STORE.exists()


def test_a_subset_of_archives_decodes_only_their_images(intact_raw_nih: list[str],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    subset = intact_raw_nih[::2]
    for name in set(intact_raw_nih) - set(subset):  # in archives source.archives did not select
        (decode_nih.RAW / "images" / name).unlink()
    nih.write_archive_subset(decode_nih.RAW, subset)

    with caplog.at_level(logging.INFO):
        decode_nih.decode(_params("fail"))

    index = store.read_index(decode_nih.STORE)
    assert index["image"].tolist() == subset and index["row"].tolist() == list(range(len(subset)))
    assert index["ok"].eq(1).all()
    assert store.open_array(store.find_images(decode_nih.STORE)).shape == (len(subset), 16, 16)
    assert f"{len(subset)} of {len(intact_raw_nih)} images listed in {decode_nih.METADATA} are in it" in caplog.text

    # An image of a selected archive that is missing still fails.
    (decode_nih.RAW / "images" / subset[0]).unlink()
    with pytest.raises(DataError, match=f"1 images listed in {decode_nih.METADATA} are missing, e.g. {subset[0]}"):
        decode_nih.decode(_params("fail"))


def test_a_worker_that_cannot_open_the_store_fails_the_call(raw_nih: Path, tmp_path: Path) -> None:
    """Workers open the store themselves; if they cannot, the error reaches the caller (a pool initializer
    that raised would make the pool restart workers for ever)."""
    images = sorted((raw_nih / "data/raw/nih/images").glob("*.png"))
    out = store.create(tmp_path / "images_16.npy", (len(images), 16, 16), np.uint8)
    Path(out.filename).unlink()
    with pytest.raises(FileNotFoundError, match="images_16.npy"):
        decode_nih.decode_images(images, 16, 2, out)


@pytest.mark.parametrize("size", [224, 100, 64, 32])
def test_resample_is_area_resampling_up_to_sharp_edges(size):
    """An integer factor is OpenCV's area resampling itself; a non-integer one (halvings first) is within
    1 grey level of it on a smooth film and differs only where an output border splits a halved pixel."""
    rng = np.random.default_rng(size)
    noise = rng.integers(0, 256, (1024, 1024), dtype=np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 8)
    for image in (noise, smooth):
        direct = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        difference = np.abs(decode_nih.resample(image, size).astype(int) - direct)
        if 1024 % size == 0:
            assert difference.max() == 0
        elif image is smooth:
            assert difference.max() <= 1
        else:
            assert 0 < difference.max() < 64  # pure edges: close, not equal
