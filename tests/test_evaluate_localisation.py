"""Stage evaluate_localisation on a tiny NIH-like tree whose classifier's maps follow bright regions: the boxes
are found, the metrics agree with the box table, held-out rules are enforced, and the report pieces render."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from test_cam import intensity_classifier, one_torch_thread  # noqa: F401 (an autouse fixture)

from cxrbench import store, training
from cxrbench.datasets import nih
from cxrbench.errors import DataError
from cxrbench.fileio import write_json
from cxrbench.report import localisation as report_section
from cxrbench.report.comparison import OURS
from cxrbench.stages import evaluate_localisation as stage
from helpers.models import network

STORE_SIZE = 128
PARAMS = {"seed": 0, "train": {"runtime": {"device": "cpu", "threads": 1, "amp": False, "channels_last": False,
                                           "compile": False}}}
# (image, class, x, y, w, h) in 1024-pixel space, on the 256-pixel cells of the model's 4 x 4 feature map
BOXES = [
    ("00000001_000.png", "Atelectasis", 0, 256, 256, 256),
    ("00000001_000.png", "Effusion", 768, 768, 256, 256),
    ("00000002_000.png", "Cardiomegaly", 256, 512, 512, 256),
    ("00000003_000.png", "Mass", 0, 0, 256, 256),
    ("00000003_000.png", "Mass", 768, 0, 256, 256),
    ("00000004_000.png", "Mass", 512, 512, 256, 256),
]
PARTS = {"00000001_000.png": "test", "00000002_000.png": "test", "00000003_000.png": "test",
         "00000004_000.png": "test", "00000005_000.png": "train", "00000006_000.png": "test"}


def write_tree(root: Path, parts: dict[str, str] = PARTS) -> None:
    """Raw NIH files (1024 px PNGs: bright inside each box), the decoded store, the split and the model."""
    names = sorted(PARTS)
    films = np.full((len(names), 1024, 1024), 30, dtype=np.uint8)
    for name, _, x, y, w, h in BOXES:
        films[names.index(name), y:y + h, x:x + w] = 230
    raw = root / "data/raw/nih"
    (raw / "images").mkdir(parents=True)
    for name, film in zip(names, films):
        cv2.imwrite(str(raw / "images" / name), film)
    lines = ["Image Index,Finding Label,Bbox [x,y,w,h],,,"] + [",".join(map(str, box)) for box in BOXES]
    (raw / nih.BBOX_NAME).write_text("\n".join(lines) + "\n")

    (root / "data/store/nih").mkdir(parents=True)
    images = store.create(store.images_path(root / "data/store/nih", STORE_SIZE), (len(names), STORE_SIZE, STORE_SIZE),
                          np.uint8)
    images[:] = [cv2.resize(film, (STORE_SIZE, STORE_SIZE), interpolation=cv2.INTER_AREA) for film in films]
    images.flush()
    patients = [int(name[:8]) for name in names]
    index = pd.DataFrame({"image": names, "patient": patients, "view": "PA", **{label: 0 for label in nih.LABELS},
                          "ok": 1, "row": np.arange(len(names))})
    store.write_index(root / "data/store/nih", index)
    (root / "data/splits").mkdir(parents=True)
    split = pd.DataFrame({"image": list(parts), "patient": [int(n[:8]) for n in parts], "part": list(parts.values())})
    split.to_csv(root / "data/splits/nih.csv", index=False)

    training.save_checkpoint(root / "models/classifier/model.pt", {"state_dict": intensity_classifier(14).state_dict()})
    write_json(root / "models/classifier/config.json", {"labels": list(nih.LABELS), "size": STORE_SIZE, "mean": 0.0,
                                                       "std": 1.0, "network": network("classifier", "densenet121")})


def run_stage_in(root: Path) -> dict:
    with contextlib.chdir(root):
        stage.evaluate(PARAMS)
    return json.loads((root / "results/localisation/scores.json").read_text())


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("localisation")
    write_tree(root)
    return root, run_stage_in(root)


def test_every_bright_finding_is_localised(evaluated):
    _, metrics = evaluated
    assert (metrics["boxes"], metrics["images"]) == (6, 4)
    assert metrics["left_out_outside_split"] == {"boxes": 0, "images": 0}
    assert metrics["heatmap"]["feature_grid"] == STORE_SIZE // 32
    per_class = metrics["per_class"]
    assert {label: (per_class[label]["boxes"], per_class[label]["images"]) for label in nih.BOX_LABELS} == {
        "Atelectasis": (1, 1), "Cardiomegaly": (1, 1), "Effusion": (1, 1), "Infiltration": (0, 0), "Mass": (3, 2),
        "Nodule": (0, 0), "Pneumonia": (0, 0), "Pneumothorax": (0, 0)}
    assert set(per_class["Mass"]["iobb"]) == {"0.1", "0.25", "0.5", "0.75", "0.9"}
    assert set(per_class["Mass"]["iou"]) == {"0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"}
    for label in ("Atelectasis", "Cardiomegaly", "Effusion", "Mass"):
        assert per_class[label]["iobb"]["0.1"]["accuracy"] == 1.0
        assert per_class[label]["iobb"]["0.5"]["accuracy"] == 1.0  # the map's core lies inside each box
    # each class map is plain brightness, so on image 1 the Effusion region is a false positive for Atelectasis
    assert per_class["Atelectasis"]["iobb"]["0.1"]["avg_fp"] >= 1.0
    assert per_class["Cardiomegaly"]["iobb"]["0.1"]["avg_fp"] == 0.0
    accuracy = [per_class["Mass"]["iobb"][key]["accuracy"] for key in ("0.1", "0.25", "0.5", "0.75", "0.9")]
    assert accuracy == sorted(accuracy, reverse=True)


def test_metrics_agree_with_the_box_table(evaluated):
    root, metrics = evaluated
    boxes = pd.read_csv(root / "results/localisation/boxes.csv")
    truth = boxes[boxes["kind"] == "truth"]
    expected_truth = pd.DataFrame(sorted(BOXES), columns=["image", "label", "x", "y", "w", "h"])
    pd.testing.assert_frame_equal(truth[["image", "label", "x", "y", "w", "h"]].sort_values(["image", "label", "x"])
                                  .reset_index(drop=True), expected_truth, check_dtype=False)
    for label, entry in metrics["per_class"].items():
        if not entry["boxes"]:
            continue
        own_truth, detected = truth[truth["label"] == label], boxes[(boxes["kind"] == "detected") & (boxes["label"] == label)]
        for overlap, thresholds in stage.THRESHOLDS.items():
            for threshold in thresholds:
                result = entry[overlap][format(threshold, "g")]
                assert result["accuracy"] == pytest.approx((own_truth[overlap] > threshold).mean(), abs=1e-6)
                assert result["avg_fp"] == pytest.approx((detected[overlap] <= threshold).sum() / entry["images"], abs=1e-6)


def test_examples_hold_the_best_and_worst_image_per_class(evaluated):
    root, _ = evaluated
    out = root / "results/localisation"
    examples = pd.read_csv(out / "examples.csv")
    assert list(zip(examples["label"], examples["which"])) == [
        ("Atelectasis", "best"), ("Cardiomegaly", "best"), ("Effusion", "best"), ("Mass", "best"), ("Mass", "worst")]
    mass = examples[examples["label"] == "Mass"]
    assert set(mass["image"]) == {"00000003_000.png", "00000004_000.png"}
    assert mass["iou"].is_monotonic_decreasing
    radiographs, heatmaps = np.load(out / "example_images.npy"), np.load(out / "example_heatmaps.npy")
    assert radiographs.shape == heatmaps.shape == (5, stage.EXAMPLE_SIZE, stage.EXAMPLE_SIZE)
    assert radiographs.dtype == heatmaps.dtype == np.uint8
    cardiomegaly = radiographs[1]  # box (256, 512, 512, 256) at 1024 px is rows 128-191, columns 64-191 here
    assert cardiomegaly[140:180, 80:180].min() == 230 and cardiomegaly[:100].max() == 30
    assert heatmaps.max(axis=(1, 2)).tolist() == [255] * 5 and heatmaps.min(axis=(1, 2)).tolist() == [0] * 5


def test_a_rerun_writes_the_same_bytes(evaluated, tmp_path):
    root, _ = evaluated
    write_tree(tmp_path)
    run_stage_in(tmp_path)
    outputs = ["metrics/localisation.json", *(f"results/localisation/{p.name}" for p in (root / "results/localisation").iterdir())]
    for name in outputs:
        assert hashlib.sha256((tmp_path / name).read_bytes()).digest() == hashlib.sha256((root / name).read_bytes()).digest(), name


@pytest.mark.parametrize("extra, found", [
    ({"00000004_000.png": "train"}, r"1 image\(s\) \(e\.g\. 00000004_000\.png\) and 1 patient\(s\) \(e\.g\. 4\)"),
    ({"00000004_001.png": "val"}, r"1 patient\(s\) \(e\.g\. 4\)"),  # another image of a boxed patient
], ids=["boxed image in train", "boxed patient in val"])
def test_images_or_patients_the_model_saw_are_refused(tmp_path, extra, found):
    write_tree(tmp_path, {**PARTS, **extra})
    with pytest.raises(DataError, match=rf"{nih.BBOX_NAME}: {found} listed here are in the train/val parts"):
        run_stage_in(tmp_path)
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "results").exists()


def test_boxed_images_outside_the_split_are_left_out_and_counted(tmp_path):
    write_tree(tmp_path, {name: part for name, part in PARTS.items() if name != "00000004_000.png"})
    metrics = run_stage_in(tmp_path)
    assert metrics["left_out_outside_split"] == {"boxes": 1, "images": 1}
    assert (metrics["per_class"]["Mass"]["boxes"], metrics["per_class"]["Mass"]["images"]) == (2, 1)


def test_boxes_outside_a_subset_of_archives_are_left_out_and_others_unknown_to_the_store_refused(
        tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    boxes = pd.DataFrame(BOXES, columns=["image", "label", "x", "y", "w", "h"])
    decoded = ["00000001_000.png", "00000002_000.png"]  # the images of the selected archives
    index = pd.DataFrame({"image": decoded, "patient": [1, 2], "row": [0, 1]})
    split = pd.DataFrame({"image": decoded, "patient": [1, 2], "part": "test"})
    with pytest.raises(DataError, match=r"2 boxed image\(s\) are not in the NIH metadata"):
        stage.boxes_to_evaluate(boxes, index, split)

    stage.RAW.mkdir(parents=True)
    nih.write_archive_subset(stage.RAW, decoded)
    with caplog.at_level("INFO"):
        kept, left_out = stage.boxes_to_evaluate(boxes, index, split)
    assert kept["image"].tolist() == ["00000001_000.png", "00000001_000.png", "00000002_000.png"]
    assert kept["row"].tolist() == [0, 0, 1] and left_out == {"boxes": 3, "images": 2}
    assert f"3 of 6 boxes of {nih.BBOX_NAME} are in it, the other 3 are left out" in caplog.text


def test_the_real_box_list_is_all_held_out_under_the_official_split(shared_nih):
    boxes = nih.read_bbox(shared_nih / nih.BBOX_NAME)
    boxed = boxes["image"].unique()
    index = pd.DataFrame({"image": boxed, "patient": [int(name[:8]) for name in boxed], "row": np.arange(len(boxed))})
    lists = {part: nih.read_split_list(shared_nih / name) for part, name in (("train", nih.TRAIN_VAL_LIST),
                                                                            ("test", nih.TEST_LIST))}
    split = pd.DataFrame([(image, int(image[:8]), part) for part, images in lists.items() for image in images],
                         columns=["image", "patient", "part"])
    kept, left_out = stage.boxes_to_evaluate(boxes, index, split)
    assert (len(kept), kept["image"].nunique(), left_out) == (984, 880, {"boxes": 0, "images": 0})


def test_box_table_and_scores_on_hand_made_boxes():
    pairs = pd.DataFrame({"image": ["a.png", "b.png"], "label": ["Nodule", "Nodule"], "row": [0, 1]})
    truths = [np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([[50.0, 50.0, 10.0, 10.0], [0.0, 0.0, 4.0, 4.0]])]
    detections = [np.array([[0.0, 0.0, 5.0, 5.0], [100.0, 100.0, 5.0, 5.0]]), np.empty((0, 4))]
    table = stage.box_table(pairs, truths, detections)
    assert list(table["kind"]) == ["truth", "detected", "detected", "truth", "truth"]
    np.testing.assert_allclose(table["iou"], [0.25, 0.25, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(table["iobb"], [1.0, 1.0, 0.0, 0.0, 0.0])
    scores = stage.class_scores(pairs, truths, detections)["Nodule"]
    assert (scores["boxes"], scores["images"]) == (3, 2)
    assert scores["iobb"]["0.5"] == {"accuracy": round(1 / 3, 6), "avg_fp": 0.5}  # one far detection on 2 images
    assert scores["iou"]["0.3"] == {"accuracy": 0.0, "avg_fp": 1.0}


def test_localisation_tables_put_the_published_rows_beside_ours(evaluated):
    _, metrics = evaluated
    table = report_section.localisation_table(metrics, "iobb", synthetic=False)
    at_half = table[(table["T(IoBB)"] == 0.5) & (table["measure"] == "accuracy")]
    assert list(at_half["source"]) == [OURS, "Wang et al. 2017, ChestX-ray14 model [P]",
                                       "ours - Wang et al. 2017"]
    ours, wang, difference = (at_half.iloc[i] for i in range(3))
    assert wang["Nodule"] == 0 and wang["Cardiomegaly"] == pytest.approx(0.9452) and wang["split"] == "bbox_list_2017"
    assert difference["Cardiomegaly"] == pytest.approx(ours["Cardiomegaly"] - 0.9452)
    assert np.isnan(ours["Nodule"]) and np.isnan(difference["Nodule"])  # no Nodule box in this tree
    assert wang["comparable"] == "yes"
    assert len(table) == 5 * 2 * 3  # five thresholds, two measures, ours + Table 19 + difference

    synthetic = report_section.localisation_table(metrics, "iou", synthetic=True)
    assert set(synthetic.loc[synthetic["source"] == OURS, "split"]) == {"bbox_list_2017 (synthetic data)"}
    published_rows = synthetic[synthetic["source"].str.endswith("]")]
    assert set(published_rows["T(IoU)"]) == {0.3} and len(published_rows) == 2  # Wang CVPR 2017 and Hermoza 2020
    assert set(published_rows["comparable"]) == {"no: synthetic data"}


def test_localisation_examples_figure_draws_every_example_and_box(evaluated):
    root, _ = evaluated
    fig = report_section.localisation_examples_figure(root / "results/localisation")
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 5 and all(len(ax.images) == 2 for ax in drawn)  # radiograph + activation map
    boxes = pd.read_csv(root / "results/localisation/boxes.csv")
    examples = pd.read_csv(root / "results/localisation/examples.csv")
    expected = sum(((boxes["image"] == e.image) & (boxes["label"] == e.label)).sum() for e in examples.itertuples())
    assert sum(len(ax.patches) for ax in drawn) == expected
    plt.close(fig)
