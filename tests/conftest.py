"""Shared fixtures. Real NIH files live in ../shared/data/nih beside the project; tests that need
them skip cleanly when that folder is absent (a user's clone has no ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_NIH = PROJECT_ROOT.parent / "shared" / "data" / "nih"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def shared_nih() -> Path:
    """The real NIH metadata, split lists, Google labels and 20 images; skip when absent."""
    if not (SHARED_NIH / "Data_Entry_2017_v2020.csv").is_file():
        pytest.skip(f"real NIH files not found at {SHARED_NIH}")
    return SHARED_NIH
