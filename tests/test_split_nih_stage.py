"""The split_nih stage on a synthetic NIH release with Google's label files: the random patient split keeps
every scored test set in test, is byte-identical for a seed, the label-version restriction leaves out
exactly the images whose labels differ, and a subset of the archives splits only its images."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cxrbench import config, store
from cxrbench.datasets import nih
from cxrbench.splits import check_no_leakage, require_held_out
from cxrbench.stages import split_nih
from cxrbench.synthetic.google_labels import write_google_labels
from cxrbench.synthetic.nih import write_nih
from helpers.nih_files import original_2017_bytes

TINY = yaml.safe_load(config.compose_yaml(["experiment=tiny"]))


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """data/raw/{nih,google} at test size and a store index listing every image as decoded (no pixels)."""
    root = tmp_path_factory.mktemp("split_nih")
    raw_nih, raw_google = root / split_nih.RAW, root / split_nih.GOOGLE
    raw_nih.mkdir(parents=True)
    raw_google.mkdir(parents=True)
    write_nih(raw_nih, seed=0, **TINY["synthetic"]["nih"])
    write_google_labels(raw_google, raw_nih, seed=0, **TINY["synthetic"]["google"])
    entries = nih.read_data_entry(raw_nih / "Data_Entry_2017_v2020.csv")
    (root / "data/store/nih").mkdir(parents=True)
    store.write_index(root / "data/store/nih", entries[["image", "patient", "view"]].assign(ok=1))
    return root


def run_split(root: Path, monkeypatch, *overrides: str) -> tuple[bytes, dict]:
    """Run the stage in `root` on the tiny parameters with `overrides`: (nih.csv bytes, nih.json)."""
    monkeypatch.chdir(root)
    params = yaml.safe_load(config.compose_yaml(["experiment=tiny", *overrides]))
    config.validate(params)
    split_nih.split(params)
    return split_nih.OUT.read_bytes(), json.loads(split_nih.OUT.with_suffix(".json").read_text())


def test_random_split_pins_every_scored_test_set_and_is_reproducible(release, monkeypatch):
    table_bytes, info = run_split(release, monkeypatch, "split=random_patients")
    split = pd.read_csv(split_nih.OUT)
    check_no_leakage(split, "nih.csv")
    assert info["scheme"] == "random_patients" and set(info["pinned_to_test"]) == set(split_nih.SCORED_TEST_SETS)
    for name, (path, frame) in split_nih.scored_test_sets(store.read_index("data/store/nih"), TINY["datasets"]).items():
        require_held_out(frame, split, path)
        assert info["pinned_to_test"][name]["images"] == len(frame)
    assert str(split_nih.GOOGLE / "four_findings_expert_labels" / "test_labels.csv") in info["sources"]
    again, _ = run_split(release, monkeypatch, "split=random_patients")
    other, _ = run_split(release, monkeypatch, "split=random_patients", "seed=1")
    assert again == table_bytes and other != table_bytes


def test_without_google_in_datasets_its_files_are_not_pinned(release, monkeypatch):
    """NIH alone: Google's test sets are not scored, so a random split does not pin them, even when a raw folder
    of an earlier run with google is still there."""
    assert (release / split_nih.GOOGLE / "four_findings_expert_labels" / "test_labels.csv").is_file()
    _, info = run_split(release, monkeypatch, "split=random_patients", "datasets=[nih]")
    assert set(info["pinned_to_test"]) == {"localisation boxes"}
    assert not any("google" in source for source in info["sources"])


def test_labels_agree_with_leaves_out_the_relabelled_images(release, monkeypatch):
    lines = (release / split_nih.RAW / "Data_Entry_2017_v2020.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    changed = {rows[0][0], rows[7][0]}
    rows[0][1], rows[7][1] = "Hernia|Mass", "No Finding" if rows[7][1] != "No Finding" else "Edema"
    earlier = release / split_nih.RAW / "Data_Entry_2017.csv"
    earlier.write_bytes(original_2017_bytes(rows, {}))
    try:
        _, info = run_split(release, monkeypatch, "split.nih.labels_agree_with=Data_Entry_2017.csv")
    finally:
        earlier.unlink()
    split = pd.read_csv(split_nih.OUT)
    assert changed.isdisjoint(split["image"]) and info["labels_agree_with"]["images_excluded"] == 2
    assert {row["image"] for row in info["labels_agree_with"]["examples"]} == changed
    _, full = run_split(release, monkeypatch)
    assert sum(c["images"] for c in full["counts"].values()) == sum(c["images"] for c in info["counts"].values()) + 2


@pytest.fixture
def subset_release(release, tmp_path) -> tuple[Path, list[str]]:
    """A copy of `release` as after source.archives: the store holds the first 60 % of the images by name (NIH
    archives are runs of names, one patient's films may straddle two); the subset's image names."""
    root = tmp_path / "project"
    shutil.copytree(release, root)
    index = store.read_index(root / "data/store/nih").sort_values("image", ignore_index=True)
    index = index.iloc[: len(index) * 6 // 10]
    store.write_index(root / "data/store/nih", index)
    nih.write_archive_subset(root / split_nih.RAW, index["image"].tolist())
    return root, index["image"].tolist()


@pytest.mark.parametrize("scheme", ["official", "random_patients"])
def test_a_subset_of_archives_splits_only_its_images_and_keeps_scored_patients_held_out(
        subset_release, monkeypatch, caplog, scheme):
    root, subset = subset_release
    with caplog.at_level(logging.INFO):
        _, info = run_split(root, monkeypatch, f"split={scheme}")
    split = pd.read_csv(split_nih.OUT)
    assert set(split["image"]) <= set(subset) and sum(c["images"] for c in info["counts"].values()) == len(split)
    assert info["archive_subset"] == {"file": nih.ARCHIVE_SUBSET, "images": len(subset)}  # the report says so
    check_no_leakage(split, "nih.csv")
    for path, read in split_nih.SCORED_TEST_SETS.values():  # every labelled patient, decoded or not
        labelled = read(path)
        if "patient" in labelled.columns:
            require_held_out(labelled, split, path)
    if scheme == "official":
        test_list = nih.read_split_list(split_nih.RAW / nih.TEST_LIST)
        in_subset = len(set(test_list) & set(subset))
        assert f"{in_subset} of {len(test_list)} images of {nih.TEST_LIST} are in it" in caplog.text
