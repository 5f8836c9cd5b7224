"""SCR readers against masks and landmark files written in the documented layout and formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.datasets import jsrt, scr
from cxrbench.errors import DataError

SUBSET = ("JPCLN001", "JPCLN002", "JPCNN001")


def object_mask(index: int) -> np.ndarray:
    """A distinct rectangle per object, so stacking order can be checked."""
    mask = np.zeros((scr.MASK_SIZE, scr.MASK_SIZE), dtype=bool)
    mask[100 + 150 * index : 200 + 150 * index, 50 : 60 + 100 * index] = True
    return mask


def write_gif(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="GIF")


def make_tree(root: Path, cases: tuple[str, ...] = SUBSET) -> Path:
    for stem in cases:
        for index, obj in enumerate(scr.OBJECTS):
            write_gif(scr.mask_path(root, stem, obj), object_mask(index).astype(np.uint8) * 255)
    return root


def test_folds_follow_case_number_parity():
    assert scr.fold_of("JPCLN001") == 1 and scr.fold_of("JPCLN002") == 2 and scr.fold_of("JPCNN093") == 1
    fold1 = [stem for stem in jsrt.CASES if scr.fold_of(stem) == 1]
    assert len(fold1) == 124 and sum(stem.startswith("JPCLN") for stem in fold1) == 77
    assert len(jsrt.CASES) - len(fold1) == 123
    with pytest.raises(ValueError):
        scr.fold_of("JPCLN01")


def test_paths_follow_the_distributed_layout(tmp_path):
    assert scr.mask_path(tmp_path, "JPCNN002", "left clavicle") == (
        tmp_path / "scratch" / "fold2" / "masks" / "left clavicle" / "JPCNN002.gif"
    )
    assert scr.points_path(tmp_path, "JPCLN003") == tmp_path / "scratch" / "fold1" / "points" / "JPCLN003.pfs"
    with pytest.raises(ValueError):
        scr.mask_path(tmp_path, "JPCLN001", "liver")


def test_read_mask_treats_any_nonzero_grey_as_foreground(tmp_path):
    pixels = np.zeros((1024, 1024), dtype=np.uint8)
    pixels[10:20, 10:20] = 255
    pixels[30:40, 30:40] = 1  # darkest non-zero grey still counts
    path = tmp_path / "mask.gif"
    write_gif(path, pixels)
    mask = scr.read_mask(path)
    assert mask.dtype == bool and mask.shape == (1024, 1024)
    np.testing.assert_array_equal(mask, pixels > 0)


def test_read_mask_goes_through_the_palette(tmp_path):
    indices = np.zeros((1024, 1024), dtype=np.uint8)
    indices[500:600, 500:600] = 1
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 255, 255, 0, 0, 0])  # index 0 white (foreground), index 1 black (background)
    path = tmp_path / "inverted_palette.gif"
    image.save(path)
    np.testing.assert_array_equal(scr.read_mask(path), indices == 0)


def test_read_mask_rejects_wrong_size_and_non_gifs(tmp_path):
    small = tmp_path / "small.gif"
    write_gif(small, np.zeros((512, 512), dtype=np.uint8))
    with pytest.raises(DataError, match="expected a 1024 x 1024 mask, found 512 x 512"):
        scr.read_mask(small)
    text = tmp_path / "text.gif"
    text.write_text("not an image")
    with pytest.raises(DataError, match="cannot be decoded as a GIF mask"):
        scr.read_mask(text)
    with pytest.raises(DataError, match="SCR mask not found"):
        scr.read_mask(tmp_path / "absent.gif")


def test_read_case_masks_stacks_objects_in_order(tmp_path):
    make_tree(tmp_path, ("JPCLN002",))
    masks = scr.read_case_masks(tmp_path, "JPCLN002")
    assert masks.shape == (5, 1024, 1024) and masks.dtype == bool
    for index in range(len(scr.OBJECTS)):
        np.testing.assert_array_equal(masks[index], object_mask(index))


PFS_TEXT = """[Label=right lung]
[Version=1.0]
[Number of points=3]
{
{ 1.5000e+02, 2.0000e+02 },
{ 160, 210.5 },
{ 170.25, 220 }
}

[Label=heart]
{ -1, 2e1 }
}
"""


def test_read_pfs_returns_blocks_with_their_headers(tmp_path):
    path = tmp_path / "JPCLN001.pfs"
    path.write_text(PFS_TEXT.replace("\n", "\r\n"))
    blocks = scr.read_pfs(path)
    assert [block.header for block in blocks] == [
        {"Label": "right lung", "Version": "1.0", "Number of points": "3"},
        {"Label": "heart"},
    ]
    np.testing.assert_array_equal(blocks[0].points, [[150.0, 200.0], [160.0, 210.5], [170.25, 220.0]])
    np.testing.assert_array_equal(blocks[1].points, [[-1.0, 20.0]])
    assert blocks[0].points.dtype == np.float64


@pytest.mark.parametrize(
    "text, message",
    [
        (PFS_TEXT.rstrip().removesuffix("}"), "not closed"),
        (PFS_TEXT.replace("160, 210.5", "160; 210.5"), r"line 6: unexpected '\{ 160; 210.5 \},' inside a point block"),
        (PFS_TEXT.replace("{ 160, 210.5 },", "[Key=value]"), "line 6: unexpected '.Key=value.' inside a point block"),
        (PFS_TEXT + "[Label=left lung]\n", r"header lines \['Label'\] are not followed by a point block"),
        ("[Label=x]\n", "not followed by a point block"),
        ("", "no point blocks found"),
    ],
)
def test_read_pfs_rejects_malformed_files(tmp_path, text, message):
    path = tmp_path / "bad.pfs"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        scr.read_pfs(path)


def test_verify_tree_accepts_a_complete_copy(tmp_path):
    make_tree(tmp_path)
    assert scr.verify_tree(tmp_path, SUBSET) == []
    assert scr.require_tree(tmp_path, SUBSET) is None


def test_require_tree_lists_every_problem(tmp_path):
    make_tree(tmp_path)
    scr.mask_path(tmp_path, "JPCLN001", "heart").unlink()
    write_gif(tmp_path / "scratch" / "fold1" / "masks" / "heart" / "JPCLN002.gif", np.zeros((1024, 1024), np.uint8))
    write_gif(scr.mask_path(tmp_path, "JPCNN001", "left lung"), np.zeros((256, 256), np.uint8))
    scr.mask_path(tmp_path, "JPCLN002", "right lung").write_bytes(b"\x89PNG not a gif")
    (tmp_path / "scratch" / "fold2" / "masks" / "liver").mkdir()
    problems = scr.verify_tree(tmp_path, SUBSET)
    fold1, fold2 = tmp_path / "scratch" / "fold1" / "masks", tmp_path / "scratch" / "fold2" / "masks"
    assert problems == [
        f"observer 1: {fold1 / 'left lung' / 'JPCNN001.gif'}: expected a 1024 x 1024 GIF, found 256 x 256",
        f"observer 1: {fold1 / 'heart'}: 1 masks missing: JPCLN001",
        f"observer 1: {fold1 / 'heart'}: 1 masks not expected in fold 1: JPCLN002",
        f"observer 1: {fold2} has unknown object folders ['liver']",
        f"observer 1: {fold2 / 'right lung' / 'JPCLN002.gif'}: expected a 1024 x 1024 GIF, found not a GIF file",
    ]
    with pytest.raises(DataError) as caught:
        scr.require_tree(tmp_path, SUBSET)
    assert all(problem in str(caught.value) for problem in problems)
    assert scr.SCR_URL in str(caught.value)


def test_second_observer_default_folder_and_explicit_path(tmp_path):
    make_tree(tmp_path)
    make_tree(tmp_path / "observer2")
    assert scr.observer2_root(tmp_path) == tmp_path / "observer2"
    assert scr.require_tree(tmp_path, SUBSET) == tmp_path / "observer2"
    np.testing.assert_array_equal(
        scr.read_case_masks(scr.observer2_root(tmp_path), "JPCNN001"), scr.read_case_masks(tmp_path, "JPCNN001")
    )
    scr.mask_path(tmp_path / "observer2", "JPCNN001", "heart").unlink()
    assert scr.verify_tree(tmp_path, SUBSET) == [
        f"observer 2: {tmp_path / 'observer2' / 'scratch' / 'fold1' / 'masks' / 'heart'}: 1 masks missing: JPCNN001"
    ]
    elsewhere = make_tree(tmp_path / "second_reader")
    assert scr.require_tree(tmp_path, SUBSET, observer2_dir=elsewhere) == elsewhere  # overrides the default
    assert scr.verify_tree(tmp_path, SUBSET, observer2_dir=tmp_path / "absent") == [
        f"observer 2: folder {tmp_path / 'absent'} not found"
    ]


def test_verify_tree_against_all_cases_reports_missing_masks(tmp_path):
    make_tree(tmp_path)
    problems = scr.verify_tree(tmp_path)
    assert len(problems) == 10  # one line per object and fold
    right_lung = tmp_path / "scratch" / "fold1" / "masks" / "right lung"
    assert problems[0].startswith(f"observer 1: {right_lung}: 122 masks missing")


def test_masks_in_a_mirrors_layout_are_counted_where_found_in_short_lines(tmp_path):
    """Several public mirrors keep the 1,235 masks in one folder per object at the top, without folds."""
    mirror = tmp_path / "mirror"
    header_only = b"GIF89a" + (1024).to_bytes(2, "little") * 2  # all verify reads of a mask
    for obj in scr.OBJECTS:
        folder = obj.replace(" ", "_")
        if obj == "left clavicle":
            folder = f"masks as downloaded from a public mirror/{folder}"  # too long to show whole
        (mirror / folder).mkdir(parents=True)
        for stem in jsrt.CASES:
            (mirror / folder / f"{stem}.gif").write_bytes(header_only)
    make_tree(mirror / "second_reader", ("JPCLN001",))  # another observer's copy inside: in the layout, not a stray
    problems = scr.verify_tree(mirror)
    assert problems[0] == f"observer 1: {mirror / 'scratch' / 'fold1' / 'masks' / 'right lung'}: no masks (expected 124)"
    assert len(problems) == 13 and all(len(p.replace(str(mirror), "<root>")) <= 200 for p in problems), problems
    assert problems[10] == ("observer 1: 1235 GIF masks found outside the SCR layout, in .../left_clavicle/ (247), "
                            "heart/ (247), left_lung/ (247), right_clavicle/ (247) and 1 more")
    assert problems[11] == (f"observer 1: expected scratch/fold{{1,2}}/masks/<object>/<case>.gif under {mirror}, with "
                            "object folders named 'right lung', 'left lung', 'heart', 'right clavicle', 'left clavicle'")
    assert problems[12] == "observer 1: fold 1 = odd case numbers, fold 2 = even: move them there"
