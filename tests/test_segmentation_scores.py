"""SCR scoring as the benchmark scores (cxrbench.segmentation_scores): at the masks' own 1024 px, on the published
objects (lung fields and clavicles each as one object) and the single ones. Hand-worked values on rectangles,
the interpolation's pixel-centre convention, and the published objects' figures of a finished run recomputed by
a second path (bits of the packed masks, SciPy's distance transform)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import binary_erosion, distance_transform_edt

from cxrbench import store
from cxrbench.segmentation_scores import packed_to_reference_size, round_trip, score_masks, to_reference_size
from cxrbench.stages.decode_jsrt import resample_masks
from cxrbench.vocabulary import OBJECTS, PUBLISHED_OBJECTS, SCORED_OBJECTS

SIZE = 1024
# (top, bottom, left, right) of each object's rectangle, inclusive; disjoint, at least 2 px apart
RECTANGLES = {"right lung": (200, 699, 150, 449), "left lung": (220, 739, 560, 839), "heart": (760, 899, 400, 619),
              "right clavicle": (100, 139, 150, 399), "left clavicle": (100, 129, 600, 899)}


def _cases(shift: int = 0, cases: int = 2) -> np.ndarray:
    """Packed (cases, 1024, 1024) masks of the rectangles, moved `shift` px to the right."""
    masks = np.zeros((len(OBJECTS), SIZE, SIZE), dtype=bool)
    for k, obj in enumerate(OBJECTS):
        top, bottom, left, right = RECTANGLES[obj]
        masks[k, top:bottom + 1, left + shift:right + shift + 1] = True
    return np.repeat(store.pack_masks(masks)[None], cases, axis=0)


def _index_and_split(cases: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    names = [f"JPCNN{n:03d}" for n in range(1, cases + 1)]
    index = pd.DataFrame({"case": names, "row": range(cases)})
    return index, pd.DataFrame({"case": names, "fold": [1 + n % 2 for n in range(cases)]})


def _width_height(obj: str) -> tuple[int, int]:
    top, bottom, left, right = RECTANGLES[obj]
    return right - left + 1, bottom - top + 1


def test_a_perfect_prediction_scores_one_and_a_one_pixel_shift_the_value_worked_out_by_hand():
    index, split = _index_and_split()
    perfect, cases = score_masks(_cases(), index, split, _cases(), 128)
    assert set(cases["jaccard"]) == {1.0} and set(cases["dice"]) == {1.0} and set(cases["contour_mm"]) == {0.0}
    assert perfect["overall"]["pixel_error"]["mean"] == 0.0
    assert list(perfect["overall"]["objects"]) == list(SCORED_OBJECTS)

    shifted, cases = score_masks(_cases(shift=1), index, split, _cases(), 128)
    objects = shifted["overall"]["objects"]
    for obj in SCORED_OBJECTS:
        members = PUBLISHED_OBJECTS.get(obj, (obj,))
        widths = sum(_width_height(m)[0] for m in members)
        # each rectangle (height h) loses one column of h pixels and gains one: w - 1 common of w + 1 in all
        heights = {_width_height(m)[1] for m in members}
        common = sum((_width_height(m)[0] - 1) * _width_height(m)[1] for m in members)
        union = sum((_width_height(m)[0] + 1) * _width_height(m)[1] for m in members)
        assert objects[obj]["jaccard"]["mean"] == pytest.approx(common / union, abs=1e-6)
        if len(heights) == 1 and len(members) == 1:
            assert objects[obj]["jaccard"]["mean"] == pytest.approx((widths - 1) / (widths + 1), abs=1e-6)
    for obj in ("heart", "right lung", "left clavicle"):
        # inner 4-connected contours, 2w + 2(h - 2) pixels each; moved one column, the two side columns' interior
        # pixels and one pixel of the top and bottom rows lie 1 px from the other contour, the rest on it
        w, h = _width_height(obj)
        assert objects[obj]["contour_mm"]["mean"] == pytest.approx((h - 1) / (w + h - 2) * 0.35, abs=1e-6)
    # every rectangle disagrees on two of its columns
    error = sum(2 * _width_height(obj)[1] for obj in OBJECTS) / SIZE**2
    assert shifted["overall"]["pixel_error"]["mean"] == pytest.approx(error, abs=1e-6)
    assert shifted["store_size"] == 128 and shifted["scored_size"] == SIZE and shifted["pixel_mm"] == 0.35


def test_masks_at_the_store_size_come_up_with_pixel_centres_aligned():
    """A band of store pixels covers exactly the 1024 px band under it: at 8x, the bilinear value crosses 0.5
    half-way between two store pixel centres, on a 1024 px pixel edge (with corners aligned instead, the edges
    would drift across the image). Bands, because bilinear interpolation rounds a block's corners."""
    small = np.zeros((1, len(OBJECTS), 128, 128), dtype=bool)
    small[0, 0, :, 10:50] = True
    small[0, 3, 100:128, :] = True  # touching the border
    up = to_reference_size(torch.from_numpy(small).float()).numpy()
    assert np.array_equal(up, small.repeat(8, axis=-2).repeat(8, axis=-1))
    assert np.array_equal(packed_to_reference_size(store.pack_masks(small)), store.pack_masks(up))


def test_the_published_objects_of_a_finished_run_agree_with_a_second_path(tiny_run):
    """Lung fields and clavicles from the packed masks' bits (no unpacking, no merging) and the contour distance
    from SciPy's exact distance transform agree with the run's cases.csv."""
    cases = pd.read_csv(tiny_run / "results/segmenter/cases.csv").set_index(["case", "object"])
    index = store.read_index(tiny_run / "data/store/jsrt")
    predicted = np.load(tiny_run / "results/segmenter/predictions_1024.npy", mmap_mode="r")
    reference = store.open_array(store.find_reference_masks(tiny_run / "data/store/jsrt"))
    assert len(cases) == len(index) * len(SCORED_OBJECTS)
    for obj, members in PUBLISHED_OBJECTS.items():
        bits = np.uint8(sum(1 << OBJECTS.index(m) for m in members))
        for case, row in zip(index["case"], index["row"]):
            pred, ref = (predicted[row] & bits) > 0, (reference[row] & bits) > 0
            jaccard = np.count_nonzero(pred & ref) / np.count_nonzero(pred | ref)
            assert cases.at[(case, obj), "jaccard"] == pytest.approx(jaccard, abs=1e-6)
            edges = [mask & ~binary_erosion(mask, np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])) for mask in (pred, ref)]
            distance = (distance_transform_edt(~edges[1])[edges[0]].mean()
                        + distance_transform_edt(~edges[0])[edges[1]].mean()) / 2 * 0.35
            assert cases.at[(case, obj), "contour_mm"] == pytest.approx(distance, abs=1e-6)


def test_the_store_size_caps_the_clavicles_and_512_px_lifts_the_cap(tiny_run):
    """The round trip of the reference masks through the store (decode_jsrt's resampling, then up as predictions
    come up) at the demo's 128 px and the full configuration's 512 px: the thin clavicles lose most, and 512 px
    keeps them close to whole (the figures in configs/experiment/scr_van_ginneken_2006.yaml)."""
    jsrt_store = tiny_run / "data/store/jsrt"
    reference = store.open_array(store.find_reference_masks(jsrt_store))
    index, split = store.read_index(jsrt_store), pd.read_csv(tiny_run / "data/splits/scr.csv")
    caps = {}
    for size in (128, 512):
        small = np.stack([store.pack_masks(resample_masks(store.unpack_masks(masks, len(OBJECTS)), size))
                          for masks in reference])
        caps[size] = round_trip(small, index, split, reference)
    assert round(caps[128]["clavicles"], 2) == 0.88 and round(caps[512]["clavicles"], 2) == 0.96
    assert min(caps[128][obj] for obj in ("lung fields", "heart")) > 0.975
    assert min(caps[512][obj] for obj in ("lung fields", "heart")) > 0.99


def test_the_second_observer_is_scored_as_any_outside_masks_are(tiny_run, tmp_path):
    """evaluate_segmenter's human-observer row (SCR's second observer against the first, on the same cases) is what
    scoring the second observer's masks as an outside prediction gives; on the phantoms close to 1, below it."""
    import json

    import cxrbench.data as api

    scores = json.loads((tiny_run / "results/segmenter/scores.json").read_text())
    observer2 = store.find_observer2_masks(tiny_run / "data/store/jsrt")
    np.save(tmp_path / "observer2.npy", store.open_array(observer2))
    assert api.score_segmenter(tmp_path / "observer2.npy", tiny_run)["overall"] == scores["second_observer"]
    for obj in PUBLISHED_OBJECTS:
        assert 0.75 < scores["second_observer"]["objects"][obj]["jaccard"]["mean"] < 1
