"""The decoded store's mask packing and discovery, and the split logic: patient-level, seeded, leak-checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrbench import store
from cxrbench.datasets import nih
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path
from cxrbench.splits import (
    carve_patients,
    check_no_leakage,
    label_disagreements,
    require_held_out,
)
from cxrbench.stages.split_nih import official_split, random_patient_split
from helpers.nih_files import original_2017_bytes, v2020_bytes, write


def test_mask_packing_round_trips_overlapping_objects():
    rng = np.random.default_rng(0)
    masks = rng.random((5, 16, 16)) > 0.5  # objects overlap freely, as clavicles over lungs
    packed = store.pack_masks(masks)
    assert packed.dtype == np.uint8 and packed.shape == (16, 16)
    assert np.array_equal(store.unpack_masks(packed, 5), masks)
    assert np.array_equal(store.unpack_masks(np.stack([packed, packed]), 5)[1], masks)


def test_store_finds_its_single_resolution(tmp_path):
    array = store.create(store.images_path(tmp_path, 32), (3, 32, 32), np.uint8)
    array[:] = 7
    array.flush()
    assert store.find_images(tmp_path).name == "images_32.npy"
    assert store.open_array(store.find_images(tmp_path)).sum() == 7 * 3 * 32 * 32
    store.create(store.images_path(tmp_path, 64), (1, 64, 64), np.uint8).flush()
    with pytest.raises(FileNotFoundError, match="exactly one"):
        store.find_images(tmp_path)


def test_atomic_directory_keeps_the_old_output_when_writing_fails(tmp_path):
    final = tmp_path / "out"
    with atomic_path(final, is_dir=True) as tmp:
        (tmp / "good.txt").write_text("good")
    with pytest.raises(RuntimeError):
        with atomic_path(final, is_dir=True) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("killed")
    assert [p.name for p in final.iterdir()] == ["good.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no partial directory left behind


def _index(n_patients: int = 40, per_patient: int = 3) -> pd.DataFrame:
    rows = [{"image": f"{p:08d}_{f:03d}.png", "patient": p, "view": "PA" if f % 2 else "AP", "ok": 1}
            for p in range(1, n_patients + 1) for f in range(per_patient)]
    return pd.DataFrame(rows)


def _lists(index: pd.DataFrame, test_patients: set[int]) -> tuple[list[str], list[str]]:
    is_test = index["patient"].isin(test_patients)
    return index.loc[~is_test, "image"].tolist(), index.loc[is_test, "image"].tolist()


CFG = {"scheme": "official", "val_fraction": 0.25, "views": ["PA", "AP"]}


def test_nih_split_is_patient_level_seeded_and_official():
    index = _index()
    train_val, test = _lists(index, set(range(31, 41)))
    split = official_split(index, train_val, test, CFG, seed=0)
    check_no_leakage(split, "split")
    assert set(split.loc[split["part"] == "test", "image"]) == set(test)
    val_patients = split.loc[split["part"] == "val", "patient"].unique()
    assert len(val_patients) == round(0.25 * 30)
    again = official_split(index, train_val, test, CFG, seed=0)
    assert again.to_csv(index=False) == split.to_csv(index=False)
    other = official_split(index, train_val, test, CFG, seed=1)
    assert set(other.loc[other["part"] == "val", "patient"]) != set(val_patients)
    check_no_leakage(other, "split")


def test_nih_split_filters_views_and_quarantined_images():
    index = _index()
    index.loc[0, "ok"] = 0
    train_val, test = _lists(index, {40})
    split = official_split(index, train_val, test, {"scheme": "official", "val_fraction": 0.1, "views": ["PA"]}, seed=0)
    assert index.loc[0, "image"] not in set(split["image"])
    assert set(split["image"]) <= set(index.loc[index["view"] == "PA", "image"])


def test_leakage_is_detected_and_names_the_patients():
    index = _index()
    train_val, test = _lists(index, set(range(31, 41)))
    split = official_split(index, train_val, test, CFG, seed=0)
    leaked = split.copy()
    leaked.loc[leaked["image"] == "00000035_000.png", "part"] = "train"  # one image of a test patient
    with pytest.raises(DataError, match="1 patients .*35"):
        check_no_leakage(leaked, "nih.csv")


def test_split_refuses_images_missing_from_the_metadata():
    index = _index()
    train_val, test = _lists(index, {40})
    with pytest.raises(DataError, match="not in the metadata"):
        official_split(index, train_val + ["99999999_000.png"], test, CFG, seed=0)


def test_carve_patients_takes_at_least_one():
    assert len(carve_patients(np.array([5, 5, 6]), 0.01, np.random.default_rng(0))) == 1


RANDOM = {"scheme": "random_patients", "fractions": {"train": 0.7, "val": 0.1, "test": 0.2}, "views": ["PA", "AP"]}


def _patients_per_part(split: pd.DataFrame) -> dict[str, int]:
    return split.groupby("part")["patient"].nunique().to_dict()


def test_random_patient_split_is_seeded_by_patient_fractions_and_leakage_free():
    index = _index(n_patients=100)
    split = random_patient_split(index, RANDOM, seed=0)
    check_no_leakage(split, "split")
    assert len(split) == len(index) and _patients_per_part(split) == {"train": 70, "val": 10, "test": 20}
    assert random_patient_split(index, RANDOM, seed=0).to_csv(index=False) == split.to_csv(index=False)
    other = random_patient_split(index, RANDOM, seed=1)
    check_no_leakage(other, "split")
    assert _patients_per_part(other) == _patients_per_part(split)
    assert set(other.loc[other["part"] == "test", "patient"]) != set(split.loc[split["part"] == "test", "patient"])


def test_random_split_pins_the_scored_test_sets_to_test():
    index = _index(n_patients=100)
    expert_labelled = index[index["patient"].isin([3, 14, 15, 92, 65])]
    split = random_patient_split(index, RANDOM, seed=0, pinned_test=expert_labelled["patient"].unique())
    require_held_out(expert_labelled, split, "test_labels.csv")  # would raise if one reached train or val
    assert _patients_per_part(split)["test"] == 20  # pinned patients count towards the test share
    unpinned = random_patient_split(index, RANDOM, seed=0)
    with pytest.raises(DataError, match="in the train/val parts"):
        require_held_out(expert_labelled, unpinned, "test_labels.csv")
    many = random_patient_split(index, RANDOM, seed=0, pinned_test=np.arange(1, 31))
    assert set(many.loc[many["part"] == "test", "patient"]) == set(range(1, 31))


def test_random_split_fractions_must_sum_to_one():
    cfg = {**RANDOM, "fractions": {"train": 0.7, "val": 0.2, "test": 0.2}}
    with pytest.raises(DataError, match="sum to 1.1"):
        random_patient_split(_index(), cfg, seed=0)


def _entries(labels: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"image": list(labels), "finding_labels": list(labels.values())})


def test_label_disagreements_ignore_label_order_and_catch_missing_images():
    current = _entries({"a.png": "Mass|Nodule", "b.png": "No Finding", "c.png": "Effusion", "d.png": "Hernia"})
    other = _entries({"a.png": "Nodule|Mass", "b.png": "No Finding", "c.png": "Effusion|Pneumonia"})
    found = label_disagreements(current, other)
    assert found.to_dict(orient="list") == {"image": ["c.png", "d.png"], "labels": ["Effusion", "Hernia"],
                                            "other_labels": ["Effusion|Pneumonia", ""]}
    index = _index()
    train_val, test = _lists(index, set(range(31, 41)))
    excluded = {"00000035_000.png", "00000001_001.png"}
    for split in (official_split(index, train_val, test, CFG, seed=0, excluded=excluded),
                  random_patient_split(index, RANDOM, seed=0, excluded=excluded)):
        assert set(split["image"]) == set(index["image"]) - excluded


def test_label_disagreements_on_the_real_metadata(shared_nih, tmp_path):
    """Real v2020 rows (the first 2,000 and every boxed image) agree with themselves written in the original
    2017 form (ages with units, padded ids, CRLF); changing the labels of real boxed images in that copy is
    found, image by image."""
    lines = (shared_nih / "Data_Entry_2017_v2020.csv").read_text().splitlines()
    boxed_all = set(nih.read_bbox(shared_nih / nih.BBOX_NAME)["image"])
    rows = [line.split(",") for n, line in enumerate(lines[1:]) if n < 2000 or line.split(",", 1)[0] in boxed_all]
    current = nih.read_data_entry(write(tmp_path, "Data_Entry_2017_v2020.csv", v2020_bytes(rows)))
    earlier = write(tmp_path, "Data_Entry_2017.csv", original_2017_bytes(rows, {}))
    assert label_disagreements(current, nih.read_data_entry(earlier)).empty
    boxed = sorted(boxed_all)[:7]
    for row in rows:
        if row[0] in boxed:
            row[1] = "No Finding"
    earlier = write(tmp_path, "Data_Entry_2017.csv", original_2017_bytes(rows, {}))
    found = label_disagreements(current, nih.read_data_entry(earlier))
    assert sorted(found["image"]) == boxed and (found["other_labels"] == "No Finding").all()
