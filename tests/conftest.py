"""Shared fixtures: paths to the reference data, skipping cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def chinchilla_csv() -> Path:
    path = SHARED_DATA / "chinchilla_epoch" / "svg_extracted_data.csv"
    if not path.is_file():
        pytest.skip(f"reference data not found at {path} (it lives beside the project, in ../shared/data)")
    return path
