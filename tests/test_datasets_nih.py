"""NIH ChestX-ray14 readers on the real metadata, lists and images, and on the other published forms
rebuilt from real rows."""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageCms

from cxrbench.datasets import nih
from cxrbench.errors import DataError
from helpers.nih_files import (
    V2020_HEADER,
    kaggle_bytes,
    original_2017_bytes,
    v2020_bytes,
    write,
)

FIRST_EIGHT_TOTALS = [11559, 2776, 13317, 19894, 5782, 6331, 1431, 5302]
BOX_COUNTS = {
    "Atelectasis": 180,
    "Effusion": 153,
    "Cardiomegaly": 146,
    "Infiltration": 123,
    "Pneumonia": 120,
    "Pneumothorax": 98,
    "Mass": 85,
    "Nodule": 79,
}


@pytest.fixture(scope="module")
def v2020(shared_nih) -> pd.DataFrame:
    return nih.read_data_entry(shared_nih / "Data_Entry_2017_v2020.csv")


@pytest.fixture(scope="module")
def real_rows(shared_nih) -> list[list[str]]:
    """The first 300 data rows of the real v2020 file, as fields."""
    lines = (shared_nih / "Data_Entry_2017_v2020.csv").read_text().splitlines()
    return [line.split(",") for line in lines[1:301]]


@pytest.fixture(scope="module")
def manifest(shared_nih) -> pd.DataFrame:
    return pd.read_csv(shared_nih / "images" / "MANIFEST.csv")


def test_real_v2020_file(v2020):
    assert v2020.attrs["form"] == "v2020"
    assert len(v2020) == 112_120 and v2020["image"].is_unique
    assert v2020["patient"].nunique() == 30_805
    assert v2020.dtypes.to_dict() == {
        "image": "str",
        "finding_labels": "str",
        "follow_up": np.int64,
        "patient": np.int64,
        "age_years": np.float64,
        "age_flag": "str",
        "sex": "str",
        "view": "str",
        "orig_width": np.int64,
        "orig_height": np.int64,
        "spacing_x": np.float64,
        "spacing_y": np.float64,
    }
    labels = nih.label_matrix(v2020)
    assert labels.dtype == np.uint8 and labels.shape == (112_120, 14)
    assert labels.sum(axis=0)[:8].tolist() == FIRST_EIGHT_TOTALS
    assert int((labels.sum(axis=1) == 0).sum()) == 60_361 == int((v2020["finding_labels"] == "No Finding").sum())
    assert v2020["age_years"].between(0, 95).all() and (v2020["age_flag"] == "").all()
    assert set(v2020["sex"]) == {"M", "F"} and set(v2020["view"]) == {"PA", "AP"}
    first = v2020.iloc[0]
    assert (first.image, first.follow_up, first.patient, first.orig_width, first.spacing_x) == (
        "00000001_000.png", 0, 1, 2682, 0.14300000000000002
    )


def test_original_2017_form_with_units_and_impossible_ages(tmp_path, real_rows):
    ages = {4: "011M", 5: "005D", 6: "148Y", 7: "414Y"}
    original = nih.read_data_entry(write(tmp_path, "Data_Entry_2017.csv", original_2017_bytes(real_rows, ages)))
    expected = nih.read_data_entry(write(tmp_path, "v2020.csv", v2020_bytes(real_rows)))
    assert original.attrs["form"] == "original_2017" and expected.attrs["form"] == "v2020"
    expected.loc[[4, 5, 6, 7], "age_years"] = [11 / 12, 5 / 365.25, 148.0, 414.0]
    expected.loc[[6, 7], "age_flag"] = "impossible"
    pd.testing.assert_frame_equal(original, expected, check_flags=False)
    assert original["age_flag"].value_counts().to_dict() == {"": 298, "impossible": 2}


def test_original_2017_form_with_patient_sex_column_and_no_row_commas(tmp_path, real_rows):
    data = original_2017_bytes(real_rows, {}, sex_column="Patient Sex", row_comma=False)
    table = nih.read_data_entry(write(tmp_path, "Data_Entry_2017.csv", data))
    expected = nih.read_data_entry(write(tmp_path, "v2020.csv", v2020_bytes(real_rows)))
    assert table.attrs["form"] == "original_2017"
    pd.testing.assert_frame_equal(table, expected, check_flags=False)


@pytest.mark.parametrize("row_comma", [False, True])
def test_kaggle_form(tmp_path, real_rows, row_comma):
    table = nih.read_data_entry(write(tmp_path, "Data_Entry_2017.csv", kaggle_bytes(real_rows, row_comma=row_comma)))
    expected = nih.read_data_entry(write(tmp_path, "v2020.csv", v2020_bytes(real_rows)))
    assert table.attrs["form"] == "kaggle"
    pd.testing.assert_frame_equal(table, expected, check_flags=False)


@pytest.mark.parametrize(
    "row, column, value, message",
    [
        (2, 1, "Cardiomegaly|Pneumonitis", r"line 4: Finding Labels: expected .*, found 'Cardiomegaly\|Pneumonitis'"),
        (0, 1, "No Finding|Effusion", r"line 2: Finding Labels: .*'No Finding\|Effusion'"),
        (3, 5, "X", r"line 5: Patient Gender: expected M or F, found 'X'"),
        (3, 6, "LL", r"line 5: View Position: expected PA or AP, found 'LL'"),
        (1, 4, "58Y", r"line 3: Patient Age: expected an age in whole years"),
        (1, 9, "0.1.4", r"line 3: OriginalImagePixelSpacing\[x: expected a number"),
        (1, 3, "2", r"line 3: Patient ID: expected the patient number in the image name"),
        (4, 0, "00000001_000.png", r"line 2: Image Index: expected each image once\n  line 6: Image Index"),
    ],
)
def test_malformed_fields_are_reported_with_line_numbers(tmp_path, real_rows, row, column, value, message):
    rows = [list(fields) for fields in real_rows]
    rows[row][column] = value
    path = write(tmp_path, "Data_Entry_2017_v2020.csv", v2020_bytes(rows))
    with pytest.raises(DataError, match=message) as caught:
        nih.read_data_entry(path)
    assert caught.value.path == path


@pytest.mark.parametrize("width", [10, 12])
def test_rows_with_a_wrong_field_count_are_rejected(tmp_path, real_rows, width):
    rows = [list(fields) for fields in real_rows]
    rows[2] = (rows[2] + ["extra"])[:width]
    with pytest.raises(DataError, match=f"line 4: expected 11 fields, found {width}"):
        nih.read_data_entry(write(tmp_path, "Data_Entry_2017_v2020.csv", v2020_bytes(rows)))


def test_many_malformed_rows_are_counted_and_the_first_ten_quoted(tmp_path, real_rows):
    rows = [fields[:5] + ["?"] + fields[6:] for fields in real_rows]
    with pytest.raises(DataError, match=r"300 malformed row\(s\):(\n  line \d+: .*){10}\n  \.\.\. and 290 more"):
        nih.read_data_entry(write(tmp_path, "Data_Entry_2017_v2020.csv", v2020_bytes(rows)))


def test_mixed_age_forms_and_bad_headers_are_rejected(tmp_path, real_rows):
    mixed = original_2017_bytes(real_rows, {3: "58"})
    with pytest.raises(DataError, match=r"line 5: Patient Age: expected an age like 058Y"):
        nih.read_data_entry(write(tmp_path, "mixed.csv", mixed))
    renamed = v2020_bytes(real_rows).replace(b"View Position", b"View")
    with pytest.raises(DataError, match="line 1: unexpected header"):
        nih.read_data_entry(write(tmp_path, "renamed.csv", renamed))
    with pytest.raises(DataError, match="no data rows"):
        nih.read_data_entry(write(tmp_path, "empty.csv", V2020_HEADER.encode()))
    with pytest.raises(DataError, match="file not found") as caught:
        nih.read_data_entry(tmp_path / "absent.csv")
    assert nih.DOWNLOAD_URL in str(caught.value)


def test_label_matrix_is_multi_hot_in_label_order():
    labels = ["No Finding", "Hernia|Atelectasis", "Effusion", "Pleural_Thickening|Effusion"]
    table = pd.DataFrame({"finding_labels": labels})
    expected = np.zeros((4, 14), dtype=np.uint8)
    expected[1, [13, 0]] = 1
    expected[2, 2] = 1
    expected[3, [12, 2]] = 1
    np.testing.assert_array_equal(nih.label_matrix(table), expected)
    with pytest.raises(ValueError, match="Pneumonitis"):
        nih.label_matrix(pd.DataFrame({"finding_labels": ["Pneumonitis"]}))


def test_real_bbox_file(shared_nih):
    boxes = nih.read_bbox(shared_nih / "BBox_List_2017.csv")
    assert list(boxes.columns) == ["image", "label", "x", "y", "w", "h"]
    assert len(boxes) == 984 and boxes["image"].nunique() == 880
    assert boxes["label"].value_counts().to_dict() == BOX_COUNTS
    assert set(boxes["label"]) == set(nih.BOX_LABELS) == set(nih.LABELS[:8])
    assert all(boxes[c].dtype == np.float64 for c in "xywh")
    assert boxes["image"].isin(nih.read_split_list(shared_nih / "test_list.txt")).all()
    assert ((boxes["x"] >= 0) & (boxes["x"] + boxes["w"] <= 1024.5)).all()


def test_bbox_errors_name_the_line(tmp_path):
    header = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
    good = "00013118_008.png,Infiltrate,225.08,547.01,86.77,79.18\n"
    table = nih.read_bbox(write(tmp_path, "ok.csv", (header + good).encode()))
    assert table.loc[0, "label"] == "Infiltration"
    with pytest.raises(DataError, match=r"line 3: label: expected one of .*, found 'Lesion'"):
        nih.read_bbox(write(tmp_path, "label.csv", (header + good + good.replace("Infiltrate", "Lesion")).encode()))
    with pytest.raises(DataError, match=r"line 2: h: expected a number, found 'abc'"):
        nih.read_bbox(write(tmp_path, "number.csv", (header + good.replace("79.18", "abc")).encode()))
    with pytest.raises(DataError, match=r"line 2: expected a positive width and height"):
        nih.read_bbox(write(tmp_path, "empty_box.csv", (header + good.replace("86.77", "0")).encode()))


def test_real_split_lists_are_patient_disjoint(shared_nih):
    assert not (shared_nih / "test_list.txt").read_bytes().endswith(b"\n")
    train_val = nih.read_split_list(shared_nih / "train_val_list.txt")
    test = nih.read_split_list(shared_nih / "test_list.txt")
    assert (len(train_val), len(test)) == (86_524, 25_596)
    train_patients, test_patients = {n[:8] for n in train_val}, {n[:8] for n in test}
    assert (len(train_patients), len(test_patients)) == (28_008, 2_797)
    assert not train_patients & test_patients


def test_split_list_tolerates_crlf_and_final_newline_and_rejects_bad_names(tmp_path):
    names = ["00000001_000.png", "00000001_001.png"]
    assert nih.read_split_list(write(tmp_path, "a.txt", b"00000001_000.png\r\n00000001_001.png\r\n")) == names
    assert nih.read_split_list(write(tmp_path, "b.txt", "\n".join(names).encode())) == names
    bad_names = write(tmp_path, "c.txt", b"00000001_000.png\n1_001.png\n\n00000002_000.png")
    with pytest.raises(DataError, match=r"line 2: expected an image name like .*, found '1_001.png'\n  line 3: .*''"):
        nih.read_split_list(bad_names)
    with pytest.raises(DataError, match="line 3: 00000001_000.png already listed on line 1"):
        nih.read_split_list(write(tmp_path, "d.txt", b"00000001_000.png\n00000001_001.png\n00000001_000.png"))
    with pytest.raises(DataError, match="the list is empty"):
        nih.read_split_list(write(tmp_path, "e.txt", b""))


def test_real_images_match_the_manifest_and_decode(shared_nih, manifest):
    assert len(manifest) == 20
    for row in manifest.itertuples():
        path = shared_nih / "images" / row.file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
        image = nih.read_png(path)
        assert image.dtype == np.uint8 and image.shape == (row.height, row.width) == (1024, 1024)
        assert 0 < image.mean() < 255


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1, **options)
    return buffer.getvalue()


def test_rgba_and_icc_variants_decode_to_the_same_grey(tmp_path, shared_nih, manifest, caplog):
    source = shared_nih / "images" / manifest.loc[0, "file"]
    grey = Image.open(source)
    expected = nih.read_png(source)
    opaque = Image.new("L", grey.size, 255)
    rgba = write(tmp_path, "rgba.png", png_bytes(Image.merge("RGBA", [grey, grey, grey, opaque])))
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    icc = write(tmp_path, "icc.png", png_bytes(grey, icc_profile=profile))
    assert Image.open(rgba).mode == "RGBA" and "icc_profile" in Image.open(icc).info
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(nih.read_png(rgba), expected)
        np.testing.assert_array_equal(nih.read_png(icc), expected)
    assert caplog.text == ""


def test_rgba_with_differing_channels_is_converted_with_a_warning(tmp_path, shared_nih, manifest, caplog):
    grey = np.asarray(Image.open(shared_nih / "images" / manifest.loc[0, "file"]))
    red = grey.copy()
    red[:512] //= 2
    rgba = np.dstack([red, grey, grey, np.full_like(grey, 255)])
    path = write(tmp_path, "colour.png", png_bytes(Image.fromarray(rgba, mode="RGBA")))
    with caplog.at_level(logging.WARNING, logger="cxrbench.datasets"):
        image = nih.read_png(path)
    assert "colour channels differ" in caplog.text and str(path) in caplog.text
    np.testing.assert_array_equal(image, cv2.cvtColor(np.dstack([grey, grey, red]), cv2.COLOR_BGR2GRAY))
    assert not np.array_equal(image, grey)


def test_truncated_and_non_png_files_raise(tmp_path, shared_nih, manifest):
    data = (shared_nih / "images" / manifest.loc[0, "file"]).read_bytes()
    for name, content in [("half.png", data[: len(data) // 2]), ("no_end.png", data[:-12])]:
        with pytest.raises(DataError, match="truncated, corrupt or not an image") as caught:
            nih.read_png(write(tmp_path, name, content))
        assert caught.value.path.name == name
    with pytest.raises(DataError, match="not a PNG file"):
        nih.read_png(write(tmp_path, "jpeg.png", cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))[1].tobytes()))
    with pytest.raises(DataError, match="expected an 8-bit image"):
        nih.read_png(write(tmp_path, "deep.png", cv2.imencode(".png", np.zeros((8, 8), np.uint16))[1].tobytes()))


def test_verify_tree_on_the_real_files(shared_nih, manifest):
    assert nih.verify_tree(shared_nih, images=manifest["file"].tolist()) == []


def small_tree(root: Path, shared_nih: Path, manifest: pd.DataFrame) -> dict[str, list[str]]:
    """A consistent NIH copy limited to the 20 real images: metadata rows, lists and PNGs."""
    wanted = set(manifest["file"])
    lines = (shared_nih / "Data_Entry_2017_v2020.csv").read_text().splitlines()
    (root / "Data_Entry_2017_v2020.csv").write_text("\n".join([lines[0]] + [line for line in lines[1:] if line[:16] in wanted]))
    (root / "BBox_List_2017.csv").write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n")
    lists = {split: manifest.loc[manifest["split"] == split, "file"].tolist() for split in ("train_val", "test")}
    for split, names in lists.items():
        (root / f"{split}_list.txt").write_text("\n".join(names))
    (root / "images").mkdir()
    for name in wanted:
        shutil.copyfile(shared_nih / "images" / name, root / "images" / name)
    return lists


def test_require_tree_lists_every_problem(tmp_path, shared_nih, manifest):
    lists = small_tree(tmp_path, shared_nih, manifest)
    assert nih.verify_tree(tmp_path) == []
    (tmp_path / "images" / "00000005_003.png").unlink()
    moved = lists["test"][0]  # a patient-3 image listed in train_val too
    (tmp_path / "train_val_list.txt").write_text("\n".join(lists["train_val"][1:] + [moved]))
    with open(tmp_path / "BBox_List_2017.csv", "a") as handle:
        handle.write("00009999_000.png,Mass,1,2,3,4\n")
    problems = nih.verify_tree(tmp_path)
    assert problems == [
        f"1 images are in both split lists: {moved}",
        "1 patients have images in both split lists: 00000003",
        f"1 metadata images are in neither list: {lists['train_val'][0]}",
        "1 boxed images are not in the metadata: 00009999_000.png",
        f"1 images missing from {tmp_path / 'images'}: 00000005_003.png",
    ]
    assert nih.verify_tree(tmp_path, images=["00000001_000.png"])[-1] != problems[-1]
    assert nih.verify_tree(tmp_path, images=["00000005_003.png", "00000099_000.png"])[-2:] == [
        "1 requested images are not in the metadata: 00000099_000.png",
        f"2 images missing from {tmp_path / 'images'}: 00000005_003.png, 00000099_000.png",
    ]
    (tmp_path / "test_list.txt").write_text("bad name")
    (tmp_path / "Data_Entry_2017_v2020.csv").unlink()
    with pytest.raises(DataError) as caught:
        nih.require_tree(tmp_path)
    message = str(caught.value)
    assert "no metadata file (Data_Entry_2017_v2020.csv or Data_Entry_2017.csv)" in message
    assert "test_list.txt: 1 malformed row(s)" in message and nih.DOWNLOAD_URL in message

