"""The NIH classifier's benchmark matrix and leaderboard (cxrbench.matrix, cxrbench.leaderboard): the cells a
configuration makes, their stages in dvc.yaml (adding a seed adds stages and leaves the others alone), and the
leaderboard's statistics on fixed data against an independent computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from cxrbench import config, leaderboard, matrix
from cxrbench.errors import DataError
from cxrbench.metrics.paired import auc_covariance
from cxrbench.vocabulary import LABELS

BOOTSTRAP = {"resamples": 400, "alpha": 0.05, "unit": "patient"}


def composed(*overrides: str) -> dict:
    return yaml.safe_load(config.compose_yaml(["datasets=[nih]", *overrides]))


def stages(params: dict) -> dict:
    return config.compose_pipeline(params["datasets"], params=params)["stages"]


def test_the_demo_matrix_is_two_models_by_two_seeds_and_the_baseline_s_first_seed_is_train_classifier():
    params = composed()
    cells = matrix.cells(params)
    assert [(c.model, c.seed, c.main) for c in cells] == [("densenet121", 0, True), ("densenet121", 1, False),
                                                          ("efficientnet_b0", 0, False), ("efficientnet_b0", 1, False)]
    assert cells[0].predictions.as_posix() == "results/classifier/predictions.csv"
    found = stages(params)
    cell = found["benchmark_classifier-efficientnet_b0-seed1"]
    assert cell["cmd"].endswith("benchmark_classifier +instance.model=efficientnet_b0 +instance.seed=1")
    assert cell["params"][-1] == "benchmark.classifier.challengers.efficientnet_b0"
    assert cell["outs"] == ["models/benchmark/classifier/efficientnet_b0-seed1"]
    assert found["benchmark_classifier-densenet121-seed1"]["params"][-1] == "model.classifier"
    assert {c.folder.as_posix() for c in cells[1:]} <= set(found["rank_classifiers"]["deps"])


def test_adding_a_seed_adds_that_seed_s_stages_and_changes_no_other_stage():
    before, after = stages(composed()), stages(composed("benchmark.seeds=[0,1,2]"))
    added = set(after) - set(before)
    assert added == {"benchmark_classifier-densenet121-seed2", "benchmark_classifier-efficientnet_b0-seed2"}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"rank_classifiers"}  # it reads the new cells


def test_a_challenger_s_config_is_a_parameter_of_its_own_cells_only():
    def parameter_values(params: dict) -> dict:
        """Per stage, the values of the parameters it depends on (what DVC and Snakemake compare)."""
        return {name: [yaml.safe_dump(matrix.network(params, key)) for key in stage.get("params", [])]
                for name, stage in stages(params).items()}

    before = parameter_values(composed())
    changed = composed("benchmark.classifier.challengers.efficientnet_b0.init=imagenet")
    after = parameter_values(changed)
    differ = {name for name in before if before[name] != after[name]}
    assert differ == {"benchmark_classifier-efficientnet_b0-seed0", "benchmark_classifier-efficientnet_b0-seed1"}
    weights = "weights/imagenet/efficientnet-b0-355c32eb.pth"
    assert weights in stages(changed)["benchmark_classifier-efficientnet_b0-seed0"]["deps"]
    assert weights not in stages(changed)["train_classifier"]["deps"]


def test_a_challenger_named_like_the_baseline_is_refused_with_what_to_do():
    with pytest.raises(DataError, match="named like the baseline.*benchmark=single"):
        config.validate(composed("model/classifier=efficientnet_b0"))


def test_the_leaderboard_fails_naming_every_missing_cell(tmp_path):
    params = composed()
    for cell in matrix.cells(params)[:2]:
        (tmp_path / cell.predictions).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / cell.predictions).write_text("image\n")
    with pytest.raises(DataError) as err:
        leaderboard.read_scored(params, tmp_path)
    message = str(err.value)
    assert "missing for 2 of the 4 cells" in message
    assert "benchmark_classifier-efficientnet_b0-seed0, benchmark_classifier-efficientnet_b0-seed1" in message


def fixed_scores(n: int = 1200, strength: tuple[float, float] = (1.0, 1.6), seed: int = 5) -> leaderboard.Scored:
    """The demo's 2 models x 2 seeds scoring the same n images (3 per patient); the challenger's scores carry more
    signal (`strength`) than the baseline's."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(LABELS))) < 0.2).astype(np.uint8)
    patients = np.repeat(np.arange(n // 3), 3)
    params = composed()
    cells = matrix.cells(params)
    scores = np.stack([strength[cell.model != "densenet121"] * y + rng.normal(size=y.shape) for cell in cells])
    return leaderboard.Scored(cells, y, patients, scores)


def test_aucs_spread_and_differences_equal_an_independent_computation():
    scored = fixed_scores()
    aucs, cov = auc_covariance(scored.y, scored.scores)
    sklearn = np.array([[roc_auc_score(scored.y[:, k], s[:, k]) for k in range(len(LABELS))] for s in scored.scores])
    np.testing.assert_allclose(aucs, sklearn)
    runs = leaderboard.runs_table(scored, aucs)
    spread = leaderboard.seed_spread(runs)
    means = sklearn.mean(axis=1)
    baseline = spread[(spread["model"] == "densenet121") & (spread["class"] == leaderboard.MEAN)].iloc[0]
    assert baseline["auc_mean"] == pytest.approx(means[:2].mean(), abs=1e-6)
    assert baseline["auc_sd"] == pytest.approx(np.std(means[:2], ddof=1), abs=1e-6)
    compared = leaderboard.comparisons(scored, aucs, cov, spread, BOOTSTRAP, seed=0)
    per_class = compared[compared["class"] != leaderboard.MEAN]
    np.testing.assert_allclose(per_class["difference"], sklearn[2:].mean(axis=0) - sklearn[:2].mean(axis=0), atol=1e-6)
    mean_row = compared[compared["class"] == leaderboard.MEAN].iloc[0]
    assert mean_row["difference"] == pytest.approx(means[2:].mean() - means[:2].mean(), abs=1e-6)
    assert mean_row["ci_low"] > 0 and mean_row["p_value"] < 0.01  # a real improvement is found
    assert (per_class["p_holm"] >= per_class["p_value"]).all()
    assert mean_row["challenger_seed_sd"] == pytest.approx(np.std(means[2:], ddof=1), abs=1e-6)


def test_a_challenger_that_scores_as_the_baseline_does_not_differ():
    scored = fixed_scores()
    scored.scores[2:] = scored.scores[:2]
    aucs, cov = auc_covariance(scored.y, scored.scores)
    spread = leaderboard.seed_spread(leaderboard.runs_table(scored, aucs))
    compared = leaderboard.comparisons(scored, aucs, cov, spread, BOOTSTRAP, seed=0)
    assert (compared["difference"].abs() < 1e-9).all()
    assert (compared["p_value"] == 1.0).all()


def test_the_leaderboard_table_ranks_by_mean_auc_and_the_metrics_stay_small():
    scored = fixed_scores()
    aucs, cov = auc_covariance(scored.y, scored.scores)
    spread = leaderboard.seed_spread(leaderboard.runs_table(scored, aucs))
    compared = leaderboard.comparisons(scored, aucs, cov, spread, BOOTSTRAP, seed=0)
    board = leaderboard.leaderboard_table(spread, compared, scored.baseline)
    assert list(board["model"]) == ["efficientnet_b0", "densenet121"]
    assert pd.isna(board.loc[1, "difference"]) and board.loc[0, "p_holm"] < 0.05
    metrics = leaderboard.headline(board, scored)

    def leaves(value) -> int:
        return sum(map(leaves, value.values())) if isinstance(value, dict) else len(value) if isinstance(value, list) else 1

    assert leaves(metrics) < 20
