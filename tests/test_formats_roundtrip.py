"""Each synthetic writer paired with the reader the pipeline uses on real data: what the writer put in is
what the reader gets out (the embedded default goes through exactly the real-data code path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrbench.datasets import google_labels, jsrt, nih, scr
from cxrbench.synthetic import google_labels as synthetic_google_labels
from cxrbench.synthetic import jsrt_scr as synthetic_jsrt_scr
from cxrbench.synthetic import nih as synthetic_nih


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("formats")
    synthetic_jsrt_scr.write_jsrt_scr(root / "jsrt", root / "scr", n_nodule=3, n_normal=2, seed=3)
    synthetic_nih.write_nih(root / "nih", n_patients=24, max_followups=3, test_fraction=0.3, seed=3, min_prevalence=0.08)
    synthetic_google_labels.write_google_labels(root / "google", root / "nih", test_images=6, validation_images=6,
                                  all_findings_images=4, seed=3)
    return root


def test_jsrt_raw_and_metadata(written):
    cases = ["JPCLN001", "JPCLN002", "JPCLN003", "JPCNN001", "JPCNN002"]
    jsrt.require_tree(written / "jsrt", cases)
    meta = jsrt.read_metadata(written / "jsrt")
    assert meta["case"].tolist() == cases
    assert meta["nodule"].tolist() == [True, True, True, False, False]
    raw = jsrt.read_raw(written / "jsrt" / "JPCLN001.IMG")
    assert raw.shape == (2048, 2048) and raw.max() <= 4095
    nodule = meta.iloc[0]
    display = jsrt.to_display(raw).astype(np.float64)
    lungs = scr.read_case_masks(written / "scr", "JPCLN001")[:2].any(axis=0).repeat(2, 0).repeat(2, 1)
    rows, cols = np.ogrid[:2048, :2048]
    distance = np.hypot(rows - int(nodule["y"]), cols - int(nodule["x"]))
    radius = nodule["size_mm"] / jsrt.PIXEL_MM / 2
    core = display[(distance <= radius / 2) & lungs].mean()
    surrounding_lung = display[(distance > 2 * radius) & (distance <= 4 * radius) & lungs].mean()
    assert core > surrounding_lung, "the nodule is an opacity (brighter on display) at the metadata coordinates"


def test_scr_masks_and_landmarks(written):
    cases = ["JPCLN001", "JPCLN002", "JPCLN003", "JPCNN001", "JPCNN002"]
    scr.require_tree(written / "scr", cases)
    masks = scr.read_case_masks(written / "scr", "JPCLN002")
    assert masks.shape == (5, 1024, 1024) and masks.reshape(5, -1).any(axis=1).all()
    assert scr.mask_path(written / "scr", "JPCLN002", "heart").parts[-4] == "fold2"
    blocks = scr.read_pfs(scr.points_path(written / "scr", "JPCLN002"))
    assert blocks and all(block.points.shape[1] == 2 for block in blocks)


def test_nih_metadata_boxes_lists_and_images(written):
    nih.require_tree(written / "nih")
    entries = nih.read_data_entry(written / "nih" / "Data_Entry_2017_v2020.csv")
    assert entries.attrs["form"] == "v2020"
    assert entries["patient"].nunique() == 24
    labels = nih.label_matrix(entries)
    assert labels.shape == (len(entries), 14) and labels.any(axis=0).sum() >= 10
    boxes = nih.read_bbox(written / "nih" / "BBox_List_2017.csv")
    test = set(nih.read_split_list(written / "nih" / "test_list.txt"))
    assert set(boxes["image"]) <= test and set(boxes["label"]) <= set(nih.BOX_LABELS)
    for name in entries["image"]:
        pixels = nih.read_png(written / "nih" / "images" / name)
        assert pixels.shape == (1024, 1024) and pixels.dtype == np.uint8


def test_google_labels_and_majority_rule(written):
    root = written / "google"
    four = google_labels.read_four_findings_labels(root / "four_findings_expert_labels" / "test_labels.csv")
    test = set(nih.read_split_list(written / "nih" / "test_list.txt"))
    assert len(four) == 6 and set(four["image"]) <= test
    readers = google_labels.read_all_findings_readers(root / "all_findings_expert_labels" / "test_individual_readers.csv")
    labels = google_labels.read_all_findings_labels(root / "all_findings_expert_labels" / "test_labels.csv")
    pd.testing.assert_frame_equal(google_labels.majority_labels(readers), labels)
