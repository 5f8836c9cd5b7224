"""NIH's NLP-mined labels against Google's radiologists (cxrbench.label_quality): kappa equals scikit-learn's,
the counts and proportions follow their definitions, and on the real files in ../shared/data/nih the table
holds the counts read from the files with the csv module alone."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from cxrbench import label_quality
from cxrbench.cli import main as cli_main

BOOTSTRAP = {"resamples": 200, "alpha": 0.05}


def test_kappa_is_scikit_learns():
    rng = np.random.default_rng(0)
    for agreement_rate in (0.5, 0.8, 0.95):
        a = rng.random(300) < 0.3
        b = np.where(rng.random(300) < agreement_rate, a, rng.random(300) < 0.3)
        cells = [np.sum(a & b), np.sum(a & ~b), np.sum(~a & b), np.sum(~a & ~b)]
        assert label_quality.kappa(np.array(cells)) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_agreement_counts_and_proportions_follow_their_definitions():
    nih = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 0], dtype=bool)
    expert = np.array([1, 1, 0, 1, 0, 0, 0, 0, 1, 1], dtype=bool)
    result = label_quality.agreement(nih, expert, np.arange(10) // 2, BOOTSTRAP, seed=0)
    assert (result["images"], result["expert_positive"], result["nih_positive"], result["both_positive"]) == (10, 5, 4, 3)
    assert result["sensitivity"] == 3 / 5 and result["ppv"] == 3 / 4
    assert result["kappa"] == pytest.approx(cohen_kappa_score(nih, expert))
    assert result["kappa_ci_low"] <= result["kappa"] <= result["kappa_ci_high"]
    none_positive = label_quality.agreement(np.zeros(4, bool), np.zeros(4, bool), np.arange(4), BOOTSTRAP, 0)
    assert np.isnan(none_positive["sensitivity"]) and np.isnan(none_positive["ppv"])


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_on_the_real_files_the_counts_are_those_of_the_files(shared_nih):
    google = shared_nih / "google_expert_labels"
    table = label_quality.from_files(shared_nih / "Data_Entry_2017_v2020.csv", google, BOOTSTRAP, seed=0)
    findings = {row["Image Index"]: set(row["Finding Labels"].split("|"))
                for row in _rows(shared_nih / "Data_Entry_2017_v2020.csv")}
    four = _rows(google / "four_findings_expert_labels/test_labels.csv") + _rows(
        google / "four_findings_expert_labels/validation_labels.csv")
    every = _rows(google / "all_findings_expert_labels/test_labels.csv")
    row = table.set_index(["set", "finding"])

    pneumothorax = row.loc[("four_findings", "Pneumothorax")]
    expected = [(r["Pneumothorax"] == "YES", "Pneumothorax" in findings[r["Image Index"]]) for r in four]
    assert pneumothorax["images"] == len(four)
    assert pneumothorax["expert_positive"] == sum(e for e, _ in expected)
    assert pneumothorax["nih_positive"] == sum(n for _, n in expected)
    assert pneumothorax["both_positive"] == sum(e and n for e, n in expected)
    nodule_mass = row.loc[("four_findings", "Nodule_Mass")]
    assert nodule_mass["nih_positive"] == sum(bool({"Nodule", "Mass"} & findings[r["Image Index"]]) for r in four)

    expert_pneumothorax = row.loc[("all_findings", "Pneumothorax")]
    assert expert_pneumothorax["images"] == len(every) == 810
    assert expert_pneumothorax["expert_positive"] == sum(r["Pneumothorax"] == "YES" for r in every)
    abnormal = row.loc[("all_findings", "Abnormal")]
    assert abnormal["nih_positive"] == sum(findings[r["Image ID"]] != {"No Finding"} for r in every)
    assert ("four_findings", "Fracture") not in row.index  # no NIH label answers it
    assert (table["kappa_ci_low"] <= table["kappa"] + 1e-12).all() and (table["kappa"] <= table["kappa_ci_high"] + 1e-12).all()


def test_the_cli_prints_the_table(shared_nih, capsys):
    assert cli_main(["stats", "labels", "--metadata", str(shared_nih / "Data_Entry_2017_v2020.csv"),
                     "--google", str(shared_nih / "google_expert_labels"), "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "kappa with a 95% bootstrap interval over patients (50 resamples)" in out
    assert "Airspace_Opacity Consolidation | Pneumonia | Infiltration | Edema | Atelectasis" in out
