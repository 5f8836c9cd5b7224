"""JSRT nodule tasks: the k-fold split, heat-map targets and candidates, and the train/evaluate stages run on a
small store of blob phantoms (determinism, resume after a kill, out-of-fold metrics, the report's pieces)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cxrbench import config, matrix, nodules, store
from cxrbench.errors import DataError
from cxrbench.leaderboard import nodules as leaderboard_nodules
from cxrbench.nodules import models
from cxrbench.nodules import scores as nodule_scores
from cxrbench.published import load as load_published
from cxrbench.report import nodules as report_section
from cxrbench.report.document import Report
from cxrbench.report.run import Run
from cxrbench.stages import benchmark_nodules, decode_jsrt, evaluate_nodules, rank_nodules, split_jsrt, train_nodules
from helpers.models import network

SIZE = 32
ROI_SIZE = 16
ROI_PIXEL_MM = 4.0
FOLDS = 2
TINY = {
    "folds": FOLDS,
    "classifier": {"epochs": 10, "batch_size": 4, "lr": 0.01},
    "heatmap": {"patch": 16, "patches_per_case": 2, "epochs": 3, "batch_size": 8, "lr": 0.01},
    "candidates": {"max_per_image": 4, "min_distance_mm": 20},
}


def tiny_networks() -> dict:
    """The shipped nodule networks at test size."""
    classifier, heatmap = network("nodule_classifier", "densenet"), network("nodule_heatmap", "unet")
    classifier["net"].update(init_features=4, growth_rate=4, block_config=[2])
    heatmap["net"].update(channels=[4, 8], strides=[2])
    return {"nodule_classifier": classifier, "nodule_heatmap": heatmap}


def params(seed: int = 0, **nodule_overrides) -> dict:
    runtime = {"device": "cpu", "threads": 1, "amp": False, "channels_last": False, "compile": False}
    wider = tiny_networks()["nodule_heatmap"]
    wider["net"].update(channels=[8, 16])
    # the matrices: a second heat-map network, and the baseline classifier with a second seed
    benchmark = {"seeds": [seed, seed + 1], "nodule_classifier": {"challengers": {}},
                 "nodule_heatmap": {"challengers": {"wider": wider}}}
    return {"seed": seed, "train": {"runtime": runtime}, "model": tiny_networks(), "benchmark": benchmark,
            "nodules": {**TINY, **nodule_overrides}, "evaluate": {"bootstrap": {"resamples": 50, "alpha": 0.05}}}


def jsrt_index(n_nodule: int, n_normal: int, seed: int = 0) -> pd.DataFrame:
    """A store index like decode_jsrt's: nodule cases with subtlety, size, centre and malignancy; malignant
    nodules (two in three) are larger."""
    rng = np.random.default_rng(seed)
    nodule = np.r_[np.ones(n_nodule, bool), np.zeros(n_normal, bool)]
    n = len(nodule)
    benign = np.arange(n) % 3 == 0
    return pd.DataFrame({
        "case": [f"JPCLN{i:03d}" for i in range(1, n_nodule + 1)] + [f"JPCNN{i:03d}" for i in range(1, n_normal + 1)],
        "nodule": nodule,
        "subtlety": np.where(nodule, rng.integers(1, 6, n), np.nan),
        "size_mm": np.where(nodule, np.where(benign, 26, 42) + rng.integers(0, 8, n), np.nan),
        "age": rng.integers(30, 80, n), "sex": rng.choice(["male", "female"], n),
        "x": np.where(nodule, rng.integers(500, 1548, n), np.nan),
        "y": np.where(nodule, rng.integers(500, 1548, n), np.nan),
        "malignancy": np.where(nodule, np.where(benign, "benign", "malignant"), None),
        "location": None, "diagnosis": None, "fold": np.arange(n) % 2 + 1, "row": np.arange(n),
    })


def write_store(root: Path, index: pd.DataFrame, seed: int = 0) -> None:
    """data/store/jsrt of blob phantoms: noise, plus a bright disc at each nodule (easy to learn), in the
    images and, at ROI_PIXEL_MM per pixel, in the nodule ROIs."""
    rng = np.random.default_rng(seed)
    images = rng.normal(1500, 120, size=(len(index), SIZE, SIZE))
    targets = nodules.HeatmapTargets.from_index(index, SIZE)
    grid = np.broadcast_to(np.arange(SIZE), (len(index), SIZE))
    images += 1500 * (targets.render(np.arange(len(index)), grid, grid) > 0.5)
    rois = rng.normal(1500, 120, size=(len(index), ROI_SIZE, ROI_SIZE))
    offset = np.hypot(*np.meshgrid(np.arange(ROI_SIZE) - ROI_SIZE / 2, np.arange(ROI_SIZE) - ROI_SIZE / 2))
    radius = index["size_mm"].to_numpy(np.float64) / 2 / ROI_PIXEL_MM
    rois += 1500 * (offset[None] <= radius[:, None, None])
    rois[~index["nodule"].to_numpy(bool)] = 0  # as decode_jsrt leaves the cases without a nodule
    directory = root / "data" / "store" / "jsrt"
    directory.mkdir(parents=True)
    np.save(store.images_path(directory, SIZE), np.clip(images, 0, 4095).astype(np.uint16))
    np.save(store.masks_path(directory, SIZE), np.zeros((len(index), SIZE, SIZE), np.uint8))
    np.save(store.nodule_rois_path(directory, ROI_SIZE), np.clip(rois, 0, 4095).astype(np.uint16))
    store.write_index(directory, index)


# --- split ---------------------------------------------------------------------------------------------------

def test_stratified_folds_balance_every_stratum():
    strata = np.array(["a"] * 23 + ["b"] * 11 + ["c"] * 4)
    folds = split_jsrt.stratified_folds(strata, 5, np.random.default_rng(3))
    assert set(folds) == {1, 2, 3, 4, 5}
    totals = np.bincount(folds, minlength=6)[1:]
    assert totals.max() - totals.min() <= 1
    for stratum in "abc":
        counts = np.bincount(folds[strata == stratum], minlength=6)[1:]
        assert counts.max() - counts.min() <= 1, stratum


def test_split_covers_each_task_once_and_stratifies():
    index = jsrt_index(154, 93)  # the real JSRT counts
    table = split_jsrt.make_split(index, 5, seed=0, source=Path("index.csv"))
    for task in nodules.TASKS:
        cases = nodules.task_cases(index, task)
        folds = table[table["task"] == task].merge(cases, on="case", validate="one_to_one")
        assert sorted(folds["case"]) == sorted(cases["case"])
        positives = folds.groupby("fold")["label"].sum()
        assert positives.max() - positives.min() <= 1, task
    nodule_folds = table[table["task"] == "nodule"].merge(index[["case", "nodule", "subtlety"]], on="case")
    per_subtlety = nodule_folds[nodule_folds["nodule"]].groupby(["subtlety", "fold"]).size().unstack(fill_value=0)
    assert (per_subtlety.max(axis=1) - per_subtlety.min(axis=1)).max() <= 1


def test_split_stage_same_seed_same_bytes_other_seed_other_split(tmp_path, monkeypatch):
    index = jsrt_index(30, 20)
    outputs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        root = tmp_path / name
        write_store(root, index)
        monkeypatch.chdir(root)
        split_jsrt.split(params(seed, folds=5))
        outputs[name] = (root / "data/splits/jsrt_nodules.csv").read_bytes()
        info = json.loads((root / "data/splits/jsrt_nodules.json").read_text())
        assert info["seed"] == seed and info["folds"] == 5 and info["tasks"]["malignancy"]["cases"] == 30
    assert outputs["a"] == outputs["b"]
    assert outputs["a"] != outputs["c"]
    other = pd.read_csv(tmp_path / "c/data/splits/jsrt_nodules.csv")
    split_jsrt.check_folds(other, index, "other seed")  # different, and just as valid
    assert other.groupby("task")["case"].nunique().to_dict() == {"malignancy": 30, "nodule": 50}


def test_leakage_check_names_the_case():
    index = jsrt_index(10, 10)
    table = split_jsrt.make_split(index, 2, seed=0, source=Path("index.csv"))
    leaked = table.iloc[[0]].assign(fold=lambda t: 3 - t["fold"])
    with pytest.raises(DataError, match=table.iloc[0]["case"]):
        split_jsrt.check_folds(pd.concat([table, leaked]), index, "jsrt_nodules.csv")


@pytest.mark.parametrize("change, problem", [
    (lambda t: t.iloc[:-1], "missing: {case}"),
    (lambda t: pd.concat([t, t.iloc[[-1]]]), "listed more than once: {case}"),
    (lambda t: t.assign(task=[*t["task"].iloc[:-1], "malignancy"]), "not cases of the task: {case}"),
])
def test_coverage_check_names_the_case(change, problem):
    """Each task must list every one of its cases exactly once (here the last row: a normal case of the nodule
    task, dropped, repeated or moved to the malignancy task)."""
    index = jsrt_index(10, 10)
    table = split_jsrt.make_split(index, 2, seed=0, source=Path("index.csv"))
    task, case = table.iloc[-1][["task", "case"]]
    assert task == "nodule" and case.startswith("JPCNN")
    with pytest.raises(DataError, match=problem.format(case=case)):
        split_jsrt.check_folds(change(table), index, "jsrt_nodules.csv")


def test_too_few_cases_for_the_folds_is_a_data_error():
    with pytest.raises(DataError, match="(?s)malignancy.*3 cases.*at most 3"):
        split_jsrt.make_split(jsrt_index(3, 10), 5, seed=0, source=Path("index.csv"))


# --- targets and candidates ------------------------------------------------------------------------------------

def test_coordinates_round_trip_and_pixel_centres():
    assert nodules.to_store_coords([7.5], 128)[0] == pytest.approx(0.0)  # pixel 0 covers 0..15 on the 2048 grid
    xs = np.array([0.0, 511.5, 2047.0])
    np.testing.assert_allclose(nodules.to_jsrt_coords(nodules.to_store_coords(xs, 64), 64), xs)


def test_heatmap_targets_peak_at_the_nodule_with_its_radius():
    index = jsrt_index(2, 1)
    index.loc[0, ["x", "y", "size_mm"]] = [1039.5, 527.5, 28.0]  # store (64 px) pixel (32, 16); radius 2.5 px
    targets = nodules.HeatmapTargets.from_index(index, 64)
    grid = np.broadcast_to(np.arange(64), (3, 64))
    maps = targets.render(np.arange(3), grid, grid)
    assert maps.shape == (3, 64, 64) and maps.dtype == np.float32
    assert np.unravel_index(maps[0].argmax(), (64, 64)) == (16, 32) and maps[0].max() == pytest.approx(1.0)
    assert targets.sigma[0] == pytest.approx(28 / 2 / 0.175 / 32)
    assert maps[0, 16, 32 + 2] < maps[0, 16, 32 + 1] < 1.0
    assert not maps[2].any()  # no nodule, no blob
    window = targets.render(np.array([0]), np.arange(10, 20)[None], np.arange(28, 36)[None])
    np.testing.assert_array_equal(window[0], maps[0, 10:20, 28:36])


def test_find_candidates_local_maxima_best_first():
    logits = torch.full((2, 20, 20), -5.0)
    logits[0, 3, 4], logits[0, 15, 15], logits[0, 15, 17] = 2.0, 1.0, 0.5  # (15, 17) lies within 3 px of (15, 15)
    logits[1, 10, 10] = logits[1, 10, 11] = 3.0  # a plateau: one candidate
    found = nodules.find_candidates(logits, max_per_image=5, min_distance=3)
    first = found[found["item"] == 0]
    assert first[["x", "y"]].to_numpy().tolist()[:2] == [[4, 3], [15, 15]]
    assert [15, 17] not in first[["x", "y"]].to_numpy().tolist()
    assert first["score"].is_monotonic_decreasing and first["score"].iloc[0] == pytest.approx(1 / (1 + np.exp(-2)))
    assert len(found[(found["item"] == 1) & (found["score"] > 0.9)]) == 1
    assert len(nodules.find_candidates(logits, max_per_image=1, min_distance=3)) == 2


def test_patches_hold_the_nodule_in_half_of_a_nodule_case_and_stay_inside():
    index = jsrt_index(6, 4)
    targets = nodules.HeatmapTargets.from_index(index, SIZE)
    rows, top, left = models.patch_origins(np.arange(10), targets, SIZE, 16, 4, np.random.default_rng(0))
    assert len(rows) == 40 and (top >= 0).all() and (left >= 0).all() and (top <= SIZE - 16).all()
    cx, cy = targets.centre_x[rows], targets.centre_y[rows]
    inside = (cx >= left + 4) & (cx < left + 12) & (cy >= top + 4) & (cy < top + 12)
    first_half = np.arange(40) % 4 < 2
    assert inside[first_half & (rows < 6)].all()
    assert not inside[rows >= 6].any()  # no nodule, NaN centre


def test_nodule_roi_averages_the_full_resolution_square_around_the_centre():
    display = np.arange(2048 * 2048, dtype=np.uint16).reshape(2048, 2048) % 4096
    factor = decode_jsrt.roi_factor(8, 8 * 3 * 0.175)
    assert factor == 3
    roi = decode_jsrt.nodule_roi(display, x=1000, y=700, roi_size=8, factor=factor)
    square = display[700 - 12 : 700 + 12, 1000 - 12 : 1000 + 12].astype(np.float64)
    np.testing.assert_array_equal(roi, np.rint(square.reshape(8, 3, 8, 3).mean(axis=(1, 3))))
    assert roi.dtype == np.uint16


def test_nodule_roi_mirrors_the_image_beyond_its_border():
    display = np.random.default_rng(0).integers(0, 4096, (2048, 2048), dtype=np.uint16)
    corner = decode_jsrt.nodule_roi(display, x=0, y=2047, roi_size=4, factor=2)
    mirrored = np.pad(display, 4, mode="reflect")[2047 : 2047 + 8, 0:8].astype(np.float64)
    np.testing.assert_array_equal(corner, np.rint(mirrored.reshape(4, 2, 4, 2).mean(axis=(1, 3))))


def test_froc_by_subtlety_ignores_hits_on_other_subtleties():
    truths = pd.DataFrame({"image": ["a", "b"], "x": [100.0, 100.0], "y": [100.0, 100.0], "radius_px": [10.0, 10.0],
                           "subtlety": [1, 5]})
    candidates = pd.DataFrame({"case": ["a", "b", "c"], "x": [101.0, 100.0, 0.0], "y": [100.0, 100.0, 0.0],
                               "score": [0.3, 0.9, 0.5]})
    curves = nodule_scores.froc_curves(candidates, truths, n_images=3)
    assert list(curves) == ["all", "subtlety 1", "subtlety 5"]
    # subtlety 1: b's hit is dropped, so only c's candidate is a false positive before a's hit at 0.3
    np.testing.assert_allclose(curves["subtlety 1"].fp_per_image, [0, 1 / 3, 1 / 3])
    np.testing.assert_allclose(curves["subtlety 1"].sensitivity, [0, 0, 1])
    np.testing.assert_allclose(curves["all"].fp_per_image[-1], 1 / 3)


# --- training and evaluation stages ------------------------------------------------------------------------------

def run_pipeline(root: Path, monkeypatch, seed: int = 0) -> None:
    monkeypatch.chdir(root)
    split_jsrt.split(params(seed))
    train_nodules.train(params(seed))
    evaluate_nodules.evaluate(params(seed))
    for task in leaderboard_nodules.TASKS:
        for cell in matrix.cells(params(seed), task):
            if not cell.main:
                benchmark_nodules.run({**params(seed), "instance": {"task": task, "model": cell.model,
                                                                    "seed": cell.seed}})
    rank_nodules.rank(params(seed))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("nodules")
    write_store(root, jsrt_index(8, 6))
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_pipeline(root, monkeypatch)
    return root


def test_training_writes_every_fold_model_and_logs(trained):
    config = json.loads((trained / "models/nodules/config.json").read_text())
    expected = {f"{kind}_fold{fold}" for kind in ("classifier_malignancy", "heatmap") for fold in (1, 2)}
    assert set(config["models"]) == expected
    assert {p.stem for p in (trained / "models/nodules").glob("*.pt")} == expected
    assert config["models"]["heatmap_fold1"]["train_cases"] == 7
    live = json.loads((trained / "dvclive/nodules/metrics.json").read_text())
    assert set(live) == {"classifier_malignancy", "heatmap", "step"}
    assert not list((trained / "checkpoints").glob("*"))  # cleared once the models are written


def test_evaluation_is_out_of_fold_and_complete(trained):
    predictions = pd.read_csv(trained / "results/nodules/predictions.csv")
    split = pd.read_csv(trained / "data/splits/jsrt_nodules.csv")
    assert len(predictions) == len(split)
    merged = predictions.merge(split, on=["case", "task"], suffixes=("", "_split"))
    assert (merged["fold"] == merged["fold_split"]).all()  # scored by the model tested on the case's fold
    metrics = json.loads((trained / "results/nodules/scores.json").read_text())
    headline = json.loads((trained / "metrics/nodules.json").read_text())
    assert headline["nodule"]["auc"] == metrics["classification"]["nodule"]["auc"] and headline["cases"] == 14
    assert metrics["cases"] == 14 and metrics["nodules"] == 8 and metrics["folds"] == FOLDS
    for task in nodules.TASKS:
        summary = metrics["classification"][task]
        assert summary["model"] == nodules.task_models(json.loads((trained / "models/nodules/config.json").read_text())["networks"])[task]
        assert summary["ci_low"] <= summary["auc"] <= summary["ci_high"]
    assert set(metrics["froc"]["all"]["sensitivity_at_fp_per_image"]) == {"1", "2", "4"}
    candidates = pd.read_csv(trained / "results/nodules/candidates.csv")
    assert candidates.groupby("case").size().max() <= TINY["candidates"]["max_per_image"]
    assert candidates["x"].between(0, 2047).all() and candidates["y"].between(0, 2047).all()
    plot = pd.read_csv(trained / "plots/nodules_froc.csv")
    assert list(plot.columns) == ["fp_per_image", "sensitivity"] and plot["fp_per_image"].is_monotonic_increasing


def test_models_learn_what_the_store_shows(trained):
    """The blobs of the phantom store are obvious: most are found within a false positive per image, the heat
    map's peak tells nodule cases from the others, and the ROI classifier the large (malignant) nodules from
    the small ones."""
    metrics = json.loads((trained / "results/nodules/scores.json").read_text())
    assert metrics["froc"]["all"]["sensitivity_at_fp_per_image"]["1"] >= 0.6
    assert metrics["classification"]["nodule"]["auc"] >= 0.8
    assert metrics["classification"]["malignancy"]["auc"] >= 0.8


def test_same_seed_same_outputs(trained, tmp_path, monkeypatch):
    write_store(tmp_path, jsrt_index(8, 6))
    run_pipeline(tmp_path, monkeypatch)
    for path in ("metrics/nodules.json", "results/nodules/candidates.csv", "dvclive/nodules/metrics.json",
                 "data/splits/jsrt_nodules.csv"):
        assert (tmp_path / path).read_bytes() == (trained / path).read_bytes(), path


def test_killed_run_resumes_to_the_same_models(trained, tmp_path, monkeypatch):
    """Killed after the first of the second model's epochs and run again, training ends with the same weights
    as the uninterrupted run; a checkpoint left by another run (other parameters or data) is ignored."""
    write_store(tmp_path, jsrt_index(8, 6))
    monkeypatch.chdir(tmp_path)
    split_jsrt.split(params())
    stale = tmp_path / "checkpoints/train_nodules_classifier_malignancy_fold1.pt"
    stale.parent.mkdir()
    torch.save({"fingerprint": "another run", "epoch": 1}, stale)
    saves = []
    real_save = train_nodules.training.save_checkpoint

    def save_then_die(path, payload):
        real_save(path, payload)
        saves.append(path)
        if len(saves) == TINY["classifier"]["epochs"] + 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_nodules.training, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_nodules.train(params())
    assert not (tmp_path / "models/nodules").exists()
    assert torch.load(stale, weights_only=False)["epoch"] == TINY["classifier"]["epochs"]  # from scratch, not resumed
    assert len(list((tmp_path / "checkpoints").glob("train_nodules_*.pt"))) == 2
    monkeypatch.setattr(train_nodules.training, "save_checkpoint", real_save)
    train_nodules.train(params())
    for model in (trained / "models/nodules").glob("*.pt"):
        resumed = torch.load(tmp_path / "models/nodules" / model.name, weights_only=False)["state_dict"]
        uninterrupted = torch.load(model, weights_only=False)["state_dict"]
        assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted), model.name
    assert not list((tmp_path / "checkpoints").glob("*"))


def test_a_matrix_cell_trains_by_train_nodules_recipe_and_the_leaderboards_read_every_cell(trained, monkeypatch):
    """The baseline's heat maps retrained through the recipe every cell uses equal train_nodules' to the last bit;
    the cells' folders hold what rank_nodules reads, and both leaderboards rank every model."""
    monkeypatch.chdir(trained)
    again = models.train(params(), "heatmap", "model.nodule_heatmap", 0, "recipe_check")
    for name, state in again.states.items():
        saved = torch.load(trained / "models/nodules" / f"{name}.pt", weights_only=False)["state_dict"]
        assert all(torch.equal(state[k], saved[k]) for k in saved), name
    wider = trained / "models/benchmark/nodule_heatmap/wider-seed0"
    assert {p.name for p in wider.iterdir()} == {"config.json", "heatmap_fold1.pt", "heatmap_fold2.pt", "history.csv",
                                                 "predictions.csv", "candidates.csv"}
    second = trained / "models/benchmark/nodule_classifier/densenet_small-seed1"
    assert set(pd.read_csv(second / "predictions.csv")["task"]) == {"malignancy"}
    heatmaps = pd.read_csv(trained / "results/leaderboard/nodule_heatmap/leaderboard.csv")
    assert set(heatmaps["model"]) == {"unet", "wider"} and (heatmaps["seeds"] == 2).all()
    classifiers = json.loads((trained / "metrics/leaderboard_nodule_classifier.json").read_text())
    assert classifiers["seeds"] == 2 and classifiers["vs_baseline"] == {}


def test_report_section(trained):
    published = load_published(task="jsrt_nodules")
    metrics = json.loads((trained / "results/nodules/scores.json").read_text())
    split_info = json.loads((trained / "data/splits/jsrt_nodules.json").read_text())
    curves = pd.read_csv(trained / "results/nodules/froc.csv")
    folds = report_section.split_table(split_info)
    assert folds.groupby("task")["cases"].sum().to_dict() == {"malignancy": 8, "nodule": 14}
    classification = report_section.classification_table(metrics)
    assert classification["AUC"].iloc[0] == pytest.approx(metrics["classification"]["nodule"]["auc"])
    assert report_section.froc_table(metrics)["nodules"].iloc[0] == "all"
    beside = report_section.published_table(published, metrics, curves, synthetic=True)
    assert len(beside) == len(published) and (beside["comparable"] == "no: different split (paper_protocol)").all()
    assert (beside["our split"] == "jsrt_nodule_folds (synthetic data)").all()
    cad = beside[beside["metric"] == "sensitivity_at_fp_per_image"]
    assert cad["ours"].notna().all()
    np.testing.assert_allclose(cad["ours - published"], cad["ours"] - cad["published"])
    two_fp = cad[cad["FP/image"] == 2]["ours"]
    assert (two_fp == metrics["froc"]["all"]["sensitivity_at_fp_per_image"]["2"]).all()
    by_subtlety = metrics["classification"]["nodule_by_subtlety"]
    for metric, level in (("roc_az_lowest_subtlety_group", "1"), ("roc_az_highest_subtlety_group", "5")):
        ours = beside.loc[beside["metric"] == metric, "ours"].iloc[0]
        assert ours == by_subtlety[level]["auc"] if level in by_subtlety else np.isnan(ours)

    report = Report("nodules")
    report_section.section(report, Run({"datasets": ["jsrt", "scr"], "source": {"kind": "synthetic"}}, root=trained))
    captions = [line for line in report.markdown().splitlines() if line.startswith("**")]
    # the leaderboards open the section: the heat maps' (with a challenger: its comparisons too), the classifiers'
    assert len(captions) == 7 and "not comparable" in captions[-1]
    assert captions[0].startswith("**Leaderboard: FROC sensitivity") and "malignancy AUC" in captions[2]
    page = report.html()
    assert page.count("<figure>") == 5 and page.count('src="data:image/png;base64,') == 5
    assert report.markdown().index("nodule-heatmap-leaderboard.png") < report.markdown().index("jsrt-froc.png")


# --- parameters ------------------------------------------------------------------------------------------------

def test_nodule_parameters_are_checked_naming_the_key_and_the_allowed_ones():
    composed = yaml.safe_load(config.compose_yaml())
    tiny = yaml.safe_load(config.compose_yaml(["experiment=tiny"]))["nodules"]
    demo = composed["nodules"]
    assert tiny["folds"] <= demo["folds"] and tiny["heatmap"]["epochs"] < demo["heatmap"]["epochs"]
    composed["nodules"]["heatmap"]["sigma"] = 2
    composed["nodules"]["classifier"]["epochs"] = "many"
    with pytest.raises(DataError) as err:
        config.validate(composed, "my.yaml")
    message = str(err.value)
    assert "nodules.heatmap" in message and "'sigma' was unexpected" in message
    assert "allowed: batch_size, epochs, lr, patch, patches_per_case" in message  # the network: model.nodule_heatmap
    assert "nodules.classifier.epochs" in message and "integer" in message
