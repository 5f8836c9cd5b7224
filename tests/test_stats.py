"""Dataset statistics (cxrbench.stats) and the `cxrbench stats` command."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrbench import cli, published, stats, store
from cxrbench.datasets import jsrt, nih, scr
from cxrbench.errors import DataError

# The PUBLISHED.md figures for Data_Entry_2017_v2020.csv: first eight from the file, the rest as released.
V2020_TOTALS = dict(zip(nih.LABELS, (11559, 2776, 13317, 19894, 5782, 6331, 1431, 5302,
                                     4667, 2303, 2516, 1686, 3385, 227)))
V2020_NO_FINDING = 60361
V2020_SHA256 = "dc1d2df67fdc1c5a7601d48699cda2b13dc2c4841488b4183dcf04884dbaca11"  # ../shared/data/nih/README.md

# A hand-made metadata file in the original 2017 form: CRLF, trailing comma, ages with units, one
# impossible age (148Y), ages in months and days, one patient with two images.
HAND_ROWS = [
    ("00000001_000.png", "Cardiomegaly|Effusion", "000", "00000001", "058Y", "M", "PA"),
    ("00000001_001.png", "Effusion", "001", "00000001", "059Y", "M", "AP"),
    ("00000002_000.png", "No Finding", "000", "00000002", "011M", "F", "PA"),
    ("00000003_000.png", "Atelectasis|Effusion|Mass", "000", "00000003", "148Y", "F", "AP"),
    ("00000004_000.png", "Hernia", "000", "00000004", "005D", "M", "PA"),
    ("00000005_000.png", "Atelectasis|Mass", "000", "00000005", "100Y", "F", "PA"),
]


def write_hand_metadata(path: Path) -> Path:
    header = ",".join(nih.ENTRY_COLUMNS) + ","
    rows = [",".join(row + ("2500", "2048", "0.143", "0.143")) + "," for row in HAND_ROWS]
    path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode())
    return path


@pytest.fixture
def hand_csv(tmp_path: Path) -> Path:
    return write_hand_metadata(tmp_path / "Data_Entry_2017.csv")


@pytest.fixture
def hand(hand_csv: Path) -> pd.DataFrame:
    return nih.read_data_entry(hand_csv)


@pytest.fixture(scope="module")
def real_run(shared_nih: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`cxrbench stats nih` once on the real v2020 metadata and boxes: exit code, stdout, JSON and figure path."""
    folder = tmp_path_factory.mktemp("real")
    out, figure, printed = folder / "stats.json", folder / "cooccurrence.png", io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["stats", "nih", "--metadata", str(shared_nih / "Data_Entry_2017_v2020.csv"),
                         "--bbox", str(shared_nih / nih.BBOX_NAME), "--json", str(out), "--figure", str(figure)])
    return {"code": code, "printed": printed.getvalue(), "document": json.loads(out.read_text()), "figure": figure}


def write_published(path: Path, matrix: np.ndarray, totals: np.ndarray) -> Path:
    table = pd.DataFrame(np.vstack([matrix, totals]), index=[*nih.LABELS, stats.TOTALS_ROW], columns=list(nih.LABELS))
    table.to_csv(path, index_label="label")
    return path


# ------------------------------------------------------------------------------ NIH, hand-made table


def test_cooccurrence_is_symmetric_with_class_totals_on_the_diagonal(hand: pd.DataFrame) -> None:
    result = stats.nih_statistics(hand)
    matrix = pd.DataFrame(result["cooccurrence"]).T.loc[list(nih.LABELS), list(nih.LABELS)].to_numpy()
    assert np.array_equal(matrix, matrix.T)
    assert np.diag(matrix).tolist() == [result["class_totals"][label] for label in nih.LABELS]
    assert result["class_totals"]["Effusion"] == 3 and result["class_totals"]["Atelectasis"] == 2
    assert result["cooccurrence"]["Atelectasis"]["Mass"] == 2
    assert result["cooccurrence"]["Cardiomegaly"]["Effusion"] == 1
    assert result["cooccurrence"]["Effusion"]["Mass"] == 1
    assert result["cooccurrence"]["Hernia"]["Effusion"] == 0


def test_release_page_convention_puts_single_label_images_on_the_diagonal(hand: pd.DataFrame) -> None:
    labels = nih.label_matrix(hand)
    table = stats.release_page_matrix(labels)
    single = dict(zip(nih.LABELS, np.diag(table.to_numpy()).tolist()))
    assert single["Effusion"] == 1 and single["Hernia"] == 1
    assert single["Cardiomegaly"] == 0 and single["Atelectasis"] == 0 and single["Mass"] == 0
    off_diagonal = ~np.eye(len(nih.LABELS), dtype=bool)
    assert np.array_equal(table.to_numpy()[off_diagonal], stats.cooccurrence(labels).to_numpy()[off_diagonal])


def test_counts_ages_and_impossible_ages_are_reported(hand: pd.DataFrame) -> None:
    result = stats.nih_statistics(hand)
    assert result["form"] == "original_2017"
    assert (result["images"], result["patients"], result["no_finding"]) == (6, 5, 1)
    assert result["labels_per_image"] == {"0": 1, "1": 2, "2": 2, "3": 1}
    assert result["views"] == {"PA": 4, "AP": 2} and result["sex"] == {"M": 3, "F": 3}
    assert result["patients_per_class"]["Effusion"] == 2  # patient 1 twice, patient 3 once
    age = result["age"]
    assert age["bins"]["0-9"] == 2  # 11 months and 5 days
    assert age["bins"]["50-59"] == 2 and age["bins"]["100-120"] == 1
    assert sum(age["bins"].values()) == 5 and age["unknown"] == 0
    assert age["impossible"]["count"] == 1
    assert age["impossible"]["rows"] == [{"image": "00000003_000.png", "patient": 3, "age_years": 148.0}]
    assert age["plausible"]["max"] == 100.0
    text = stats.format_nih_statistics(result)
    assert "impossible ages (> 120 years): 1" in text and "00000003_000.png" in text


def test_split_prevalence_and_unknown_split_images(hand: pd.DataFrame) -> None:
    split = pd.DataFrame({"image": ["00000001_000.png", "00000001_001.png", "00000003_000.png", "00000002_000.png"],
                          "part": ["train", "train", "test", "val"]})
    parts = stats.nih_statistics(hand, split=split)["splits"]
    assert list(parts["parts"]) == ["train", "val", "test"]
    assert parts["parts"]["train"]["images"] == 2 and parts["parts"]["train"]["patients"] == 1
    assert parts["parts"]["train"]["prevalence"]["Effusion"] == 1.0
    assert parts["parts"]["train"]["prevalence"]["Cardiomegaly"] == 0.5
    assert parts["parts"]["val"]["no_finding"] == 1
    assert parts["parts"]["test"]["class_totals"]["Mass"] == 1
    assert parts["metadata_images_in_no_part"] == 2
    with pytest.raises(ValueError, match="not in the metadata"):
        stats.nih_statistics(hand, split=pd.DataFrame({"image": ["00000099_000.png"], "part": ["test"]}))


def test_box_counts_and_boxes_that_disagree_with_the_labels(hand: pd.DataFrame) -> None:
    boxes = pd.DataFrame({
        "image": ["00000001_000.png", "00000001_000.png", "00000003_000.png", "00000003_000.png", "00000099_000.png"],
        "label": ["Cardiomegaly", "Effusion", "Mass", "Pneumonia", "Mass"],
    })
    result = stats.nih_statistics(hand, bbox=boxes)["boxes"]
    assert (result["boxes"], result["images"]) == (5, 3)
    assert result["boxes_per_class"]["Mass"] == 2 and result["images_per_class"]["Mass"] == 2
    assert result["boxes_per_class"]["Atelectasis"] == 0
    assert result["boxes_on_images_not_in_metadata"] == 1
    assert result["boxes_whose_class_is_not_in_finding_labels"] == 1  # Pneumonia on 00000003_000


def test_verdict_follows_the_direction_of_the_differences(hand: pd.DataFrame, tmp_path: Path) -> None:
    labels = nih.label_matrix(hand)
    exact = stats.release_page_matrix(labels).to_numpy()
    totals = labels.sum(axis=0).astype(np.int64)
    same = stats.compare_with_published(hand, write_published(tmp_path / "same.csv", exact, totals))
    assert same.verdict.startswith("The published table matches this file (original_2017) exactly")
    assert not same.differences.to_numpy().any()

    older = exact.copy()
    older[0, 4] = older[4, 0] = 1  # Atelectasis / Mass: published 1, ours 2
    earlier = stats.compare_with_published(hand, write_published(tmp_path / "older.csv", older, totals - 1 * (totals > 0)))
    assert "earlier version of the labels" in earlier.verdict
    assert earlier.differences.loc["Atelectasis", "Mass"] == 1
    assert earlier.to_dict()["cells_differing"] == 2

    mixed = older.copy()
    mixed[1, 2] = mixed[2, 1] = 5  # Cardiomegaly / Effusion: published 5, ours 1
    both = stats.compare_with_published(hand, write_published(tmp_path / "mixed.csv", mixed, totals))
    assert "go both ways" in both.verdict
    assert "largest cell difference -4, Cardiomegaly / Effusion" in both.verdict


def test_published_table_is_validated(tmp_path: Path) -> None:
    matrix, totals = stats.read_published_cooccurrence()
    asymmetric = matrix.to_numpy().copy()
    asymmetric[0, 1] += 1
    with pytest.raises(DataError, match="not symmetric"):
        stats.read_published_cooccurrence(write_published(tmp_path / "bad.csv", asymmetric, totals.to_numpy()))
    with pytest.raises(DataError, match="missing"):
        stats.read_published_cooccurrence(tmp_path / "absent.csv")


def test_stored_table_is_the_release_page_one() -> None:
    matrix, totals = stats.read_published_cooccurrence()
    release = published.load("nih_dataset").query("source == 'NIH release page'")
    assert totals.to_dict() == {row.label: int(row.value) for row in release.itertuples()}
    assert matrix.loc["Atelectasis"].tolist()[:4] == [4212, 369, 3269, 3259]
    assert np.diag(matrix.to_numpy()).tolist() == [4212, 1094, 3959, 9552, 2138, 2706, 307, 2199,
                                                   1314, 634, 895, 727, 1127, 110]


def test_heat_map_draws_the_table(hand: pd.DataFrame) -> None:
    labels = nih.label_matrix(hand)
    counts = stats.cooccurrence(labels)
    figure = stats.cooccurrence_figure(counts, "counts")
    image = figure.axes[0].images[0]
    assert np.array_equal(image.get_array(), counts.to_numpy())
    assert image.get_cmap().name == "viridis"
    assert len(figure.axes[0].texts) == counts.size
    differences = counts - stats.release_page_matrix(labels) * 2
    assert stats.cooccurrence_figure(differences, "differences").axes[0].images[0].get_cmap().name == "RdBu_r"


# ------------------------------------------------------------------------------ NIH, real v2020 file


def test_real_v2020_reproduces_the_published_figures(real_run: dict) -> None:
    result = real_run["document"]["statistics"]
    assert result["form"] == "v2020"
    assert (result["images"], result["patients"]) == (112120, 30805)
    assert result["class_totals"] == V2020_TOTALS
    assert result["no_finding"] == V2020_NO_FINDING
    assert result["age"]["impossible"]["count"] == 0  # v2020 fixed the 16 impossible ages of 2017
    assert result["boxes"]["boxes"] == 984 and result["boxes"]["boxes_whose_class_is_not_in_finding_labels"] == 0


def test_real_v2020_against_the_release_page(real_run: dict) -> None:
    comparison = real_run["document"]["published_comparison"]
    differences = pd.DataFrame(comparison["difference"]).T.loc[list(nih.LABELS), list(nih.LABELS)].to_numpy()
    totals_differences = pd.Series(comparison["totals_difference"])[list(nih.LABELS)]
    # The published diagonal is single-label images: within 15 of ours, exact where v2020 changed nothing.
    assert np.abs(np.diag(differences)).max() <= 15
    assert comparison["difference"]["Fibrosis"]["Fibrosis"] == 0 and comparison["difference"]["Hernia"]["Hernia"] == 0
    # v2020 only added labels: no pair count or total here is below the published one ...
    assert (differences[~np.eye(14, dtype=bool)] >= 0).all() and (totals_differences >= 0).all()
    # ... and the classes without boxes (Consolidation .. Hernia) kept their totals.
    assert (totals_differences.iloc[8:] == 0).all() and totals_differences["Pneumonia"] == 78
    assert "original Data_Entry_2017.csv" in comparison["verdict"]


def test_cli_nih_end_to_end_on_the_real_file(real_run: dict) -> None:
    assert real_run["code"] == 0
    printed = real_run["printed"]
    assert "Published co-occurrence" in printed and "Ours - published" in printed and "60,361" in printed
    document = real_run["document"]
    result = document["statistics"]
    assert set(result["cooccurrence"]) == set(nih.LABELS)
    assert all(set(row) == set(nih.LABELS) for row in result["cooccurrence"].values())
    assert all(result["cooccurrence"][label][label] == V2020_TOTALS[label] for label in nih.LABELS)
    assert document["inputs"]["metadata"] == {"file": "Data_Entry_2017_v2020.csv", "sha256": V2020_SHA256}
    assert real_run["figure"].read_bytes().startswith(b"\x89PNG")


# ------------------------------------------------------------------------------ CLI on small inputs


def test_cli_json_is_deterministic_and_includes_the_split(hand_csv: Path, tmp_path: Path) -> None:
    split = tmp_path / "split.csv"
    pd.DataFrame({"image": ["00000002_000.png", "00000004_000.png"], "patient": [2, 4], "part": ["test", "train"]}).to_csv(
        split, index=False)
    outputs = [tmp_path / "a.json", tmp_path / "b.json"]
    for out in outputs:
        assert cli.main(["stats", "nih", "--metadata", str(hand_csv), "--split", str(split), "--json", str(out)]) == 0
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    document = json.loads(outputs[0].read_text())
    assert document["statistics"]["splits"]["parts"]["train"]["class_totals"]["Hernia"] == 1
    assert document["statistics"]["age"]["impossible"]["count"] == 1


def test_cli_bad_input_exits_2_naming_the_file(hand_csv: Path, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text(hand_csv.read_text().replace("Hernia", "Hernie"))
    assert cli.main(["stats", "nih", "--metadata", str(broken)]) == 2
    error = capsys.readouterr().err
    assert str(broken) in error and "Hernie" in error

    split = tmp_path / "split.csv"
    split.write_text("image,part\n00000099_000.png,test\n")
    assert cli.main(["stats", "nih", "--metadata", str(hand_csv), "--split", str(split)]) == 2
    assert str(split) in capsys.readouterr().err

    assert cli.main(["stats", "jsrt", "--dir", str(tmp_path / "nothing")]) == 2
    assert "CLNDAT_EN.txt" in capsys.readouterr().err


# ------------------------------------------------------------------------------ JSRT

NODULE_LINES = [
    "JPCLN001.IMG\t5\t15\t53\tmale\t1634\t692\tmalignant\tl.upper lobe\tlung cancer",
    "JPCLN002.IMG\t5\t30\t78\tfemale\t1614\t1090\tbenign\tl.upper lobe(S5)\tpulmonary hematoma",
    "JPCLN003.IMG\t1\t8\t?\tmale\t500\t900\tmalignant\tr.lower lobe\tadenocarcinoma",
    "JPCLN004.IMG\t3\t21\t61\tfemale\t1000\t1000\tmalignant\tR.Lower lobe(S6)\tlung cancer",
    "JPCLN005.IMG\t3\t35\t70\tmale\t1200\t800\tbenign\tr.upper lobe\tgranuloma",
]
NON_NODULE_LINES = ["JPCNN001.IMG   45   male   non-nodule", "JPCNN002.IMG   ?   female   non-nodule"]


@pytest.fixture
def jsrt_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "jsrt"
    folder.mkdir()
    (folder / jsrt.NODULE_METADATA).write_text("\n".join(NODULE_LINES) + "\n")
    (folder / jsrt.NON_NODULE_METADATA).write_text("\r\n".join(NON_NODULE_LINES) + "\r\n")
    return folder


def test_jsrt_nodules_by_subtlety_size_malignancy_and_location(jsrt_dir: Path) -> None:
    result = stats.jsrt_statistics(jsrt.read_metadata(jsrt_dir))
    assert (result["cases"], result["nodule_cases"], result["non_nodule_cases"]) == (7, 5, 2)
    assert result["subtlety"] == {"1 extremely subtle": 1, "2 very subtle": 0, "3 subtle": 2,
                                  "4 relatively obvious": 0, "5 obvious": 2}
    assert result["size_mm"]["bins"] == {"(0.0, 10.0]": 1, "(10.0, 15.0]": 1, "(15.0, 20.0]": 0,
                                         "(20.0, 25.0]": 1, "(25.0, 30.0]": 1, "(30.0, inf]": 1}
    assert result["malignancy"] == {"malignant": 3, "benign": 2}
    assert result["location"] == {"l.upper lobe": 2, "r.lower lobe": 2, "r.upper lobe": 1}
    assert result["subtlety_by_malignancy"]["5 obvious"] == {"malignant": 1, "benign": 1}
    assert result["sex"] == {"male": 4, "female": 3}
    assert result["age"]["unknown"] == 2 and sum(result["age"]["bins"].values()) == 5


def test_cli_jsrt_prints_and_writes_json(jsrt_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "jsrt.json"
    assert cli.main(["stats", "jsrt", "--dir", str(jsrt_dir), "--json", str(out)]) == 0
    assert "nodules by subtlety and malignancy" in capsys.readouterr().out
    assert json.loads(out.read_text())["statistics"]["malignancy"] == {"malignant": 3, "benign": 2}


# ------------------------------------------------------------------------------ SCR


def rectangle_masks(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 5, size, size) bool masks whose object i of case c covers (c + 1) x (i + 2) pixels; and those counts."""
    masks = np.zeros((n, len(scr.OBJECTS), size, size), dtype=bool)
    pixels = np.zeros((n, len(scr.OBJECTS)), dtype=np.int64)
    for case in range(n):
        for obj in range(len(scr.OBJECTS)):
            masks[case, obj, obj : obj + case + 1, 2 * obj : 3 * obj + 2] = True  # objects overlap on purpose
            pixels[case, obj] = (case + 1) * (obj + 2)
    return masks, pixels


def test_scr_areas_from_packed_masks_in_mm2() -> None:
    masks, pixels = rectangle_masks(20, 32)  # more cases than one chunk
    packed = np.stack([store.pack_masks(case) for case in masks])
    areas = stats.scr_object_areas(packed)
    pixel_mm = stats.SCR_FIELD_MM / 32
    assert np.allclose(areas, pixels * pixel_mm**2)
    assert np.allclose(stats.scr_object_areas(packed, pixel_mm=1.0), pixels)

    folds = np.array([1, 2] * 10)
    result = stats.scr_statistics(packed, folds)
    fold1 = result["groups"]["fold 1"]
    assert fold1["cases"] == 10 and result["groups"]["all"]["cases"] == 20
    heart = pixels[folds == 1, scr.OBJECTS.index("heart")] * pixel_mm**2
    assert fold1["area_mm2"]["heart"]["mean"] == pytest.approx(heart.mean())
    assert fold1["area_mm2"]["heart"]["sd"] == pytest.approx(heart.std(ddof=1))
    with pytest.raises(ValueError, match="folds"):
        stats.scr_statistics(packed, folds[:3])


def test_cli_scr_from_store_and_from_gifs_agree(tmp_path: Path, capsys) -> None:
    cases = ["JPCLN001", "JPCLN002"]
    masks, pixels = rectangle_masks(len(cases), scr.MASK_SIZE)
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    packed = store.create(store.masks_path(store_dir, scr.MASK_SIZE), (len(cases), scr.MASK_SIZE, scr.MASK_SIZE), np.uint8)
    packed[:] = np.stack([store.pack_masks(case) for case in masks])
    packed.flush()
    del packed
    store.write_index(store_dir, pd.DataFrame({"case": cases, "fold": [scr.fold_of(c) for c in cases]}))
    scr_dir = tmp_path / "scr"
    for case, case_masks in zip(cases, masks):
        for obj, mask in zip(scr.OBJECTS, case_masks):
            path = scr.mask_path(scr_dir, case, obj)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(path)

    results = []
    for source in (["--store", str(store_dir)], ["--dir", str(scr_dir)]):
        out = tmp_path / f"scr{len(results)}.json"
        assert cli.main(["stats", "scr", *source, "--json", str(out)]) == 0
        results.append(json.loads(out.read_text())["statistics"])
    assert results[0] == results[1]
    assert results[0]["groups"]["fold 2"]["area_mm2"]["left clavicle"]["mean"] == pytest.approx(2 * 6 * scr.PIXEL_MM**2)
    assert "object area, mm^2" in capsys.readouterr().out

    assert cli.main(["stats", "scr", "--store", str(tmp_path / "empty")]) == 2
    assert "decoded JSRT store" in capsys.readouterr().err
