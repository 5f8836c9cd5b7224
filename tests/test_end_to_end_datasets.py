"""Run what you have: the tiny pipeline with NIH alone (the common case) and with JSRT + SCR alone, each under both
runners in its own copy of the repository. Exactly the stages of those datasets run, the two runners give the same
bytes and leave each other nothing to do, nothing of another dataset is written, and the report says on top which
datasets were used and what their absence left out. All four datasets together are tests/test_end_to_end.py (so
Google's stages run there beside NIH's); NIH with Google but without JSRT is not run as well, to keep CI short:
its composition, like every choice's, is held by tests/test_pipeline_graph.py."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import pytest

from helpers.pipeline import BIN, copy_repo, output_hashes, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# datasets -> (outputs that must exist, outputs that must not)
CASES = {
    "nih": (["metrics/classifier.json", "metrics/localisation.json", "results/datasets/nih.json"],
            ["data/raw/google", "metrics/expert_labels.json", "metrics/label_quality.json", "data/raw/jsrt", "data/store/jsrt",
             "metrics/segmenter.json", "metrics/nodules.json", "results/datasets/jsrt.json"]),
    "jsrt,scr": (["metrics/segmenter.json", "metrics/nodules.json", "results/datasets/scr.json"],
                 ["data/raw/nih", "data/raw/google", "data/store/nih", "metrics/classifier.json",
                  "results/datasets/nih.json"]),
}
# Both run the demo's benchmark matrices at tiny size, the end-to-end runs of the matrices: NIH's 2 classifiers x 2
# seeds, and to keep CI short the 2 segmenters with one seed (one template and one composition make both), and a
# second nodule heat map against the baseline's.
OVERRIDES = {"nih": ["benchmark=demo"],
             "jsrt,scr": ["benchmark=demo", "benchmark.seeds=[0]",
                          "+model/nodule_heatmap@benchmark.nodule_heatmap.challengers.wide=unet"]}
# per dataset choice, per matrix: (task, the models of its matrix, its seeds, the rows of a challenger's comparisons:
# classes, objects or FROC points, and the headline; the report section it opens, and that section's first figure
# after the leaderboards)
MATRIX = {"nih": [("classifier", ["densenet121", "resnet18"], [0, 1], 15, "NIH ChestX-ray14 classification",
                   "nih-forest")],
          # the segmenter's comparisons: the three published objects and their mean
          "jsrt,scr": [("segmenter", ["unet", "attention_unet"], [0], 4, "SCR segmentation", "scr-jaccard"),
                       ("nodule_heatmap", ["unet", "wide"], [0], 4, "JSRT nodules", "jsrt-froc")]}
# What the report's summary must say for each.
SAID_ON_TOP = {
    "nih": ["Datasets used: NIH ChestX-ray14.", "Not used: JSRT, SCR, Google's expert labels for NIH.",
            "The evaluation against Google's expert labels is left out: their files were not given"],
    "jsrt,scr": ["Datasets used: JSRT, SCR.", "NIH classification, localisation and the expert-label evaluation "
                 "are left out (NIH is not in `datasets`)."],
}
TASKS = {"nih": {"NIH ChestX-ray14 classification", "Weakly supervised localisation"},
         "jsrt,scr": {"SCR segmentation", "JSRT nodule detection", "JSRT malignancy"}}
HEADINGS = {"nih": ["NIH ChestX-ray14 classification"], "jsrt,scr": ["SCR segmentation", "JSRT nodules"]}
ALL_HEADINGS = {"NIH ChestX-ray14 classification", "Google expert labels", "SCR segmentation", "JSRT nodules"}


@pytest.fixture(scope="module", params=sorted(CASES))
def runs(request, tmp_path_factory) -> tuple[str, Path, Path]:
    """(datasets, a copy run by snakemake, a copy run by dvc repro)."""
    datasets = request.param
    overrides = [f"datasets=[{datasets}]", *OVERRIDES[datasets]]
    by_snakemake = copy_repo(tmp_path_factory.mktemp("snakemake"), *overrides)
    run([str(BIN / "snakemake"), "--cores", "2"], by_snakemake)
    by_dvc = copy_repo(tmp_path_factory.mktemp("dvc"), *overrides)
    run([str(BIN / "dvc"), "repro"], by_dvc)
    return datasets, by_snakemake, by_dvc


def test_exactly_the_datasets_outputs_are_written(runs):
    datasets, by_snakemake, by_dvc = runs
    present, absent = CASES[datasets]
    for repo in (by_snakemake, by_dvc):
        assert [p for p in present if not (repo / p).exists()] == [], repo
        assert [p for p in absent if (repo / p).exists()] == [], repo
    headline = json.loads((by_snakemake / "metrics/datasets.json").read_text())
    assert set(headline) == ({"nih"} if "nih" in datasets else {"jsrt", "scr"})


def test_both_runners_give_the_same_bytes_and_leave_each_other_nothing_to_do(runs):
    _, by_snakemake, by_dvc = runs
    ours, theirs = output_hashes(by_snakemake), output_hashes(by_dvc)
    assert ours.keys() == theirs.keys()
    assert sorted(k for k in ours if ours[k] != theirs[k]) == []
    status = run([str(BIN / "dvc"), "status"], by_snakemake).stdout
    assert "up to date" in status, status
    dry = run([str(BIN / "snakemake"), "-n", "--cores", "2"], by_dvc)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr


def test_the_report_covers_what_ran_and_says_so_on_top(runs):
    datasets, by_snakemake, _ = runs
    markdown = (by_snakemake / "results/report.md").read_text()
    summary = markdown.split("\n## Summary\n", 1)[1].split("\n## ", 1)[0]  # right after the title and the banner
    for sentence in SAID_ON_TOP[datasets]:
        assert sentence in summary, summary
    tasks = {line.split(" | ")[0].strip("| ") for line in summary.splitlines() if line.startswith("| ")} - {"task"}
    assert tasks == TASKS[datasets]
    headings = {line[3:] for line in markdown.splitlines() if line.startswith("## ")}
    assert headings & ALL_HEADINGS == set(HEADINGS[datasets])
    page = (by_snakemake / "results/report.html").read_text()
    assert SAID_ON_TOP[datasets][0] in html.unescape(page) and "<img" in page


def test_the_leaderboard_reads_every_cell_and_opens_the_task_s_section(runs):
    datasets, by_snakemake, _ = runs
    markdown = (by_snakemake / "results/report.md").read_text()
    for task, (baseline, challenger), seeds, comparisons, heading, first_figure in MATRIX[datasets]:
        folder = by_snakemake / "results/leaderboard" / task
        cells = pd.read_csv(folder / "runs.csv")[["model", "seed"]].drop_duplicates()
        assert sorted(map(tuple, cells.to_numpy())) == sorted((m, s) for m in (baseline, challenger) for s in seeds)
        board = pd.read_csv(folder / "leaderboard.csv")
        assert sorted(board["model"]) == sorted([baseline, challenger]) and set(board["seeds"]) == {len(seeds)}
        compared = pd.read_csv(folder / "comparisons.csv")
        assert set(compared["challenger"]) == {challenger} and len(compared) == comparisons
        metrics = json.loads((by_snakemake / f"metrics/leaderboard_{task}.json").read_text())
        assert metrics["baseline"] == baseline and set(metrics["vs_baseline"]) == {challenger}
        section = markdown.split(f"\n## {heading}\n", 1)[1]
        figure = f"figures/{task.replace('_', '-')}-leaderboard.png"
        assert section.index(figure) < section.index(f"figures/{first_figure}.png")


def test_adding_a_seed_or_changing_a_challenger_reruns_only_its_cells_under_both_runners(runs):
    datasets, by_snakemake, _ = runs
    if datasets != "nih":
        pytest.skip("NIH's run checks it for both matrices' stages (one template, one composition)")
    overrides = ["experiment=tiny", f"datasets=[{datasets}]", *OVERRIDES[datasets]]
    # change -> (the stages it reruns, whether DVC sees rank_classifiers changed before those ran: its parameter
    # benchmark.seeds and its dependencies on the cells' folders)
    cases = {"benchmark.seeds=[0,1,2]": ({"benchmark_classifier-densenet121-seed2",
                                          "benchmark_classifier-resnet18-seed2"}, True),
             "benchmark.classifier.challengers.resnet18.name=resnet18_v2":
                 ({"benchmark_classifier-resnet18-seed0", "benchmark_classifier-resnet18-seed1"}, False)}
    try:
        for change, (cells, rank_changed_now) in cases.items():
            run([str(BIN / "cxrbench"), "compose", *overrides, change], by_snakemake)
            status = run([str(BIN / "dvc"), "status"], by_snakemake).stdout
            changed = {line[:-1] for line in status.splitlines() if line.endswith(":") and not line[0].isspace()}
            assert changed == cells | ({"rank_classifiers"} if rank_changed_now else set()), status
            result = run([str(BIN / "snakemake"), "-n", "--cores", "2"], by_snakemake)
            dry = result.stdout + result.stderr
            jobs = {line.split()[0] for line in dry.split("Job stats:", 1)[1].split("total", 1)[0].splitlines()[3:]
                    if line.strip()}
            assert jobs == cells | {"rank_classifiers", "write_report", "all"}, dry
    finally:
        run([str(BIN / "cxrbench"), "compose", *overrides], by_snakemake)
