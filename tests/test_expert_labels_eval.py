"""Stage evaluate_expert_labels on small label files in Google's formats (AUCs of the mapped scores, readers'
operating points, the held-out rule) and on the real files; and the report pieces built from its outputs."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cxrbench.datasets import google_labels, nih
from cxrbench.datasets.nih import LABELS
from cxrbench.errors import DataError
from cxrbench.report import expert_labels as report_section
from cxrbench.report.comparison import OURS
from cxrbench.stages import evaluate_expert_labels as stage

PARAMS = {"seed": 0, "evaluate": {"bootstrap": {"resamples": 200, "alpha": 0.05, "unit": "image"}}}
IMAGES = [f"{patient:08d}_000.png" for patient in range(1, 9)]
VIEWS = ["PA"] * 6 + ["AP"] * 2
# adjudicated Fracture, Pneumothorax, Airspace opacity, Nodule or mass per image ('' = not adjudicated)
FOUR_TRUTH = [("NO", "YES", "YES", "NO"), ("NO", "YES", "NO", "YES"), ("YES", "NO", "YES", "NO"),
              ("NO", "NO", "NO", "YES"), ("NO", "", "YES", "NO"), ("NO", "YES", "NO", "NO"),
              ("NO", "NO", "NO", "YES"), ("NO", "NO", "YES", "NO")]
# reader -> Pneumothorax answer per image read; their other answers repeat the reference
PNEUMOTHORAX_READS = {11: ["YES", "HEDGE", "NO", "NO", "YES", "NO", "HEDGE", "NO"], 12: ["NO", "YES", "HEDGE", "NO"]}
ABNORMAL_TRUTH = [1, 1, 0, 1, 0, 0]  # the six PA images
COMPARISON_READS = {4343882583: [1, 0, 0, 1, 1, 0], 4343880271: [1, 1, 1, 1, 0, 0]}
PARTS = {**dict.fromkeys(IMAGES, "test"), "00000009_000.png": "test", "00000100_000.png": "train",
         "00000101_000.png": "val"}
ALL_FINDING_COLUMNS = [label.replace("_", " ") for label in LABELS]


def yes_no(flag) -> str:
    return "YES" if flag else "NO"


def scores() -> pd.DataFrame:
    """Classifier output for the test part: Pneumothorax 11/12 pairs right, max(Nodule, Mass) separates
    Nodule/mass perfectly although neither output alone does, the rest seeded noise."""
    test = [image for image, part in PARTS.items() if part == "test"]
    rng = np.random.default_rng(7)
    table = pd.DataFrame({"image": test, "patient": [int(name[:8]) for name in test], **{label: 0 for label in LABELS}})
    for label in LABELS:
        table[f"score_{label}"] = rng.random(len(test)).round(6)
    table.loc[:7, "score_Pneumothorax"] = [0.9, 0.4, 0.5, 0.1, 0.2, 0.8, 0.3, 0.05]
    table.loc[:7, "score_Nodule"] = [0.1, 0.9, 0.1, 0.1, 0.2, 0.1, 0.1, 0.3]
    table.loc[:7, "score_Mass"] = [0.1, 0.1, 0.1, 0.8, 0.1, 0.2, 0.7, 0.1]
    # NIH's own labels of the same images, disagreeing with the experts on some (the stage's "both label sets")
    table.loc[:7, "Pneumothorax"] = [1, 0, 1, 0, 0, 1, 0, 0]
    table.loc[:7, "Mass"] = [0, 0, 0, 1, 0, 0, 0, 1]
    return table


def write_inputs(root: Path, parts: dict[str, str] = PARTS, predictions: pd.DataFrame | None = None) -> None:
    four = root / "data/raw/google/four_findings_expert_labels"
    every = root / "data/raw/google/all_findings_expert_labels"
    four.mkdir(parents=True)
    every.mkdir(parents=True)
    label_lines = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                   "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],Fracture,Pneumothorax,Airspace opacity,"
                   "Nodule or mass,Set Id"]
    label_lines += [f"{image},No Finding,0,{int(image[:8])},50,F,{view},2500,2048,0.168,0.168,{','.join(truth)},test"
                    for image, view, truth in zip(IMAGES, VIEWS, FOUR_TRUTH)]
    (four / "test_labels.csv").write_bytes("\r\n".join(label_lines).encode())
    read_lines = ["Patient ID,Image ID,Reader ID,Fracture,Pneumothorax,Airspace opacity,Nodule/mass,Set ID"]
    for reader, answers in PNEUMOTHORAX_READS.items():
        for image, answer, truth in zip(IMAGES, answers, FOUR_TRUTH):
            others = [value or "NO" for value in truth]
            read_lines.append(f"{int(image[:8])},{image},{reader},{others[0]},{answer},{others[2]},{others[3]},test")
    read_lines.append("101,00000101_000.png,11,NO,YES,NO,NO,val")  # a validation read: never scored
    (four / "individual_readers.csv").write_bytes("\r\n".join(read_lines).encode())

    findings = ",".join(["NO"] * len(LABELS))
    (every / "test_labels.csv").write_text("\n".join(
        ["Image ID,Patient ID,Abnormal," + ",".join(ALL_FINDING_COLUMNS) + ",Other"]
        + [f"{image},{int(image[:8])},{yes_no(flag)},{findings},NO" for image, flag in zip(IMAGES, ABNORMAL_TRUTH)]) + "\n")
    reads = ["Image ID,Patient ID,Reader ID,Abnormal," + ",".join(ALL_FINDING_COLUMNS) + ",Other"]
    answers = {**{reader: ABNORMAL_TRUTH for reader in google_labels.GROUND_TRUTH_READERS}, **COMPARISON_READS}
    for position, image in enumerate(IMAGES[:6]):
        reads += [f"{image},{int(image[:8])},{reader},{calls[position]},{findings},NO" for reader, calls in answers.items()]
    (every / "test_individual_readers.csv").write_text("\n".join(reads) + "\n")

    (root / "data/splits").mkdir(parents=True)
    pd.DataFrame({"image": list(parts), "patient": [int(name[:8]) for name in parts], "part": list(parts.values())}
                 ).to_csv(root / "data/splits/nih.csv", index=False)
    (root / "results/classifier").mkdir(parents=True)
    (scores() if predictions is None else predictions).to_csv(root / "results/classifier/predictions.csv", index=False)


def run_stage_in(root: Path, params: dict = PARAMS) -> dict:
    with contextlib.chdir(root):
        stage.evaluate(params)
    return json.loads((root / "results/expert_labels/scores.json").read_text())


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("expert_labels")
    write_inputs(root)
    return root, run_stage_in(root)


def test_aucs_use_the_mapped_scores_and_fracture_is_not_available(evaluated):
    _, metrics = evaluated
    findings = metrics["four_findings"]["findings"]
    assert metrics["four_findings"]["images"] == 8 and metrics["four_findings"]["left_out_outside_split"] == 0
    assert findings["Fracture"] == {"auc": None, "available": False, "reason": stage.NOT_AVAILABLE}
    pneumothorax = findings["Pneumothorax"]
    assert (pneumothorax["images"], pneumothorax["positives"], pneumothorax["negatives"]) == (7, 3, 4)  # one NA
    assert pneumothorax["auc"] == pytest.approx(11 / 12, abs=1e-6)  # 0.4 loses to the negative 0.5
    assert pneumothorax["ci_low"] <= pneumothorax["auc"] <= pneumothorax["ci_high"]
    table = scores().iloc[:8]
    truth = {finding: [row[k] == "YES" for row in FOUR_TRUTH] for k, finding in enumerate(stage.FINDING_SCORES)}
    assert findings["Nodule_Mass"]["auc"] == 1.0 and findings["Nodule_Mass"]["score"] == "max(Nodule, Mass)"
    assert roc_auc_score(truth["Nodule_Mass"], table["score_Nodule"]) < 1  # neither output alone separates them
    airspace = table[[f"score_{label}" for label in stage.FINDING_SCORES["Airspace_Opacity"]]].max(axis=1)
    assert findings["Airspace_Opacity"]["auc"] == pytest.approx(roc_auc_score(truth["Airspace_Opacity"], airspace), abs=1e-6)

    abnormal = metrics["all_findings"]["abnormal"]
    probabilities = table.iloc[:6][[f"score_{label}" for label in LABELS]].to_numpy()
    assert abnormal["max p"]["auc"] == pytest.approx(roc_auc_score(ABNORMAL_TRUTH, probabilities.max(axis=1)), abs=1e-6)
    any_finding = 1 - np.prod(1 - probabilities, axis=1)
    assert abnormal["1 - prod(1 - p)"]["auc"] == pytest.approx(roc_auc_score(ABNORMAL_TRUTH, any_finding), abs=1e-6)
    assert (abnormal["max p"]["images"], abnormal["max p"]["positives"]) == (6, 3)


def test_the_same_scores_are_scored_against_both_label_sets(evaluated):
    root, metrics = evaluated
    table_of_both = pd.read_csv(root / "results/expert_labels/label_sets.csv")
    both = table_of_both[table_of_both["finding"].isin([*stage.FINDING_SCORES, "Abnormal"])
                         & ~((table_of_both["set"] == "all_findings") & (table_of_both["finding"] != "Abnormal"))
                         ].set_index("finding")
    findings = metrics["four_findings"]["findings"]
    scored = pd.read_csv(root / "results/expert_labels/scores.csv")
    table = scores()
    for finding, sources in stage.FINDING_SCORES.items():
        if not sources:
            assert finding not in both.index
            continue
        row = both.loc[finding]
        assert row["auc_expert"] == findings[finding]["auc"] and row["auc_expert_ci_low"] == findings[finding]["ci_low"]
        images = scored[(scored["set"] == "four_findings") & (scored["finding"] == finding)]
        nih = table.set_index("image").loc[images["image"], list(sources)].any(axis=1)
        assert row["nih_positives"] == nih.sum() and row["images"] == len(images)
        if 0 < nih.sum() < len(nih):
            assert row["auc_nih"] == pytest.approx(roc_auc_score(nih, images["score"]), abs=1e-6)
            assert row["auc_nih_ci_low"] <= row["auc_nih"] <= row["auc_nih_ci_high"]
    assert both.loc["Pneumothorax", "auc_nih"] != both.loc["Pneumothorax", "auc_expert"]  # the labels disagree
    assert metrics["against_both_label_sets"]["Pneumothorax"]["auc_nih"] == both.loc["Pneumothorax", "auc_nih"]
    abnormal = both.loc["Abnormal"]
    assert abnormal["nih_positives"] == table.iloc[:6][list(LABELS)].any(axis=1).sum()
    every_finding = table_of_both[(table_of_both["set"] == "all_findings") & (table_of_both["finding"] != "Abnormal")]
    assert list(every_finding["finding"]) == list(LABELS)  # the 14 findings the all-findings readers labelled too
    assert (every_finding["expert_positives"] == 0).all() and every_finding["auc_expert"].isna().all()  # all NO here


def test_readers_count_hedge_as_positive_and_pool_their_reads(evaluated):
    root, metrics = evaluated
    readers = pd.read_csv(root / "plots/expert_labels_readers.csv", dtype={"reader": str})
    pneumothorax = readers[(readers["set"] == "four_findings") & (readers["finding"] == "Pneumothorax")].set_index("reader")
    # reader 11: positives 1, 2, 6 called YES, HEDGE, NO; negatives 3, 4, 7, 8 called NO, NO, HEDGE, NO
    assert pneumothorax.loc["11", ["reads", "sensitivity", "specificity"]].tolist() == pytest.approx([7, 2 / 3, 3 / 4], abs=1e-6)
    assert pneumothorax.loc["12", ["reads", "sensitivity", "specificity"]].tolist() == pytest.approx([4, 1 / 2, 1 / 2])
    assert pneumothorax.loc["pooled", ["reads", "sensitivity", "specificity"]].tolist() == pytest.approx([11, 3 / 5, 4 / 6], abs=1e-6)
    assert metrics["four_findings"]["readers_pooled"]["Pneumothorax"] == {"reads": 11, "sensitivity": 0.6,
                                                                         "specificity": round(4 / 6, 6)}
    assert (pneumothorax["fpr"] == (1 - pneumothorax["specificity"]).round(6)).all()
    fracture = readers[(readers["set"] == "four_findings") & (readers["finding"] == "Fracture")]
    assert set(fracture["reader"]) == {"11", "12", "pooled"} and (fracture["sensitivity"] == 1.0).all()


def test_only_the_two_comparison_radiologists_are_readers_on_the_all_findings_set(evaluated):
    root, metrics = evaluated
    radiologists = metrics["all_findings"]["comparison_radiologists"]
    assert set(radiologists) == {"4343882583", "4343880271", "pooled"}
    assert radiologists["4343882583"] == {"reads": 6, "sensitivity": round(2 / 3, 6), "specificity": round(2 / 3, 6)}
    assert radiologists["4343880271"] == {"reads": 6, "sensitivity": 1.0, "specificity": round(2 / 3, 6)}
    readers = pd.read_csv(root / "plots/expert_labels_readers.csv", dtype={"reader": str})
    assert set(readers.loc[readers["set"] == "all_findings", "role"]) == {"comparison radiologist"}


def test_roc_points_and_scores_are_written_for_every_scored_finding(evaluated):
    root, _ = evaluated
    roc = pd.read_csv(root / "plots/expert_labels_roc.csv")
    assert list(roc.columns) == ["set", "finding", "score", "fpr", "tpr"]
    assert sorted(set(zip(roc["set"], roc["finding"], roc["score"]))) == sorted([
        ("all_findings", "Abnormal", "1 - prod(1 - p)"), ("all_findings", "Abnormal", "max p"),
        ("four_findings", "Airspace_Opacity", stage.finding_score_name("Airspace_Opacity")),
        ("four_findings", "Nodule_Mass", "max(Nodule, Mass)"), ("four_findings", "Pneumothorax", "Pneumothorax")])
    for _, curve in roc.groupby(["set", "finding", "score"]):
        assert curve["fpr"].is_monotonic_increasing and curve["tpr"].is_monotonic_increasing
        assert curve[["fpr", "tpr"]].iloc[-1].tolist() == [1.0, 1.0]
    written = pd.read_csv(root / "results/expert_labels/scores.csv")
    nodule = written[written["finding"] == "Nodule_Mass"]
    assert nodule["score"].tolist() == [0.1, 0.9, 0.1, 0.8, 0.2, 0.2, 0.7, 0.3]
    assert len(written[written["finding"] == "Pneumothorax"]) == 7


def test_a_rerun_writes_the_same_bytes(evaluated, tmp_path):
    root, _ = evaluated
    write_inputs(tmp_path)
    run_stage_in(tmp_path)
    for name in ("metrics/expert_labels.json", "plots/expert_labels_roc.csv", "plots/expert_labels_readers.csv",
                 "results/expert_labels/scores.csv", "results/expert_labels/scores.json"):
        assert hashlib.sha256((tmp_path / name).read_bytes()).digest() == hashlib.sha256((root / name).read_bytes()).digest(), name


@pytest.mark.parametrize("extra, found", [
    ({"00000003_000.png": "train"}, r"1 image\(s\) \(e\.g\. 00000003_000\.png\) and 1 patient\(s\) \(e\.g\. 3\)"),
    ({"00000005_001.png": "val"}, r"1 patient\(s\) \(e\.g\. 5\)"),  # another film of a labelled patient
], ids=["labelled image in train", "labelled patient in val"])
def test_images_or_patients_the_classifier_saw_are_refused(tmp_path, extra, found):
    write_inputs(tmp_path, {**PARTS, **extra})
    with pytest.raises(DataError, match=rf"four_findings_expert_labels/test_labels\.csv: {found} listed here are in "
                                        r"the train/val parts of data/splits/nih\.csv"):
        run_stage_in(tmp_path)
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()


def test_labelled_images_outside_the_split_are_left_out_and_counted(tmp_path, caplog):
    """As an image quarantined, of another view or outside the archives source.archives selected is."""
    parts = {image: part for image, part in PARTS.items() if image != "00000002_000.png"}
    write_inputs(tmp_path, parts, scores().drop(index=1))
    with caplog.at_level("INFO"):
        metrics = run_stage_in(tmp_path)
    assert (metrics["four_findings"]["images"], metrics["four_findings"]["left_out_outside_split"]) == (7, 1)
    assert (metrics["all_findings"]["images"], metrics["all_findings"]["left_out_outside_split"]) == (5, 1)
    assert "four_findings_expert_labels/test_labels.csv: 1 of 8 labelled images are outside the split" in caplog.text


def test_test_images_without_a_score_fail_naming_the_predictions(tmp_path):
    write_inputs(tmp_path, predictions=scores().drop(index=1))
    with pytest.raises(DataError, match=r"(?s)predictions\.csv: 1 test-part image\(s\).*00000002_000\.png.*rerun evaluate_classifier"):
        run_stage_in(tmp_path)


def test_the_real_expert_labels_are_all_in_the_official_test_part(shared_nih, tmp_path):
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/google").symlink_to(shared_nih / "google_expert_labels")
    lists = {part: nih.read_split_list(shared_nih / name) for part, name in (("train", nih.TRAIN_VAL_LIST),
                                                                            ("test", nih.TEST_LIST))}
    split = pd.DataFrame([(image, int(image[:8]), part) for part, images in lists.items() for image in images],
                         columns=["image", "patient", "part"])
    (tmp_path / "data/splits").mkdir()
    split.to_csv(tmp_path / "data/splits/nih.csv", index=False)
    test = split[split["part"] == "test"].reset_index(drop=True)
    rng = np.random.default_rng(0)
    predictions = test[["image", "patient"]].assign(**{f"score_{label}": rng.random(len(test)).round(6) for label in LABELS})
    entries = nih.read_data_entry(shared_nih / "Data_Entry_2017_v2020.csv").set_index("image").loc[test["image"]]
    predictions[list(LABELS)] = nih.label_matrix(entries.reset_index())  # NIH's own labels, as our store has them
    # Pneumothorax scores that know the adjudicated answer: the evaluation must find it
    reference = google_labels.read_four_findings_labels(shared_nih / "google_expert_labels/four_findings_expert_labels/test_labels.csv")
    positive = predictions["image"].isin(reference.loc[reference["Pneumothorax"].fillna(False), "image"])
    predictions.loc[positive, "score_Pneumothorax"] += 1.0
    (tmp_path / "results/classifier").mkdir(parents=True)
    predictions.to_csv(tmp_path / "results/classifier/predictions.csv", index=False)

    metrics = run_stage_in(tmp_path, {**PARAMS, "evaluate": {"bootstrap": {"resamples": 50, "alpha": 0.05, "unit": "patient"}}})
    four, every = metrics["four_findings"], metrics["all_findings"]
    assert metrics["bootstrap"]["unit"] == "patient"
    assert (four["images"], four["left_out_outside_split"], every["images"], every["left_out_outside_split"]) == (1962, 0, 810, 0)
    assert four["findings"]["Pneumothorax"]["auc"] == 1.0
    assert 0.4 < four["findings"]["Nodule_Mass"]["auc"] < 0.6  # seeded noise
    # the same perfect-for-the-experts scores against NIH's labels of those images: their label noise caps the AUC
    both = metrics["against_both_label_sets"]["Pneumothorax"]
    assert both["auc_expert"] == 1.0 and 0.5 < both["auc_nih"] < 0.95, both
    readers = pd.read_csv(tmp_path / "plots/expert_labels_readers.csv", dtype={"reader": str})
    assert readers.loc[readers["set"] == "four_findings", "reader"].nunique() == 12  # 11 radiologists + pooled
    assert set(every["comparison_radiologists"]) == {"4343882583", "4343880271", "pooled"}


def test_expert_table_sets_our_results_beside_the_published_ones(evaluated):
    _, metrics = evaluated
    table = report_section.expert_labels_table(metrics, synthetic=False)
    pneumothorax = table[table["finding"] == "Pneumothorax"]
    ours = pneumothorax[pneumothorax["source"] == f"{OURS}: Pneumothorax"].iloc[0]
    assert ours["value"] == pytest.approx(11 / 12, abs=1e-6) and ours["split"] == "google_test"
    assert ours["95% CI"] == f"{metrics['four_findings']['findings']['Pneumothorax']['ci_low']:.3f}-" \
                             f"{metrics['four_findings']['findings']['Pneumothorax']['ci_high']:.3f}"
    model_auc = pneumothorax[(pneumothorax["metric"] == "roc_auc") & pneumothorax["source"].str.startswith("Majkowska")].iloc[0]
    assert model_auc["ours - published"] == pytest.approx(11 / 12 - 0.94, abs=1e-6) and model_auc["comparable"] == "yes"
    radiologist_sensitivity = pneumothorax[(pneumothorax["metric"] == "sensitivity")
                                           & pneumothorax["source"].str.contains("radiologists \\[S\\]")].iloc[0]
    assert radiologist_sensitivity["ours - published"] == pytest.approx(0.6 - 0.792)
    fracture = table[(table["finding"] == "Fracture") & (table["source"] == OURS)].iloc[0]
    assert np.isnan(fracture["value"]) and fracture["note"] == stage.NOT_AVAILABLE
    apart = table[table["split"] == "random_patient"]
    assert len(apart) == 3 and set(apart["comparable"]) == {"no: different split (random_patient)"}
    assert (table.index[table["split"] == "random_patient"] >= len(table) - 3).all()  # shown apart, last

    partial = {**metrics, "four_findings": {**metrics["four_findings"], "left_out_outside_split": 3}}
    partial_table = report_section.expert_labels_table(partial, synthetic=False)
    compared = partial_table[partial_table["split"] == "google_test"].dropna(subset=["ours - published"])
    on_four = compared["finding"] != "Abnormal"
    assert set(compared.loc[on_four, "comparable"]) == {"no: 3 labelled images outside our split"}
    assert set(compared.loc[~on_four, "comparable"]) <= {"yes"}

    synthetic = report_section.expert_labels_table(metrics, synthetic=True)
    assert set(synthetic.loc[synthetic["split"] == "google_test", "comparable"]) == {"no: synthetic data"}
    assert "google_test (synthetic data)" in set(synthetic["split"])


def test_expert_roc_figure_has_a_panel_per_finding_with_reader_points(evaluated):
    root, metrics = evaluated
    roc = pd.read_csv(root / "plots/expert_labels_roc.csv")
    readers = pd.read_csv(root / "plots/expert_labels_readers.csv", dtype={"reader": str})
    fig = report_section.expert_roc_figure(roc, readers, metrics, synthetic=True)
    panels = {ax.get_title().split(":")[0]: ax for ax in fig.axes if ax.get_title()}
    assert set(panels) == {"Fracture", "Pneumothorax", "Airspace opacity", "Nodule/mass", "Abnormal"}
    assert len(panels["Abnormal"].lines) == 3  # two scores and the chance line
    assert len(panels["Fracture"].lines) == 1 and "not available" in panels["Fracture"].texts[0].get_text()
    offsets = [collection.get_offsets() for collection in panels["Pneumothorax"].collections]
    assert [len(points) for points in offsets] == [2, 1, 1, 1]  # two readers, pooled reads, Majkowska model, radiologists
    np.testing.assert_allclose(np.concatenate(offsets[2:]), [[1 - 0.908, 0.728], [1 - 0.928, 0.792]])
    legend = [text.get_text() for text in panels["Pneumothorax"].get_legend().get_texts()]
    assert any("not comparable" in text for text in legend)
    plt.close(fig)
