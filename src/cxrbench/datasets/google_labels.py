"""Google's radiologist labels for subsets of NIH ChestX-ray14 (`google_expert_labels/`).

Four findings (Majkowska et al., Radiology 2019), `four_findings_expert_labels/`:
    individual_readers.csv   13,081 reads of 4,376 images by 22 readers: Fracture, Pneumothorax, Airspace
                             opacity, Nodule/mass (YES/NO; HEDGE also allowed for Pneumothorax and
                             Nodule/mass), Set ID test|val; CRLF.
    test_labels.csv          1,962 images, all in the NIH test list  } adjudicated YES/NO per finding
    validation_labels.csv    2,414 images, all in train_val          } after the 11 NIH metadata columns
                             (the README says 2,412); no patient is in both tables.
All findings (Nabulsi et al., Scientific Reports 2021), `all_findings_expert_labels/`:
    test_individual_readers.csv   810 PA test images x 5 readers: Abnormal 0/1, the 14 NIH findings
                                  (`Pleural Thickening` with a space) and Other, YES/NO.
    test_labels.csv               810 rows: the majority vote of GROUND_TRUTH_READERS (see majority_labels).

Value mapping (explicit, the same in every reader here): a column holding only YES/NO (or 0/1) becomes
bool; a reader column that may hold HEDGE (four-findings Pneumothorax and Nodule_Mass) becomes the
ordered categorical NO < HEDGE < YES; adjudicated four-findings labels are nullable `boolean`, NA where
the README says a value may be missing (image not adjudicated). Finding columns are named like NIH labels:
`Pleural Thickening` -> `Pleural_Thickening`, and FOUR_FINDINGS for the four findings.
Identifier columns: image (str), patient, reader (int64), set ('test'/'val').
Licence: research and educational use only; cite the paper of each set (and the NIH dataset, see `nih`).
Where: Google Cloud's public-dataset page for the NIH Chest X-ray dataset, section "Additional Labels"
(complete the linked Google Form, then download); not fetched by the workflow.
Citations: A. Majkowska et al. Chest Radiograph Interpretation Using Deep Learning Models: Assessment Using
Radiologist Adjudicated Reference Standards and Population-Adjusted Evaluation. Radiology 2019,
doi:10.1148/radiol.2019191293. Z. Nabulsi et al. Deep Learning for Distinguishing Normal versus Abnormal
Chest Radiographs and Generalization to Two Unseen Diseases Tuberculosis and COVID-19. Scientific Reports
2021, doi:10.1038/s41598-021-93967-2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cxrbench.datasets import nih, read_csv_rows
from cxrbench.errors import DataError

FOUR_FINDINGS = ("Fracture", "Pneumothorax", "Airspace_Opacity", "Nodule_Mass")
# the release's label files, relative to google_expert_labels/
FOUR_FINDINGS_TEST = "four_findings_expert_labels/test_labels.csv"
FOUR_FINDINGS_VALIDATION = "four_findings_expert_labels/validation_labels.csv"
ALL_FINDINGS_TEST = "all_findings_expert_labels/test_labels.csv"
ALL_FINDINGS = (*nih.LABELS, "Other")
GROUND_TRUTH_READERS = (4343882785, 4343883593, 4343883996)
READER_ANSWER = pd.CategoricalDtype(["NO", "HEDGE", "YES"], ordered=True)
GET_FILES = (
    "use the unmodified CSV from Google's ChestX-ray14 expert labels release (google_expert_labels/), "
    "as named in its README"
)

_FOUR_READER_COLUMNS = {  # file column -> (our name, accepted values)
    "Fracture": ("Fracture", ("YES", "NO")),
    "Pneumothorax": ("Pneumothorax", ("YES", "NO", "HEDGE")),
    "Airspace opacity": ("Airspace_Opacity", ("YES", "NO")),
    "Nodule/mass": ("Nodule_Mass", ("YES", "NO", "HEDGE")),
}
_FOUR_LABEL_COLUMNS = {
    "Fracture": "Fracture",
    "Pneumothorax": "Pneumothorax",
    "Airspace opacity": "Airspace_Opacity",
    "Nodule or mass": "Nodule_Mass",
}
_ALL_FINDING_COLUMNS = {label.replace("_", " "): label for label in ALL_FINDINGS}  # file spelling -> ours
_SETS = ("test", "val")


class _Table:
    """A CSV's string cells with line numbers, checked column by column into typed output columns."""

    def __init__(self, path: str | Path, expected_header: list[str]):
        self.path = Path(path)
        header, rows, lines = read_csv_rows(self.path, GET_FILES)
        if [name.strip() for name in header] != expected_header:
            expected = ",".join(expected_header)
            raise DataError(self.path, f"line 1: unexpected header {header}; expected {expected}", GET_FILES)
        width = len(expected_header)
        if bad := next((line for row, line in zip(rows, lines) if len(row) != width), None):
            raise DataError(self.path, f"line {bad}: expected {width} fields", GET_FILES)
        if not rows:
            raise DataError(self.path, "no data rows after the header", GET_FILES)
        self.raw = pd.DataFrame(rows, columns=expected_header, dtype="str")
        self.lines = np.asarray(lines)

    def _column(self, column: str, valid: Callable[[pd.Series], pd.Series], expected: str) -> pd.Series:
        """The stripped cells of `column`; DataError at the first line whose cell is not `valid`."""
        values = self.raw[column].str.strip()
        bad = np.flatnonzero(~valid(values).to_numpy(dtype=bool))
        if bad.size:
            first = bad[0]
            raise DataError(
                self.path,
                f"line {self.lines[first]}: {column} is {values.iloc[first]!r}; expected {expected} "
                f"({bad.size} such row(s))",
                GET_FILES,
            )
        return values

    def values_in(self, column: str, allowed: tuple[str, ...], expected: str) -> pd.Series:
        return self._column(column, lambda values: values.isin(allowed), expected)

    def answers(self, column: str, allowed: tuple[str, ...]) -> pd.Series:
        """YES/NO -> bool; with HEDGE allowed, the ordered categorical READER_ANSWER."""
        values = self.values_in(column, allowed, " or ".join(allowed))
        return values.astype(READER_ANSWER) if "HEDGE" in allowed else values == "YES"

    def adjudicated(self, column: str) -> pd.Series:
        """YES/NO -> nullable boolean, empty -> NA (image not adjudicated for that finding)."""
        values = self.values_in(column, ("YES", "NO", ""), "YES, NO or empty")
        return (values == "YES").astype("boolean").mask(values == "")

    def zero_one(self, column: str) -> pd.Series:
        return self.values_in(column, ("0", "1"), "0 or 1") == "1"

    def integers(self, column: str) -> pd.Series:
        return self._column(column, lambda values: values.str.fullmatch(r"\d+"), "a whole number").astype(np.int64)

    def images(self, column: str) -> pd.Series:
        image_name = nih.IMAGE_NAME.pattern
        return self._column(column, lambda values: values.str.fullmatch(image_name), "an NIH image name")

    def finish(self, columns: dict[str, pd.Series]) -> pd.DataFrame:
        table = pd.DataFrame(columns)
        table.attrs["path"] = str(self.path)
        return table


def read_four_findings_readers(path: str | Path) -> pd.DataFrame:
    """individual_readers.csv: image, patient, reader, Fracture (bool), Pneumothorax (NO<HEDGE<YES),
    Airspace_Opacity (bool), Nodule_Mass (NO<HEDGE<YES), set ('test'/'val'); one row per read."""
    header = ["Patient ID", "Image ID", "Reader ID", *_FOUR_READER_COLUMNS, "Set ID"]
    table = _Table(path, header)
    columns = {
        "image": table.images("Image ID"),
        "patient": table.integers("Patient ID"),
        "reader": table.integers("Reader ID"),
    }
    for column, (name, allowed) in _FOUR_READER_COLUMNS.items():
        columns[name] = table.answers(column, allowed)
    columns["set"] = table.values_in("Set ID", _SETS, "test or val")
    return table.finish(columns)


def read_four_findings_labels(path: str | Path) -> pd.DataFrame:
    """test_labels.csv or validation_labels.csv: the NIH metadata columns typed as nih.read_data_entry
    does, then Fracture, Pneumothorax, Airspace_Opacity, Nodule_Mass (nullable boolean) and set."""
    header = [*nih.ENTRY_COLUMNS, *_FOUR_LABEL_COLUMNS, "Set Id"]
    table = _Table(path, header)
    metadata, _ = nih.typed_entries(table.raw[list(nih.ENTRY_COLUMNS)], table.lines, table.path)
    columns = dict(metadata.items())
    for column, name in _FOUR_LABEL_COLUMNS.items():
        columns[name] = table.adjudicated(column)
    columns["set"] = table.values_in("Set Id", _SETS, "test or val")
    return table.finish(columns)


def _all_findings(table: _Table, with_reader: bool) -> pd.DataFrame:
    columns = {"image": table.images("Image ID"), "patient": table.integers("Patient ID")}
    if with_reader:
        columns["reader"] = table.integers("Reader ID")
        columns["Abnormal"] = table.zero_one("Abnormal")
    else:
        columns["Abnormal"] = table.answers("Abnormal", ("YES", "NO"))
    for column, name in _ALL_FINDING_COLUMNS.items():
        columns[name] = table.answers(column, ("YES", "NO"))
    return table.finish(columns)


def read_all_findings_readers(path: str | Path) -> pd.DataFrame:
    """test_individual_readers.csv: image, patient, reader, Abnormal (bool, from 0/1), the 14 NIH labels
    and Other (bool); one row per read."""
    header = ["Image ID", "Patient ID", "Reader ID", "Abnormal", *_ALL_FINDING_COLUMNS]
    return _all_findings(_Table(path, header), with_reader=True)


def read_all_findings_labels(path: str | Path) -> pd.DataFrame:
    """all_findings test_labels.csv: image, patient, Abnormal (bool, from YES/NO in this file), the 14 NIH
    labels and Other (bool); one row per image."""
    header = ["Image ID", "Patient ID", "Abnormal", *_ALL_FINDING_COLUMNS]
    return _all_findings(_Table(path, header), with_reader=False)


def majority_labels(readers_df: pd.DataFrame) -> pd.DataFrame:
    """Recompute the all-findings test labels from the reads of GROUND_TRUTH_READERS.

    Each of Abnormal and the 14 findings is YES when at least two of the three ground-truth readers said
    so. Other is YES when a majority marked Other, or when a majority called the image abnormal but no
    single one of the 14 findings won a majority. This rule, as the README states it, reproduces the
    published test_labels.csv exactly. Rows keep the order in which images first appear in `readers_df`;
    columns are those of read_all_findings_labels.
    """
    ground_truth = readers_df[readers_df["reader"].isin(GROUND_TRUTH_READERS)]
    reads = ground_truth.groupby("image", sort=False)["reader"].nunique()
    counts = ground_truth.groupby("image", sort=False).size()
    if (bad := counts.index[(counts != 3) | (reads != 3)]).size:
        raise DataError(
            readers_df.attrs.get("path"),
            f"{bad.size} image(s) lack exactly one read by each ground-truth reader {GROUND_TRUTH_READERS}, "
            f"e.g. {bad[0]}",
            GET_FILES,
        )
    votes = ground_truth.groupby("image", sort=False)[["Abnormal", *ALL_FINDINGS]].sum()
    majority = votes >= 2
    no_single_finding = ~majority[list(nih.LABELS)].any(axis=1)
    majority["Other"] = majority["Other"] | (majority["Abnormal"] & no_single_finding)
    patients = ground_truth.groupby("image", sort=False)["patient"].first()
    labels = pd.concat([patients, majority], axis=1).reset_index()
    return labels.astype({"image": "str"})


LABELS_PAGE = "https://cloud.google.com/healthcare/docs/resources/public-datasets/nih-chest"
LABEL_FOLDERS = ("four_findings_expert_labels", "all_findings_expert_labels")


def require_tree(path: str | Path) -> Path:
    """The folder of a copy of the release (holding either set's folder), or an error naming source.google and
    where the files come from."""
    path = Path(path)
    if not any((path / folder).is_dir() for folder in LABEL_FOLDERS):
        raise DataError(
            path,
            f"source.google does not point to Google's expert labels for NIH (a folder holding "
            f"{' and/or '.join(f'{f}/' for f in LABEL_FOLDERS)})",
            fix=f"they are released through a Google form, not a direct link: request them from {LABELS_PAGE} "
            "and set source.google to the unpacked folder, or leave google out of `datasets` (the expert-label "
            "evaluation is then left out)",
        )
    return path
