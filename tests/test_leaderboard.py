"""The benchmark matrices and leaderboards (cxrbench.matrix, cxrbench.leaderboard): the cells a configuration
makes, their stages in dvc.yaml (adding a seed adds stages and leaves the others alone), and both leaderboards'
statistics on fixed data against an independent computation."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from cxrbench import artefacts, config, matrix
from cxrbench.errors import DataError
from cxrbench.leaderboard import MEAN, headline, leaderboard_table, seed_spread
from cxrbench.leaderboard import classifier as classifier_board
from cxrbench.leaderboard import nodules as nodule_board
from cxrbench.leaderboard import segmenter as segmenter_board
from cxrbench.metrics.froc import froc, sensitivity_at
from cxrbench.metrics.paired import auc_covariance
from cxrbench.nodules import FP_PER_IMAGE, nodule_truths
from cxrbench.vocabulary import LABELS, PUBLISHED_OBJECTS, SCORED_OBJECTS

BOOTSTRAP = {"resamples": 400, "alpha": 0.05, "unit": "patient"}


def composed(*overrides: str) -> dict:
    return yaml.safe_load(config.compose_yaml(["datasets=[nih]", *overrides]))


def stages(params: dict) -> dict:
    return config.compose_pipeline(params["datasets"], params=params)["stages"]


def test_the_demo_matrix_is_two_models_by_two_seeds_and_the_baseline_s_first_seed_is_train_classifier():
    params = composed()
    cells = matrix.cells(params, "classifier")
    assert [(c.model, c.seed, c.main) for c in cells] == [("densenet121", 0, True), ("densenet121", 1, False),
                                                          ("resnet18", 0, False), ("resnet18", 1, False)]
    assert cells[0].scored.as_posix() == "results/classifier/predictions.csv"
    found = stages(params)
    cell = found["benchmark_classifier-resnet18-seed1"]
    assert cell["cmd"].endswith("benchmark_classifier +instance.model=resnet18 +instance.seed=1")
    assert cell["params"][-1] == "benchmark.classifier.challengers.resnet18"
    assert cell["outs"] == ["models/benchmark/classifier/resnet18-seed1"]
    assert found["benchmark_classifier-densenet121-seed1"]["params"][-1] == "model.classifier"
    assert {c.folder.as_posix() for c in cells[1:]} <= set(found["rank_classifiers"]["deps"])


def test_adding_a_seed_adds_that_seed_s_stages_and_changes_no_other_stage():
    before, after = stages(composed()), stages(composed("benchmark.seeds=[0,1,2]"))
    added = set(after) - set(before)
    assert added == {"benchmark_classifier-densenet121-seed2", "benchmark_classifier-resnet18-seed2"}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"rank_classifiers"}  # it reads the new cells
    both = stages(yaml.safe_load(config.compose_yaml(["benchmark.seeds=[0,1,2]"])))
    assert {"benchmark_segmenter-unet-seed2", "benchmark_segmenter-attention_unet-seed2"} <= set(both)


def test_a_challenger_s_config_is_a_parameter_of_its_own_cells_only():
    def parameter_values(params: dict) -> dict:
        """Per stage, the values of the parameters it depends on (what DVC and Snakemake compare)."""
        return {name: [yaml.safe_dump(matrix.network(params, key)) for key in stage.get("params", [])]
                for name, stage in stages(params).items()}

    before = parameter_values(composed())
    changed = composed("benchmark.classifier.challengers.resnet18.init=imagenet")
    after = parameter_values(changed)
    differ = {name for name in before if before[name] != after[name]}
    assert differ == {"benchmark_classifier-resnet18-seed0", "benchmark_classifier-resnet18-seed1"}
    weights = "weights/imagenet/resnet18-f37072fd.pth"
    assert weights in stages(changed)["benchmark_classifier-resnet18-seed0"]["deps"]
    assert weights not in stages(changed)["train_classifier"]["deps"]


def test_a_challenger_named_like_the_baseline_is_refused_with_what_to_do():
    with pytest.raises(DataError, match="named like the baseline.*benchmark=single"):
        config.validate(composed("model/classifier=resnet18"))


def test_the_leaderboard_fails_naming_every_missing_cell(tmp_path):
    params = composed()
    for cell in matrix.cells(params, "classifier")[:2]:
        (tmp_path / cell.scored).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / cell.scored).write_text("image\n")
    with pytest.raises(DataError) as err:
        classifier_board.read_scored(params, tmp_path)
    message = str(err.value)
    assert "missing for 2 of the 4 cells of the classifier benchmark matrix" in message
    assert "benchmark_classifier-resnet18-seed0, benchmark_classifier-resnet18-seed1" in message


def fixed_scores(n: int = 1200, strength: tuple[float, float] = (1.0, 1.6), seed: int = 5) -> classifier_board.Scored:
    """The demo's 2 models x 2 seeds scoring the same n images (3 per patient); the challenger's scores carry more
    signal (`strength`) than the baseline's."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(LABELS))) < 0.2).astype(np.uint8)
    patients = np.repeat(np.arange(n // 3), 3)
    params = composed()
    cells = matrix.cells(params, "classifier")
    scores = np.stack([strength[cell.model != "densenet121"] * y + rng.normal(size=y.shape) for cell in cells])
    return classifier_board.Scored(cells, y, patients, scores)


def test_aucs_spread_and_differences_equal_an_independent_computation():
    scored = fixed_scores()
    aucs, cov = auc_covariance(scored.y, scored.scores)
    sklearn = np.array([[roc_auc_score(scored.y[:, k], s[:, k]) for k in range(len(LABELS))] for s in scored.scores])
    np.testing.assert_allclose(aucs, sklearn)
    runs = classifier_board.runs_table(scored, aucs)
    spread = seed_spread(runs, "class", "auc")
    means = sklearn.mean(axis=1)
    baseline = spread[(spread["model"] == "densenet121") & (spread["class"] == MEAN)].iloc[0]
    assert baseline["auc_mean"] == pytest.approx(means[:2].mean(), abs=1e-6)
    assert baseline["auc_sd"] == pytest.approx(np.std(means[:2], ddof=1), abs=1e-6)
    compared = classifier_board.comparisons(scored, aucs, cov, spread, BOOTSTRAP, seed=0)
    per_class = compared[compared["class"] != MEAN]
    np.testing.assert_allclose(per_class["difference"], sklearn[2:].mean(axis=0) - sklearn[:2].mean(axis=0), atol=1e-6)
    mean_row = compared[compared["class"] == MEAN].iloc[0]
    assert mean_row["difference"] == pytest.approx(means[2:].mean() - means[:2].mean(), abs=1e-6)
    assert mean_row["ci_low"] > 0 and mean_row["p_value"] < 0.01  # a real improvement is found
    assert (per_class["p_holm"] >= per_class["p_value"]).all()
    assert mean_row["challenger_seed_sd"] == pytest.approx(np.std(means[2:], ddof=1), abs=1e-6)


def test_a_challenger_that_scores_as_the_baseline_does_not_differ():
    scored = fixed_scores()
    scored.scores[2:] = scored.scores[:2]
    aucs, cov = auc_covariance(scored.y, scored.scores)
    spread = seed_spread(classifier_board.runs_table(scored, aucs), "class", "auc")
    compared = classifier_board.comparisons(scored, aucs, cov, spread, BOOTSTRAP, seed=0)
    assert (compared["difference"].abs() < 1e-9).all()
    assert (compared["p_value"] == 1.0).all()


def test_the_leaderboard_table_ranks_by_mean_auc_and_the_metrics_stay_small():
    scored = fixed_scores()
    aucs, cov = auc_covariance(scored.y, scored.scores)
    spread = seed_spread(classifier_board.runs_table(scored, aucs), "class", "auc")
    compared = classifier_board.comparisons(scored, aucs, cov, spread, BOOTSTRAP, seed=0)
    board = leaderboard_table(spread, compared, scored.baseline, "class", "auc")
    assert list(board["model"]) == ["resnet18", "densenet121"]
    assert pd.isna(board.loc[1, "difference"]) and board.loc[0, "p_holm"] < 0.05
    metrics = headline(board, "auc", scored.baseline, 2, len(scored.y))

    def leaves(value) -> int:
        return sum(map(leaves, value.values())) if isinstance(value, dict) else len(value) if isinstance(value, list) else 1

    assert leaves(metrics) < 20


def test_the_segmenter_leaderboard_pairs_cases_and_finds_a_better_model(tmp_path):
    """Per-case Jaccards of 2 models x 2 seeds written as the cells' cases.csv: the leaderboard reads them back, its
    differences are the seed-averaged per-case differences, Wilcoxon's p is scipy's on those, and a challenger no
    better than the baseline gets p = 1."""
    from scipy.stats import wilcoxon

    params = composed("datasets=[jsrt,scr]")
    rng = np.random.default_rng(2)
    cases = [f"JPCLN{k:03d}" for k in range(40)]
    truth = {}
    for cell in matrix.cells(params, "segmenter"):
        shift = 0.03 if cell.model == "attention_unet" else 0.0
        frame = pd.DataFrame([{"case": case, "test_fold": 1 + k % 2, "object": obj,
                               "jaccard": float(np.clip(0.85 + shift + rng.normal(0, 0.04), 0, 1)), "dice": 0.9,
                               "contour_mm": 1.0, "pixel_error": 0.02} for k, case in enumerate(cases)
                              for obj in SCORED_OBJECTS])
        (tmp_path / cell.scored).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(tmp_path / cell.scored, index=False)
        truth[(cell.model, cell.seed)] = frame
    tables, metrics = segmenter_board.rank({**params, "evaluate": {"bootstrap": BOOTSTRAP}}, tmp_path)
    heart = {key: frame[frame["object"] == "heart"]["jaccard"].to_numpy() for key, frame in truth.items()}
    differences = (heart[("attention_unet", 0)] + heart[("attention_unet", 1)]) / 2 - (heart[("unet", 0)] + heart[("unet", 1)]) / 2
    row = tables["comparisons"].set_index("object").loc["heart"]
    assert row["difference"] == pytest.approx(differences.mean(), abs=1e-6)
    assert row["p_value"] == pytest.approx(wilcoxon(differences, zero_method="zsplit").pvalue, abs=1e-6)
    assert row["ci_low"] < differences.mean() < row["ci_high"] and row["p_holm"] >= row["p_value"]
    assert list(tables["leaderboard"]["model"]) == ["attention_unet", "unet"] and metrics["test_cases"] == 40
    # ranked on the objects the SCR benchmark publishes; the mean is theirs
    assert list(tables["comparisons"]["object"]) == [*PUBLISHED_OBJECTS, MEAN]
    assert segmenter_board.paired(np.zeros(10), 100, 0.05, 0)[2] == 1.0


NODULE_CHALLENGERS = ("+model/nodule_heatmap@benchmark.nodule_heatmap.challengers.wide=unet",
                      "+model/nodule_classifier@benchmark.nodule_classifier.challengers.wider=densenet")


def nodule_run(root, signal: dict[str, float], seed: int = 4) -> dict:
    """A JSRT store index of 60 cases (24 nodules) and every nodule cell's out-of-fold files: the challengers' scores
    and candidates carry `signal` more than the baseline's."""
    params = {**composed("datasets=[jsrt,scr]", *NODULE_CHALLENGERS), "evaluate": {"bootstrap": BOOTSTRAP}}
    rng = np.random.default_rng(seed)
    cases = [f"JPC{k:03d}" for k in range(60)]
    nodule = np.arange(60) < 24
    index = pd.DataFrame({"case": cases, "row": range(60), "nodule": nodule.astype(int),
                          "malignancy": np.where(nodule, np.where(np.arange(60) % 2 == 0, "malignant", "benign"), ""),
                          "x": np.where(nodule, 1000.0, np.nan), "y": np.where(nodule, 900.0, np.nan),
                          "size_mm": np.where(nodule, 15.0, np.nan), "subtlety": np.where(nodule, 3, 0)})
    (root / artefacts.STORE_JSRT).mkdir(parents=True)
    index.to_csv(root / artefacts.STORE_JSRT / "index.csv", index=False)
    malignant = (index["malignancy"] == "malignant").to_numpy()[nodule]
    for cell in matrix.cells(params, "nodule_classifier"):
        boost = signal["classifier"] if cell.model == "wider" else 0.0
        (root / cell.scored).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"case": np.array(cases)[nodule], "task": "malignancy", "fold": 1,
                      "score": (1 + boost) * malignant + rng.normal(size=24)}).to_csv(root / cell.scored, index=False)
    for cell in matrix.cells(params, "nodule_heatmap"):
        boost = signal["heatmap"] if cell.model == "wide" else 0.0
        on_nodule = pd.DataFrame({"case": np.array(cases)[nodule], "x": 1000.0, "y": 900.0,
                                  "score": 0.5 + boost + rng.normal(0, 0.3, 24)})
        elsewhere = pd.DataFrame({"case": rng.choice(cases, 150), "x": 200.0, "y": 200.0,
                                  "score": rng.normal(0.5, 0.3, 150)})
        folder = (root / cell.scored).parent
        folder.mkdir(parents=True, exist_ok=True)
        pd.concat([on_nodule, elsewhere]).assign(fold=1).to_csv(folder / matrix.CANDIDATES, index=False)
        if not (root / cell.scored).exists():
            pd.DataFrame({"case": cases, "task": "nodule", "fold": 1, "score": 0.5}).to_csv(root / cell.scored,
                                                                                          index=False)
    return params


def test_the_nodule_leaderboards_equal_an_independent_computation_and_find_a_better_model(tmp_path):
    """Malignancy AUCs against scikit-learn with DeLong's difference of seed averages; FROC sensitivities against
    froc() per cell; the better heat map's difference has an interval above zero and a small p."""
    params = nodule_run(tmp_path, {"classifier": 1.0, "heatmap": 0.6})
    tables, metrics = nodule_board.rank_classifiers(params, tmp_path)
    labels = pd.read_csv(tmp_path / artefacts.STORE_JSRT / "index.csv").query("nodule == 1")["malignancy"] == "malignant"
    aucs = {(c.model, c.seed): roc_auc_score(labels, pd.read_csv(tmp_path / c.scored)["score"])
            for c in matrix.cells(params, "nodule_classifier")}
    row = tables["comparisons"].iloc[0]
    assert row["task"] == "malignancy" and metrics["test_cases"] == 24
    assert row["difference"] == pytest.approx((aucs[("wider", 0)] + aucs[("wider", 1)] - aucs[("densenet_small", 0)]
                                               - aucs[("densenet_small", 1)]) / 2, abs=1e-6)
    assert list(tables["leaderboard"]["model"])[0] == "wider" and "mean_auc" in metrics["models"]["wider"]

    tables, metrics = nodule_board.rank_heatmaps(params, tmp_path)
    index = pd.read_csv(tmp_path / artefacts.STORE_JSRT / "index.csv")
    truths = nodule_truths(index)
    for cell in matrix.cells(params, "nodule_heatmap"):
        candidates = pd.read_csv((tmp_path / cell.scored).parent / matrix.CANDIDATES).rename(columns={"case": "image"})
        expected = sensitivity_at(froc(candidates, truths, len(index)), FP_PER_IMAGE)
        got = tables["runs"].query("model == @cell.model and seed == @cell.seed").set_index("fp_per_image")["sensitivity"]
        np.testing.assert_allclose(got[["1", "2", "4"]], expected, atol=1e-6)
        assert got[MEAN] == pytest.approx(expected.mean(), abs=1e-6)
    better = tables["comparisons"].set_index("fp_per_image").loc[MEAN]
    assert better["ci_low"] > 0 and better["p_value"] < 0.05 and better["p_holm"] >= better["p_value"]
    assert metrics["baseline"] == "unet" and set(metrics["vs_baseline"]) == {"wide"}


def test_a_nodule_heat_map_that_finds_what_the_baseline_finds_does_not_differ(tmp_path):
    params = nodule_run(tmp_path, {"classifier": 0.0, "heatmap": 0.0})
    baseline, challenger = (matrix.cells(params, "nodule_heatmap")[k] for k in (0, 2))
    for seed_offset in (0, 1):
        source = matrix.cells(params, "nodule_heatmap")[seed_offset]
        target = matrix.cells(params, "nodule_heatmap")[2 + seed_offset]
        shutil.copy((tmp_path / source.scored).parent / matrix.CANDIDATES, (tmp_path / target.scored).parent / matrix.CANDIDATES)
    assert baseline.model != challenger.model
    compared = nodule_board.rank_heatmaps(params, tmp_path)[0]["comparisons"]
    assert (compared["difference"].abs() < 1e-12).all() and (compared["p_value"] == 1.0).all()


def test_the_nodule_leaderboard_fails_naming_a_missing_heat_map_cell(tmp_path):
    params = nodule_run(tmp_path, {"classifier": 0.0, "heatmap": 0.0})
    missing = matrix.cells(params, "nodule_heatmap")[3]
    (tmp_path / missing.scored).unlink()
    with pytest.raises(DataError, match=r"(?s)missing for 1 of the 4 cells of the nodule_heatmap benchmark matrix: "
                                        r"wide-seed1 .*benchmark_nodule_heatmap-wide-seed1"):
        nodule_board.rank_heatmaps(params, tmp_path)
    main = matrix.cells(params, "nodule_heatmap")[0]
    (tmp_path / main.scored).unlink()
    with pytest.raises(DataError, match="train_nodules and evaluate_nodules"):
        nodule_board.rank_heatmaps(params, tmp_path)
