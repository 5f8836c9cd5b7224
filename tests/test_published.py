"""Published results as data: they round-trip PUBLISHED.md, means are consistent, loading validates."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrbench import published
from cxrbench.errors import DataError

PUBLISHED_MD = Path(__file__).resolve().parents[1].parent / "shared" / "docs" / "PUBLISHED.md"

# first words of a PUBLISHED.md NIH AUC row -> (table, source) in results.yaml
NIH_ROW_SOURCES = {
    "Wang et al. 2017": ("nih_auc_official", "Wang et al. 2017"),
    "CheXNet": ("nih_auc_random_patient", "Rajpurkar et al. 2017 (CheXNet)"),
    "arnoweng/CheXNet": ("nih_auc_random_patient", "arnoweng/CheXNet"),
    "jrzech/reproduce-chexnet": ("nih_auc_random_patient", "jrzech/reproduce-chexnet"),
    "torchxrayvision": ("nih_auc_random_patient", "torchxrayvision"),
}


@pytest.fixture(scope="module")
def published_md() -> str:
    if not PUBLISHED_MD.is_file():
        pytest.skip(f"{PUBLISHED_MD} not found (only the project's own checkout has ../shared)")
    return PUBLISHED_MD.read_text(encoding="utf-8")


def _decimals(printed: str) -> int:
    return len(printed.split(".")[1]) if "." in printed else 0


def _row_values(table: str, source: str, metric: str | None = None, threshold: float | None = None) -> dict[str, float]:
    frame = published.load()
    rows = frame[(frame["table"] == table) & (frame["source"] == source)]
    if metric is not None:
        rows = rows[rows["metric"] == metric]
    if threshold is not None:
        rows = rows[np.isclose(rows["threshold"], threshold)]
    return dict(zip(rows["label"], rows["value"]))


def _markdown_tables(text: str, header_start: str) -> list[list[list[str]]]:
    """Body rows (cells stripped) of every markdown table whose header starts with `header_start`."""
    tables, lines = [], text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(header_start):
            body = []
            for row in lines[index + 2:]:
                if not row.startswith("|"):
                    break
                body.append([cell.strip() for cell in row.strip().strip("|").split("|")])
            tables.append(body)
    return tables


def test_every_number_of_the_nih_auc_tables_round_trips(published_md):
    labels = published.labels("nih_classification")
    tables = _markdown_tables(published_md, "| source | Atel")
    assert len(tables) == 2
    seen = set()
    for body in tables:
        for cells in body:
            key = next(prefix for prefix in NIH_ROW_SOURCES if cells[0].startswith(prefix))
            table, source = NIH_ROW_SOURCES[key]
            stored = _row_values(table, source)
            printed = dict(zip([*labels, "mean"], cells[1:], strict=True))
            assert stored == {label: float(text) for label, text in printed.items()}, source
            marker = re.search(r"\[([PS])\]", cells[0]).group(1)
            assert set(published.load().query("table == @table and source == @source")["marker"]) == {marker}
            # the printed mean is the arithmetic mean of the printed values, to its printed precision
            mean = np.mean([float(printed[label]) for label in labels])
            assert abs(mean - float(printed["mean"])) <= 0.5 * 10 ** -_decimals(printed["mean"]), source
            seen.add(source)
    nih = published.load(task="nih_classification")
    assert seen == set(nih[nih["table"] != "nih_auc_official_means"]["source"])


def test_official_split_means_round_trip(published_md):
    paragraph = published_md[published_md.index("Official-split means only"):]
    paragraph = paragraph[: paragraph.index("\n\n")]
    printed = [float(number) for number in re.findall(r"(?<![\w.])\.\d{3}\b", paragraph)]
    stored = published.load(task="nih_classification").query("table == 'nih_auc_official_means'")
    assert stored["label"].eq("mean").all()
    assert stored["value"].tolist() == printed
    assert stored.query("source == 'Xiao et al. 2023'")["marker"].eq("P").all()
    assert stored.query("source != 'Xiao et al. 2023'")["marker"].eq("S").all()


def test_localisation_table_19_round_trips(published_md):
    (body,) = _markdown_tables(published_md, "| T(IoBB) |")
    labels = published.labels("nih_localisation")
    assert len(body) == 5
    for cells in body:
        threshold = float(cells[0])
        pairs = [cell.split("/") for cell in cells[1:]]
        accuracy = _row_values("wang_table19_localisation", "Wang et al. 2017", "accuracy_iobb", threshold)
        avg_fp = _row_values("wang_table19_localisation", "Wang et al. 2017", "avg_fp_iobb", threshold)
        assert accuracy == {label: float(pair[0]) for label, pair in zip(labels, pairs, strict=True)}
        assert avg_fp == {label: float(pair[1]) for label, pair in zip(labels, pairs, strict=True)}


def test_iou_and_scr_lists_round_trip(published_md):
    labels = published.labels("nih_localisation")
    wang_line = re.search(r"T\(IoU\)=0\.3 \[P\]:\n?(.*?)\.\n", published_md, re.S).group(1)
    wang = [float(number) for number in re.findall(r"\.\d+", wang_line)]
    assert _row_values("localisation_iou_0.3", "Wang et al. 2017") == dict(zip(labels, wang, strict=True))
    hermoza_line = re.search(r"Hermoza 2020 at IoU >= 0\.3 \[S\]: (.*?)\(same class order\), mean (\.\d+)", published_md)
    hermoza = dict(zip(labels, map(float, hermoza_line.group(1).split()), strict=True)) | {"mean": float(hermoza_line.group(2))}
    assert _row_values("localisation_iou_0.3", "Hermoza et al. 2020") == hermoza

    pixel_errors = published_md[published_md.index("pixel error over the five labels"):]
    pixel_errors = pixel_errors[: pixel_errors.index("\n- ")]
    printed = re.findall(r"(?:\[P\]:|;)\s+([^;]+?) (\.\d+) \((\.\d+)\)", pixel_errors)
    stored = published.load(task="scr_segmentation").query("table == 'scr_pixel_error'")
    assert len(printed) == 13
    assert list(zip(stored["method"], stored["value"], stored["sd"])) == [
        (method.replace("\n", " ").strip(), float(mean), float(sd)) for method, mean, sd in printed
    ]


def test_hand_copied_values_without_published_md():
    frame = published.load()
    official = frame.query("table == 'nih_auc_official'").set_index("label")["value"]
    assert official["Atelectasis"] == 0.7003 and official["Hernia"] == 0.8717 and official["mean"] == 0.7451
    chexnet = _row_values("nih_auc_random_patient", "Rajpurkar et al. 2017 (CheXNet)")
    assert chexnet["Pneumonia"] == 0.7680 and chexnet["Emphysema"] == 0.9371
    assert _row_values("wang_table19_localisation", "Wang et al. 2017", "avg_fp_iobb", 0.75)["Atelectasis"] == 1.0285
    human = frame.query("table == 'scr_pixel_error' and method == 'human observer'").iloc[0]
    assert (human["value"], human["sd"]) == (0.029, 0.008)
    schilham = frame.query("task == 'jsrt_nodules' and source.str.startswith('Schilham')")
    assert dict(zip(schilham["threshold"], schilham["value"])) == {2.0: 0.51, 4.0: 0.67}


def test_every_printed_mean_is_the_mean_of_its_row():
    frame = published.load()
    for (table, source, _method, _metric, _threshold), row in frame.groupby(
        ["table", "source", "method", "metric", "threshold"], dropna=False
    ):
        values = row.set_index("label")["value"]
        if "mean" in values and len(values) > 1:
            printed = values.pop("mean")
            # the YAML float loses trailing zeros, which only loosens the tolerance
            tolerance = 0.5 * 10 ** -_decimals(repr(float(printed)))
            assert abs(values.mean() - printed) <= tolerance + 1e-12, (table, source)


def test_every_row_names_its_split_and_marker_and_long_form_columns():
    frame = published.load()
    assert list(frame.columns) == list(published.COLUMNS)
    assert frame["split"].isin(published.SPLITS).all()
    assert frame["marker"].isin(["P", "S"]).all()
    assert frame["value"].notna().all()
    for task in frame["task"].unique():
        allowed = set(published.labels(task)) | {published.MEAN_LABEL}
        assert set(frame.query("task == @task")["label"]) <= allowed, task
    required_tasks = {"nih_classification", "nih_localisation", "scr_segmentation", "jsrt_nodules", "google_expert_labels"}
    assert required_tasks <= set(frame["task"])


def test_load_filters_by_task_and_split():
    official = published.load(task="nih_classification", split="official")
    assert set(official["split"]) == {"official"} and set(official["task"]) == {"nih_classification"}
    assert len(official) == 15 + 10  # Wang's 14 classes and mean, and ten means-only rows
    assert set(published.load(split="scr_folds")["task"]) == {"scr_segmentation"}
    with pytest.raises(ValueError, match="unknown split"):
        published.load(split="whatever")
    with pytest.raises(ValueError, match="unknown task"):
        published.labels("whatever")


@pytest.mark.parametrize(
    "row, problem",
    [
        ("{source: X, marker: P, split: sometimes, values: {a: 0.5}}", "split 'sometimes'"),
        ("{source: X, marker: Q, split: all, values: {a: 0.5}}", "marker 'Q'"),
        ("{source: X, marker: P, split: all, values: {b: 0.5}}", "not labels of task"),
        ("{source: X, marker: P, split: all, values: {a: high}}", "finite number"),
        ("{marker: P, split: all, values: {a: 0.5}}", "missing \\['source'\\]"),
        ("just text", "expected a mapping"),
    ],
)
def test_malformed_results_file_names_the_file_and_the_problem(tmp_path, row, problem):
    path = tmp_path / "results.yaml"
    path.write_text(f"labels: {{t: [a]}}\ntables:\n  - table: x\n    task: t\n    metric: m\n    rows:\n      - {row}\n")
    with pytest.raises(DataError, match=problem) as error:
        published.load(path=path)
    assert str(path) in str(error.value)


def test_nih_v2020_label_counts_match_the_real_metadata(shared_nih):
    entries = pd.read_csv(shared_nih / "Data_Entry_2017_v2020.csv", usecols=["Finding Labels"])
    counted = entries["Finding Labels"].str.split("|").explode().value_counts().to_dict()
    stored = _row_values("nih_label_counts", "Data_Entry_2017_v2020.csv")
    assert stored == {label: float(count) for label, count in counted.items()}
