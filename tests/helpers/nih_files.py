"""NIH Data_Entry rows written in each published form (v2020, the original 2017 release, the Kaggle copy),
for tests of the readers and of the stages that read them."""

from __future__ import annotations

from pathlib import Path

from cxrbench.datasets import nih

V2020_HEADER = ",".join(nih.ENTRY_COLUMNS)


def v2020_bytes(rows: list[list[str]]) -> bytes:
    return "\n".join([V2020_HEADER] + [",".join(row) for row in rows]).encode()


def original_2017_bytes(
    rows: list[list[str]], ages: dict[int, str], *, sex_column: str = "Patient Gender", row_comma: bool = True
) -> bytes:
    """The Oct 2017 form: CRLF, trailing comma, zero-padded follow-up/patient, ages with a unit."""
    header = V2020_HEADER.replace("Patient Gender", sex_column) + ","
    lines = [header]
    for index, (image, labels, follow_up, patient, age, *rest) in enumerate(rows):
        age_text = ages.get(index, f"{int(age):03d}Y")
        fields = [image, labels, f"{int(follow_up):03d}", f"{int(patient):08d}", age_text, *rest]
        lines.append(",".join(fields) + ("," if row_comma else ""))
    return ("\r\n".join(lines) + "\r\n").encode()


def kaggle_bytes(rows: list[list[str]], *, row_comma: bool) -> bytes:
    lines = [V2020_HEADER + ","] + [",".join(row) + ("," if row_comma else "") for row in rows]
    return ("\n".join(lines) + "\n").encode()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path
