"""JSRT readers against files written in the documented formats (the real data needs registration)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from cxrbench.datasets import jsrt
from cxrbench.errors import DataError

# DATASETS.md's example rows, with the reported quirks: tab fields, a record running into the next with no
# line break (JPCLN002 -> JPCLN003), diagnosis spilling into an extra tab field, `?` age, runs of spaces,
# capitalised sex/malignancy, a cp932 ideographic space and a byte that decodes in neither UTF-8 nor cp932.
NODULE_BYTES = (
    b"JPCLN001.IMG\t5\t15\t53\tmale\t1634\t692\tmalignant\tl.upper lobe\tlung cancer\r\n"
    b"JPCLN002.IMG\t5\t30\t78\tfemale\t1614\t1090\tbenign\tl.upper lobe(S5)\tpulmonary hematoma"
    b"JPCLN003.IMG\t5\t30\t63\tfemale\t1303\t447\tmalignant\tl.upper lobe(S1+2)\tlung cancer\r\n"
    b"JPCLN004.IMG\t2\t12\t?\tmale\t400\t1500\tbenign\tr.lower lobe\tInflammatory\tmass\r\n"
    b"JPCLN005.IMG  3 \t 8.5   61\tFemale\t900   1200\tMalignant\tr.upper lobe\tlung  cancer\x81\x40\r\n"
    b"JPCLN006.IMG\t1\t10\t70\tmale\t1000\t1000\tbenign\tr.middle lobe\tgranuloma \x85\r\n"
)
NON_NODULE_BYTES = b"JPCNN001.IMG    37    male    non-nodule\r\nJPCNN002.IMG  ?   female     non-nodule"
SUBSET = ("JPCLN001", "JPCLN002", "JPCLN003", "JPCLN004", "JPCLN005", "JPCLN006", "JPCNN001", "JPCNN002")


def write_metadata(folder: Path, nodule: bytes = NODULE_BYTES, non_nodule: bytes = NON_NODULE_BYTES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / jsrt.NODULE_METADATA).write_bytes(nodule)
    (folder / jsrt.NON_NODULE_METADATA).write_bytes(non_nodule)


def write_raw(path: Path, raw: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw.astype(jsrt.RAW_DTYPE).tofile(path)


def write_dicom(path: Path, stored: np.ndarray, photometric: str, bits_stored: int = 12) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path.name), photometric])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Rows, dataset.Columns = stored.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated = 16
    dataset.BitsStored = bits_stored
    dataset.HighBit = bits_stored - 1
    dataset.PixelRepresentation = 0
    dataset.PixelData = stored.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="module")
def raw_image() -> np.ndarray:
    return np.random.default_rng(7).integers(0, jsrt.MAX_VALUE + 1, size=(jsrt.SIZE, jsrt.SIZE), dtype=np.uint16)


def test_cases_constants():
    assert len(jsrt.CASES) == 247 and len(set(jsrt.CASES)) == 247
    assert jsrt.CASES[0] == "JPCLN001" and jsrt.CASES[153] == "JPCLN154"
    assert jsrt.CASES[154] == "JPCNN001" and jsrt.CASES[-1] == "JPCNN093"
    assert jsrt.PIXEL_MM == 0.175 and jsrt.RAW_BYTES == 8_388_608


def test_read_raw_returns_native_values_and_display_inverts(tmp_path, raw_image):
    path = tmp_path / "JPCLN001.IMG"
    write_raw(path, raw_image)
    assert path.stat().st_size == 8_388_608
    image = jsrt.read_raw(path)
    assert image.dtype == np.uint16 and image.dtype.isnative and image.shape == (2048, 2048)
    np.testing.assert_array_equal(image, raw_image)
    display = jsrt.to_display(image)
    assert display.dtype == np.uint16
    np.testing.assert_array_equal(display.astype(np.int32), 4095 - raw_image.astype(np.int32))
    np.testing.assert_array_equal(jsrt.read_image(path), display)


def test_read_raw_rejects_wrong_size(tmp_path):
    path = tmp_path / "JPCLN001.IMG"
    path.write_bytes(b"\0" * 1000)
    with pytest.raises(DataError, match=r"8,388,608 bytes, got 1,000 bytes") as caught:
        jsrt.read_raw(path)
    assert caught.value.path == path


def test_values_above_4095_raise_or_clip_with_a_warning(tmp_path, raw_image, caplog):
    corrupt = raw_image.copy()
    corrupt[0, :3] = [4096, 5000, 65535]
    path = tmp_path / "JPCLN002.IMG"
    write_raw(path, corrupt)
    with pytest.raises(DataError, match="3 pixels exceed"):
        jsrt.read_raw(path)
    with caplog.at_level(logging.WARNING, logger="cxrbench.datasets.jsrt"):
        clipped = jsrt.read_raw(path, clip=True)
    assert "clipped 3 pixels" in caplog.text
    assert clipped.max() == 4095 and (clipped[0, :3] == 4095).all()
    np.testing.assert_array_equal(clipped[1:], raw_image[1:])


def test_to_display_rejects_values_outside_12_bits():
    with pytest.raises(ValueError):
        jsrt.to_display(np.array([[4096]], dtype=np.uint16))
    with pytest.raises(ValueError):
        jsrt.to_display(np.array([[1]], dtype=np.int32))


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_read_dicom_gives_display_convention(tmp_path, raw_image, photometric):
    display = jsrt.to_display(raw_image)
    # MONOCHROME1 stores high values as dark, like the raw file; MONOCHROME2 stores what is displayed.
    stored = raw_image if photometric == "MONOCHROME1" else display
    path = tmp_path / "JPCLN001.dcm"
    write_dicom(path, stored, photometric)
    image = jsrt.read_dicom(path)
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, display)
    np.testing.assert_array_equal(jsrt.read_image(path), display)


def test_read_dicom_rejects_bad_files(tmp_path):
    not_dicom = tmp_path / "JPCLN001.dcm"
    not_dicom.write_bytes(b"plain text, not DICOM")
    with pytest.raises(DataError, match="cannot be read as DICOM"):
        jsrt.read_dicom(not_dicom)
    small = tmp_path / "JPCLN002.dcm"
    write_dicom(small, np.zeros((16, 16), dtype=np.uint16), "MONOCHROME2")
    with pytest.raises(DataError, match=r"2048 x 2048.*\(16, 16\)"):
        jsrt.read_dicom(small)
    colour = tmp_path / "JPCLN003.dcm"
    write_dicom(colour, np.zeros((16, 16), dtype=np.uint16), "PALETTE COLOR")
    with pytest.raises(DataError, match="MONOCHROME1 or MONOCHROME2"):
        jsrt.read_dicom(colour)


def test_read_metadata_handles_every_documented_quirk(tmp_path):
    write_metadata(tmp_path)
    table = jsrt.read_metadata(tmp_path)
    assert table["case"].tolist() == list(SUBSET)
    assert table.dtypes.to_dict() == {
        "case": "str",
        "nodule": np.dtype(bool),
        "subtlety": "Int64",
        "size_mm": np.dtype(float),
        "age": "Int64",
        "sex": "str",
        "x": "Int64",
        "y": "Int64",
        "malignancy": "str",
        "location": "str",
        "diagnosis": "str",
    }
    rows = table.set_index("case")
    first = rows.loc["JPCLN001"]
    assert (first.subtlety, first.size_mm, first.age, first.sex, first.x, first.y) == (5, 15.0, 53, "male", 1634, 692)
    assert (first.malignancy, first.location, first.diagnosis) == ("malignant", "l.upper lobe", "lung cancer")
    # JPCLN002 ran into JPCLN003 without a line break: both records are intact.
    assert rows.loc["JPCLN002", "diagnosis"] == "pulmonary hematoma"
    assert rows.loc["JPCLN002", "location"] == "l.upper lobe(S5)"
    assert (rows.loc["JPCLN003", "x"], rows.loc["JPCLN003", "y"], rows.loc["JPCLN003", "age"]) == (1303, 447, 63)
    # The diagnosis spilling into a second tab field is joined back; `?` age is NA.
    assert rows.loc["JPCLN004", "diagnosis"] == "Inflammatory mass"
    assert pd.isna(rows.loc["JPCLN004", "age"])
    # Runs of spaces between fields, capitals, and a cp932 ideographic space at the end of the text.
    fifth = rows.loc["JPCLN005"]
    assert (fifth.subtlety, fifth.size_mm, fifth.age, fifth.sex, fifth.x, fifth.y) == (3, 8.5, 61, "female", 900, 1200)
    assert (fifth.malignancy, fifth.diagnosis) == ("malignant", "lung cancer")
    assert rows.loc["JPCLN006", "diagnosis"] == "granuloma \ufffd"  # undecodable byte kept visible
    # Non-nodule cases: nodule fields NA, `?` age NA.
    assert not rows.loc["JPCNN001", "nodule"] and rows.loc["JPCNN001", "age"] == 37
    assert rows.loc["JPCNN002", "sex"] == "female" and pd.isna(rows.loc["JPCNN002", "age"])
    non_nodule = table[~table["nodule"]]
    for column in ("subtlety", "size_mm", "x", "y", "malignancy", "location", "diagnosis"):
        assert non_nodule[column].isna().all(), column
    assert table["nodule"].sum() == 6


def test_read_metadata_accepts_other_capitalisations_in_subfolders(tmp_path):
    folder = tmp_path / "Clinical_Information"
    folder.mkdir()
    (folder / "clndat_en.TXT").write_bytes(NODULE_BYTES)
    (folder / "cnndat_en.txt").write_bytes(NON_NODULE_BYTES)
    assert len(jsrt.read_metadata(tmp_path)) == len(SUBSET)


@pytest.mark.parametrize(
    "nodule, message",
    [
        (NODULE_BYTES.replace(b"JPCLN004.IMG\t2", b"JPCLN004.IMG\t7"), r"line 3: cannot parse record 'JPCLN004"),
        (NODULE_BYTES + NODULE_BYTES.split(b"\r\n")[0], r"line 6: JPCLN001 already described on line 1"),
        (NODULE_BYTES.replace(b"\t1634\t", b"\t2048\t"), r"line 1: nodule centre \(2048, 692\) lies outside"),
        (b"file\tsubtlety\r\n" + NODULE_BYTES, r"line 1: expected a record starting with a JSRT file name"),
        (NODULE_BYTES.replace(b"JPCLN006", b"JPCNN006"), r"line 5: cannot parse record 'JPCNN006"),
    ],
)
def test_read_metadata_rejects_malformed_records_with_line_numbers(tmp_path, nodule, message):
    write_metadata(tmp_path, nodule=nodule)
    with pytest.raises(DataError, match=message) as caught:
        jsrt.read_metadata(tmp_path)
    assert caught.value.path.name == jsrt.NODULE_METADATA


def test_read_metadata_requires_both_files(tmp_path):
    write_metadata(tmp_path)
    (tmp_path / jsrt.NON_NODULE_METADATA).unlink()
    with pytest.raises(DataError, match="CNNDAT_EN.TXT not found") as caught:
        jsrt.read_metadata(tmp_path)
    assert "db.jsrt.or.jp" in str(caught.value)


def make_tree(root: Path, cases: tuple[str, ...] = SUBSET) -> Path:
    """A raw-distribution JSRT copy of `cases`: right-sized images and the metadata files."""
    images = root / "All247images"
    images.mkdir(parents=True, exist_ok=True)
    for stem in cases:
        with open(images / f"{stem}.IMG", "wb") as handle:
            handle.truncate(jsrt.RAW_BYTES)  # sparse: the right size without writing 8 MiB
    write_metadata(root / "Clinical_Information")
    return root


def test_verify_tree_accepts_a_complete_copy_of_the_expected_cases(tmp_path):
    make_tree(tmp_path)
    assert jsrt.verify_tree(tmp_path, SUBSET) == []
    jsrt.require_tree(tmp_path, SUBSET)
    assert list(jsrt.find_images(tmp_path)) == list(SUBSET)


def test_require_tree_lists_every_problem_and_where_to_register(tmp_path):
    make_tree(tmp_path)
    images = tmp_path / "All247images"
    (images / "JPCLN002.IMG").unlink()
    (images / "JPCLN003.IMG").write_bytes(b"\0" * 10)
    (images / "JPCLN099.IMG").write_bytes(b"")
    (tmp_path / "Clinical_Information" / jsrt.NON_NODULE_METADATA).unlink()
    problems = jsrt.verify_tree(tmp_path, SUBSET)
    assert len(problems) == 4
    assert "1 raw images missing: JPCLN002" in problems[0]
    assert "1 raw images not in the expected case list: JPCLN099" in problems[1]
    assert "JPCLN003.IMG: expected 8,388,608 bytes (2048 x 2048 x 2), got 10" in problems[2]
    assert "CNNDAT_EN.TXT not found" in problems[3]
    with pytest.raises(DataError) as caught:
        jsrt.require_tree(tmp_path, SUBSET)
    message = str(caught.value)
    assert "4 problem(s)" in message and all(problem in message for problem in problems)
    assert "http://db.jsrt.or.jp/eng.php" in message


def test_verify_tree_names_a_byte_swapped_image_and_tells_it_from_a_few_stray_values(tmp_path, raw_image):
    make_tree(tmp_path)
    image = tmp_path / "All247images" / "JPCLN002.IMG"
    raw_image.astype("<u2").tofile(image)  # the same values, little-endian, as some converters write them
    problems = jsrt.verify_tree(tmp_path, SUBSET)
    assert len(problems) == 1 and problems[0].startswith(f"{image}: ") and "byte order" in problems[0], problems
    assert "sampled pixels exceed the 12-bit maximum 4095 (largest " in problems[0]
    assert "np.fromfile(f, '<u2').astype('>u2').tofile(f)" in problems[0]
    with pytest.raises(DataError, match="byte order"):
        jsrt.require_tree(tmp_path, SUBSET)
    np.fromfile(image, "<u2").astype(">u2").tofile(image)  # the fix the message gives
    assert jsrt.verify_tree(tmp_path, SUBSET) == []
    stray = raw_image.copy()
    stray[0, :3] = [4096, 5000, 65535]  # row 0 is sampled
    write_raw(image, stray)
    problems = jsrt.verify_tree(tmp_path, SUBSET)
    assert len(problems) == 1 and "3 of 16,384 sampled pixels exceed" in problems[0] and "(largest 65535)" in problems[0]
    assert "too few for a byte swap" in problems[0] and "byte-swapped" not in problems[0]


def test_verify_tree_against_all_247_cases_reports_the_missing_ones(tmp_path):
    make_tree(tmp_path)
    problems = jsrt.verify_tree(tmp_path)
    assert problems[0].startswith("239 raw images missing: JPCLN007, JPCLN008")
    assert problems[1].startswith("CLNDAT_EN.txt: 148 expected cases not described: JPCLN007")
    assert problems[2].startswith("CNNDAT_EN.TXT: 91 expected cases not described: JPCNN003")
    assert jsrt.verify_tree(tmp_path / "absent") == [f"{tmp_path / 'absent'}: folder not found"]


def test_verify_tree_accepts_the_dicom_distribution(tmp_path, raw_image):
    cases = ("JPCLN001", "JPCNN001")
    for stem in cases:
        write_dicom(tmp_path / "Nodule154images" / f"{stem}.dcm", raw_image, "MONOCHROME1")
    write_metadata(tmp_path)
    assert jsrt.verify_tree(tmp_path, cases) == []
    found = jsrt.find_images(tmp_path)
    assert [path.suffix for path in found.values()] == [".dcm", ".dcm"]
    np.testing.assert_array_equal(jsrt.read_image(found["JPCNN001"]), jsrt.to_display(raw_image))
    write_dicom(tmp_path / "Nodule154images" / "JPCNN001.dcm", np.zeros((8, 8), np.uint16), "MONOCHROME1")
    assert jsrt.verify_tree(tmp_path, cases) == [
        f"{tmp_path / 'Nodule154images' / 'JPCNN001.dcm'}: expected 2048 x 2048 pixels, the header says 8 x 8"
    ]


def test_find_images_rejects_duplicate_copies(tmp_path):
    make_tree(tmp_path, ("JPCLN001",))
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "jpcln001.img").write_bytes(b"")
    with pytest.raises(DataError, match="1 cases have more than one image file"):
        jsrt.find_images(tmp_path)
    assert any("JPCLN001 has 2 raw files" in p for p in jsrt.verify_tree(tmp_path, ("JPCLN001",)))
