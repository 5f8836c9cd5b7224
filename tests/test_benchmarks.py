"""The speed benchmarks run end to end (--quick) and end on one well-formed RESULT line; their shared helpers
build that line, measure memory and write NIH-like PNGs correctly. No timing is asserted."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

RESULT = re.compile(r"RESULT (?P<name>[a-z_]+) ratio=(?P<ratio>\S+)(?P<figures>(?: [a-z0-9_]+=\S+)+)")
REQUIRED = {
    "decode": ["stage_img_s", "workers", "decode_only_img_s", "bound", "rss_small_mb", "rss_large_mb", "rss_growth"],
    "loader": ["store_img_s", "png_img_s", "rss_small_mb", "rss_large_mb", "api_img_s", "api_ratio"],
}


@pytest.fixture(scope="module")
def common(project_root):
    spec = importlib.util.spec_from_file_location("_common", project_root / "benchmarks" / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_result(stdout: str) -> tuple[str, float, dict[str, str]]:
    lines = stdout.strip().splitlines()
    assert [line for line in lines if line.startswith("RESULT")] == lines[-1:], "exactly one RESULT line, last"
    match = RESULT.fullmatch(lines[-1])
    assert match, f"malformed RESULT line: {lines[-1]!r}"
    figures = dict(field.split("=", 1) for field in match["figures"].split())
    return match["name"], float(match["ratio"]), figures


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_quick_run_ends_with_one_well_formed_result_line(project_root, tmp_path, name):
    script = project_root / "benchmarks" / f"{name}.py"
    done = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result_name, ratio, figures = parse_result(done.stdout)
    assert result_name == name
    assert set(REQUIRED[name]) <= set(figures), f"missing figures: {set(REQUIRED[name]) - set(figures)}"
    numbers = {key: float(value) for key, value in figures.items() if not key.endswith("flat")}
    assert all(math.isfinite(value) and value >= 0 for value in numbers.values())
    assert ratio > 0 and all(numbers[key] > 0 for key in REQUIRED[name])
    assert all(figures[key] in {"yes", "no"} for key in figures if key.endswith("flat"))
    if name == "decode":  # the ratio is the per-worker stage rate over the one-process decode rate
        expected = numbers["stage_img_s"] / numbers["workers"] / numbers["decode_only_img_s"]
        assert numbers["bound"] == pytest.approx(numbers["parallel_ceiling"] * numbers["work_ratio"], rel=0.02)
    else:  # the ratio is the store rate over the PNG loader's
        expected = numbers["store_img_s"] / numbers["png_img_s"]
    assert ratio == pytest.approx(expected, rel=0.02)
    assert numbers["rss_growth"] == pytest.approx(numbers["rss_large_mb"] / numbers["rss_small_mb"], rel=0.02)
    if name == "loader":  # the control that copies the store must show it: the measurement can see a copy
        store_mb = numbers["store_rows_large"] * 224 * 224 / 2**20
        assert numbers["copy_private_large_mb"] > numbers["private_large_mb"] + 0.5 * store_mb, figures
        assert numbers["api_ratio"] == pytest.approx(numbers["api_img_s"] / numbers["png_img_s"], rel=0.02)
    assert list(tmp_path.iterdir()) == [], "the benchmark must clean up after itself"


def test_paired_auc_quick_run_checks_itself_and_reports_its_ratio(project_root, tmp_path):
    done = subprocess.run([sys.executable, str(project_root / "benchmarks" / "paired_auc.py"), "--quick"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    name, ratio, figures = parse_result(done.stdout)
    assert name == "paired_auc" and figures["pairs"] == "3" and float(figures["max_abs_diff"]) < 1e-9
    assert ratio == pytest.approx(float(figures["reference_s"]) / float(figures["midrank_s"]), rel=0.05)


def test_result_line_format(common):
    line = common.result_line("demo", 0.8123, {"rate": 123456.7, "small": 12.345, "count": 7, "flat": True})
    assert line == "RESULT demo ratio=0.812 rate=123457 small=12.3 count=7 flat=yes"
    assert RESULT.fullmatch(line)


PEAK_MEMORY_PROBE = """
import sys, time
import numpy as np
sys.path.insert(0, "benchmarks")
import _common
with _common.PeakMemory() as before:
    pass
with _common.PeakMemory() as during:
    block = np.ones(200 * _common.MIB, dtype=np.uint8)  # touched pages: really resident
    time.sleep(0.1)
    del block
print(before.private_mb, during.private_mb, during.rss_mb)
"""


def test_peak_memory_sees_a_private_allocation(project_root):
    """In a fresh interpreter: a long-lived test process may hand the block pages it already holds."""
    probe = subprocess.run([sys.executable, "-c", PEAK_MEMORY_PROBE], cwd=project_root, capture_output=True,
                           text=True, check=True)
    before, during, during_rss = map(float, probe.stdout.split())
    assert during > before + 150
    assert during_rss >= during


def test_test_pngs_are_nih_like_and_deterministic(common, tmp_path):
    first = common.write_test_pngs(tmp_path / "a", 3, seed=1)
    again = common.write_test_pngs(tmp_path / "b", 3, seed=1)
    assert [p.name for p in first] == ["00000000_000.png", "00000001_000.png", "00000002_000.png"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert first[0].read_bytes() != first[1].read_bytes()
    image = cv2.imread(str(first[0]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (1024, 1024) and image.dtype == np.uint8
    assert 250_000 < first[0].stat().st_size < 600_000  # real NIH PNGs are 300-500 KiB


def test_test_pngs_repeat_a_source_folder(common, tmp_path):
    source = common.write_test_pngs(tmp_path / "source", 2, seed=2)
    copies = common.write_test_pngs(tmp_path / "copies", 5, seed=0, source=tmp_path / "source")
    assert [p.read_bytes() for p in copies] == [source[i % 2].read_bytes() for i in range(5)]
    with pytest.raises(common.DataError, match="no .png files"):
        common.write_test_pngs(tmp_path / "none", 1, seed=0, source=tmp_path / "copies" / "missing")
