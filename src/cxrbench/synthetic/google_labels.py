"""Phantom Google expert labels for a phantom NIH release, in the real files' layouts.

Four findings (Majkowska et al., Radiology 2019): `individual_readers.csv` (3 readers per image;
YES/NO, HEDGE for Pneumothorax and Nodule/mass) and adjudicated `test_labels.csv` /
`validation_labels.csv` (Kaggle-style NIH metadata plus four YES/NO columns), CRLF, no final line
end. All findings (Nabulsi et al., Sci Rep 2021): 5 readers on PA test images and the majority of
three of them, LF. Adjudicated labels follow the images' true synthetic findings; readers add noise.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrbench.errors import DataError
from cxrbench.fileio import write_bytes
from cxrbench.synthetic.anatomy import prepare_output_dir
from cxrbench.synthetic.nih import DATA_ENTRY_HEADER, NIH_LABELS, NO_FINDING

FOUR_FINDINGS_DIR = "four_findings_expert_labels"
ALL_FINDINGS_DIR = "all_findings_expert_labels"
FOUR_FINDINGS: tuple[str, ...] = ("Fracture", "Pneumothorax", "Airspace opacity", "Nodule or mass")
FOUR_READERS_HEADER = (
    "Patient ID,Image ID,Reader ID,Fracture,Pneumothorax,Airspace opacity,Nodule/mass,Set ID"
)
FOUR_LABELS_HEADER = DATA_ENTRY_HEADER + ",Fracture,Pneumothorax,Airspace opacity,Nodule or mass,Set Id"
ALL_FINDINGS: tuple[str, ...] = tuple(label.replace("_", " ") for label in NIH_LABELS)
ALL_READERS_HEADER = "Image ID,Patient ID,Reader ID,Abnormal," + ",".join(ALL_FINDINGS) + ",Other"
ALL_LABELS_HEADER = "Image ID,Patient ID,Abnormal," + ",".join(ALL_FINDINGS) + ",Other"

# Reader IDs as in the real files: the four-findings cohorts per set, and the five all-findings
# radiologists in their row order, three of whom make the reference standard.
TEST_COHORT = (4295194124, 4295206903, 4295232296, 4295354140, 4295367682, 4295376896,
               4295393403, 4323195249, 4325221191, 4325222456, 4326829894)
VALIDATION_COHORT = (4295246212, 4295342357, 4295344101, 4295349028, 4295349121, 4295354117,
                     4295354708, 4295359843, 4295367682, 4295369079, 4322936986, 4323195249,
                     4326615889)
ALL_FINDINGS_READERS = (4343882583, 4343882785, 4343880271, 4343883996, 4343883593)
REFERENCE_READERS = (4343882785, 4343883593, 4343883996)

AIRSPACE_LABELS = frozenset({"Consolidation", "Pneumonia", "Infiltration", "Edema", "Atelectasis"})
_FRACTURE_SHARE = 0.035
_FOUR_FLIP, _HEDGE = 0.08, 0.05  # four-findings readers: disagree with the consensus, or hedge
_MISS, _FALSE_CALL, _OTHER = 0.15, 0.02, 0.05  # all-findings readers, per finding
_UNNAMED_ABNORMAL = 0.05  # an all-findings reader senses an abnormal film but names none of the 14
_SELECT, _ADJUDICATE, _ALL_FINDINGS = 21, 22, 23
_CRLF = "\r\n"
_REGENERATE = "regenerate the NIH directory with write_nih"


def all_findings_majority(
    abnormal: np.ndarray, findings: np.ndarray, other: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The all-findings reference rule: majority vote of the readers given.

    abnormal, other: (images, readers) bool; findings: (images, readers, 14) bool. Returns the
    voted (images,), (images, 14), (images,). `Other` is also YES when a majority called the
    image abnormal but no single finding won a majority.
    """
    needed = abnormal.shape[1] // 2 + 1
    abnormal_vote = abnormal.sum(axis=1) >= needed
    finding_vote = findings.sum(axis=1) >= needed
    other_vote = (other.sum(axis=1) >= needed) | (abnormal_vote & ~finding_vote.any(axis=1))
    return abnormal_vote, finding_vote, other_vote


@dataclass(frozen=True)
class _Film:
    row: list[str]  # the 11 Data_Entry fields as written there
    labels: frozenset[str]

    @property
    def name(self) -> str:
        return self.row[0]

    @property
    def patient(self) -> int:
        return int(self.row[3])

    @property
    def followup(self) -> int:
        return int(self.row[2])


def _read_data_entry(path: Path) -> dict[str, _Film]:
    if not path.is_file():
        raise DataError(path, "missing NIH metadata file", "write the NIH phantoms first (write_nih)")
    with open(path, newline="", encoding="ascii") as handle:
        rows = list(csv.reader(handle))
    if not rows or ",".join(rows[0]) != DATA_ENTRY_HEADER:
        raise DataError(path, f"expected the v2020 header {DATA_ENTRY_HEADER!r}", _REGENERATE)
    films = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 11:
            raise DataError(path, f"line {number} has {len(row)} fields, expected 11", _REGENERATE)
        labels = frozenset() if row[1] == NO_FINDING else frozenset(row[1].split("|"))
        films[row[0]] = _Film(row=row, labels=labels)
    return films


def _read_list(path: Path, films: dict[str, _Film]) -> list[str]:
    if not path.is_file():
        raise DataError(path, "missing NIH split list", "write the NIH phantoms first (write_nih)")
    names = [name for name in path.read_text(encoding="ascii").split("\n") if name]
    unknown = [name for name in names if name not in films]
    if unknown:
        raise DataError(path, f"{len(unknown)} names are not in Data_Entry_2017_v2020.csv, e.g. {unknown[0]}",
                        _REGENERATE)
    return sorted(names)


def _choose(names: list[str], count: int, what: str, path: Path, rng: np.random.Generator) -> list[str]:
    if count > len(names):
        raise DataError(path, f"{what}: asked for {count} images but only {len(names)} are available",
                        "lower the count or write more NIH patients")
    return [names[i] for i in rng.choice(len(names), size=count, replace=False)]


def _kaggle_row(film: _Film) -> list[str]:
    """The Kaggle-style metadata: pixel spacing printed short (0.143, not 0.14300000000000002)."""
    return film.row[:9] + [repr(round(float(value), 6)) for value in film.row[9:]]


def _four_findings(film: _Film, rng: np.random.Generator) -> np.ndarray:
    """Adjudicated Fracture, Pneumothorax, Airspace opacity, Nodule or mass."""
    return np.array([
        rng.random() < _FRACTURE_SHARE,
        "Pneumothorax" in film.labels,
        bool(film.labels & AIRSPACE_LABELS),
        bool(film.labels & {"Nodule", "Mass"}),
    ])


def _four_findings_reads(truth: np.ndarray, readers: int, rng: np.random.Generator) -> np.ndarray:
    """(readers, 4) strings: the consensus with disagreements; HEDGE only where it is allowed."""
    flipped = truth[None, :] ^ (rng.random((readers, 4)) < _FOUR_FLIP)
    reads = np.where(flipped, "YES", "NO").astype(object)
    hedgeable = np.array([False, True, False, True])
    reads[(rng.random((readers, 4)) < _HEDGE) & hedgeable] = "HEDGE"
    return reads


def _yes_no(values: np.ndarray) -> list[str]:
    return ["YES" if value else "NO" for value in values]


def write_google_labels(google_dir: Path, nih_dir: Path, *, test_images: int, validation_images: int,
                        all_findings_images: int, seed: int) -> None:
    """Write both Google label sets for images chosen from the NIH test and train_val lists."""
    if min(test_images, validation_images, all_findings_images) < 0:
        raise ValueError("image counts must not be negative")
    if all_findings_images > test_images:
        raise ValueError("the all-findings images are a subset of the four-findings test images")
    nih_dir = Path(nih_dir)
    test_path, train_val_path = nih_dir / "test_list.txt", nih_dir / "train_val_list.txt"
    films = _read_data_entry(nih_dir / "Data_Entry_2017_v2020.csv")
    test_list, train_val_list = _read_list(test_path, films), _read_list(train_val_path, films)

    # the all-findings films are PA films of the four-findings test set: draw them first, then
    # fill that set from the rest of the test list
    select = np.random.default_rng([seed, _SELECT])
    pa_test = [name for name in test_list if films[name].row[6] == "PA"]
    all_findings_names = _choose(pa_test, all_findings_images, "all-findings set (PA test films)",
                                 test_path, select)
    others = sorted(set(test_list) - set(all_findings_names))
    more_test = _choose(others, test_images - all_findings_images, "four-findings test set",
                        test_path, select)
    chosen = {
        "test": sorted(all_findings_names + more_test),
        "val": sorted(_choose(train_val_list, validation_images, "four-findings validation set",
                              train_val_path, select)),
    }

    google_dir = prepare_output_dir(google_dir)
    reader_rows: list[tuple[int, str, list[str]]] = []
    for set_id, cohort, file_name in (("test", TEST_COHORT, "test_labels.csv"),
                                      ("val", VALIDATION_COHORT, "validation_labels.csv")):
        label_lines = [FOUR_LABELS_HEADER]
        for name in chosen[set_id]:
            film = films[name]
            rng = np.random.default_rng([seed, _ADJUDICATE, film.patient, film.followup])
            truth = _four_findings(film, rng)
            label_lines.append(",".join(_kaggle_row(film) + _yes_no(truth) + [set_id]))
            readers = rng.choice(cohort, size=3, replace=False)
            for reader, reads in zip(readers, _four_findings_reads(truth, 3, rng)):
                fields = [str(film.patient), name, str(reader), *reads, set_id]
                reader_rows.append((film.patient, name, fields))
        write_bytes(google_dir / FOUR_FINDINGS_DIR / file_name, _CRLF.join(label_lines).encode("ascii"))
    reader_rows.sort(key=lambda entry: (entry[0], entry[1]))  # stable: keeps each image's reader order
    reader_lines = [FOUR_READERS_HEADER] + [",".join(fields) for _, _, fields in reader_rows]
    write_bytes(google_dir / FOUR_FINDINGS_DIR / "individual_readers.csv",
                _CRLF.join(reader_lines).encode("ascii"))
    _write_all_findings(google_dir / ALL_FINDINGS_DIR, [films[name] for name in all_findings_names], seed)


def _write_all_findings(folder: Path, films: list[_Film], seed: int) -> None:
    """Five noisy readers per film and the majority of the three reference readers."""
    n_readers, n_findings = len(ALL_FINDINGS_READERS), len(NIH_LABELS)
    abnormal = np.zeros((len(films), n_readers), dtype=bool)
    findings = np.zeros((len(films), n_readers, n_findings), dtype=bool)
    other = np.zeros((len(films), n_readers), dtype=bool)
    for index, film in enumerate(films):
        rng = np.random.default_rng([seed, _ALL_FINDINGS, film.patient, film.followup])
        truth = np.array([label in film.labels for label in NIH_LABELS])
        draws = rng.random((n_readers, n_findings))
        findings[index] = np.where(truth, draws >= _MISS, draws < _FALSE_CALL)
        other[index] = rng.random(n_readers) < _OTHER
        unnamed = truth.any() & (rng.random(n_readers) < _UNNAMED_ABNORMAL)
        abnormal[index] = findings[index].any(axis=1) | other[index] | unnamed

    reader_lines = [ALL_READERS_HEADER]
    for index, film in enumerate(films):
        for reader_index, reader in enumerate(ALL_FINDINGS_READERS):
            reader_lines.append(",".join(
                [film.name, str(film.patient), str(reader), str(int(abnormal[index, reader_index]))]
                + _yes_no(findings[index, reader_index]) + _yes_no([other[index, reader_index]])
            ))
    reference = [ALL_FINDINGS_READERS.index(reader) for reader in REFERENCE_READERS]
    voted = all_findings_majority(abnormal[:, reference], findings[:, reference], other[:, reference])
    label_lines = [ALL_LABELS_HEADER] + [
        ",".join([film.name, str(film.patient)] + _yes_no([voted[0][index]]) + _yes_no(voted[1][index])
                 + _yes_no([voted[2][index]]))
        for index, film in enumerate(films)
    ]
    write_bytes(folder / "test_individual_readers.csv", ("\n".join(reader_lines) + "\n").encode("ascii"))
    write_bytes(folder / "test_labels.csv", ("\n".join(label_lines) + "\n").encode("ascii"))
