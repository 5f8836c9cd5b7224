"""The report's figures of localisation, dataset statistics, segmentation and nodules, on small hand-made inputs:
they draw what they are given (every published point, a panel that says when a class has no box, the cases
chosen), name an undefined AUC, and give the same bytes twice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection

from cxrbench import published
from cxrbench.report import datasets, localisation, nodules, segmentation
from cxrbench.report.document import figure_png
from cxrbench.vocabulary import BOX_LABELS, LABELS, PUBLISHED_OBJECTS, SCORED_OBJECTS

THRESHOLDS = [0.1, 0.25, 0.5, 0.75, 0.9]


def localisation_metrics(with_boxes: dict[str, list[float]]) -> dict:
    """results/localisation/scores.json's shape: the classes of `with_boxes` have boxes and these accuracies at
    THRESHOLDS (T(IoBB)), every other class none."""
    per_class = {label: {"boxes": 0, "images": 0} for label in BOX_LABELS}
    for label, accuracies in with_boxes.items():
        per_class[label] = {"boxes": 3, "images": 2, "iobb": {format(t, "g"): {"accuracy": a, "avg_fp": 0.0}
                                                              for t, a in zip(THRESHOLDS, accuracies)}}
    return {"thresholds": {"iobb": THRESHOLDS, "iou": [0.3]}, "per_class": per_class}


def test_localisation_accuracy_panels_show_ours_where_there_are_boxes_and_every_published_point():
    rows_of_paper = published.load(task="nih_localisation")
    fig = localisation.accuracy_figure(localisation_metrics({"Mass": [0.9, 0.7, 0.5, 0.3, 0.1]}), rows_of_paper)
    panels = dict(zip(BOX_LABELS, fig.axes))
    assert panels["Mass"].get_title() == "Mass: 3 boxes"
    assert panels["Nodule"].get_title() == "Nodule: no box in our split"
    for label, ax in panels.items():
        ours = [line for line in ax.lines if line.get_label() == "ours"]
        assert len(ours) == (label == "Mass")
        expected = rows_of_paper[(rows_of_paper["metric"] == "accuracy_iobb") & (rows_of_paper["label"] == label)]
        assert sorted(line.get_ydata()[0] for line in ax.lines if line.get_label() != "ours") \
            == sorted(expected["value"])
    np.testing.assert_allclose(panels["Mass"].lines[0].get_ydata(), [0.9, 0.7, 0.5, 0.3, 0.1])  # ours
    assert [text.get_text() for text in fig.legends[0].get_texts()][0] == "ours"
    with pytest.raises(ValueError, match="overlap"):
        localisation.accuracy_figure(localisation_metrics({}), rows_of_paper, "dice")


def test_prevalence_bars_are_the_shares_of_each_part():
    shares = {part: dict(zip(LABELS, np.linspace(0.01, 0.14, len(LABELS)) * (n + 1)))
              for n, part in enumerate(("test", "train", "val"))}  # JSON order: the figure puts train first
    stats = {"splits": {"parts": {part: {"images": 10, "prevalence": shares[part]} for part in shares}}}
    fig = datasets.prevalence_figure(stats)
    bars = fig.axes[0].containers
    assert [bar.get_label() for bar in bars] == ["train (10 images)", "val (10 images)", "test (10 images)"]
    for bar, part in zip(bars, ("train", "val", "test")):
        np.testing.assert_allclose([patch.get_width() for patch in bar], [100 * shares[part][label]
                                                                          for label in LABELS])


def scr_cases(jaccards: dict[str, float]) -> pd.DataFrame:
    """results/segmenter/cases.csv's shape: every scored object of a case has the case's Jaccard, the left ones
    half."""
    return pd.DataFrame([{"case": case, "object": obj, "jaccard": value / 2 if obj.startswith("left") else value}
                         for case, value in jaccards.items() for obj in SCORED_OBJECTS])


def test_best_median_and_worst_cases_each_named_once():
    lungs = pd.Series({"A": 0.5, "B": 0.9, "C": 0.1, "D": 0.7, "E": 0.3})
    assert segmentation.best_median_worst(lungs) == {"best": "B", "median": "A", "worst": "C"}
    assert segmentation.best_median_worst(lungs[["A", "B"]]) == {"best": "B", "worst": "A"}
    assert segmentation.best_median_worst(lungs[["A"]]) == {"best": "A"}


def test_jaccard_figure_draws_every_case_and_the_observer_and_best_published_per_object():
    cases = scr_cases({"A": 0.8, "B": 0.6, "C": 0.4})
    scores = segmentation.jaccard_by_case(cases)
    assert list(scores.columns) == list(SCORED_OBJECTS)  # the published objects first
    np.testing.assert_allclose(scores["left lung"], [0.4, 0.3, 0.2])
    rows = published.load(task="scr_segmentation")
    fig = segmentation.jaccard_figure(cases, rows)
    ax = fig.axes[0]
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [len(d.get_offsets()) for d in dots] == [3] * len(scores.columns)  # every case, every box
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    jaccards = rows[(rows["metric"] == "jaccard") & (rows["split"] == "scr_folds")]
    expected = []
    for obj in PUBLISHED_OBJECTS:
        of_object = jaccards[jaccards["label"] == obj]
        observer = of_object["method"] == "human observer"
        expected += [*of_object.loc[observer, "value"], of_object.loc[~observer, "value"].max()]
    assert sorted(line.get_segments()[0][0][1] for line in lines) == pytest.approx(sorted(expected))
    observer = [text.get_text() for text in fig.legends[0].get_texts() if "human observer" in text.get_text()]
    assert observer == ["van Ginneken, Stegmann & Loog 2006, human observer"]
    assert figure_png(segmentation.jaccard_figure(cases, rows)) == figure_png(segmentation.jaccard_figure(cases, rows))


def test_roc_figure_draws_each_task_and_names_an_undefined_auc():
    predictions = pd.DataFrame({"case": list("abcdabcd"), "task": ["malignancy"] * 4 + ["nodule"] * 4,
                                "fold": 1, "score": [0.9, 0.2, 0.6, 0.4, 0.8, 0.7, 0.1, 0.3],
                                "label": [1, 1, 1, 1, 1, 0, 1, 0]})
    metrics = {"classification": {"malignancy": {"auc": None}, "nodule": {"auc": 0.75}}}
    fig = nodules.roc_figure(predictions, metrics)
    ax = fig.axes[0]
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == ["nodule vs no nodule: AUC 0.750, 4 cases", "malignant vs benign: AUC undefined, 4 cases",
                      "chance"]
    nodule_curve = ax.lines[0]
    assert (nodule_curve.get_xdata()[-1], nodule_curve.get_ydata()[-1]) == (1, 1)
    assert len(ax.lines[1].get_xdata()) == 0  # one class only: no curve
