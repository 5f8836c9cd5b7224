"""Google expert-label readers on the real files, and the majority rule behind the all-findings labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cxrbench.datasets import google_labels as google
from cxrbench.datasets import nih
from cxrbench.errors import DataError

FOUR = "google_expert_labels/four_findings_expert_labels"
ALL = "google_expert_labels/all_findings_expert_labels"
ALL_HEADER = "Image ID,Patient ID,Reader ID,Abnormal," + ",".join(
    label.replace("_", " ") for label in google.ALL_FINDINGS
)


@pytest.fixture(scope="module")
def all_readers(shared_nih) -> pd.DataFrame:
    return google.read_all_findings_readers(shared_nih / ALL / "test_individual_readers.csv")


def test_four_findings_readers(shared_nih):
    reads = google.read_four_findings_readers(shared_nih / FOUR / "individual_readers.csv")
    assert len(reads) == 13_081 and reads["image"].nunique() == 4_376
    assert list(reads.columns) == ["image", "patient", "reader", *google.FOUR_FINDINGS, "set"]
    assert reads["Fracture"].dtype == bool and reads["Airspace_Opacity"].dtype == bool
    assert reads["Pneumothorax"].dtype == google.READER_ANSWER == reads["Nodule_Mass"].dtype
    assert reads["Pneumothorax"].value_counts().to_dict() == {"NO": 12208, "YES": 708, "HEDGE": 165}
    assert (reads["Nodule_Mass"] > "NO").sum() == 1559 + 261  # ordered: NO < HEDGE < YES
    assert int(reads["Fracture"].sum()) == 351 and set(reads["set"]) == {"test", "val"}
    assert (reads["image"].str[:8].astype(int) == reads["patient"]).all()


def test_four_findings_label_tables(shared_nih):
    test = google.read_four_findings_labels(shared_nih / FOUR / "test_labels.csv")
    validation = google.read_four_findings_labels(shared_nih / FOUR / "validation_labels.csv")
    assert (len(test), len(validation)) == (1_962, 2_414)
    assert list(test.columns[:12]) == [
        "image", "finding_labels", "follow_up", "patient", "age_years", "age_flag",
        "sex", "view", "orig_width", "orig_height", "spacing_x", "spacing_y",
    ]  # fmt: skip
    assert list(test.columns[12:]) == [*google.FOUR_FINDINGS, "set"]
    assert all(test[f].dtype == "boolean" for f in google.FOUR_FINDINGS)
    assert not test[list(google.FOUR_FINDINGS)].isna().any().any()
    assert int(test["Airspace_Opacity"].sum()) == 1135 and int(validation["Nodule_Mass"].sum()) == 310
    assert set(test["set"]) == {"test"} and set(validation["set"]) == {"val"}
    assert test.loc[0, "image"] == "00000013_008.png" and test.loc[0, "age_years"] == 60.0
    assert set(test["image"]) <= set(nih.read_split_list(shared_nih / "test_list.txt"))
    assert set(validation["image"]) <= set(nih.read_split_list(shared_nih / "train_val_list.txt"))
    assert not set(test["patient"]) & set(validation["patient"])


def test_all_findings_tables_and_majority_rule_reproduce_the_published_labels(shared_nih, all_readers):
    assert len(all_readers) == 4_050 and all_readers["image"].nunique() == 810
    assert all_readers.groupby("image")["reader"].nunique().eq(5).all()
    assert set(google.GROUND_TRUTH_READERS) < set(all_readers["reader"])
    assert "Pleural_Thickening" in all_readers.columns and "Pleural Thickening" not in all_readers.columns
    assert all(all_readers[c].dtype == bool for c in ["Abnormal", *google.ALL_FINDINGS])
    assert int(all_readers["Abnormal"].sum()) == 2731
    published = google.read_all_findings_labels(shared_nih / ALL / "test_labels.csv")
    assert len(published) == 810 and int(published["Abnormal"].sum()) == 578
    recomputed = google.majority_labels(all_readers)
    pd.testing.assert_frame_equal(recomputed, published, check_flags=False)  # every cell, dtypes, order


def test_other_follows_the_documented_rule(all_readers):
    """Abnormal by majority with no single finding winning a majority makes Other YES."""
    findings = list(nih.LABELS)
    reads = all_readers[all_readers["reader"].isin(google.GROUND_TRUTH_READERS)].copy()
    image = reads["image"].iloc[0]
    rows = reads.index[reads["image"] == image]
    reads.loc[rows, ["Abnormal", *findings, "Other"]] = False
    reads.loc[rows, "Abnormal"] = True
    for row, finding in zip(rows, ["Mass", "Nodule", "Edema"]):  # three findings, one vote each
        reads.loc[row, finding] = True
    labels = google.majority_labels(reads).set_index("image")
    assert labels.loc[image, "Abnormal"] and labels.loc[image, "Other"] and not labels.loc[image, findings].any()
    reads.loc[rows[:2], "Nodule"] = True  # now Nodule wins a majority: Other is no longer implied
    labels = google.majority_labels(reads).set_index("image")
    assert labels.loc[image, "Nodule"] and not labels.loc[image, "Other"]
    reads.loc[rows[1:], "Other"] = True  # a majority marked a finding outside the 14
    assert google.majority_labels(reads).set_index("image").loc[image, "Other"]


def test_majority_needs_each_ground_truth_reader_once(all_readers):
    missing = all_readers.drop(index=all_readers.index[all_readers["reader"] == google.GROUND_TRUTH_READERS[0]][:1])
    with pytest.raises(DataError, match=r"1 image\(s\) lack exactly one read") as caught:
        google.majority_labels(missing)
    assert caught.value.path.name == "test_individual_readers.csv"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_malformed_cells_and_headers_name_the_line(tmp_path):
    row = "00000001_000.png,1,4343882785,1," + ",".join(["NO"] * 15)
    good = write(tmp_path, "ok.csv", "\n".join([ALL_HEADER, row, row.replace("4343882785", "4343883593")]))
    assert len(google.read_all_findings_readers(good)) == 2
    maybe = write(tmp_path, "maybe.csv", "\n".join([ALL_HEADER, row, row[:-2] + "MAYBE"]))
    with pytest.raises(DataError, match=r"line 3: Other is 'MAYBE'; expected YES or NO"):
        google.read_all_findings_readers(maybe)
    abnormal = write(tmp_path, "abnormal.csv", "\n".join([ALL_HEADER, row.replace(",1,NO", ",YES,NO", 1)]))
    with pytest.raises(DataError, match=r"line 2: Abnormal is 'YES'; expected 0 or 1"):
        google.read_all_findings_readers(abnormal)
    renamed = ALL_HEADER.replace("Pleural Thickening", "Pleural_Thickening")
    header = write(tmp_path, "header.csv", "\n".join([renamed, row]))
    with pytest.raises(DataError, match="line 1: unexpected header"):
        google.read_all_findings_readers(header)
    short = write(tmp_path, "short.csv", "\n".join([ALL_HEADER, row, row.rsplit(",", 1)[0]]))
    with pytest.raises(DataError, match="line 3: expected 19 fields"):
        google.read_all_findings_readers(short)
    name = write(tmp_path, "name.csv", "\n".join([ALL_HEADER, row.replace("00000001_000.png", "1.png")]))
    with pytest.raises(DataError, match=r"line 2: Image ID is '1.png'; expected an NIH image name"):
        google.read_all_findings_readers(name)


def test_unadjudicated_four_findings_cells_are_na(tmp_path, shared_nih):
    header, first, *_ = (shared_nih / FOUR / "test_labels.csv").read_text().splitlines()
    fields = first.split(",")
    assert fields[11:] == ["NO", "NO", "YES", "NO", "test"]  # Fracture, Pneumothorax, Airspace, Nodule, set
    fields[12] = ""
    table = google.read_four_findings_labels(write(tmp_path, "test_labels.csv", "\n".join([header, ",".join(fields)])))
    assert pd.isna(table.loc[0, "Pneumothorax"]) and bool(table.loc[0, "Airspace_Opacity"])
    assert table.loc[0, "Fracture"] == False  # noqa: E712 (a nullable boolean, not NA)
    fields[12] = "HEDGE"
    with pytest.raises(DataError, match="line 2: Pneumothorax is 'HEDGE'; expected YES, NO or empty"):
        google.read_four_findings_labels(write(tmp_path, "hedge.csv", "\n".join([header, ",".join(fields)])))


def test_a_source_google_without_the_label_folders_is_refused_naming_the_parameter(tmp_path):
    (tmp_path / "downloads").mkdir()
    for path in (tmp_path / "missing", tmp_path / "downloads"):
        with pytest.raises(DataError) as err:
            google.require_tree(path)
        message = str(err.value)
        assert str(path) in message and "source.google does not point to Google's expert labels" in message
        assert "leave google out of `datasets`" in message and "Google form" in message
    (tmp_path / "labels" / google.LABEL_FOLDERS[0]).mkdir(parents=True)
    assert google.require_tree(tmp_path / "labels") == tmp_path / "labels"
