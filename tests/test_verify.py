"""`cxrbench verify`: what a person sees about their copy of each dataset, and its exit status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrbench.cli import main
from cxrbench.synthetic.jsrt_scr import write_jsrt_scr


def verify(capsys, *args: str) -> tuple[int, dict]:
    status = main(["verify", *args, "--json"])
    return status, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("copies")
    write_jsrt_scr(root / "jsrt", root / "scr", n_nodule=2, n_normal=1, seed=0)
    return root


def test_real_nih_metadata_form_counts_and_missing_images(capsys, shared_nih):
    status, result = verify(capsys, "nih", str(shared_nih))
    assert status == 1  # only 20 of the 112,120 images are there
    assert result["found"]["metadata_form"] == "v2020" and result["found"]["metadata_rows"] == 112_120
    assert result["found"]["train_val_list.txt"] == 86_524 and result["found"]["test_list.txt"] == 25_596
    assert any("112100 images missing" in problem for problem in result["problems"])


def test_real_google_labels_are_complete(capsys, shared_nih):
    status, result = verify(capsys, "google", str(shared_nih / "google_expert_labels"))
    assert status == 0 and result["problems"] == []
    assert result["found"]["four_findings_test"] == 1962 and result["found"]["all_findings_test"] == 810


def test_partial_jsrt_copy_lists_the_missing_cases(capsys, copies):
    status, result = verify(capsys, "jsrt", str(copies / "jsrt"))
    assert status == 1  # three synthetic cases are not the 247 of the real database
    assert result["found"]["images"] == 3 and result["found"]["nodules"] == 2
    assert any("JPCLN154" in problem for problem in result["problems"])


def test_truncated_image_is_named(capsys, copies, tmp_path):
    broken = tmp_path / "jsrt"
    broken.mkdir()
    for path in (copies / "jsrt").iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / "JPCLN001.IMG").write_bytes((copies / "jsrt" / "JPCLN001.IMG").read_bytes()[:1000])
    status, result = verify(capsys, "jsrt", str(broken))
    assert status == 1
    assert any("JPCLN001" in problem and "8,388,608" in problem for problem in result["problems"]), result["problems"]


def test_byte_swapped_jsrt_image_is_named_with_the_likely_cause(capsys, copies, tmp_path):
    swapped = tmp_path / "jsrt"
    shutil.copytree(copies / "jsrt", swapped)
    image = swapped / "JPCLN002.IMG"
    np.fromfile(image, ">u2").astype("<u2").tofile(image)  # the same values written little-endian
    status, result = verify(capsys, "jsrt", str(swapped))
    named = [problem for problem in result["problems"] if "JPCLN002" in problem]
    assert status == 1 and len(named) == 1, result["problems"]
    assert "exceed the 12-bit maximum 4095" in named[0] and "byte order" in named[0]
    assert "np.fromfile(f, '<u2').astype('>u2').tofile(f)" in named[0]
    np.fromfile(image, "<u2").astype(">u2").tofile(image)  # the fix it gives
    assert not any("JPCLN002" in problem for problem in verify(capsys, "jsrt", str(swapped))[1]["problems"])


def test_scr_masks_in_a_mirrors_layout_are_found_and_the_layout_is_explained(capsys, copies, tmp_path):
    """Several public mirrors keep the masks in one folder per object at the top, without fold folders."""
    mirror = tmp_path / "scr"
    for gif in (copies / "scr" / "scratch").rglob("*.gif"):
        target = mirror / gif.parent.name.replace(" ", "_") / gif.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(gif, target)
    status, result = verify(capsys, "scr", str(mirror))
    problems = result["problems"]
    assert status == 1 and max(len(problem.replace(str(mirror), "<root>")) for problem in problems) <= 200, problems
    assert any("15 GIF masks found outside the SCR layout" in p and "heart/ (3)" in p and "left_lung/ (3)" in p
               for p in problems), problems
    assert any("expected scratch/fold{1,2}/masks/<object>/<case>.gif" in p and "'right clavicle'" in p
               for p in problems), problems
    assert any(p.endswith("no masks (expected 124)") for p in problems), problems
    assert "observer 1: fold 1 = odd case numbers, fold 2 = even: move them there" in problems


def test_scr_layout_and_missing_folder(capsys, copies, tmp_path):
    status, result = verify(capsys, "scr", str(copies / "scr"))
    assert result["found"]["fold1_masks"] == 10 and result["found"]["fold2_masks"] == 5
    status, result = verify(capsys, "scr", str(tmp_path / "nowhere"))
    assert status == 1 and "folder not found" in result["problems"][0]


def test_human_readable_output(capsys, copies):
    assert main(["verify", "scr", str(copies / "scr")]) == 1
    out = capsys.readouterr().out
    assert out.startswith("scr at ") and "problem(s):" in out


def test_nih_copy_as_downloaded_archives_is_checked_without_unpacking(capsys, shared_nih, tmp_path):
    from cxrbench.acquire.nih_archives import ARCHIVES, METADATA_FILES

    for name in METADATA_FILES:
        (tmp_path / name).symlink_to(shared_nih / name)
    with open(tmp_path / "images_001.tar.gz", "wb") as sparse:  # the published size; contents are not read
        sparse.truncate(ARCHIVES[0].size)
    (tmp_path / "images_02.tar.gz").write_bytes(b"cut short")

    status, result = verify(capsys, "nih", str(tmp_path))

    assert status == 1
    assert result["found"]["archives"] == ["images_001.tar.gz"] and result["found"]["metadata_rows"] == 112_120
    problems = "\n".join(result["problems"])
    assert "images_02.tar.gz: 9 bytes, the published archive has 3952623504" in problems
    assert "images_003.tar.gz (or images_03.tar.gz) is missing" in problems
    assert len(result["problems"]) == 11 and "images missing" not in problems  # 10 missing + 1 short; no images/ check
