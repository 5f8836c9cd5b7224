"""Mini-JSRT readers against small zips built in the documented archive layouts."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from cxrbench.datasets import mini_jsrt
from cxrbench.errors import DataError

RNG_SEED = 11


def encode(pixels: np.ndarray, suffix: str = ".png") -> bytes:
    ok, data = cv2.imencode(suffix, pixels)
    assert ok
    return data.tobytes()


def images(count: int, seed: int = RNG_SEED) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(24, 32), dtype=np.uint8) for _ in range(count)]


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def lung_label(seed: int) -> np.ndarray:
    label = np.zeros((24, 32), dtype=np.uint8)
    label[4 + seed : 20, 3 : 12 + seed] = 255
    return label


@pytest.fixture
def segmentation01(tmp_path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    names = ["10", "2", "1"]  # stored out of natural order on purpose
    pairs = {name: (image, lung_label(i)) for i, (name, image) in enumerate(zip(names, images(3)))}
    members = {"Segmentation01/": b"", "__MACOSX/Segmentation01/train/org/._1.png": b"junk"}
    for name, (image, label) in pairs.items():
        members[f"Segmentation01/train/org/{name}.png"] = encode(image)
        members[f"Segmentation01/train/label/{name}.png"] = encode(label)
    members["Segmentation01/test/org/0.png"] = encode(images(1, seed=5)[0])
    members["Segmentation01/test/label/0.png"] = encode(lung_label(0))
    return write_zip(tmp_path / "Segmentation01.zip", members), pairs


def test_segmentation01_yields_pairs_in_natural_order(segmentation01):
    path, pairs = segmentation01
    read = list(mini_jsrt.iter_segmentation01(path, "train"))
    assert [name for name, _, _ in read] == ["1", "2", "10"]
    for name, image, label in read:
        np.testing.assert_array_equal(image, pairs[name][0])
        assert label.dtype == np.uint8
        np.testing.assert_array_equal(label, (pairs[name][1] > 0).astype(np.uint8))
    assert [name for name, _, _ in mini_jsrt.iter_segmentation01(path, "test")] == ["0"]
    with pytest.raises(ValueError):
        mini_jsrt.iter_segmentation01(path, "validation")


def test_segmentation01_rejects_unpaired_and_non_binary_labels(tmp_path):
    image, label = images(1)[0], lung_label(0)
    unpaired = write_zip(
        tmp_path / "unpaired.zip",
        {"Segmentation01/train/org/1.png": encode(image), "Segmentation01/train/label/2.png": encode(label)},
    )
    with pytest.raises(DataError, match="2 images in .* lack a partner: 1, 2"):
        list(mini_jsrt.iter_segmentation01(unpaired, "train"))
    grey_label = label.copy()
    grey_label[0, 0] = 128
    three_values = write_zip(
        tmp_path / "three.zip",
        {"Segmentation01/train/org/1.png": encode(image), "Segmentation01/train/label/1.png": encode(grey_label)},
    )
    with pytest.raises(DataError, match=r"expected a binary label .* \[0, 128, 255\]") as caught:
        list(mini_jsrt.iter_segmentation01(three_values, "train"))
    assert caught.value.path == three_values / "Segmentation01/train/label/1.png"
    with pytest.raises(DataError, match="no images under Segmentation01/test/org"):
        list(mini_jsrt.iter_segmentation01(three_values, "test"))
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    with pytest.raises(DataError, match="not a readable zip archive"):
        list(mini_jsrt.iter_segmentation01(tmp_path / "broken.zip", "train"))


def test_segmentation02_maps_label_values_to_class_ids(tmp_path):
    image = images(1)[0]
    label = np.zeros((24, 32), dtype=np.uint8)
    label[:, 8:16], label[:, 16:24], label[:, 24:] = 85, 170, 255
    root = "segmentation02/segmentation"
    path = write_zip(
        tmp_path / "segmentation02.zip",
        {f"{root}/org_test/case7.bmp": encode(image, ".bmp"), f"{root}/label_test/case7.png": encode(label)},
    )
    [(name, read_image, classes)] = list(mini_jsrt.iter_segmentation02(path, "test"))
    assert name == "case7"
    np.testing.assert_array_equal(read_image, image)
    expected = np.zeros((24, 32), dtype=np.uint8)
    expected[:, 8:16], expected[:, 16:24], expected[:, 24:] = 1, 2, 3
    np.testing.assert_array_equal(classes, expected)
    assert mini_jsrt.SEGMENTATION02_CLASSES[3] == "lung" and mini_jsrt.SEGMENTATION02_CLASSES[1] == "heart"
    label[0, 0] = 100
    bad = write_zip(
        tmp_path / "bad.zip",
        {f"{root}/org_train/1.bmp": encode(image, ".bmp"), f"{root}/label_train/1.png": encode(label)},
    )
    with pytest.raises(DataError, match=r"label values \[100\] are not among \(0, 85, 170, 255\)"):
        list(mini_jsrt.iter_segmentation02(bad, "train"))
    mismatched = write_zip(
        tmp_path / "mismatched.zip",
        {f"{root}/org_train/1.bmp": encode(image, ".bmp"), f"{root}/label_train/1.png": encode(label[:10])},
    )
    with pytest.raises(DataError, match="label is 32 x 10, its image 32 x 24"):
        list(mini_jsrt.iter_segmentation02(mismatched, "train"))


def classified_zip(path: Path, root: str, classes: list[str], per_class: int = 2) -> dict[str, np.ndarray]:
    members, written = {f"{root}/": b"", f"{root}/train/.DS_Store": b"x"}, {}
    pixels = iter(images(2 * len(classes) * per_class))
    for split in ("test", "train"):
        for cls in classes:
            for index in range(per_class):
                name = f"{root}/{split}/{cls}/{index}.png"
                written[name] = next(pixels)
                members[name] = encode(written[name])
    write_zip(path, members)
    return written


def test_gender01_entries_take_their_class_from_the_folder(tmp_path):
    path = tmp_path / "Gender01.zip"
    written = classified_zip(path, "Gender01", ["male", "female"])
    entries = mini_jsrt.list_gender01(path)
    assert [(e.split, e.class_name, e.class_id) for e in entries] == [
        ("train", "female", 0), ("train", "female", 0), ("train", "male", 1), ("train", "male", 1),
        ("test", "female", 0), ("test", "female", 0), ("test", "male", 1), ("test", "male", 1),
    ]  # fmt: skip
    assert entries[0].member == "Gender01/train/female/0.png"
    for (image, class_id), entry in zip(mini_jsrt.iter_classified(path, entries), entries, strict=True):
        np.testing.assert_array_equal(image, written[entry.member])
        assert class_id == entry.class_id


def test_directions01_has_four_classes_and_both_splits_must_agree(tmp_path):
    path = tmp_path / "Directions01.zip"
    classified_zip(path, "Directions01", ["up", "down", "left", "right"], per_class=1)
    entries = mini_jsrt.list_directions01(path)
    assert {(e.class_name, e.class_id) for e in entries} == {("down", 0), ("left", 1), ("right", 2), ("up", 3)}
    assert [e.split for e in entries].count("test") == 4
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("Directions01/train/upside/0.png", encode(images(1)[0]))
    with pytest.raises(DataError, match="same classes in both splits"):
        mini_jsrt.list_directions01(path)
    with pytest.raises(DataError, match="same classes in both splits"):
        mini_jsrt.list_gender01(path)  # no Gender01/ folder in this archive


def test_verify_archive_detects_a_mismatch(segmentation01):
    path, _ = segmentation01
    published = mini_jsrt.PUBLISHED_SHA256["Segmentation01.zip"]
    with pytest.raises(DataError, match=f"differs from the published {published}"):
        mini_jsrt.verify_archive(path)
    renamed = path.rename(path.with_name("SEGMENTATION02.ZIP"))  # looked up by name, any capitalisation
    with pytest.raises(DataError, match="f1432af4fcbd69342cf1bf2ca3d0d43b9535cdc6b160b86191b5b67de2fdbf3c"):
        mini_jsrt.verify_archive(renamed)
    other = renamed.rename(renamed.with_name("Gender01.zip"))
    with pytest.raises(DataError, match="no published sha256"):
        mini_jsrt.verify_archive(other)
    with pytest.raises(DataError, match="archive not found"):
        mini_jsrt.verify_archive(path)


def test_published_digests_match_datasets_md(shared_nih):
    datasets_md = shared_nih.parents[1] / "docs" / "DATASETS.md"
    if not datasets_md.is_file():
        pytest.skip(f"{datasets_md} not found")
    text = " ".join(datasets_md.read_text().split())
    for name, digest in mini_jsrt.PUBLISHED_SHA256.items():
        stem = re.escape(name.removesuffix(".zip"))
        assert re.search(rf"`{stem}\.zip` \([^)]*sha256 {digest}\)", text), name
