"""The phantom generator: real on-disk formats, anatomy that matches its masks, learnable findings,
and byte-identical output for the same seed."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cxrbench.errors import DataError
from cxrbench.fileio import sha256_file
from cxrbench.synthetic.anatomy import SCR_LANDMARK_COUNTS, SCR_OBJECTS
from cxrbench.synthetic.google_labels import (
    ALL_FINDINGS_READERS,
    REFERENCE_READERS,
    TEST_COHORT,
    VALIDATION_COHORT,
    all_findings_majority,
    write_google_labels,
)
from cxrbench.synthetic.jsrt_scr import JSRT_PIXEL_MM, draw_nodule, write_jsrt_scr
from cxrbench.synthetic.nih import (
    BOX_LABELS,
    NIH_LABELS,
    NihImage,
    class_prevalences,
    fit_label_model,
    plan_patient,
    render_film,
    write_nih,
)

SEED = 7
N_NODULE, N_NORMAL = 3, 2
NIH_PATIENTS = 12
GOOGLE_COUNTS = dict(test_images=4, validation_images=8, all_findings_images=1)


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def jsrt_scr(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("jsrt_scr")
    write_jsrt_scr(root / "jsrt", root / "scr", n_nodule=N_NODULE, n_normal=N_NORMAL, seed=SEED)
    return root / "jsrt", root / "scr"


@pytest.fixture(scope="module")
def nih(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nih") / "nih"
    write_nih(root, n_patients=NIH_PATIENTS, max_followups=3, test_fraction=0.25, seed=SEED)
    return root


@pytest.fixture(scope="module")
def google(nih: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("google") / "google"
    write_google_labels(root, nih, seed=SEED, **GOOGLE_COUNTS)
    return root


def jsrt_display(jsrt: Path, stem: str) -> np.ndarray:
    raw = np.fromfile(jsrt / f"{stem}.IMG", dtype=">u2").reshape(2048, 2048)
    return 4095.0 - raw.astype(np.float64)


def scr_mask(scr: Path, stem: str, name: str) -> np.ndarray:
    fold = "fold1" if int(stem[5:]) % 2 else "fold2"
    return np.array(Image.open(scr / "scratch" / fold / "masks" / name / f"{stem}.gif")) > 0


def clndat_records(jsrt: Path) -> list[list[str]]:
    """Split on the case names, so a record that runs into the next is still found."""
    text = (jsrt / "CLNDAT_EN.txt").read_bytes().decode("latin-1")
    starts = [m.start() for m in re.finditer(r"JPCLN\d{3}\.IMG", text)] + [len(text)]
    return [text[a:b].rstrip("\r\n").split("\t") for a, b in zip(starts, starts[1:])]


# --------------------------------------------------------------------------------------------- JSRT


def test_jsrt_files_are_raw_12_bit_big_endian(jsrt_scr):
    jsrt, _ = jsrt_scr
    stems = [f"JPCLN{i:03d}" for i in range(1, N_NODULE + 1)]
    stems += [f"JPCNN{i:03d}" for i in range(1, N_NORMAL + 1)]
    assert sorted(p.name for p in jsrt.glob("*.IMG")) == sorted(f"{s}.IMG" for s in stems)
    for stem in stems:
        path = jsrt / f"{stem}.IMG"
        assert path.stat().st_size == 8_388_608
        raw = np.fromfile(path, dtype=">u2")
        assert raw.max() <= 4095 and raw.max() - raw.min() > 2000
        # little-endian reading would put the 12 bits in the high byte
        assert np.fromfile(path, dtype="<u2").max() > 4095


def test_masks_match_the_visible_anatomy(jsrt_scr):
    jsrt, scr = jsrt_scr
    for stem in ("JPCLN001", "JPCNN002"):
        display = jsrt_display(jsrt, stem).reshape(1024, 2, 1024, 2).mean(axis=(1, 3))
        lungs = scr_mask(scr, stem, "left lung") | scr_mask(scr, stem, "right lung")
        heart = scr_mask(scr, stem, "heart")
        # film negative stored: after 4095 - v the lungs are dark and the heart bright
        assert display[heart].mean() - display[lungs].mean() > 1000
        # the lung edge in the image sits on the mask edge: just inside is much darker than outside
        inner = lungs & ~cv2.erode(lungs.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        outer = cv2.dilate(lungs.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~lungs
        assert display[outer].mean() - display[inner].mean() > 500


def test_scr_layout_and_gif_masks(jsrt_scr):
    _, scr = jsrt_scr
    for stem in ("JPCLN001", "JPCLN002", "JPCNN001", "JPCNN002"):
        fold = "fold1" if stem.endswith(("1", "3")) else "fold2"
        for name in SCR_OBJECTS:
            path = scr / "scratch" / fold / "masks" / name / f"{stem}.gif"
            with Image.open(path) as gif:
                assert gif.format == "GIF" and gif.size == (1024, 1024)
                values = np.bincount(np.array(gif.convert("L")).ravel(), minlength=256)
                assert np.flatnonzero(values).tolist() == [0, 255]
    assert not (scr / "scratch" / "fold2" / "masks" / "heart" / "JPCLN001.gif").exists()
    lungs = scr_mask(scr, "JPCLN003", "left lung") | scr_mask(scr, "JPCLN003", "right lung")
    assert (lungs & scr_mask(scr, "JPCLN003", "left clavicle")).any()  # clavicles overlap the lungs
    assert not (lungs & scr_mask(scr, "JPCLN003", "heart")).any()


def test_a_second_observer_outlines_the_same_objects_a_little_differently(jsrt_scr):
    """observer2/ holds every mask again, as the readers expect a second observer (scr.require_tree finds and checks
    it), each object redrawn from points clicked along its outline: close to observer 1's, never the same."""
    from cxrbench.datasets import scr as scr_reader
    from cxrbench.metrics.overlap import jaccard

    _, scr = jsrt_scr
    stems = [f"JPCLN{n:03d}" for n in range(1, N_NODULE + 1)] + [f"JPCNN{n:03d}" for n in range(1, N_NORMAL + 1)]
    assert scr_reader.require_tree(scr, stems) == scr / "observer2"
    for stem in stems:
        first, second = scr_reader.read_case_masks(scr, stem), scr_reader.read_case_masks(scr / "observer2", stem)
        overlap = jaccard(second, first)
        assert (overlap < 1).all() and (overlap > 0.75).all(), (stem, overlap)


def test_landmarks_lie_on_the_mask_contours(jsrt_scr):
    _, scr = jsrt_scr
    text = (scr / "scratch" / "fold1" / "points" / "JPCLN003.pfs").read_text()
    blocks = re.findall(r"\[Label=([^\]]+)\]\n\[Number of points=(\d+)\]\n\{\n(.*?)\n\}", text, re.S)
    assert [name for name, _, _ in blocks] == list(SCR_LANDMARK_COUNTS)
    for name, count, body in blocks:
        points = np.array(re.findall(r"^\{ ([\d.]+), ([\d.]+) \}$", body, re.M), dtype=float)
        assert len(points) == int(count) == SCR_LANDMARK_COUNTS[name]
        mask = scr_mask(scr, "JPCLN003", name)
        edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        distance_to_edge = cv2.distanceTransform(np.where(edge, 0, 1).astype(np.uint8), cv2.DIST_L2, 5)
        rows, cols = np.rint(points[:, 1]).astype(int), np.rint(points[:, 0]).astype(int)
        assert distance_to_edge[rows, cols].max() <= 1.5


def test_clndat_records_and_quirks(jsrt_scr):
    jsrt, _ = jsrt_scr
    data = (jsrt / "CLNDAT_EN.txt").read_bytes()
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert re.search(rb"[a-z]JPCLN003\.IMG", data)  # record 2 runs into record 3, no line break
    records = clndat_records(jsrt)
    assert [r[0] for r in records] == [f"JPCLN{i:03d}.IMG" for i in range(1, N_NODULE + 1)]
    assert [len(r) for r in records] == [11, 10, 10]  # record 1's diagnosis spills into a field
    assert records[-1][3] == "?" and all(r[3].isdigit() for r in records[:-1])
    for record in records:
        assert 1 <= int(record[1]) <= 5 and 5 <= int(record[2]) <= 60
        assert record[4] in ("male", "female") and record[7] in ("malignant", "benign")
        assert re.fullmatch(r"[rl]\.(upper|middle|lower) lobe(\(S[\d+]+\))?", record[8])


def test_nodules_are_inside_the_named_lung_at_the_metadata_position(jsrt_scr):
    jsrt, scr = jsrt_scr
    contrasts = []
    for record in clndat_records(jsrt):
        stem, size_mm, x, y = record[0][:8], int(record[2]), int(record[5]), int(record[6])
        side = "right lung" if record[8].startswith("r.") else "left lung"
        radius = size_mm / JSRT_PIXEL_MM / 2  # on the 2048 grid
        yy, xx = np.ogrid[:1024, :1024]
        disc = (2 * xx + 0.5 - x) ** 2 + (2 * yy + 0.5 - y) ** 2 <= radius**2
        assert scr_mask(scr, stem, side)[disc].all(), f"{stem}: nodule not inside the {side}"
        reach = int(2 * radius)
        window = jsrt_display(jsrt, stem)[y - reach : y + reach + 1, x - reach : x + reach + 1]
        offsets = np.arange(-reach, reach + 1)
        r = np.hypot(offsets[None, :], offsets[:, None]) / radius
        contrasts.append((int(record[1]), window[r < 0.4].mean() - window[(r > 1.3) & (r < 1.8)].mean()))
    # the most obvious nodule of the set stands out against its surroundings
    assert max(contrasts)[1] > 60


def test_draw_nodule_places_the_metadata_size_at_the_metadata_position():
    image = np.zeros((2048, 2048), np.float32)
    draw_nodule(image, 700, 1300, 14.0, 0.1)
    assert np.unravel_index(image.argmax(), image.shape) == (1300, 700)
    assert image.max() == pytest.approx(0.1)
    columns = np.flatnonzero(image[1300] > 0)
    assert (columns[-1] - columns[0] + 1) * JSRT_PIXEL_MM == pytest.approx(14.0, abs=2 * JSRT_PIXEL_MM)


def test_malignant_margins_are_irregular_and_calcified_cores_denser():
    """Malignancy shows in the image: a spiculated margin reaches out further in some directions than in
    others, while a smooth nodule is round; a calcified nodule's core is denser than a plain one's."""
    def extents(image: np.ndarray) -> np.ndarray:  # outward reach from the centre along 64 directions
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        steps = np.arange(200)
        ys = np.rint(1024 + np.sin(angles)[:, None] * steps).astype(int)
        xs = np.rint(1024 + np.cos(angles)[:, None] * steps).astype(int)
        return (image[ys, xs] > 0).sum(axis=1)

    smooth, spiculated, calcified = (np.zeros((2048, 2048), np.float32) for _ in range(3))
    draw_nodule(smooth, 1024, 1024, 20.0, 0.1)
    draw_nodule(spiculated, 1024, 1024, 20.0, 0.1, spiculation=0.4, phases=np.zeros(5))
    draw_nodule(calcified, 1024, 1024, 20.0, 0.1, calcified=True)
    radius = 20.0 / JSRT_PIXEL_MM / 2
    assert np.ptp(extents(smooth)) <= 2 and np.ptp(extents(spiculated)) > 0.2 * radius
    assert calcified[1024, 1024] > 1.5 * smooth[1024, 1024]
    np.testing.assert_array_equal(calcified > 0, smooth > 0)


def test_cnndat_is_space_separated(jsrt_scr):
    jsrt, _ = jsrt_scr
    data = (jsrt / "CNNDAT_EN.TXT").read_bytes()
    lines = data.decode("latin-1").split("\r\n")
    assert lines[-1] == "" and len(lines) == N_NORMAL + 1
    for number, line in enumerate(lines[:-1], start=1):
        fields = line.split()
        assert fields[0] == f"JPCNN{number:03d}.IMG" and fields[2] in ("male", "female")
        assert fields[1].isdigit() and fields[3] == "non-nodule"
        assert "\t" not in line and "  " in line


def test_jsrt_scr_is_deterministic(jsrt_scr, tmp_path):
    jsrt, scr = jsrt_scr
    write_jsrt_scr(tmp_path / "jsrt", tmp_path / "scr", n_nodule=N_NODULE, n_normal=N_NORMAL, seed=SEED)
    assert tree_hashes(tmp_path / "jsrt") == tree_hashes(jsrt)
    assert tree_hashes(tmp_path / "scr") == tree_hashes(scr)
    write_jsrt_scr(tmp_path / "j2", tmp_path / "s2", n_nodule=1, n_normal=0, seed=SEED + 1)
    assert sha256_file(tmp_path / "j2" / "JPCLN001.IMG") != sha256_file(jsrt / "JPCLN001.IMG")


def test_writers_refuse_a_directory_with_files(tmp_path):
    (tmp_path / "jsrt").mkdir()
    (tmp_path / "jsrt" / "old.IMG").write_bytes(b"")
    with pytest.raises(DataError, match="empty or missing directory"):
        write_jsrt_scr(tmp_path / "jsrt", tmp_path / "scr", n_nodule=1, n_normal=0, seed=0)


# ---------------------------------------------------------------------------------------------- NIH


def read_entries(nih: Path) -> list[dict[str, str]]:
    with open(nih / "Data_Entry_2017_v2020.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    keys = ["name", "labels", "followup", "patient", "age", "sex", "view", "w", "h", "sx", "sy"]
    return [dict(zip(keys, row)) for row in rows[1:]]


def test_nih_images_and_modes(nih):
    entries = read_entries(nih)
    names = sorted(p.name for p in (nih / "images").iterdir())
    assert names == [e["name"] for e in entries]
    modes, icc = [], []
    for name in names:
        with Image.open(nih / "images" / name) as image:
            assert image.size == (1024, 1024)
            modes.append(image.mode)
            icc.append("icc_profile" in image.info)
            if image.mode == "RGBA":
                rgba = np.array(image)
                assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 1] == rgba[..., 2]).all()
                assert (rgba[..., 3] == 255).all()
    assert set(modes) == {"L", "RGBA"} and modes.count("RGBA") == 1  # 1% of ~25, at least one
    assert sum(icc) == 1


def test_data_entry_matches_the_real_v2020_layout(nih, shared_nih):
    ours = (nih / "Data_Entry_2017_v2020.csv").read_bytes()
    real = (shared_nih / "Data_Entry_2017_v2020.csv").read_bytes()
    assert ours.split(b"\n", 1)[0] + b"\n" == real.split(b"\n", 1)[0] + b"\n"
    assert b"\r" not in ours and ours.endswith(b"\n") and real.endswith(b"\n")
    entries = read_entries(nih)
    assert [e["name"] for e in entries] == sorted(e["name"] for e in entries)
    patients = {int(e["patient"]) for e in entries}
    assert patients == set(range(1, NIH_PATIENTS + 1))
    assert any(sum(int(e["patient"]) == p for e in entries) > 1 for p in patients)
    for entry in entries:
        assert entry["name"] == f"{int(entry['patient']):08d}_{int(entry['followup']):03d}.png"
        assert entry["age"].isdigit() and 0 <= int(entry["age"]) <= 95
        assert entry["sex"] in ("M", "F") and entry["view"] in ("PA", "AP")
        labels = entry["labels"].split("|")
        assert labels == ["No Finding"] or (set(labels) <= set(NIH_LABELS) and labels == sorted(labels))
        assert float(entry["sx"]) == float(entry["sy"]) and 0.1 < float(entry["sx"]) < 0.2


def test_split_lists_are_patient_disjoint_and_formatted_like_the_real_ones(nih, shared_nih):
    for name in ("test_list.txt", "train_val_list.txt"):
        ours, real = (nih / name).read_bytes(), (shared_nih / name).read_bytes()
        assert not ours.endswith(b"\n") and not real.endswith(b"\n")
        assert b"\r" not in ours and b"\r" not in real[:10_000]
    test = (nih / "test_list.txt").read_text().split("\n")
    train_val = (nih / "train_val_list.txt").read_text().split("\n")
    assert sorted(test + train_val) == [e["name"] for e in read_entries(nih)]
    assert not {n[:8] for n in test} & {n[:8] for n in train_val}
    assert len({n[:8] for n in test}) == round(0.25 * NIH_PATIENTS)


def test_bbox_list_layout_and_content(nih, shared_nih):
    ours = (nih / "BBox_List_2017.csv").read_bytes()
    real = (shared_nih / "BBox_List_2017.csv").read_bytes()
    header = b"Image Index,Finding Label,Bbox [x,y,w,h],,,"
    assert ours.split(b"\n", 1)[0] == real.split(b"\n", 1)[0] == header
    assert b"\r" not in ours and ours.endswith(b"\n")
    labels_of = {e["name"]: e["labels"].split("|") for e in read_entries(nih)}
    test = set((nih / "test_list.txt").read_text().split("\n"))
    rows = [line.split(",") for line in ours.decode().splitlines()[1:]]
    assert rows, "the fixture should have some boxes"
    spelled = {label: "Infiltrate" if label == "Infiltration" else label for label in BOX_LABELS}
    for name, label, *numbers in rows:
        assert name in test and len(numbers) == 4
        assert label in spelled.values() and label != "Infiltration"
        assert {v: k for k, v in spelled.items()}[label] in labels_of[name]
        x, y, w, h = map(float, numbers)
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 1024 and y + h <= 1024
        assert all(len(v.replace(".", "").lstrip("0")) <= 15 for v in numbers)
    order = [BOX_LABELS.index({v: k for k, v in spelled.items()}[row[1]]) for row in rows]
    assert order == sorted(order)  # grouped by class, as in the real file


def film(patient: int, labels: tuple[str, ...]) -> NihImage:
    return NihImage(patient=patient, followup=0, labels=labels, age=50, sex="F", view="PA",
                    width=2500, height=2048, spacing="0.168")


@pytest.mark.parametrize("label", [label for label in BOX_LABELS if label != "Cardiomegaly"])
def test_box_encloses_the_drawn_finding(label):
    others = ("Emphysema", "Fibrosis")
    with_it, without = render_film(SEED, film(31, (label, *others))), render_film(SEED, film(31, others))
    changed = np.abs(with_it.pixels.astype(int) - without.pixels.astype(int)) > 8
    assert changed.sum() > 200
    x, y, w, h = with_it.boxes[label]
    rows, cols = np.nonzero(changed)
    assert x <= cols.min() and cols.max() < x + w and y <= rows.min() and rows.max() < y + h
    assert set(with_it.boxes) == {label}


def test_cardiomegaly_box_encloses_the_heart():
    normal, enlarged = render_film(SEED, film(32, ())), render_film(SEED, film(32, ("Cardiomegaly",)))
    x, y, w, h = enlarged.boxes["Cardiomegaly"]
    assert 0.4 * 1024 < w < 0.8 * 1024
    # the enlarged heart brightens the lower chest inside its box, not outside it
    brighter = (enlarged.pixels.astype(int) - normal.pixels.astype(int)) > 40
    rows, cols = np.nonzero(brighter)
    assert x <= cols.min() and cols.max() < x + w and y <= rows.min() and rows.max() < y + h


@pytest.mark.parametrize("label", NIH_LABELS)
def test_every_finding_is_visible_at_64_pixels(label):
    def small(labels):
        return cv2.resize(render_film(SEED, film(40, labels)).pixels, (64, 64), interpolation=cv2.INTER_AREA)

    difference = np.abs(small((label,)).astype(int) - small(()).astype(int))
    assert difference.max() >= 25, f"{label} fades at 64 px (max difference {difference.max()})"
    assert (difference >= 10).sum() >= 3


def test_nih_is_deterministic(nih, tmp_path):
    write_nih(tmp_path / "nih", n_patients=NIH_PATIENTS, max_followups=3, test_fraction=0.25, seed=SEED)
    assert tree_hashes(tmp_path / "nih") == tree_hashes(nih)
    write_nih(tmp_path / "other", n_patients=2, max_followups=1, test_fraction=0.5, seed=SEED + 1)
    assert sha256_file(tmp_path / "other" / "images" / "00000001_000.png") != sha256_file(
        nih / "images" / "00000001_000.png")


# ----------------------------------------------------------------------------------------- labels


def test_class_prevalences_use_the_published_totals_with_a_floor():
    real = class_prevalences(0.0)
    assert real[NIH_LABELS.index("Infiltration")] == pytest.approx(19871 / 112120)
    assert real[NIH_LABELS.index("Hernia")] == pytest.approx(227 / 112120)
    raised = class_prevalences(0.05)
    assert raised.min() == pytest.approx(0.05)
    assert raised[NIH_LABELS.index("Effusion")] == pytest.approx(13307 / 112120)
    with pytest.raises(ValueError):
        class_prevalences(0.6)


def test_label_model_reaches_the_prevalences_and_keeps_co_occurrence():
    prevalence = class_prevalences(0.05)
    model = fit_label_model(prevalence)
    assert np.allclose(model.marginals(), prevalence)
    assert 1.0 - model.primary.sum() == pytest.approx(0.5, abs=0.02)  # No Finding share
    rng = np.random.default_rng(0)
    draws = np.array([model.sample(rng) for _ in range(20_000)])
    assert np.abs(draws.mean(axis=0) - prevalence).max() < 0.012
    assert (~draws.any(axis=1)).mean() == pytest.approx(0.5, abs=0.015)

    def given(a, b):  # P(b | a) in the draws
        return draws[draws[:, NIH_LABELS.index(a)], NIH_LABELS.index(b)].mean()

    # pairs that are common in the published matrix co-occur far above chance here, rare ones do not
    assert given("Atelectasis", "Effusion") > 2 * prevalence[NIH_LABELS.index("Effusion")]
    assert given("Pneumothorax", "Emphysema") > 2 * prevalence[NIH_LABELS.index("Emphysema")]
    assert given("Hernia", "Pneumonia") < given("Edema", "Pneumonia")


def test_follow_ups_tend_to_keep_their_findings():
    model = fit_label_model(class_prevalences(0.05))
    plans = [plan_patient(SEED, patient, 4, model) for patient in range(1, 301)]
    same_patient = [a.labels == b.labels for films in plans for a, b in zip(films, films[1:])]
    across = [a[0].labels == b[0].labels for a, b in zip(plans, plans[1:])]
    assert np.mean(same_patient) > np.mean(across) + 0.25
    assert sum(len(films) > 1 for films in plans) > 150


def test_all_findings_majority_rule():
    # image 0: two of three call it abnormal and name Effusion; image 1: abnormal by majority
    # but every reader names a different finding, so Other is YES; image 2: normal
    abnormal = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    findings = np.zeros((3, 3, 14), dtype=bool)
    findings[0, :2, NIH_LABELS.index("Effusion")] = True
    for reader, label in enumerate(("Mass", "Nodule", "Edema")):
        findings[1, reader, NIH_LABELS.index(label)] = True
    other = np.zeros((3, 3), dtype=bool)
    other[2, 0] = True
    voted_abnormal, voted_findings, voted_other = all_findings_majority(abnormal, findings, other)
    assert voted_abnormal.tolist() == [True, True, False]
    assert np.flatnonzero(voted_findings[0]).tolist() == [NIH_LABELS.index("Effusion")]
    assert not voted_findings[1:].any()
    assert voted_other.tolist() == [False, True, False]


# ----------------------------------------------------------------------------------------- Google

GOOGLE_FILES = (
    "four_findings_expert_labels/individual_readers.csv",
    "four_findings_expert_labels/test_labels.csv",
    "four_findings_expert_labels/validation_labels.csv",
    "all_findings_expert_labels/test_individual_readers.csv",
    "all_findings_expert_labels/test_labels.csv",
)


@pytest.mark.parametrize("relative", GOOGLE_FILES)
def test_google_headers_and_line_ends_match_the_real_files(google, shared_nih, relative):
    ours = (google / relative).read_bytes()
    real = (shared_nih / "google_expert_labels" / relative).read_bytes()
    line_end = b"\r\n" if b"\r\n" in real else b"\n"
    assert ours.split(line_end, 1)[0] + line_end == real.split(line_end, 1)[0] + line_end
    assert ours.endswith(b"\n") == real.endswith(b"\n")
    assert (b"\r\n" in ours) == (line_end == b"\r\n")


def read_google(google: Path, relative: str) -> list[dict[str, str]]:
    with open(google / relative, newline="") as handle:
        return list(csv.DictReader(io.StringIO(handle.read().replace("\r\n", "\n"))))


def test_four_findings_follow_the_true_findings(google, nih):
    entries = {e["name"]: e for e in read_entries(nih)}
    test = set((nih / "test_list.txt").read_text().split("\n"))
    sets = {"test": read_google(google, GOOGLE_FILES[1]), "val": read_google(google, GOOGLE_FILES[2])}
    assert len(sets["test"]) == GOOGLE_COUNTS["test_images"]
    assert len(sets["val"]) == GOOGLE_COUNTS["validation_images"]
    for set_id, rows in sets.items():
        for row in rows:
            name = row["Image Index"]
            assert (name in test) == (set_id == "test") and row["Set Id"] == set_id
            labels = set(entries[name]["labels"].split("|"))
            assert row["Pneumothorax"] == ("YES" if "Pneumothorax" in labels else "NO")
            assert row["Nodule or mass"] == ("YES" if labels & {"Nodule", "Mass"} else "NO")
            airspace = labels & {"Consolidation", "Pneumonia", "Infiltration", "Edema", "Atelectasis"}
            assert row["Airspace opacity"] == ("YES" if airspace else "NO")
            assert row["Patient Age"] == entries[name]["age"]
            spacing = row["OriginalImagePixelSpacing[x"]
            assert float(spacing) == pytest.approx(float(entries[name]["sx"]))
            assert len(spacing) <= 8  # Kaggle style: 0.143, not 0.14300000000000002
    readers = read_google(google, GOOGLE_FILES[0])
    assert len(readers) == 3 * sum(len(rows) for rows in sets.values())
    for row in readers:
        cohort = TEST_COHORT if row["Set ID"] == "test" else VALIDATION_COHORT
        assert int(row["Reader ID"]) in cohort
        assert row["Fracture"] in ("YES", "NO") and row["Airspace opacity"] in ("YES", "NO")
        assert row["Pneumothorax"] in ("YES", "NO", "HEDGE") and row["Nodule/mass"] in ("YES", "NO", "HEDGE")
    keys = [(int(r["Patient ID"]), r["Image ID"]) for r in readers]
    assert keys == sorted(keys)


def test_all_findings_are_pa_test_films_voted_by_the_reference_readers(google, nih):
    entries = {e["name"]: e for e in read_entries(nih)}
    four_test = {row["Image Index"] for row in read_google(google, GOOGLE_FILES[1])}
    readers = read_google(google, GOOGLE_FILES[3])
    labels = read_google(google, GOOGLE_FILES[4])
    assert len(labels) == GOOGLE_COUNTS["all_findings_images"] and len(readers) == 5 * len(labels)
    findings = [label.replace("_", " ") for label in NIH_LABELS]
    for index, row in enumerate(labels):
        name = row["Image ID"]
        assert name in four_test and entries[name]["view"] == "PA"
        own = readers[5 * index : 5 * index + 5]
        assert [int(r["Reader ID"]) for r in own] == list(ALL_FINDINGS_READERS)
        assert all(r["Image ID"] == name and r["Abnormal"] in ("0", "1") for r in own)
        reference = [r for r in own if int(r["Reader ID"]) in REFERENCE_READERS]
        voted = all_findings_majority(
            np.array([[r["Abnormal"] == "1" for r in reference]]),
            np.array([[[r[f] == "YES" for f in findings] for r in reference]]),
            np.array([[r["Other"] == "YES" for r in reference]]),
        )
        assert row["Abnormal"] == ("YES" if voted[0][0] else "NO")
        assert [row[f] == "YES" for f in findings] == voted[1][0].tolist()
        assert row["Other"] == ("YES" if voted[2][0] else "NO")


def test_google_labels_are_deterministic_and_check_their_input(google, nih, tmp_path):
    write_google_labels(tmp_path / "again", nih, seed=SEED, **GOOGLE_COUNTS)
    assert tree_hashes(tmp_path / "again") == tree_hashes(google)
    with pytest.raises(DataError, match="only 4 are available"):
        write_google_labels(tmp_path / "too_many", nih, seed=SEED, test_images=5, validation_images=0,
                            all_findings_images=0)
    with pytest.raises(DataError, match="missing NIH metadata"):
        write_google_labels(tmp_path / "nothing", tmp_path / "no_nih", seed=SEED, test_images=1,
                            validation_images=0, all_findings_images=0)
