"""cxrbench.data on the shared tiny run: the README's snippet runs as written; each dataset gives the store's
pixels standardised as the pipeline does, its labels or masks, and names its items; datasets pickle without
their arrays (DataLoader workers map the store themselves); outside predictions are scored exactly as
evaluate_classifier scores ours; and the exported names stay."""

from __future__ import annotations

import contextlib
import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import cxrbench.data as api
from cxrbench import store, training
from cxrbench.errors import DataError
from cxrbench.vocabulary import LABELS, OBJECTS
from helpers.pipeline import BIN, ROOT, run

pytestmark = pytest.mark.e2e

# Removing a name breaks users' code: add names freely, remove none without a deprecation.
PROMISED = {"IMAGENET_GREY", "batch_loader", "JSRTNodules", "NIHClassification", "NIH_LABEL_SETS", "SCRSegmentation",
            "random_dihedral", "random_hflip", "score_classifier", "score_nodules", "score_segmenter",
            "standardise"}


def readme_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    return re.search(r"<!-- snippet: cxrbench.data -->\n```python\n(.*?)```", readme, re.S).group(1)


def test_the_exported_names_stay():
    assert PROMISED <= set(api.__all__) and all(hasattr(api, name) for name in api.__all__)


def test_the_readme_snippet_runs_as_written_and_scores_like_the_pipeline(tiny_run, tmp_path, capsys):
    code = readme_snippet()
    assert code.count('run = "."') == 1
    with contextlib.chdir(tmp_path):
        exec(compile(code.replace('run = "."', f'run = "{tiny_run}"'), "README.md", "exec"), {})
    mean_auc = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= mean_auc <= 1.0 and (tmp_path / "my_predictions.csv").is_file()


def test_our_own_predictions_score_to_our_own_metrics(tiny_run):
    ours = json.loads((tiny_run / "results/classifier/auc.json").read_text())
    assert api.score_classifier(tiny_run / "results/classifier/predictions.csv", tiny_run) == ours


def test_predictions_that_miss_or_add_images_are_refused_naming_them(tiny_run, tmp_path):
    frame = pd.read_csv(tiny_run / "results/classifier/predictions.csv")
    frame.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match=rf"short.csv: not one row per test image: test images without a row \(1\): "
                                        rf"{re.escape(frame['image'][0])}"):
        api.score_classifier(tmp_path / "short.csv", tiny_run)
    frame.drop(columns="score_Hernia").to_csv(tmp_path / "columns.csv", index=False)
    with pytest.raises(DataError, match=r"missing columns \['score_Hernia'\]"):
        api.score_classifier(tmp_path / "columns.csv", tiny_run)


def test_our_own_masks_score_to_our_own_metrics_packed_or_not(tiny_run, tmp_path):
    ours = json.loads((tiny_run / "results/segmenter/scores.json").read_text())
    # evaluate_segmenter's own additions: the store's cap and the second observer's scores
    round_trip = ours.pop("round_trip")
    assert ours.pop("second_observer")["objects"].keys() == ours["overall"]["objects"].keys()
    packed = next((tiny_run / "results/segmenter").glob("predictions_*.npy"))
    assert api.score_segmenter(packed, tiny_run) == ours
    unpacked = store.unpack_masks(np.load(packed), len(OBJECTS)).astype(np.uint8)
    np.save(tmp_path / "masks.npy", unpacked)
    assert api.score_segmenter(tmp_path / "masks.npy", tiny_run) == ours
    jsrt_store = tiny_run / "data/store/jsrt"
    np.save(tmp_path / "perfect.npy", store.open_array(store.find_reference_masks(jsrt_store)))
    scored = api.score_segmenter(tmp_path / "perfect.npy", tiny_run)
    assert {m["jaccard"]["mean"] for m in scored["overall"]["objects"].values()} == {1.0}
    assert {m["contour_mm"]["mean"] for m in scored["overall"]["objects"].values()} == {0.0}
    assert scored["overall"]["pixel_error"]["mean"] == 0.0
    # the store's own masks at its size, brought up as any outside mask is: the round trip's Jaccard (the cap)
    np.save(tmp_path / "store.npy", store.open_array(store.find_masks(jsrt_store)))
    scored = api.score_segmenter(tmp_path / "store.npy", tiny_run)
    assert {obj: m["jaccard"]["mean"] for obj, m in scored["overall"]["objects"].items()} == round_trip
    assert all(0.5 < value < 1 for value in round_trip.values())
    cli = run([str(BIN / "cxrbench"), "score", "segmenter", str(packed), "--run", str(tiny_run), "--json",
               str(tmp_path / "cli.json")], tmp_path)
    assert "pixel error" in cli.stdout and json.loads((tmp_path / "cli.json").read_text()) == ours


def test_an_object_missed_entirely_is_counted_and_its_contour_distance_left_undefined(tiny_run, tmp_path):
    """A contour distance to nothing is infinite: the mean over cases is then undefined (JSON null, not a crash
    on writing inf) and the missed cases are counted."""
    perfect = store.open_array(store.find_reference_masks(tiny_run / "data/store/jsrt")).copy()
    heart = OBJECTS.index("heart")
    perfect[0] &= np.uint8(0xFF ^ (1 << heart))  # case 0 without its heart
    np.save(tmp_path / "missed.npy", perfect)
    scored = api.score_segmenter(tmp_path / "missed.npy", tiny_run)
    contour = scored["overall"]["objects"]["heart"]["contour_mm"]
    assert contour["mean"] is None and contour["sd"] is None and contour["missed"] == 1
    assert "missed" not in scored["overall"]["objects"]["left lung"]["contour_mm"]
    assert "missed" not in scored["overall"]["objects"]["lung fields"]["contour_mm"]
    json.dumps(scored, allow_nan=False)


def test_masks_of_the_wrong_shape_or_values_are_refused_saying_what_is_expected(tiny_run, tmp_path):
    packed = np.load(next((tiny_run / "results/segmenter").glob("predictions_*.npy")))
    np.save(tmp_path / "short.npy", packed[1:])
    with pytest.raises(DataError, match=rf"short.npy: shape \({len(packed) - 1}, .*expected \({len(packed)}, 5, 64,"
                                        rf".* or \({len(packed)}, 5, 1024,"):
        api.score_segmenter(tmp_path / "short.npy", tiny_run)
    np.save(tmp_path / "probabilities.npy", store.unpack_masks(packed, len(OBJECTS)) * 0.7)
    with pytest.raises(DataError, match="threshold your probabilities first"):
        api.score_segmenter(tmp_path / "probabilities.npy", tiny_run)
    with pytest.raises(DataError, match="predictions file not found"):
        api.score_segmenter(tmp_path / "absent.npy", tiny_run)


def test_our_own_nodule_predictions_score_to_our_own_metrics(tiny_run, tmp_path):
    ours = json.loads((tiny_run / "results/nodules/scores.json").read_text())
    results = tiny_run / "results/nodules"
    scored = api.score_nodules(results / "predictions.csv", results / "candidates.csv", tiny_run)
    assert scored["froc"] == ours["froc"] and scored["folds"] == ours["folds"]
    for task, summary in ours["classification"].items():
        assert {k: v for k, v in scored["classification"][task].items() if k != "model"} == \
               {k: v for k, v in summary.items() if k != "model"}
    assert scored["classification"]["nodule"]["model"] == "yours (predictions.csv)"
    cli = run([str(BIN / "cxrbench"), "score", "nodules", str(results / "predictions.csv"), "--candidates",
               str(results / "candidates.csv"), "--run", str(tiny_run)], tmp_path)
    assert json.loads(cli.stdout)["FROC sensitivity"] == ours["froc"]["all"]["sensitivity_at_fp_per_image"]


def test_nodule_predictions_that_miss_a_case_or_name_an_unknown_one_are_refused(tiny_run, tmp_path):
    results = tiny_run / "results/nodules"
    task_scores = pd.read_csv(results / "predictions.csv")
    task_scores.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    first = task_scores.iloc[0]
    with pytest.raises(DataError, match=rf"short.csv: not one score per case of each task: cases of a task without a "
                                        rf"score \(1\): {first['case']}/{first['task']}"):
        api.score_nodules(tmp_path / "short.csv", results / "candidates.csv", tiny_run)
    candidates = pd.read_csv(results / "candidates.csv")
    candidates.assign(case="JPCLN999").to_csv(tmp_path / "unknown.csv", index=False)
    with pytest.raises(DataError, match=r"unknown.csv: cases not in the store \(1\): JPCLN999"):
        api.score_nodules(results / "predictions.csv", tmp_path / "unknown.csv", tiny_run)


def test_nih_items_are_the_split_part_standardised_as_in_training(tiny_run):
    train = api.NIHClassification(tiny_run, part="train")
    index, split = store.read_index(tiny_run / "data/store/nih"), pd.read_csv(tiny_run / "data/splits/nih.csv")
    pixels = store.open_array(store.find_images(tiny_run / "data/store/nih"))
    assert set(train.items["image"]) == set(split.loc[split["part"] == "train", "image"])
    assert train.normalisation == training.intensity_stats(pixels, train.items["row"].to_numpy(), 255.0)
    image, target = train[3]
    row = train.items["row"][3]
    expected = training.to_input(pixels[[row]], 255.0, *train.normalisation, torch.device("cpu"))[0]
    torch.testing.assert_close(image, expected)
    labels = index.set_index("row").loc[row, list(LABELS)].to_numpy(np.float32)
    np.testing.assert_array_equal(target.numpy(), labels)
    assert list(train.items.columns) == ["row", "image", "patient", "view"]
    revived = pickle.loads(pickle.dumps(train))
    assert revived._maps == {} and torch.equal(revived[3][0], image)
    in_workers = next(iter(DataLoader(train, batch_size=8, num_workers=2)))  # each worker maps the store itself
    in_process = next(iter(DataLoader(train, batch_size=8)))
    whole_batch = next(iter(api.batch_loader(train, batch_size=8)))
    for other in (in_workers, whole_batch):
        assert all(torch.equal(a, b) for a, b in zip(other, in_process, strict=True))


def test_expert_labels_are_nan_where_an_image_has_none(tiny_run):
    test = api.NIHClassification(tiny_run, part="test", labels="expert_four")
    assert test.label_names == api.NIH_LABEL_SETS["expert_four"] and test.labels.shape == (len(test), 4)
    labelled = ~np.isnan(test.labels).all(axis=1)
    assert 0 < labelled.sum() < len(test)
    assert set(np.unique(test.labels[labelled])) <= {0.0, 1.0, np.nan} or np.isnan(test.labels[labelled]).any()


def test_scr_masks_are_the_five_objects_of_the_store(tiny_run):
    fold = api.SCRSegmentation(tiny_run, fold=2)
    image, masks = fold[0]
    packed = store.open_array(store.find_masks(tiny_run / "data/store/jsrt"))[fold.items["row"][0]]
    assert masks.shape == (len(OBJECTS), *image.shape[1:]) and masks.dtype == torch.float32
    np.testing.assert_array_equal(masks.numpy(), store.unpack_masks(packed[None], len(OBJECTS))[0])
    assert masks[0].sum() > 0  # a right lung


def test_nodule_tasks_follow_the_folds(tiny_run):
    split = pd.read_csv(tiny_run / "data/splits/jsrt_nodules.csv")
    rois = api.JSRTNodules(tiny_run, task="malignancy", folds=[1])
    assert set(rois.items["case"]) == set(split.query("task == 'malignancy' and fold == 1")["case"])
    image, label = rois[0]
    roi_side = store.open_array(store.find_nodule_rois(tiny_run / "data/store/jsrt")).shape[-1]
    assert image.shape == (1, roi_side, roi_side) and label.shape == (1,)
    whole = api.JSRTNodules(tiny_run, task="nodule")
    assert len(whole) == len(split.query("task == 'nodule'"))
